//! The front's seccomp filter: the system calls the poll loop and the front's commands make,
//! as data, each with who needs it. Anything else kills the process. The filter is shaped by
//! the policy: with every `guest-file-*` command disabled the front cannot open a file for
//! writing at all, nor write at an offset or change a file's mode.

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;

/// How the filter is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxMode {
    /// The default: a call outside the list kills the process.
    Enforce,
    /// Debugging only (`--seccomp-log`): calls outside the list are allowed and logged by the
    /// kernel (audit log), so a missing entry can be found without a crash.
    Log,
    /// Profiling only (`--no-sandbox`, e.g. under valgrind): no filter at all.
    Off,
}

/// One argument test: `(arg & mask) == value`.
#[derive(Clone, Copy)]
struct ArgIs {
    index: u8,
    mask: u64,
    value: u64,
}

const fn arg_eq(index: u8, value: u64) -> ArgIs {
    ArgIs { index, mask: u64::MAX, value }
}

const fn arg_masked(index: u8, mask: u64, value: u64) -> ArgIs {
    ArgIs { index, mask, value }
}

/// One allowed call: the syscall, the argument tests that must all hold (none: any
/// arguments), and who needs it. Several entries for one syscall allow any of them.
struct Allowed {
    nr: libc::c_long,
    args: &'static [ArgIs],
    #[allow(dead_code)] // documentation that stays next to the data
    why: &'static str,
}

const fn allow(nr: libc::c_long, why: &'static str) -> Allowed {
    Allowed { nr, args: &[], why }
}

const fn allow_if(nr: libc::c_long, args: &'static [ArgIs], why: &'static str) -> Allowed {
    Allowed { nr, args, why }
}

const NO_EXEC: u64 = libc::PROT_EXEC as u64;
/// The open flags that write or create.
const WRITE_FLAGS: u64 = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;

/// What the front needs whatever the policy.
const ALWAYS: &[Allowed] = &[
    // The poll loop.
    #[cfg(target_arch = "x86_64")]
    allow(libc::SYS_epoll_wait, "poll loop: waiting for the channel, helper and signals"),
    allow(libc::SYS_epoll_pwait, "poll loop: waiting (the form some libc versions use)"),
    allow(libc::SYS_epoll_pwait2, "poll loop: waiting (the form some libc versions use)"),
    allow(libc::SYS_epoll_ctl, "poll loop: changing interest as output backs up and drains"),
    allow(libc::SYS_timerfd_settime, "poll loop: the poller arms its timeout timer before each wait"),
    // Channel, helper socket, helper log pipe, signalfd, log file, stderr.
    allow(libc::SYS_read, "reading requests, helper replies, helper log lines, signals, files"),
    allow(libc::SYS_write, "writing replies, helper requests, log records"),
    allow(libc::SYS_readv, "vectored reads in the standard library"),
    allow(libc::SYS_writev, "vectored writes in the standard library"),
    allow(libc::SYS_accept4, "unix-listen / vsock-listen: accepting the next client"),
    allow(libc::SYS_close, "closing clients, files and netlink sockets"),
    allow(libc::SYS_fcntl, "descriptor flags (non-blocking, close-on-exec)"),
    // Syslog (the socket was connected before the filter).
    allow(libc::SYS_sendto, "syslog records; netlink requests of getifaddrs"),
    allow(libc::SYS_sendmsg, "syslog records (datagram send)"),
    // The helper.
    allow(libc::SYS_wait4, "reaping the helper when it exits"),
    allow_if(
        libc::SYS_setsockopt,
        &[arg_eq(1, libc::SOL_SOCKET as u64), arg_eq(2, libc::SO_RCVTIMEO as u64)],
        "bounding the wait for the helper's answer on quit",
    ),
    allow_if(
        libc::SYS_setsockopt,
        &[arg_eq(1, libc::SOL_SOCKET as u64), arg_eq(2, libc::SO_SNDBUF as u64)],
        "unix-listen / vsock-listen: a larger send buffer on each client (bulk replies)",
    ),
    // Memory (never executable).
    allow(libc::SYS_brk, "allocator"),
    allow_if(libc::SYS_mmap, &[arg_masked(2, NO_EXEC, 0)], "allocator (large blocks); never executable"),
    allow_if(libc::SYS_mprotect, &[arg_masked(2, NO_EXEC, 0)], "allocator; never executable"),
    allow(libc::SYS_munmap, "allocator"),
    allow(libc::SYS_mremap, "allocator (growing large buffers)"),
    allow(libc::SYS_madvise, "allocator (returning memory)"),
    allow(libc::SYS_futex, "standard library locks (stdio)"),
    // Signals and process.
    allow(libc::SYS_rt_sigreturn, "returning from a signal handler"),
    allow(libc::SYS_rt_sigprocmask, "signal masks in the standard library"),
    allow(libc::SYS_sigaltstack, "the standard library's stack overflow guard"),
    allow(libc::SYS_restart_syscall, "restarting an interrupted wait"),
    allow(libc::SYS_getpid, "the pidfile written after thaw"),
    allow(libc::SYS_getrandom, "hash seeds in the standard library"),
    allow(libc::SYS_exit, "exit"),
    allow(libc::SYS_exit_group, "exit"),
    // Time.
    allow(libc::SYS_clock_gettime, "guest-get-time and log timestamps (when the vDSO is unavailable)"),
    allow(libc::SYS_gettimeofday, "log timestamps (when the vDSO is unavailable)"),
    allow(libc::SYS_clock_nanosleep, "short sleeps while reaping the helper"),
    allow(libc::SYS_nanosleep, "short sleeps while reaping the helper"),
    // Reading files: get-vcpus (sysfs), network statistics (/proc/net/dev), guest-file-read.
    allow(libc::SYS_newfstatat, "metadata of opened files"),
    allow(libc::SYS_fstat, "metadata of opened files"),
    allow(libc::SYS_statx, "metadata of opened files"),
    allow(libc::SYS_getdents64, "guest-get-vcpus: listing /sys/devices/system/cpu"),
    allow(libc::SYS_lseek, "guest-file-seek"),
    allow(libc::SYS_pread64, "reading at an offset"),
    allow(libc::SYS_ftruncate, "the pidfile written after thaw (an already open descriptor)"),
    // guest-network-get-interfaces: getifaddrs asks the kernel over a netlink socket.
    allow_if(libc::SYS_socket, &[arg_eq(0, libc::AF_NETLINK as u64)], "getifaddrs: a NETLINK_ROUTE socket only"),
    allow(libc::SYS_bind, "getifaddrs: binding its netlink socket"),
    allow(libc::SYS_getsockname, "getifaddrs: its netlink address"),
    allow(libc::SYS_recvmsg, "getifaddrs: netlink answers"),
    allow(libc::SYS_recvfrom, "getifaddrs: netlink answers"),
];

/// Opening for reading only: sysfs, procfs, guest-file-open in mode r.
const READ_ONLY_OPEN: &[Allowed] =
    &[allow_if(libc::SYS_openat, &[arg_masked(2, WRITE_FLAGS, 0)], "opening files for reading only")];

/// Only when a `guest-file-*` command is enabled.
const FILE_ACCESS: &[Allowed] = &[
    allow(libc::SYS_openat, "guest-file-open in any mode (creating files included)"),
    allow(libc::SYS_pwrite64, "guest-file-open: persisting the handle counter in qga.state"),
    allow(libc::SYS_fchmod, "guest-file-open: mode 0644 on a file it created"),
];

#[derive(Debug)]
pub struct SandboxError(String);

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn target_arch() -> seccompiler::TargetArch {
    #[cfg(target_arch = "x86_64")]
    return seccompiler::TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return seccompiler::TargetArch::aarch64;
}

/// Builds the filter; `file_access` says whether any `guest-file-*` command is enabled.
pub fn filter(file_access: bool, mode: SandboxMode) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let shaped = if file_access { FILE_ACCESS } else { READ_ONLY_OPEN };
    for entry in ALWAYS.iter().chain(shaped) {
        let list = rules.entry(entry.nr).or_default();
        if entry.args.is_empty() {
            // Unconditional: an empty rule list matches any arguments.
            list.clear();
            continue;
        }
        let conditions = entry
            .args
            .iter()
            .map(|a| {
                let op = if a.mask == u64::MAX { SeccompCmpOp::Eq } else { SeccompCmpOp::MaskedEq(a.mask) };
                SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, a.value)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SandboxError(format!("seccomp condition: {e}")))?;
        list.push(SeccompRule::new(conditions).map_err(|e| SandboxError(format!("seccomp rule: {e}")))?);
    }
    let mismatch = match mode {
        SandboxMode::Log => SeccompAction::Log,
        _ => SeccompAction::KillProcess,
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, target_arch())
        .map_err(|e| SandboxError(format!("seccomp filter: {e}")))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| SandboxError(format!("seccomp compile: {e}")))
}

/// Applies the filter to the calling (only) thread. no_new_privs is already set by demotion.
pub fn apply(file_access: bool, mode: SandboxMode) -> Result<(), SandboxError> {
    if mode == SandboxMode::Off {
        return Ok(());
    }
    let program = filter(file_access, mode)?;
    seccompiler::apply_filter(&program).map_err(|e| SandboxError(format!("applying the seccomp filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_with_and_without_file_access() {
        assert!(filter(true, SandboxMode::Enforce).is_ok());
        assert!(filter(false, SandboxMode::Enforce).is_ok());
        assert!(filter(false, SandboxMode::Log).is_ok());
    }

    #[test]
    fn without_file_access_openat_is_only_allowed_conditionally() {
        assert!(READ_ONLY_OPEN.iter().all(|e| e.nr == libc::SYS_openat && !e.args.is_empty()));
        assert!(!ALWAYS.iter().any(|e| matches!(e.nr, libc::SYS_openat | libc::SYS_pwrite64 | libc::SYS_fchmod)));
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
            assert!(!forbidden.contains(&e.nr), "syscall {} must not be allowed", e.nr);
        }
    }
}
