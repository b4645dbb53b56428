//! The front's seccomp filter: the system calls the poll loop and the front's commands make,
//! as data, each with who needs it; the shared compiler ([`qga_policy::seccomp`]) turns the
//! table into the filter. Anything else kills the process. The front never opens a file for
//! writing, creates one or changes a file's mode, whatever the policy: guest-file-open's files
//! are opened by the helper and arrive as descriptors (`recvmsg`). The filter is shaped by the
//! policy only in that, with a `guest-file-*` command enabled, the front may write its handle
//! counter at an offset. Arguments are checked wherever the
//! front's uses are few: only a NETLINK_ROUTE socket (getifaddrs), only the fcntl commands the
//! code issues, and ftruncate only on the descriptors that need it (the pidfile written after a
//! thaw, the state file), never on the log it holds.

use nix::libc;
use qga_policy::allow;
use qga_policy::seccomp::{clear, compile, eq, eq32, Allowed, ArgIs, BpfProgram, SandboxError};
use std::os::fd::RawFd;

pub use qga_policy::seccomp::SandboxMode;

const PROT_EXEC: u64 = libc::PROT_EXEC as u64;
/// The open flags that write or create.
const WRITE_FLAGS: u64 = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;

/// What the front needs whatever the policy.
const ALWAYS: &[Allowed<'static>] = &[
    // The poll loop.
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_epoll_wait, "poll loop: waiting for the channel, helper and signals"),
    allow!(SYS_epoll_pwait, "poll loop: waiting (the form some libc versions use)"),
    allow!(SYS_epoll_pwait2, "poll loop: waiting (the form some libc versions use)"),
    allow!(SYS_epoll_ctl, "poll loop: changing interest as output backs up and drains"),
    // Channel, helper socket, helper log pipe, signalfd, log file, stderr.
    allow!(SYS_read, "reading requests, helper replies, helper log lines, signals, files"),
    allow!(SYS_write, "writing replies, helper requests, log records"),
    allow!(SYS_readv, "vectored reads in the standard library"),
    allow!(SYS_writev, "vectored writes in the standard library"),
    allow!(SYS_accept4, "unix-listen / vsock-listen: accepting the next client"),
    allow!(SYS_close, "closing clients, files and netlink sockets"),
    allow!(
        SYS_fcntl,
        [eq32(1, libc::F_GETFD as u64)],
        "debug builds: std checks that a descriptor is open before closing it"
    ),
    // Syslog (the socket was connected before the filter).
    allow!(SYS_sendto, "syslog records; netlink requests of getifaddrs"),
    allow!(SYS_sendmsg, "syslog records (datagram send)"),
    // The helper.
    allow!(SYS_wait4, "reaping the helper when it exits"),
    allow!(
        SYS_setsockopt,
        [eq(1, libc::SOL_SOCKET as u64), eq(2, libc::SO_RCVTIMEO as u64)],
        "bounding the wait for the helper's answer on quit"
    ),
    allow!(
        SYS_setsockopt,
        [eq(1, libc::SOL_SOCKET as u64), eq(2, libc::SO_SNDBUF as u64)],
        "unix-listen / vsock-listen: a larger send buffer on each client (bulk replies)"
    ),
    // Memory (never executable).
    allow!(SYS_brk, "allocator"),
    allow!(SYS_mmap, [clear(2, PROT_EXEC)], "allocator (large blocks); never executable"),
    allow!(SYS_mprotect, [clear(2, PROT_EXEC)], "allocator; never executable"),
    allow!(SYS_munmap, "allocator"),
    allow!(SYS_mremap, "allocator (growing large buffers)"),
    allow!(SYS_madvise, "allocator (returning memory)"),
    allow!(SYS_futex, "standard library locks (stdio)"),
    // Signals and process.
    allow!(SYS_rt_sigreturn, "returning from a signal handler"),
    allow!(SYS_rt_sigprocmask, "signal masks in the standard library"),
    allow!(SYS_sigaltstack, "the standard library's stack overflow guard"),
    allow!(SYS_restart_syscall, "restarting an interrupted wait"),
    allow!(SYS_getpid, "the pidfile written after thaw"),
    allow!(SYS_getrandom, "hash seeds in the standard library"),
    allow!(SYS_uname, "guest-get-host-name: the kernel's node name, asked on every call"),
    allow!(SYS_exit, "exiting (the main thread's own exit)"),
    allow!(SYS_exit_group, "exiting (std::process::exit)"),
    // Time.
    allow!(SYS_clock_gettime, "guest-get-time and log timestamps (when the vDSO is unavailable)"),
    allow!(SYS_gettimeofday, "log timestamps (when the vDSO is unavailable)"),
    allow!(SYS_clock_nanosleep, "short sleeps while reaping the helper"),
    allow!(SYS_nanosleep, "short sleeps while reaping the helper"),
    // Reading files: get-vcpus (sysfs), network statistics (/proc/net/dev), guest-file-read.
    allow!(SYS_newfstatat, "metadata of opened files"),
    allow!(SYS_fstat, "metadata of opened files"),
    allow!(SYS_statx, "metadata of opened files; which file utmp and /etc/localtime name now"),
    allow!(SYS_getdents64, "guest-get-vcpus: listing /sys/devices/system/cpu"),
    allow!(SYS_lseek, "guest-file-seek"),
    allow!(SYS_pread64, "reading at an offset: procfs counters, utmp and /etc/localtime held open"),
    // Held files' freshness (commands::watch; the inotify instance is created before the filter).
    allow!(SYS_inotify_add_watch, "held files: watching each one, and every directory on its path"),
    allow!(SYS_inotify_rm_watch, "held files: dropping the watches no held file's path uses any more"),
    allow!(SYS_readlinkat, "held files: following a symbolic link while resolving a watched path"),
    allow!(SYS_statfs, "held files: watching only paths on local filesystems (inotify sees their changes)"),
    // guest-network-get-interfaces: getifaddrs asks the kernel over a netlink socket.
    allow!(
        SYS_socket,
        [
            eq32(0, libc::AF_NETLINK as u64),
            eq32(1, (libc::SOCK_RAW | libc::SOCK_CLOEXEC) as u64),
            eq32(2, libc::NETLINK_ROUTE as u64)
        ],
        "getifaddrs: a NETLINK_ROUTE socket only (no sock_diag, audit, uevent... socket)"
    ),
    allow!(SYS_bind, "getifaddrs: binding its netlink socket"),
    allow!(SYS_getsockname, "getifaddrs: its netlink address"),
    allow!(SYS_recvmsg, "getifaddrs: netlink answers; every helper reply (an opened file arrives with one)"),
    allow!(SYS_recvfrom, "getifaddrs: netlink answers"),
];

/// Opening for reading only: sysfs, procfs and the query files of its view.
const READ_ONLY_OPEN: &[Allowed<'static>] =
    &[allow!(SYS_openat, [clear(2, WRITE_FLAGS)], "opening files for reading only")];

/// Only when a `guest-file-*` command is enabled.
const FILE_ACCESS: &[Allowed<'static>] =
    &[allow!(SYS_pwrite64, "guest-file-open: persisting the handle counter in qga.state")];

/// Builds the filter. `file_access`: whether any `guest-file-*` command is enabled;
/// `truncatable`: the descriptors the front may ftruncate (the pidfile kept for after a thaw,
/// the state file when file commands persist the handle counter).
pub fn filter(file_access: bool, truncatable: &[RawFd], mode: SandboxMode) -> Result<BpfProgram, SandboxError> {
    let shaped: &[Allowed<'static>] = if file_access { FILE_ACCESS } else { &[] };
    let fd_tests: Vec<[ArgIs; 1]> = truncatable.iter().map(|&fd| [eq32(0, fd as u64)]).collect();
    let truncate: Vec<Allowed<'_>> = fd_tests
        .iter()
        .map(|args| Allowed {
            nr: libc::SYS_ftruncate,
            name: "SYS_ftruncate",
            args,
            why: "rewriting the pidfile after a thaw, or the handle counter in qga.state; this descriptor only",
        })
        .collect();
    compile(ALWAYS.iter().chain(READ_ONLY_OPEN).chain(shaped).chain(&truncate), mode)
}

/// Applies the filter to the calling (only) thread. no_new_privs is already set by demotion.
pub fn apply(file_access: bool, truncatable: &[RawFd], mode: SandboxMode) -> Result<(), SandboxError> {
    if mode == SandboxMode::Off {
        return Ok(());
    }
    qga_policy::seccomp::apply(&filter(file_access, truncatable, mode)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_with_and_without_file_access() {
        assert!(filter(true, &[], SandboxMode::Enforce).is_ok());
        assert!(filter(false, &[3], SandboxMode::Enforce).is_ok());
        assert!(filter(false, &[], SandboxMode::Log).is_ok());
    }

    #[test]
    fn every_entry_says_who_needs_it() {
        for e in ALWAYS.iter().chain(FILE_ACCESS).chain(READ_ONLY_OPEN) {
            assert!(e.why.len() > 8, "{} has no reason", e.name);
        }
    }

    #[test]
    fn openat_is_only_ever_allowed_for_reading_and_nothing_creates_or_chmods() {
        assert!(READ_ONLY_OPEN.iter().all(|e| e.nr == libc::SYS_openat && !e.args.is_empty()));
        assert!(!ALWAYS.iter().chain(FILE_ACCESS).any(|e| matches!(
            e.nr as libc::c_long,
            libc::SYS_openat | libc::SYS_openat2 | libc::SYS_fchmod | libc::SYS_ftruncate | libc::SYS_mkdirat
        )));
        assert!(!ALWAYS.iter().any(|e| e.nr == libc::SYS_pwrite64));
    }

    #[test]
    fn dangerous_calls_are_not_in_the_list() {
        let forbidden = [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_ioctl,
            libc::SYS_connect,
            libc::SYS_mount,
            libc::SYS_setuid,
            libc::SYS_unlinkat,
            libc::SYS_open,
        ];
        for e in ALWAYS.iter().chain(FILE_ACCESS).chain(READ_ONLY_OPEN) {
            assert!(!forbidden.contains(&e.nr), "{} must not be allowed", e.name);
        }
    }
}
