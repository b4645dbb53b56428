//! The client connection: prepared requests out, reply lines in.

use crate::*;

pub(crate) struct Conn {
    pub(crate) s: UnixStream,
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Conn {
    pub(crate) fn new(s: UnixStream) -> Conn {
        Conn { s, buf: vec![0; 256 * KIB], start: 0, end: 0 }
    }

    pub(crate) fn send(&mut self, req: &[u8]) {
        self.s.write_all(req).expect("write to agent");
    }

    /// The next reply line (without the newline).
    pub(crate) fn line(&mut self) -> &[u8] {
        let mut scan = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[scan..self.end]) {
                let (a, b) = (self.start, scan + i);
                self.start = b + 1;
                return &self.buf[a..b];
            }
            scan = self.end;
            if self.start > 0 && self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                scan -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let n = self.s.read(&mut self.buf[self.end..]).expect("read from agent");
            assert!(n > 0, "agent closed the connection");
            self.end += n;
        }
    }

    pub(crate) fn call(&mut self, req: &[u8]) -> &[u8] {
        self.send(req);
        let line = self.line();
        assert!(find(line, b"\"return\"").is_some(), "error reply to {}: {}", show(req), show(line));
        line
    }

    pub(crate) fn call_json(&mut self, req: &str) -> serde_json::Value {
        let line = self.call(req.as_bytes()).to_vec();
        let v: serde_json::Value = serde_json::from_slice(&line).expect("reply is JSON");
        v["return"].clone()
    }

    /// Releases the large buffer after a file test.
    pub(crate) fn shrink(&mut self) {
        if self.buf.len() > 256 * KIB && self.end - self.start <= 256 * KIB {
            let mut b = vec![0; 256 * KIB];
            b[..self.end - self.start].copy_from_slice(&self.buf[self.start..self.end]);
            self.end -= self.start;
            self.start = 0;
            self.buf = b;
        }
    }
}
