//! Canaries for the front's seccomp filter (the shared harness in `common::canary`): the real
//! filter is applied in a forked child, which then makes one system call. Forbidden calls must
//! kill it with SIGSYS; the calls the front needs must not. (The whole protocol suite also runs
//! with the filter on.)

mod common;

use common::canary::*;
use nix::libc;
use qemu_ga_rs::privsep::seccomp::{filter, SandboxMode};

/// A descriptor number the filter is told the front may truncate (the pidfile's, in the agent).
const TRUNCATABLE_FD: u64 = 900;

fn with_file_access() -> Program {
    filter(true, &[TRUNCATABLE_FD as i32], SandboxMode::Enforce).expect("the filter compiles")
}

fn without_file_access() -> Program {
    filter(false, &[TRUNCATABLE_FD as i32], SandboxMode::Enforce).expect("the filter compiles")
}

const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
const NETLINK_RAW: u64 = (libc::SOCK_RAW | libc::SOCK_CLOEXEC) as u64;

fn open_flags(path: &'static [u8], flags: i32) -> i64 {
    sys6(libc::SYS_openat, libc::AT_FDCWD as u64, ptr(path), flags as u64, 0o644, 0, 0)
}

#[test]
fn execve_kills_the_front() {
    assert_killed(&with_file_access(), "execve", || sys3(libc::SYS_execve, ptr(TRUE), 0, 0));
}

#[test]
fn an_internet_socket_kills_the_front_but_netlink_route_for_getifaddrs_is_allowed() {
    let p = with_file_access();
    assert_killed(&p, "socket(AF_INET)", || sys3(libc::SYS_socket, libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0));
    assert_succeeds(&p, "socket(AF_NETLINK, NETLINK_ROUTE)", || {
        sys3(libc::SYS_socket, libc::AF_NETLINK as u64, NETLINK_RAW, libc::NETLINK_ROUTE as u64)
    });
}

#[test]
fn finding_10_a_sock_diag_socket_for_dumping_every_tcp_socket_kills_the_front() {
    // The attack: a NETLINK_SOCK_DIAG socket, on which one inet_diag dump request lists every
    // TCP socket of the guest. Refused at socket(), before any request can be sent.
    for p in [with_file_access(), without_file_access()] {
        assert_killed(&p, "socket(AF_NETLINK, NETLINK_SOCK_DIAG)", || {
            sys3(libc::SYS_socket, libc::AF_NETLINK as u64, NETLINK_RAW, libc::NETLINK_SOCK_DIAG as u64)
        });
        assert_killed(&p, "socket(AF_NETLINK, NETLINK_AUDIT)", || {
            sys3(libc::SYS_socket, libc::AF_NETLINK as u64, NETLINK_RAW, libc::NETLINK_AUDIT as u64)
        });
        assert_killed(&p, "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)", || {
            sys3(libc::SYS_socket, libc::AF_NETLINK as u64, NETLINK_RAW, libc::NETLINK_KOBJECT_UEVENT as u64)
        });
        // NETLINK_ROUTE in another socket type is not what getifaddrs opens either.
        assert_killed(&p, "socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE)", || {
            sys3(libc::SYS_socket, libc::AF_NETLINK as u64, libc::SOCK_DGRAM as u64, libc::NETLINK_ROUTE as u64)
        });
    }
}

#[test]
fn finding_10_an_fcntl_the_front_does_not_make_kills_it() {
    let p = with_file_access();
    assert_fails_with(&p, "fcntl(F_GETFD)", libc::EBADF, || sys3(libc::SYS_fcntl, BAD_FD, libc::F_GETFD as u64, 0));
    for (name, cmd) in [
        ("F_SETFL", libc::F_SETFL),
        ("F_SETFD", libc::F_SETFD),
        ("F_DUPFD", libc::F_DUPFD),
        ("F_DUPFD_CLOEXEC", libc::F_DUPFD_CLOEXEC),
        ("F_SETOWN", libc::F_SETOWN),
        ("F_SETLK", libc::F_SETLK),
        ("F_SETPIPE_SZ", libc::F_SETPIPE_SZ),
        ("F_ADD_SEALS", libc::F_ADD_SEALS),
    ] {
        // The calls run in a throwaway child; a fn pointer cannot capture, so the command is
        // passed through a static.
        COMMAND.store(cmd, std::sync::atomic::Ordering::SeqCst);
        assert_killed(&p, name, || {
            sys3(libc::SYS_fcntl, 1, COMMAND.load(std::sync::atomic::Ordering::SeqCst) as u64, 0)
        });
    }
}

static COMMAND: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

#[test]
fn finding_10_ftruncate_of_the_log_or_any_other_descriptor_kills_the_front() {
    for p in [with_file_access(), without_file_access()] {
        // The descriptor it was built for: allowed (here a bad descriptor, so EBADF).
        assert_fails_with(&p, "ftruncate(pidfile)", libc::EBADF, || sys2(libc::SYS_ftruncate, TRUNCATABLE_FD, 0));
        // The attack: truncate the root-owned log the front holds open (stderr stands in).
        assert_killed(&p, "ftruncate(log)", || sys2(libc::SYS_ftruncate, 2, 0));
        assert_killed(&p, "ftruncate(another descriptor)", || sys2(libc::SYS_ftruncate, TRUNCATABLE_FD + 1, 0));
    }
    // Without a descriptor to truncate there is no ftruncate at all.
    let none = filter(true, &[], SandboxMode::Enforce).unwrap();
    assert_killed(&none, "ftruncate without a pidfile", || sys2(libc::SYS_ftruncate, TRUNCATABLE_FD, 0));
}

#[test]
fn ptrace_fork_ioctl_and_setuid_kill_the_front() {
    let p = with_file_access();
    assert_killed(&p, "ptrace", || sys1(libc::SYS_ptrace, libc::PTRACE_TRACEME as u64));
    assert_killed(&p, "clone", || sys5(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0, 0, 0));
    assert_killed(&p, "ioctl", || sys3(libc::SYS_ioctl, BAD_FD, libc::FIONREAD, 0));
    assert_killed(&p, "setuid", || sys1(libc::SYS_setuid, 0));
}

#[test]
fn executable_memory_kills_the_front_but_data_memory_is_allowed() {
    let p = with_file_access();
    const RX: u64 = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    const RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    assert_killed(&p, "mmap(PROT_EXEC)", || sys6(libc::SYS_mmap, 0, 4096, RX, ANON, BAD_FD, 0));
    assert_succeeds(&p, "mmap(PROT_READ|PROT_WRITE)", || sys6(libc::SYS_mmap, 0, 4096, RW, ANON, BAD_FD, 0));
}

#[test]
fn opening_for_write_creating_or_chmod_kills_the_front_with_or_without_file_commands() {
    // guest-file-open's files are opened by the helper and arrive as descriptors: the front
    // never opens anything for writing, creates a file or changes a mode, whatever the policy.
    for p in [without_file_access(), with_file_access()] {
        assert_killed(&p, "open for writing", || open_flags(b"/dev/null\0", libc::O_WRONLY | libc::O_CLOEXEC));
        assert_killed(&p, "open creating", || open_flags(b"/nonexistent-dir/x\0", libc::O_RDONLY | libc::O_CREAT));
        assert_killed(&p, "openat2", || sys6(libc::SYS_openat2, libc::AT_FDCWD as u64, ptr(b"/x\0"), 0, 0, 0, 0));
        assert_killed(&p, "fchmod", || sys2(libc::SYS_fchmod, BAD_FD, 0o644));
        assert_succeeds(&p, "open for reading", || {
            open_flags(b"/proc/self/status\0", libc::O_RDONLY | libc::O_CLOEXEC)
        });
        // The helper's replies (an opened file comes with one).
        assert_fails_with(&p, "recvmsg", libc::EBADF, || sys3(libc::SYS_recvmsg, BAD_FD, 0, 0));
    }
}

#[test]
fn ordinary_calls_survive() {
    assert_succeeds(&without_file_access(), "getpid", || sys1(libc::SYS_getpid, 0));
}

#[test]
fn uname_for_the_host_name_is_allowed_but_sethostname_kills_the_front() {
    static UTS: std::sync::Mutex<[u8; std::mem::size_of::<libc::utsname>()]> =
        std::sync::Mutex::new([0; std::mem::size_of::<libc::utsname>()]);
    for p in [with_file_access(), without_file_access()] {
        assert_succeeds(&p, "uname", || sys1(libc::SYS_uname, UTS.lock().unwrap().as_mut_ptr() as u64));
        assert_killed(&p, "sethostname", || sys2(libc::SYS_sethostname, ptr(b"x\0"), 1));
    }
}

#[test]
fn watching_held_files_is_allowed_but_creating_a_watch_instance_kills_the_front() {
    // The instance is created before the filter; after it, only watches are added and removed,
    // links read and filesystem types asked while a held file's path is resolved.
    for p in [with_file_access(), without_file_access()] {
        assert_fails_with(&p, "inotify_add_watch", libc::EBADF, || {
            sys3(libc::SYS_inotify_add_watch, BAD_FD, ptr(MISSING), libc::IN_MODIFY as u64)
        });
        assert_fails_with(&p, "inotify_rm_watch", libc::EBADF, || sys2(libc::SYS_inotify_rm_watch, BAD_FD, 1));
        assert_fails_with(&p, "readlinkat", libc::ENOENT, || {
            sys5(libc::SYS_readlinkat, libc::AT_FDCWD as u64, ptr(MISSING), 0, 1, 0)
        });
        assert_fails_with(&p, "statfs", libc::ENOENT, || sys2(libc::SYS_statfs, ptr(MISSING), 0));
        assert_killed(&p, "inotify_init1", || sys1(libc::SYS_inotify_init1, libc::IN_CLOEXEC as u64));
        assert_killed(&p, "fanotify_init", || sys2(libc::SYS_fanotify_init, 0, 0));
    }
}
