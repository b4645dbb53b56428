//! The helper's seccomp filter: every system call the helper makes once it serves, as data, each
//! with the operation that needs it. Anything else kills the whole process (SECCOMP_RET_KILL_PROCESS).
//!
//! It is applied right after [`crate::demote::demote`] (which sets no_new_privs) and before the
//! first request is read. The launcher was forked before that, so it and the programs it runs
//! (shutdown, systemctl, pm-utils, the fsfreeze hook) are not under this filter: filters are
//! inherited across fork and exec, which is why the helper itself may neither fork nor exec.
//!
//! What the table deliberately leaves out: execve/execveat, fork/vfork/clone/clone3 (the
//! launcher runs programs), socket/connect/bind and every other socket set-up call (the
//! request socket and the launcher's socketpair exist before the filter), ptrace, mount and
//! the other namespace calls, bpf, kexec, module loading, reboot, open_by_handle_at (which
//! CAP_DAC_READ_SEARCH would otherwise turn into a way around every path check), prctl and
//! seccomp (the filter cannot be changed), setuid and friends, kill, and every ioctl request
//! but the five the operations use.
//!
//! Switches on the helper's command line, never the default:
//! - `--seccomp=log`: debugging only. A call outside the table is allowed and logged by the
//!   kernel (SECCOMP_RET_LOG, audit records of type 1326 naming the syscall number), so a
//!   missing entry is found without a crash. The front passes it when its own `--seccomp-log`
//!   is given.
//! - `--no-sandbox`: profiling only (e.g. under valgrind, which makes calls the table does not
//!   hold): no filter at all. The front passes it when its own `--no-sandbox` is given.

use nix::libc;
use qga_policy::allow;
pub use qga_policy::seccomp::SandboxMode;
use qga_policy::seccomp::{clear, compile, eq, eq32, Allowed, BpfProgram, SandboxError};

use crate::clock::{RTC_RD_TIME, RTC_SET_TIME};
use crate::freeze::{FIFREEZE, FITHAW};
use crate::trim::FITRIM;

const PROT_EXEC: u64 = libc::PROT_EXEC as u64;

/// The table. Worked out from the operations' code paths through std and glibc's wrappers
/// (openat, not open; newfstatat/statx; recv/send as recvfrom/sendto; settimeofday as
/// clock_settime), checked with `strace -f` on the helper's start, request loop and exit, and
/// by the real-guest suite, which runs every operation under the filter without a seccomp
/// record in the guest's kernel log. A few allocator entries are not seen in those traces and
/// are kept because glibc may make them at any allocation (marked as such).
pub const TABLE: &[Allowed<'static>] = &[
    // The request socket, the launcher socket and stderr.
    allow!(SYS_recvfrom, [eq(4, 0)], "reading requests and launcher answers; draining the uevent socket without waiting (storage cache) (recv: no source address)"),
    allow!(SYS_sendto, [eq(4, 0)], "writing replies and launcher jobs (send: no destination address)"),
    allow!(SYS_read, "mountinfo, /sys/power/state"),
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_poll, "fsfreeze-timeout: waiting for a request at most until the freeze time limit; fsinfo: waiting for a statfs probe's answer with a time limit; fsinfo: whether the mount table changed (POLLPRI on mountinfo, no wait)"),
    allow!(SYS_ppoll, "fsfreeze-timeout and fsinfo: the same waits where the C library uses ppoll"),
    allow!(
        SYS_clock_gettime,
        [eq(0, libc::CLOCK_MONOTONIC as u64)],
        "fsfreeze-timeout: the monotonic clock (std's Instant; a static binary may not use the vDSO)"
    ),
    allow!(
        SYS_clock_gettime,
        [eq(0, libc::CLOCK_REALTIME as u64)],
        "set-time's max-step condition: the current time, to know how far the clock would move"
    ),
    allow!(SYS_write, "log records on stderr; /sys/power/state (suspend's kernel fallback)"),
    allow!(SYS_close, "every descriptor the operations open"),
    // Files: mountinfo, mount points, the marker, sysfs cpu and power files, /dev/rtc0.
    allow!(
        SYS_openat,
        [clear(2, libc::O_TRUNC as u64)],
        "mountinfo, mount points, the marker, cpuN/online, memoryN/state, /sys/power/state, /dev/rtc0; never truncating"
    ),
    allow!(SYS_lseek, "std's read-to-end asks the position for its size hint (mountinfo)"),
    allow!(SYS_pread64, "set-vcpus, set-memory-blocks: reading cpuN/online, memoryN/state; fsinfo: the kept mountinfo re-read from offset 0; disks: each kept size attribute re-read"),
    allow!(SYS_pwrite64, "set-vcpus, set-memory-blocks: writing cpuN/online, memoryN/state"),
    allow!(SYS_statx, "the marker's existence; std's size hint when reading mountinfo"),
    allow!(SYS_getdents64, "fsinfo and disks: listing /sys/block, slaves, partitions and SCSI hosts"),
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_readlink, "fsinfo and disks: realpath of sysfs device links, a PCI device's driver link; policy reload: realpath of the policy and config files (glibc's readlink)"),
    allow!(SYS_readlinkat, "fsinfo, disks and policy reload: the same where there is no readlink"),
    allow!(SYS_newfstatat, "btrfs: whether a mount's source is a block device (stat)"),
    allow!(SYS_fstat, "metadata of an open file (C libraries without newfstatat for it)"),
    // A policy reload: the trust checks resolve the policy and config paths (realpath) and
    // compare owners with the helper's own uid.
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_geteuid, "policy reload: a file not owned by root is compared with the helper's own uid"),
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_unlink, "thaw: removing the marker (std's remove_file)"),
    allow!(SYS_unlinkat, [eq(2, 0)], "thaw: removing the marker where there is no unlink; never a directory"),
    allow!(
        SYS_fcntl,
        [eq(1, libc::F_GETFD as u64)],
        "debug builds: std checks that a descriptor is open before closing it"
    ),
    // The five ioctl requests the operations use; any other request number kills.
    allow!(SYS_ioctl, [eq32(1, FIFREEZE)], "freeze: FIFREEZE on each mount point"),
    allow!(SYS_ioctl, [eq32(1, FITHAW)], "thaw: FITHAW on each mount point"),
    allow!(SYS_ioctl, [eq32(1, FITRIM)], "fstrim: FITRIM on each mount point"),
    allow!(SYS_ioctl, [eq32(1, RTC_RD_TIME)], "set-time without a time: reading /dev/rtc0"),
    allow!(SYS_ioctl, [eq32(1, RTC_SET_TIME)], "set-time: writing /dev/rtc0"),
    // The system clock: the realtime clock only, never the timezone.
    allow!(
        SYS_clock_settime,
        [eq(0, libc::CLOCK_REALTIME as u64)],
        "set-time: glibc's settimeofday is clock_settime(CLOCK_REALTIME)"
    ),
    allow!(SYS_settimeofday, [eq(1, 0)], "set-time: C libraries that call settimeofday itself; no timezone"),
    // Memory, never executable.
    allow!(SYS_brk, "allocator"),
    allow!(SYS_mmap, [clear(2, PROT_EXEC)], "allocator: large blocks (frames up to 1 MiB); never executable"),
    allow!(SYS_mremap, "allocator: growing a large (mmap'd) block, e.g. a 1 MiB frame; not seen in traces"),
    allow!(SYS_munmap, "allocator; std frees the main thread's signal stack at exit"),
    allow!(SYS_mprotect, [clear(2, PROT_EXEC)], "allocator: glibc's heap set-up; never executable; not seen in traces"),
    allow!(
        SYS_madvise,
        [eq(2, libc::MADV_DONTNEED as u64)],
        "allocator: glibc returning heap memory; not seen in traces"
    ),
    // Signals and the end.
    allow!(SYS_sigaltstack, "std disables the main thread's signal stack at exit"),
    allow!(SYS_rt_sigreturn, "returning from std's stack-overflow handler (so an overflow is a SIGSEGV)"),
    allow!(SYS_restart_syscall, "a call interrupted by SIGSTOP/SIGCONT resumes"),
    allow!(SYS_exit_group, "exiting (std::process::exit)"),
];

/// Only when guest-file-open was enabled at start (`--front-files`): what opening a file for
/// the front takes. openat2 cannot be narrowed by its flags (they are in a structure the
/// filter cannot read); the Landlock ruleset and `crate::files` decide what it may open.
pub const FILES: &[Allowed<'static>] = &[
    allow!(SYS_openat2, "guest-file-open: opening beneath a rule's directory (RESOLVE_BENEATH, no symlinks), any mode"),
    allow!(SYS_fchmod, "guest-file-open: mode 0644 on a file it created"),
    allow!(SYS_sendmsg, "guest-file-open: the reply with the open descriptor (SCM_RIGHTS)"),
];

/// Compiles the table (see [`qga_policy::seccomp::compile`]), with [`FILES`] when `files`.
pub fn filter(mode: SandboxMode, files: bool) -> Result<BpfProgram, SandboxError> {
    let extra: &[Allowed<'static>] = if files { FILES } else { &[] };
    compile(TABLE.iter().chain(extra), mode)
}

/// Applies the filter to the calling thread (the helper is single-threaded). no_new_privs is
/// already set by [`crate::demote::demote`].
pub fn apply(mode: SandboxMode, files: bool) -> Result<(), SandboxError> {
    if mode == SandboxMode::Off {
        return Ok(());
    }
    qga_policy::seccomp::apply(&filter(mode, files)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_in_every_mode() {
        for mode in [SandboxMode::Enforce, SandboxMode::Log, SandboxMode::Off] {
            assert!(!filter(mode, false).unwrap().is_empty(), "{mode:?}");
            assert!(!filter(mode, true).unwrap().is_empty(), "{mode:?}");
        }
    }

    #[test]
    fn every_entry_says_who_needs_it() {
        for e in TABLE.iter().chain(FILES) {
            assert!(e.why.len() > 8, "{} has no reason", e.name);
        }
    }

    #[test]
    fn dangerous_calls_are_not_in_the_table() {
        #[cfg(target_arch = "x86_64")]
        let arch_specific = [libc::SYS_fork, libc::SYS_vfork, libc::SYS_open, libc::SYS_kexec_load];
        #[cfg(target_arch = "aarch64")]
        let arch_specific = [libc::SYS_kexec_load; 1];
        let forbidden = [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_kexec_file_load,
            libc::SYS_reboot,
            libc::SYS_open_by_handle_at,
            libc::SYS_name_to_handle_at,
            libc::SYS_prctl,
            libc::SYS_seccomp,
            libc::SYS_setuid,
            libc::SYS_setresuid,
            libc::SYS_capset,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_process_vm_writev,
            libc::SYS_memfd_create,
            libc::SYS_io_uring_setup,
            libc::SYS_adjtimex,
            libc::SYS_clock_adjtime,
        ];
        for e in TABLE.iter().chain(FILES) {
            assert!(!forbidden.contains(&e.nr) && !arch_specific.contains(&e.nr), "{} must not be allowed", e.name);
        }
    }

    #[test]
    fn ioctl_is_allowed_only_for_the_five_request_numbers() {
        let ioctls: Vec<&Allowed<'_>> = TABLE.iter().filter(|e| e.nr == libc::SYS_ioctl).collect();
        let mut requests: Vec<u64> = ioctls
            .iter()
            .map(|e| {
                let [a] = e.args else { panic!("an ioctl entry without exactly one argument test") };
                assert!(a.index == 1 && a.dword && a.mask == u32::MAX as u64);
                a.value
            })
            .collect();
        requests.sort_unstable();
        let mut expected = vec![FIFREEZE, FITHAW, FITRIM, RTC_RD_TIME, RTC_SET_TIME];
        expected.sort_unstable();
        assert_eq!(requests, expected);
    }

    #[test]
    fn memory_is_never_mapped_executable() {
        for e in TABLE.iter().filter(|e| e.nr == libc::SYS_mmap || e.nr == libc::SYS_mprotect) {
            assert!(
                e.args.iter().any(|a| a.index == 2 && a.mask & PROT_EXEC != 0 && a.value & PROT_EXEC == 0),
                "{}",
                e.name
            );
        }
    }
}
