//! unix-listen and vsock-listen sockets.

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, VsockAddr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Listens on a unix socket path, replacing a stale socket file as qemu-ga does.
pub fn listen_unix(path: &str) -> io::Result<OwnedFd> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => std::fs::remove_file(path)?,
        _ => {}
    }
    let listener =
        UnixListener::bind(path).map_err(|e| io::Error::new(e.kind(), format!("error binding '{path}': {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(OwnedFd::from(listener))
}

/// Listens on `<cid>:<port>`.
pub fn listen_vsock(addr: &str) -> io::Result<OwnedFd> {
    let bad =
        || io::Error::new(io::ErrorKind::InvalidInput, format!("invalid vsock address '{addr}' (expected CID:PORT)"));
    let (cid, port) = addr.split_once(':').ok_or_else(bad)?;
    let cid: u32 = cid.parse().map_err(|_| bad())?;
    let port: u32 = port.parse().map_err(|_| bad())?;
    let fd =
        socket::socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
    socket::listen(&fd, Backlog::new(1).map_err(io::Error::from)?)?;
    Ok(fd)
}

/// Accepts one client, non-blocking. `Ok(None)` when there is none after all.
pub fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    match socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
        Ok(fd) => {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            widen_send_buffer(&fd);
            Ok(Some(fd))
        }
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::ECONNABORTED) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// What a client's send buffer is asked to hold; the kernel caps it at net.core.wmem_max.
const CLIENT_SEND_BUFFER: usize = 4 << 20;

/// A guest-file-read reply can be 64 MiB. With the default send buffer (about 200 KiB) each
/// reply goes out in many small pieces, each costing the agent a wait for the client to
/// read; a larger buffer cuts those round trips. Best effort: the default still works.
fn widen_send_buffer(fd: &OwnedFd) {
    let _ = socket::setsockopt(fd, socket::sockopt::SndBuf, &CLIENT_SEND_BUFFER);
}
