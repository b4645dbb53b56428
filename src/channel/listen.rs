//! unix-listen and vsock-listen sockets.

use nix::errno::Errno;
use nix::libc;
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

/// Accepts one client, non-blocking. `Ok(None)` when there is none after all, or when a vsock
/// peer is not the host (see [`admitted`]): that connection is closed and logged.
pub fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // accept4 with room for the peer's address: the same system call as without (the front's
    // seccomp filter needs nothing more).
    // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
    let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut peer_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `peer` and `peer_len` are live locals describing a buffer of `peer_len` bytes,
    // which the kernel fills with at most that many.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::addr_of_mut!(peer).cast(),
            &mut peer_len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return match Errno::last() {
            Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED => Ok(None),
            e => Err(e.into()),
        };
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Peer::VsockGuest(cid) = peer_of(&peer) {
        crate::warning!("vsock connection from CID {cid} refused: only the host (CID {VMADDR_CID_HOST}) may connect");
        return Ok(None);
    }
    widen_send_buffer(&fd);
    Ok(Some(fd))
}

/// The host's address on vsock (`VMADDR_CID_HOST` of <linux/vm_sockets.h>).
pub const VMADDR_CID_HOST: u32 = 2;

/// Who connected, as far as admission cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Peer {
    /// A unix socket peer: admitted by the socket file's permissions.
    Local,
    /// The host, over vsock.
    VsockHost,
    /// Any other vsock peer (another guest, a process in this guest over loopback): refused.
    VsockGuest(u32),
}

/// Classifies the peer address accept4 returned.
pub fn peer_of(addr: &libc::sockaddr_storage) -> Peer {
    if i32::from(addr.ss_family) != libc::AF_VSOCK {
        return Peer::Local;
    }
    // SAFETY: the family says the storage holds a sockaddr_vm, which is smaller than
    // sockaddr_storage and has no invalid bit patterns.
    let vm = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_vm>() };
    admitted(vm.svm_cid)
}

/// Only the host may talk to the agent over vsock: any guest or local process can connect to a
/// vsock port, and the agent's commands are the host's.
pub fn admitted(cid: u32) -> Peer {
    if cid == VMADDR_CID_HOST {
        Peer::VsockHost
    } else {
        Peer::VsockGuest(cid)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vsock_from(cid: u32) -> libc::sockaddr_storage {
        // SAFETY: all zero bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: sockaddr_vm fits in sockaddr_storage, which is suitably aligned for it.
        let vm = unsafe { &mut *std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_vm>() };
        vm.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        vm.svm_cid = cid;
        vm.svm_port = 1234;
        storage
    }

    #[test]
    fn finding_11_a_vsock_peer_other_than_the_host_is_refused() {
        assert_eq!(peer_of(&vsock_from(2)), Peer::VsockHost);
        for cid in [0, 1, 3, 42, u32::MAX] {
            assert_eq!(peer_of(&vsock_from(cid)), Peer::VsockGuest(cid), "CID {cid}");
        }
    }

    #[test]
    fn a_unix_socket_peer_is_left_to_the_socket_permissions() {
        // SAFETY: all zero bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        storage.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(peer_of(&storage), Peer::Local);
    }
}
