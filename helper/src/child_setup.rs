//! What every program the launcher's side starts shares, whoever starts it (the launcher's
//! jobs or an exec supervisor): where programs are looked for, their umask, and the
//! descriptors a freshly forked child drops. Its own module so that the launcher and the
//! supervisors it forks both use it without importing each other.

use std::os::fd::RawFd;

/// Where programs found by name are looked for: the helper has no PATH, so this fixed list
/// stands in for it (in the order a root PATH would list them).
pub const SEARCH_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];
/// The umask of every program run: 7.2's daemon mask (group and others get nothing), so a
/// hook's files are not world-readable by accident.
pub const PROGRAM_UMASK: u32 = 0o077;

/// The launcher must hold nothing but stdio and its socket: in particular not the front's
/// request socket (fd 3), so the front sees EOF when the helper goes.
pub(crate) fn close_other_fds(keep: RawFd) {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in fds.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: right after fork no Rust object of this process owns these descriptors
        // (the helper wraps fd 3 only after the launcher is forked, and the other end of the
        // socketpair was dropped before the call); the read_dir descriptor is already closed.
        unsafe { nix::libc::close(fd) };
    }
}
