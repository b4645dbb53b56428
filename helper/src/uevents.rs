//! The kernel's device events, as the storage cache's invalidation signal.
//!
//! guest-get-fsinfo and guest-get-disks describe devices from sysfs and udev's database; that
//! description changes only when a device does, and the kernel announces every such change
//! (add, remove, change, move, bind, unbind, online, offline) on the `NETLINK_KOBJECT_UEVENT`
//! multicast group 1; udevd announces each device it has finished (its database record
//! written) on group 2. The helper holds one socket bound to both, opened before its seccomp
//! filter (which allows no socket calls), non-blocking and close-on-exec. Before the cache is
//! used it is drained without waiting: any message, of any device, or any error (ENOBUFS says
//! messages were lost) means "something may have changed" and the cache is dropped. The
//! messages are never parsed: nothing the helper does depends on their content, so a message
//! cannot steer it, only cost it one rebuild.
//!
//! Receiving kernel uevents needs no capability (the family is open to unprivileged
//! listeners), so the demoted helper keeps what it has. The kernel sends them only to sockets
//! of network namespaces owned by the initial user namespace: [`Uevents::open`] refuses to
//! return a socket elsewhere (a helper in a user-namespaced container), and without one the
//! storage queries read everything afresh on every request, as before.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

/// Kernel uevents (1) and udevd's processed events (2).
const GROUPS: u32 = 1 | 2;
/// Most messages read in one drain; a longer queue drops the cache like any message does (the
/// rest is read by the next drain).
const MAX_DRAIN: usize = 4096;

/// The bound uevent socket.
#[derive(Debug)]
pub struct Uevents {
    fd: OwnedFd,
}

impl Uevents {
    /// Opens and binds the socket; the text says why there is none.
    pub fn open() -> Result<Uevents, String> {
        if !in_initial_user_namespace(&std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default()) {
            return Err("not in the initial user namespace, where the kernel sends its device events".to_owned());
        }
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|e| format!("uevent socket: {}", e.desc()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUPS)).map_err(|e| format!("uevent socket bind: {}", e.desc()))?;
        Ok(Uevents { fd })
    }

    /// A socket that is already bound (the tests' stand-in).
    pub fn from_fd(fd: OwnedFd) -> Uevents {
        Uevents { fd }
    }

    /// Reads everything queued without waiting; true if anything was there or the socket
    /// reported an error (lost messages): the devices may have changed since the last drain.
    pub fn changed(&self) -> bool {
        // The content is never looked at: a short buffer truncates the datagram, which the
        // kernel then discards whole.
        let mut buf = [0u8; 64];
        let mut any = false;
        for _ in 0..MAX_DRAIN {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => any = true,
                Err(Errno::EAGAIN) => return any,
                Err(Errno::EINTR) => {}
                Err(_) => any = true,
            }
        }
        true
    }
}

impl AsFd for Uevents {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a `/proc/self/uid_map` text is the initial user namespace's identity map.
pub fn in_initial_user_namespace(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{send, socketpair};

    fn pair() -> (Uevents, OwnedFd) {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_NONBLOCK).unwrap();
        (Uevents::from_fd(a), b)
    }

    #[test]
    fn nothing_queued_is_no_change() {
        let (u, _peer) = pair();
        assert!(!u.changed());
    }

    #[test]
    fn any_message_is_a_change_and_is_consumed() {
        let (u, peer) = pair();
        for _ in 0..3 {
            send(peer.as_raw_fd(), b"add@/devices/virtual/block/loop0\0ACTION=add", MsgFlags::empty()).unwrap();
        }
        assert!(u.changed());
        assert!(!u.changed(), "drained: the next request sees no change");
    }

    #[test]
    fn an_error_is_a_change() {
        // A stream whose peer is gone answers every recv with end of stream: never EAGAIN,
        // so the drain stops at its bound and reports a change.
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_NONBLOCK).unwrap();
        drop(b);
        assert!(Uevents::from_fd(a).changed(), "end of stream counts as a change");
    }

    #[test]
    fn only_the_identity_map_is_the_initial_namespace() {
        assert!(in_initial_user_namespace("         0          0 4294967295\n"));
        assert!(!in_initial_user_namespace("         0     100000      65536\n"));
        assert!(!in_initial_user_namespace(""));
        assert!(!in_initial_user_namespace("0 0 4294967295\n1 1 1\n"));
    }

    #[test]
    fn the_real_socket_opens_as_root_in_the_initial_namespace() {
        let initial = in_initial_user_namespace(&std::fs::read_to_string("/proc/self/uid_map").unwrap());
        match Uevents::open() {
            Ok(u) => {
                assert!(initial);
                // Whatever is queued now, a drain empties it.
                u.changed();
            }
            Err(e) => assert!(!initial, "in the initial namespace the socket must open: {e}"),
        }
    }
}
