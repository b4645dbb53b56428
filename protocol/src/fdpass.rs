//! An open file from the helper to the front: the helper sends the one frame of
//! [`Reply::FileOpened`](crate::Reply::FileOpened) with the descriptor attached (SCM_RIGHTS) in a
//! single `sendmsg`; the front reads every reply with `recvmsg` and so sees any descriptor that
//! came with it. Which replies may carry one, and how many, the front decides after decoding
//! (exactly one on `FileOpened`, none anywhere else); a descriptor it does not take is closed
//! when the returned vector drops.

use crate::wire::{FrameError, MAX_FRAME};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// How many descriptors one read makes room for: more than any reply carries, so a peer that
/// sends several is seen doing it (and the extra ones are received, then closed) rather than
/// having the kernel drop them silently.
const FD_ROOM: usize = 4;

/// Writes one frame with `fd` attached to its first byte.
pub fn write_frame_with_fd(sock: &mut UnixStream, payload: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame too long"));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    let fds = [fd.as_raw_fd()];
    let sent = loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&buf)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    };
    // The descriptor went with the first byte; the rest of a large frame follows plainly.
    sock.write_all(&buf[sent..])
}

/// One frame read with `recvmsg`: its payload and every descriptor that came with its bytes.
pub struct Received {
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
    /// The kernel had more control data than there was room for (descriptors it then closed).
    pub truncated: bool,
}

/// Reads one frame as [`crate::read_frame_with`] does (its bound chosen by its tag), keeping
/// the descriptors that arrive with it (received close-on-exec).
pub fn read_frame_with_fds(sock: &mut UnixStream, bound: impl Fn(u8) -> usize) -> Result<Received, FrameError> {
    let mut got = Received { payload: Vec::new(), fds: Vec::new(), truncated: false };
    let mut len = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match recv_some(sock, &mut len[n..], &mut got)? {
            0 if n == 0 => return Err(FrameError::Closed),
            0 => return Err(FrameError::Truncated),
            k => n += k,
        }
    }
    let size = u32::from_le_bytes(len) as usize;
    if size > crate::MAX_EXEC_FRAME.max(MAX_FRAME) {
        return Err(FrameError::TooLong(size));
    }
    // The tag first, so the bound it chooses is checked before the rest is allocated.
    let mut payload = vec![0u8; size.min(1)];
    if size > 0 {
        if recv_some(sock, &mut payload, &mut got)? == 0 {
            return Err(FrameError::Truncated);
        }
        if size > bound(payload[0]) {
            return Err(FrameError::TooLong(size));
        }
    }
    payload.resize(size, 0);
    let mut n = size.min(1);
    while n < size {
        match recv_some(sock, &mut payload[n..], &mut got)? {
            0 => return Err(FrameError::Truncated),
            k => n += k,
        }
    }
    got.payload = payload;
    Ok(got)
}

/// One `recvmsg` into `buf`, adding what descriptors came to `got`.
fn recv_some(sock: &mut UnixStream, buf: &mut [u8], got: &mut Received) -> Result<usize, FrameError> {
    let mut space = nix::cmsg_space!([RawFd; FD_ROOM]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(FrameError::Io(io::Error::from(e))),
        };
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            got.truncated = true;
        }
        let bytes = msg.bytes;
        for cmsg in msg.cmsgs().map_err(|e| FrameError::Io(io::Error::from(e)))? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor in this process for
                    // this message; nothing else refers to it.
                    got.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        return Ok(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_frame_with_a_descriptor_arrives_with_exactly_that_descriptor() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let payload = vec![7u8; 100_000];
        let writer = std::thread::spawn(move || write_frame_with_fd(&mut a, &payload, file.as_fd()).map(|()| a));
        let got = read_frame_with_fds(&mut b, |_| MAX_FRAME).unwrap();
        let _a = writer.join().unwrap().unwrap();
        assert_eq!(got.payload, vec![7u8; 100_000]);
        assert_eq!(got.fds.len(), 1);
        assert!(!got.truncated);
    }

    #[test]
    fn a_plain_frame_carries_no_descriptor() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        crate::write_frame(&mut a, b"abc").unwrap();
        let got = read_frame_with_fds(&mut b, |_| MAX_FRAME).unwrap();
        assert_eq!(got.payload, b"abc");
        assert!(got.fds.is_empty());
        drop(a);
        assert!(matches!(read_frame_with_fds(&mut b, |_| MAX_FRAME), Err(FrameError::Closed)));
    }
}
