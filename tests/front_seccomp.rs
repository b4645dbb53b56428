//! Canaries for the front's seccomp filter: the real filter is applied in a forked child,
//! which then makes one system call. Forbidden calls must kill it with SIGSYS; the calls the
//! front needs must not. (The whole protocol suite also runs with the filter on.)

use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use qemu_ga_rs::privsep::seccomp::{filter, SandboxMode};

/// How the child ended after making the call.
#[derive(Debug, PartialEq)]
enum Outcome {
    Survived,
    KilledBySigsys,
    Other(String),
}

/// Applies the front's filter in a child and runs `call` there.
fn under_filter(file_access: bool, call: fn() -> libc::c_long) -> Outcome {
    // Built before fork: the child must not allocate (the test harness has threads).
    let program = filter(file_access, SandboxMode::Enforce).expect("the filter compiles");
    // SAFETY: the child only makes raw system calls and _exit; it allocates nothing and takes
    // no locks, so forking from a threaded test process is sound.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl/seccomp with a valid program pointer; _exit never returns.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let prog =
                    libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const _) != 0 {
                    libc::_exit(3);
                }
                call();
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, 0) => Outcome::Survived,
            WaitStatus::Signaled(_, Signal::SIGSYS, _) => Outcome::KilledBySigsys,
            other => Outcome::Other(format!("{other:?}")),
        },
    }
}

/// One raw system call.
fn raw(nr: libc::c_long, a: [libc::c_long; 4]) -> libc::c_long {
    // SAFETY: the arguments are valid or deliberately invalid (bad descriptors, null pointers
    // the kernel rejects); every call runs in a throwaway child under the filter. The last two
    // arguments (-1, 0) are mmap's descriptor and offset; other calls ignore them.
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], -1 as libc::c_long, 0 as libc::c_long) }
}

fn execve() -> libc::c_long {
    raw(
        libc::SYS_execve,
        [
            (c"/bin/true".as_ptr()) as libc::c_long,
            (std::ptr::null::<*const i8>()) as libc::c_long,
            (std::ptr::null::<*const i8>()) as libc::c_long,
            0,
        ],
    )
}
fn socket_inet() -> libc::c_long {
    raw(libc::SYS_socket, [(libc::AF_INET) as libc::c_long, (libc::SOCK_STREAM) as libc::c_long, 0, 0])
}
fn socket_netlink() -> libc::c_long {
    raw(
        libc::SYS_socket,
        [
            (libc::AF_NETLINK) as libc::c_long,
            (libc::SOCK_RAW | libc::SOCK_CLOEXEC) as libc::c_long,
            (libc::NETLINK_ROUTE) as libc::c_long,
            0,
        ],
    )
}
fn ptrace() -> libc::c_long {
    raw(libc::SYS_ptrace, [(libc::PTRACE_TRACEME) as libc::c_long, 0, 0, 0])
}
fn fork_call() -> libc::c_long {
    raw(libc::SYS_clone, [(libc::SIGCHLD) as libc::c_long, 0, 0, 0])
}
fn ioctl() -> libc::c_long {
    raw(libc::SYS_ioctl, [-1, (libc::FIONREAD) as libc::c_long, 0, 0])
}
fn open_for_write() -> libc::c_long {
    raw(
        libc::SYS_openat,
        [
            (libc::AT_FDCWD) as libc::c_long,
            (c"/dev/null".as_ptr()) as libc::c_long,
            (libc::O_WRONLY | libc::O_CLOEXEC) as libc::c_long,
            0,
        ],
    )
}
fn open_create() -> libc::c_long {
    raw(
        libc::SYS_openat,
        [
            (libc::AT_FDCWD) as libc::c_long,
            (c"/nonexistent-dir/x".as_ptr()) as libc::c_long,
            (libc::O_RDONLY | libc::O_CREAT) as libc::c_long,
            (0o644) as libc::c_long,
        ],
    )
}
fn open_for_read() -> libc::c_long {
    raw(
        libc::SYS_openat,
        [
            (libc::AT_FDCWD) as libc::c_long,
            (c"/proc/self/status".as_ptr()) as libc::c_long,
            (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_long,
            0,
        ],
    )
}
fn mmap_exec() -> libc::c_long {
    raw(
        libc::SYS_mmap,
        [
            0,
            4096,
            (libc::PROT_READ | libc::PROT_EXEC) as libc::c_long,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as libc::c_long,
        ],
    )
}
fn mmap_data() -> libc::c_long {
    raw(
        libc::SYS_mmap,
        [
            0,
            4096,
            (libc::PROT_READ | libc::PROT_WRITE) as libc::c_long,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as libc::c_long,
        ],
    )
}
fn setuid() -> libc::c_long {
    raw(libc::SYS_setuid, [0, 0, 0, 0])
}
fn getpid() -> libc::c_long {
    raw(libc::SYS_getpid, [0, 0, 0, 0])
}

#[test]
fn execve_kills_the_front() {
    assert_eq!(under_filter(true, execve), Outcome::KilledBySigsys);
}

#[test]
fn an_internet_socket_kills_the_front_but_netlink_for_getifaddrs_is_allowed() {
    assert_eq!(under_filter(true, socket_inet), Outcome::KilledBySigsys);
    assert_eq!(under_filter(true, socket_netlink), Outcome::Survived);
}

#[test]
fn ptrace_fork_ioctl_and_setuid_kill_the_front() {
    for call in [ptrace, fork_call, ioctl, setuid] {
        assert_eq!(under_filter(true, call), Outcome::KilledBySigsys);
    }
}

#[test]
fn executable_memory_kills_the_front_but_data_memory_is_allowed() {
    assert_eq!(under_filter(true, mmap_exec), Outcome::KilledBySigsys);
    assert_eq!(under_filter(true, mmap_data), Outcome::Survived);
}

#[test]
fn without_file_commands_opening_for_write_or_create_kills_the_front() {
    assert_eq!(under_filter(false, open_for_write), Outcome::KilledBySigsys);
    assert_eq!(under_filter(false, open_create), Outcome::KilledBySigsys);
    assert_eq!(under_filter(false, open_for_read), Outcome::Survived);
}

#[test]
fn with_file_commands_enabled_opening_for_write_is_allowed() {
    assert_eq!(under_filter(true, open_for_write), Outcome::Survived);
    assert_eq!(under_filter(true, open_create), Outcome::Survived);
}

#[test]
fn ordinary_calls_survive() {
    assert_eq!(under_filter(false, getpid), Outcome::Survived);
}
