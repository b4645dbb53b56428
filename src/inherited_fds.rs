//! Closing the descriptors the agent inherited. Nothing beyond stdin, stdout and stderr may
//! reach the demoted front or the helper: the agent opens what it needs itself, and the helper
//! must start with exactly its own descriptors. `close_range` does it in one call; on a kernel
//! without it (before 5.9) or where it is refused, each open descriptor is closed in turn.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// The first descriptor closed: 0, 1 and 2 stay.
pub const FIRST_CLOSED: RawFd = 3;

/// Closes every descriptor from [`FIRST_CLOSED`] up. Must run before anything is opened.
pub fn close_inherited() -> Result<(), Errno> {
    close_from(FIRST_CLOSED, close_range)
}

fn close_range(first: RawFd) -> Result<(), Errno> {
    // SAFETY: close_range only closes descriptors; the caller runs before any descriptor from
    // `first` up is owned by Rust code.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
    Errno::result(r).map(drop)
}

/// Closes every descriptor from `first` up with `range` (close_range), falling back to closing
/// them one by one when it fails. The fallback lists /proc/self/fd; without /proc it closes
/// every number below the descriptor limit.
pub fn close_from(first: RawFd, range: impl FnOnce(RawFd) -> Result<(), Errno>) -> Result<(), Errno> {
    if range(first).is_ok() {
        return Ok(());
    }
    let open = match std::fs::read_dir("/proc/self/fd") {
        // The listing's own descriptor is among those listed; it is closed when the listing is
        // dropped, before the others are closed, and closing it again fails harmlessly.
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
            .filter(|&fd| fd >= first)
            .collect::<Vec<_>>(),
        Err(_) => {
            let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
            let limit = RawFd::try_from(soft).unwrap_or(RawFd::MAX);
            (first..limit).collect()
        }
    };
    for fd in open {
        // SAFETY: as for close_range: nothing from `first` up is owned by Rust code yet.
        // EBADF (not open, or the listing's own descriptor) is what closing it would achieve.
        match unsafe { nix::libc::close(fd) } {
            0 => {}
            _ if Errno::last() == Errno::EBADF => {}
            // EINTR and EIO still release the descriptor on Linux.
            _ if matches!(Errno::last(), Errno::EINTR | Errno::EIO) => {}
            _ => return Err(Errno::last()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) >= 0 }
    }

    #[test]
    fn without_close_range_each_inherited_descriptor_is_closed_one_by_one() {
        // High numbers the test harness does not use, below the default limit of 1024.
        const HIGH: RawFd = 900;
        let file = std::fs::File::open("/dev/null").unwrap();
        for fd in [HIGH, HIGH + 7] {
            // SAFETY: dup2 onto numbers nothing else in this test process uses.
            assert_eq!(unsafe { nix::libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&file), fd) }, fd);
        }
        let mut asked = None;
        close_from(HIGH, |first| {
            asked = Some(first);
            Err(Errno::ENOSYS)
        })
        .unwrap();
        assert_eq!(asked, Some(HIGH), "close_range is tried first");
        assert!(!is_open(HIGH) && !is_open(HIGH + 7), "the fallback left an inherited descriptor open");
        assert!(is_open(std::os::fd::AsRawFd::as_raw_fd(&file)), "a descriptor below the range was closed");
    }
}
