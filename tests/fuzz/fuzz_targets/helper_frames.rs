//! The helper protocol's frame decoder: arbitrary bytes -> `read_frame` -> `Request::decode` and
//! `Reply::decode`.
//!
//! Input layout: byte 0 picks how many bytes each `read` call returns (1..=16, or all when the
//! byte is 0) and whether reads are interrupted now and then (bit 7); the rest is the byte
//! stream, read frame after frame until `read_frame` refuses.
//!
//! Invariants: no panic, no allocation beyond the frame bound; every payload that decodes is
//! the canonical encoding of its value (encode(decode(p)) == p, hence decode(encode(x)) == x),
//! and a written frame reads back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qga_protocol::{read_frame, write_frame, FrameError, Reply, Request, MAX_FRAME};
use std::io::{self, Read};

/// A reader that returns at most `step` bytes per call and, if asked, fails every third call
/// with `Interrupted`.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    interrupt: bool,
    calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.interrupt && self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn check_frame(payload: &[u8]) {
    let mut framed = Vec::new();
    write_frame(&mut framed, payload).expect("a frame read within the bound must be writable");
    assert_eq!(read_frame(&mut &framed[..]).expect("a written frame must read back"), payload);

    if let Ok(request) = Request::decode(payload) {
        let _ = request.command();
        assert_eq!(request.encode(), payload, "request {request:?} has a non-canonical encoding");
        assert_eq!(Request::decode(&request.encode()).unwrap(), request);
    }
    if let Ok(reply) = Reply::decode(payload) {
        assert_eq!(reply.encode(), payload, "reply {reply:?} has a non-canonical encoding");
        assert_eq!(Reply::decode(&reply.encode()).unwrap(), reply);
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else { return };
    let step = match mode & 0x0F {
        0 => usize::MAX,
        n => n as usize,
    };
    let mut reader = Trickle { data, step, interrupt: mode & 0x80 != 0, calls: 0 };
    loop {
        match read_frame(&mut reader) {
            Ok(payload) => {
                assert!(payload.len() <= MAX_FRAME);
                check_frame(&payload);
            }
            Err(FrameError::Closed) => {
                assert!(reader.data.is_empty());
                break;
            }
            Err(FrameError::TooLong(n)) => {
                assert!(n > MAX_FRAME);
                break;
            }
            Err(FrameError::Truncated) => {
                assert!(reader.data.is_empty());
                break;
            }
            Err(e) => panic!("unexpected frame error from an in-memory reader: {e}"),
        }
    }
    // The payload decoders on their own, without the length prefix.
    check_frame(&data[..data.len().min(MAX_FRAME)]);
});
