//! The helper's real seccomp filter, applied in a forked child that then makes one system call:
//! a forbidden call must kill the child with SIGSYS, an allowed call must return (with an error
//! where its arguments are harmless on purpose, e.g. a bad descriptor).
//!
//! Nothing here acts on the machine: every allowed call is made with arguments that fail
//! before any effect (fd -1, NULL pointers, a path that does not exist), and every forbidden
//! call is stopped by the filter before the kernel looks at its arguments.

#[path = "../../tests/common/canary.rs"]
mod canary;

use canary::*;
use nix::libc;
use std::sync::OnceLock;

use qga_helper::clock::{RTC_RD_TIME, RTC_SET_TIME};
use qga_helper::freeze::{FIFREEZE, FITHAW};
use qga_helper::seccomp::{filter, SandboxMode};
use qga_helper::trim::FITRIM;

fn enforcing() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| filter(SandboxMode::Enforce, false).expect("the filter compiles"))
}

fn enforced(call: fn() -> i64) -> End {
    under_filter(enforcing(), call)
}

fn assert_killed(name: &str, call: fn() -> i64) {
    canary::assert_killed(enforcing(), name, call)
}

fn assert_fails_with(name: &str, errno: i32, call: fn() -> i64) {
    canary::assert_fails_with(enforcing(), name, errno, call)
}

#[test]
fn execve_and_execveat_kill_the_helper() {
    assert_killed("execve", || sys3(libc::SYS_execve, ptr(TRUE), 0, 0));
    assert_killed("execveat", || sys5(libc::SYS_execveat, libc::AT_FDCWD as u64, ptr(TRUE), 0, 0, 0));
}

#[test]
fn fork_and_every_clone_kill_the_helper() {
    #[cfg(target_arch = "x86_64")]
    {
        assert_killed("fork", || sys1(libc::SYS_fork, 0));
        assert_killed("vfork", || sys1(libc::SYS_vfork, 0));
    }
    assert_killed("clone", || sys5(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0, 0, 0));
    assert_killed("clone3", || sys2(libc::SYS_clone3, 0, 0));
}

#[test]
fn opening_any_socket_kills_the_helper() {
    assert_killed("socket(AF_INET)", || sys3(libc::SYS_socket, libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0));
    assert_killed("socket(AF_INET6)", || sys3(libc::SYS_socket, libc::AF_INET6 as u64, libc::SOCK_DGRAM as u64, 0));
    assert_killed("socket(AF_UNIX)", || sys3(libc::SYS_socket, libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0));
    assert_killed("socket(AF_NETLINK)", || sys3(libc::SYS_socket, libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 0));
    assert_killed("connect", || sys3(libc::SYS_connect, BAD_FD, 0, 0));
}

#[test]
fn ptrace_mount_bpf_and_kernel_loading_kill_the_helper() {
    assert_killed("ptrace", || sys1(libc::SYS_ptrace, libc::PTRACE_TRACEME as u64));
    assert_killed("mount", || sys5(libc::SYS_mount, 0, 0, 0, 0, 0));
    assert_killed("umount2", || sys2(libc::SYS_umount2, ptr(MISSING), 0));
    assert_killed("bpf", || sys3(libc::SYS_bpf, 0, 0, 0));
    assert_killed("kexec_file_load", || sys5(libc::SYS_kexec_file_load, BAD_FD, BAD_FD, 0, 0, 0));
    assert_killed("init_module", || sys3(libc::SYS_init_module, 0, 0, 0));
    assert_killed("finit_module", || sys3(libc::SYS_finit_module, BAD_FD, 0, 0));
    assert_killed("reboot", || sys2(libc::SYS_reboot, 0, 0));
    assert_killed("unshare", || sys1(libc::SYS_unshare, 0));
    assert_killed("setns", || sys2(libc::SYS_setns, BAD_FD, 0));
}

#[test]
fn the_filter_and_the_process_state_cannot_be_changed() {
    assert_killed("prctl", || sys2(libc::SYS_prctl, libc::PR_SET_DUMPABLE as u64, 1));
    assert_killed("seccomp", || sys3(libc::SYS_seccomp, 0, 0, 0));
    assert_killed("setuid", || sys1(libc::SYS_setuid, 0));
    assert_killed("capset", || sys2(libc::SYS_capset, 0, 0));
    assert_killed("kill", || sys2(libc::SYS_kill, 0, 0));
}

#[test]
fn open_by_handle_at_kills_the_helper() {
    // With CAP_DAC_READ_SEARCH it would open any inode of a filesystem, bypassing all paths.
    assert_killed("open_by_handle_at", || sys3(libc::SYS_open_by_handle_at, BAD_FD, 0, 0));
    assert_killed("name_to_handle_at", || sys5(libc::SYS_name_to_handle_at, BAD_FD, 0, 0, 0, 0));
}

#[test]
fn an_ioctl_with_a_request_number_outside_the_five_kills_the_helper() {
    assert_killed("ioctl(TIOCSTI)", || sys3(libc::SYS_ioctl, BAD_FD, libc::TIOCSTI, 0));
    assert_killed("ioctl(FIONREAD)", || sys3(libc::SYS_ioctl, BAD_FD, libc::FIONREAD, 0));
    assert_killed("ioctl(FIONBIO)", || sys3(libc::SYS_ioctl, BAD_FD, libc::FIONBIO, 0));
    assert_killed("ioctl(TCGETS)", || sys3(libc::SYS_ioctl, BAD_FD, libc::TCGETS, 0));
    // FS_IOC_GETFLAGS: a filesystem ioctl next to the allowed ones.
    assert_killed("ioctl(FS_IOC_GETFLAGS)", || sys3(libc::SYS_ioctl, BAD_FD, 0x8008_6601, 0));
    // RTC_SET_TIME's neighbours (RTC_ALM_SET, RTC_WKALM_SET).
    assert_killed("ioctl(RTC_ALM_SET)", || sys3(libc::SYS_ioctl, BAD_FD, 0x4024_7007, 0));
    assert_killed("ioctl(RTC_WKALM_SET)", || sys3(libc::SYS_ioctl, BAD_FD, 0x4028_700f, 0));
}

#[test]
fn the_five_ioctls_are_allowed_and_fail_on_a_bad_descriptor() {
    assert_fails_with("ioctl(FIFREEZE)", libc::EBADF, || sys3(libc::SYS_ioctl, BAD_FD, FIFREEZE, 0));
    assert_fails_with("ioctl(FITHAW)", libc::EBADF, || sys3(libc::SYS_ioctl, BAD_FD, FITHAW, 0));
    assert_fails_with("ioctl(FITRIM)", libc::EBADF, || sys3(libc::SYS_ioctl, BAD_FD, FITRIM, 0));
    assert_fails_with("ioctl(RTC_RD_TIME)", libc::EBADF, || sys3(libc::SYS_ioctl, BAD_FD, RTC_RD_TIME, 0));
    assert_fails_with("ioctl(RTC_SET_TIME)", libc::EBADF, || sys3(libc::SYS_ioctl, BAD_FD, RTC_SET_TIME, 0));
}

#[test]
fn executable_memory_kills_the_helper_but_plain_memory_works() {
    const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    const RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    const RX: u64 = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    assert_killed("mmap(PROT_EXEC)", || sys6(libc::SYS_mmap, 0, 4096, RX, ANON, BAD_FD, 0));
    assert_killed("mprotect(PROT_EXEC)", || sys3(libc::SYS_mprotect, 0, 4096, RX));
    let map_unmap = || {
        let p = sys6(libc::SYS_mmap, 0, 4096, RW, ANON, BAD_FD, 0);
        if p < 0 {
            return p;
        }
        sys2(libc::SYS_munmap, p as u64, 4096)
    };
    assert_eq!(enforced(map_unmap), End::Returned(0, 0));
}

#[test]
fn the_clock_calls_are_limited_to_the_realtime_clock_without_timezone() {
    // NULL time pointers: the kernel answers EFAULT before anything is set.
    assert_fails_with("clock_settime(CLOCK_REALTIME)", libc::EFAULT, || {
        sys2(libc::SYS_clock_settime, libc::CLOCK_REALTIME as u64, 0)
    });
    assert_killed("clock_settime(CLOCK_TAI)", || sys2(libc::SYS_clock_settime, libc::CLOCK_TAI as u64, 0));
    assert_killed("settimeofday with a timezone", || sys2(libc::SYS_settimeofday, 0, 8));
    assert_killed("adjtimex", || sys1(libc::SYS_adjtimex, 0));
    assert_killed("clock_adjtime", || sys2(libc::SYS_clock_adjtime, libc::CLOCK_REALTIME as u64, 0));
}

#[test]
fn files_can_be_opened_but_never_truncated_and_no_directory_removed() {
    assert_fails_with("openat", libc::ENOENT, || {
        sys3(libc::SYS_openat, libc::AT_FDCWD as u64, ptr(MISSING), libc::O_RDONLY as u64)
    });
    assert_killed("openat(O_TRUNC)", || {
        sys3(libc::SYS_openat, libc::AT_FDCWD as u64, ptr(MISSING), (libc::O_WRONLY | libc::O_TRUNC) as u64)
    });
    assert_fails_with("unlinkat", libc::ENOENT, || sys3(libc::SYS_unlinkat, libc::AT_FDCWD as u64, ptr(MISSING), 0));
    assert_killed("unlinkat(AT_REMOVEDIR)", || {
        sys3(libc::SYS_unlinkat, libc::AT_FDCWD as u64, ptr(MISSING), libc::AT_REMOVEDIR as u64)
    });
}

#[test]
fn the_calls_of_the_request_loop_are_allowed() {
    assert_fails_with("read", libc::EBADF, || sys3(libc::SYS_read, BAD_FD, 0, 0));
    assert_fails_with("write", libc::EBADF, || sys3(libc::SYS_write, BAD_FD, 0, 0));
    assert_fails_with("recvfrom", libc::EBADF, || sys6(libc::SYS_recvfrom, BAD_FD, 0, 0, 0, 0, 0));
    assert_fails_with("sendto", libc::EBADF, || sys6(libc::SYS_sendto, BAD_FD, 0, 0, 0, 0, 0));
    assert_killed("sendto with an address", || sys6(libc::SYS_sendto, BAD_FD, 0, 0, 0, 8, 16));
    assert_fails_with("close", libc::EBADF, || sys1(libc::SYS_close, BAD_FD));
    assert_fails_with("pread64", libc::EBADF, || sys5(libc::SYS_pread64, BAD_FD, 0, 0, 0, 0));
    assert_fails_with("pwrite64", libc::EBADF, || sys5(libc::SYS_pwrite64, BAD_FD, 0, 0, 0, 0));
    // What reading the mount table takes: open, the size hint (statx, lseek), read, close.
    let read_mountinfo = || {
        static MOUNTINFO: &[u8] = b"/proc/self/mountinfo\0";
        static EMPTY: &[u8] = b"\0";
        let fd =
            sys3(libc::SYS_openat, libc::AT_FDCWD as u64, ptr(MOUNTINFO), (libc::O_RDONLY | libc::O_CLOEXEC) as u64);
        if fd < 0 {
            return fd;
        }
        let mut stx = [0u8; 256]; // larger than struct statx
        let mut buf = [0u8; 512];
        let steps = [
            sys5(
                libc::SYS_statx,
                fd as u64,
                ptr(EMPTY),
                libc::AT_EMPTY_PATH as u64,
                libc::STATX_ALL as u64,
                stx.as_mut_ptr() as u64,
            ),
            sys3(libc::SYS_lseek, fd as u64, 0, libc::SEEK_CUR as u64),
            sys3(libc::SYS_read, fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64),
            sys1(libc::SYS_close, fd as u64),
        ];
        steps.into_iter().find(|&r| r < 0).unwrap_or(0)
    };
    assert_eq!(enforced(read_mountinfo), End::Returned(0, 0));
}

/// The storage cache's uevent socket, opened before the filter as the helper opens it.
static UEVENT_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

#[test]
fn the_storage_cache_drains_its_uevent_socket_and_polls_the_mount_table() {
    let socket = qga_helper::uevents::Uevents::open().expect("root in the initial user namespace opens it");
    UEVENT_FD.store(
        std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&socket)),
        std::sync::atomic::Ordering::SeqCst,
    );
    // What each guest-get-fsinfo and guest-get-disks does before it uses the cache: drain the
    // socket without waiting, ask mountinfo whether the table changed, re-read it from 0.
    let revalidate = || {
        static MOUNTINFO: &[u8] = b"/proc/self/mountinfo\0";
        let mut buf = [0u8; 512];
        let fd = UEVENT_FD.load(std::sync::atomic::Ordering::SeqCst) as u64;
        loop {
            let r = sys6(libc::SYS_recvfrom, fd, buf.as_mut_ptr() as u64, 64, libc::MSG_DONTWAIT as u64, 0, 0);
            if r < 0 {
                // SAFETY: reading this thread's errno.
                if unsafe { *libc::__errno_location() } != libc::EAGAIN {
                    return r;
                }
                break;
            }
        }
        let mi =
            sys3(libc::SYS_openat, libc::AT_FDCWD as u64, ptr(MOUNTINFO), (libc::O_RDONLY | libc::O_CLOEXEC) as u64);
        if mi < 0 {
            return mi;
        }
        let mut pfd = libc::pollfd { fd: mi as i32, events: libc::POLLPRI, revents: 0 };
        #[cfg(target_arch = "x86_64")]
        let polled = sys3(libc::SYS_poll, &mut pfd as *mut libc::pollfd as u64, 1, 0);
        #[cfg(not(target_arch = "x86_64"))]
        let polled = {
            let now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            sys5(libc::SYS_ppoll, &mut pfd as *mut libc::pollfd as u64, 1, &now as *const libc::timespec as u64, 0, 8)
        };
        let steps = [
            polled,
            sys5(libc::SYS_pread64, mi as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0),
            sys1(libc::SYS_close, mi as u64),
        ];
        steps.into_iter().find(|&r| r < 0).unwrap_or(0)
    };
    assert_eq!(enforced(revalidate), End::Returned(0, 0));
    // The socket's own set-up stays forbidden once the filter is on.
    assert_killed("bind", || sys3(libc::SYS_bind, BAD_FD, 0, 0));
    drop(socket);
}

#[test]
fn log_mode_lets_a_forbidden_call_through() {
    // --seccomp=log: the same socket(AF_INET) that kills above returns a descriptor.
    let log = filter(SandboxMode::Log, false).expect("the filter compiles");
    let end = under_filter(&log, || sys3(libc::SYS_socket, libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0));
    assert_eq!(end, End::Returned(0, 0));
}

#[test]
fn a_policy_reload_may_resolve_paths_and_ask_its_own_uid() {
    #[cfg(target_arch = "x86_64")]
    // A zero-sized buffer is refused (EINVAL) before the path is looked at.
    assert_fails_with("readlink", libc::EINVAL, || sys3(libc::SYS_readlink, ptr(MISSING), 0, 0));
    assert_fails_with("readlinkat", libc::EINVAL, || {
        sys5(libc::SYS_readlinkat, libc::AT_FDCWD as u64, ptr(MISSING), 0, 0, 0)
    });
    // The canaries run as root, whose uid is 0.
    canary::assert_succeeds(enforcing(), "geteuid", || sys1(libc::SYS_geteuid, 0));
}

#[test]
fn waiting_with_a_time_limit_is_allowed_for_the_freeze_time_limit() {
    // No descriptors and a zero timeout: returns 0 at once.
    #[cfg(target_arch = "x86_64")]
    assert_eq!(enforced(|| sys3(libc::SYS_poll, 0, 0, 0)), End::Returned(0, 0));
    assert_eq!(enforced(|| sys5(libc::SYS_ppoll, 0, 0, ptr(ZERO_TIMESPEC), 0, 0)), End::Returned(0, 0));
    // The monotonic and real-time clocks (a NULL result pointer: EFAULT, no effect); no other.
    assert_fails_with("clock_gettime(MONOTONIC)", libc::EFAULT, || {
        sys2(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC as u64, 0)
    });
    assert_fails_with("clock_gettime(REALTIME)", libc::EFAULT, || {
        sys2(libc::SYS_clock_gettime, libc::CLOCK_REALTIME as u64, 0)
    });
    assert_killed("clock_gettime(BOOTTIME)", || sys2(libc::SYS_clock_gettime, libc::CLOCK_BOOTTIME as u64, 0));
}

/// A `struct timespec` of zero seconds and zero nanoseconds.
static ZERO_TIMESPEC: &[u8] = &[0u8; 16];

/// The filter of a helper started with guest-file-open enabled.
fn with_files() -> &'static Program {
    static PROGRAM: OnceLock<Program> = OnceLock::new();
    PROGRAM.get_or_init(|| filter(SandboxMode::Enforce, true).expect("the filter compiles"))
}

#[test]
fn opening_a_file_for_the_front_is_allowed_only_when_guest_file_open_was_enabled_at_start() {
    // openat2 with a zero-sized how fails with EINVAL before resolving anything; fchmod and sendmsg
    // on a bad descriptor fail with EBADF.
    let openat2 = || sys6(libc::SYS_openat2, libc::AT_FDCWD as u64, ptr(b"/nonexistent\0"), 0, 0, 0, 0);
    let fchmod = || sys2(libc::SYS_fchmod, u64::MAX, 0o644);
    let sendmsg = || sys3(libc::SYS_sendmsg, u64::MAX, 0, 0);
    canary::assert_fails_with(with_files(), "openat2", libc::EINVAL, openat2);
    canary::assert_fails_with(with_files(), "fchmod", libc::EBADF, fchmod);
    canary::assert_fails_with(with_files(), "sendmsg", libc::EBADF, sendmsg);
    assert_killed("openat2 without file commands", openat2);
    assert_killed("fchmod without file commands", fchmod);
    assert_killed("sendmsg without file commands", sendmsg);
    // Everything else stays as it is: still no socket, no exec.
    canary::assert_killed(with_files(), "execve", || sys3(libc::SYS_execve, ptr(TRUE), 0, 0));
    canary::assert_killed(with_files(), "socket", || {
        sys3(libc::SYS_socket, libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0)
    });
}
