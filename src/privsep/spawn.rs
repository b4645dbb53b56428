//! Starts the privileged helper: a separate small binary, executed with an empty environment
//! and exactly the descriptors it needs — /dev/null on 0 and 1, a log pipe on 2 and its end of
//! the request socketpair on 3.
//!
//! In the background: the host's first request (guest-sync, guest-ping) needs only the front,
//! but the helper starts at the same time, and its start-up (the C library's, the launcher and
//! probe forks, demotion, Landlock, seccomp: about 2 ms of CPU, more than the front's own
//! start-up after the spawn) would share the front's CPU and delay that first answer. So the
//! front starts it under SCHED_IDLE, which runs only when nothing else wants the CPU, and says
//! so on its command line (`--background-start`); each helper process returns to SCHED_OTHER
//! before it handles anything (the helper's `background` module). Only when the front itself
//! runs under SCHED_OTHER: a front a service manager placed under another policy passes that
//! policy on unchanged, as before.

use qga_protocol::{HELPER_BINARY, REQUEST_FD};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where the helper is installed when it is not beside the front.
const LIBEXEC_HELPER: &str = "/usr/libexec/qemu-ga-rs/qemu-ga-rs-helper";

/// A running helper.
pub struct Helper {
    pub child: Child,
    /// The front's end of the request socketpair.
    pub socket: UnixStream,
    /// Read end of the helper's log pipe (its stderr).
    pub log: File,
}

/// The helper binary: beside the running `qemu-ga-rs`, else the libexec location.
pub fn helper_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(HELPER_BINARY)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(LIBEXEC_HELPER))
}

/// Whether the helper can be started in the background: the front runs under SCHED_OTHER,
/// the policy the helper returns to, and holds CAP_SYS_NICE, which every helper process keeps
/// until it has returned (a service whose capability bounding set leaves it out, as the
/// packaged unit's does, starts the helper in the foreground: a helper that could not return
/// would refuse to serve).
pub fn background_possible() -> bool {
    // SAFETY: sched_getscheduler only reads the calling thread's policy.
    let normal = unsafe { nix::libc::sched_getscheduler(0) == nix::libc::SCHED_OTHER };
    normal && caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_NICE).unwrap_or(false)
}

/// Starts the helper with `args`, at the front's own priority.
pub fn spawn(path: &Path, args: &[OsString]) -> io::Result<Helper> {
    spawn_with(path, args, false)
}

/// Starts the helper with `args`; `background`: under SCHED_IDLE (`args` then hold
/// `--background-start`, see [`background_possible`]).
pub fn spawn_with(path: &Path, args: &[OsString], background: bool) -> io::Result<Helper> {
    let (front, helper_end) = UnixStream::pair()?;
    let (log_read, log_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let helper_fd = helper_end.as_raw_fd();
    let mut cmd = Command::new(path);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log_write));
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (dup2, fcntl, sched_setscheduler) on descriptor numbers and a value on its
    // stack; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            if background {
                // The exec and everything after it run in the background. If this fails the
                // helper finds itself still under SCHED_OTHER and simply starts as before.
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
            }
            let ok = if helper_fd == REQUEST_FD {
                // dup2 onto itself would keep close-on-exec: clear the flag instead.
                libc::fcntl(REQUEST_FD, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(helper_fd, REQUEST_FD) == REQUEST_FD
            };
            if !ok {
                return Err(io::Error::last_os_error());
            }
            // Every other descriptor of the front is close-on-exec (inherited ones were
            // closed at start-up), so the helper starts with exactly 0-3.
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(helper_end);
    Ok(Helper { child, socket: front, log: File::from(log_read) })
}
