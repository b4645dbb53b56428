//! The frame's building blocks both message modules use: the bounds, the error a refused frame
//! gives, and the little-endian field encoder and strict decoder.

use std::io;

/// Largest payload either side accepts. Replies carry per-filesystem results and error texts.
pub const MAX_FRAME: usize = 1 << 20;
/// Largest string inside a frame (paths, error texts).
pub const MAX_STR: usize = 64 * 1024;

/// Why a frame was refused.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the socket at a frame boundary.
    Closed,
    Io(io::Error),
    TooLong(usize),
    Truncated,
    UnknownTag(u8),
    BadValue(&'static str),
    TrailingBytes(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => write!(f, "peer closed the connection"),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
            FrameError::TooLong(n) => write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte bound"),
            FrameError::Truncated => write!(f, "truncated frame"),
            FrameError::UnknownTag(t) => write!(f, "unknown tag {t}"),
            FrameError::BadValue(what) => write!(f, "invalid {what}"),
            FrameError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the message"),
        }
    }
}

impl std::error::Error for FrameError {}

// ---- encoding ----

pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Bytes that need not be UTF-8 (the host's strings are modified UTF-8); the caller
    /// bounds their length.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    /// An optional value: 0, or 1 followed by what `put` writes for it.
    pub(crate) fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }
    pub(crate) fn str(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(MAX_STR)];
        // Cut at a char boundary so the peer's UTF-8 check passes.
        let mut n = b.len();
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.u32(n as u32);
        self.0.extend_from_slice(&s.as_bytes()[..n]);
    }
}

pub(crate) struct Dec<'a>(pub(crate) &'a [u8]);

impl<'a> Dec<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, FrameError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(self.i64()? as u64)
    }
    pub(crate) fn bytes(&mut self, max: usize) -> Result<Vec<u8>, FrameError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(FrameError::BadValue("byte string length"));
        }
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(FrameError::BadValue("boolean")),
        }
    }
    pub(crate) fn str(&mut self) -> Result<String, FrameError> {
        let n = self.u32()? as usize;
        if n > MAX_STR {
            return Err(FrameError::BadValue("string length"));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::BadValue("UTF-8 string"))
    }
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, FrameError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(FrameError::BadValue("list length"));
        }
        Ok(n)
    }
    pub(crate) fn finish(self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes(self.0.len()))
        }
    }
}
