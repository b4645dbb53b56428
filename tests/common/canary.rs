//! The one canary harness for both seccomp filters (the front's tests include it as part of
//! `common`, the helper's by path): a real compiled filter is applied in a forked child, which
//! then makes one system call. A forbidden call must kill the child with SIGSYS; an allowed
//! one must return, with an error where its arguments are harmless on purpose (a bad
//! descriptor, a NULL pointer, a path that does not exist), so nothing acts on the machine.

#![allow(dead_code)]

use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// The compiled filter, as both crates' `filter` functions return it.
pub type Program = qga_policy::seccomp::BpfProgram;

/// How the child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The call returned: 0 for success (any non-negative result), else -1 and its errno.
    Returned(i64, i32),
    Killed(Signal),
}

/// The exit status that says the filter could not be applied at all.
const NOT_APPLIED: i32 = 120;

/// The call's result and errno, packed into the child's exit status.
fn encode(ret: i64, errno: i32) -> i32 {
    if ret < 0 {
        1 + (errno & 0x7f)
    } else {
        0
    }
}

/// Runs `call` in a forked child under `program`. The program is compiled by the caller before
/// the fork: the child must not allocate (the test harness has threads).
pub fn under_filter(program: &Program, call: fn() -> i64) -> End {
    // SAFETY: after fork the child only installs the prepared program (prctl and seccomp system
    // calls on memory that already exists), makes raw system calls on its stack and _exits; it
    // allocates nothing and takes no lock, so the test threads missing in the child do not
    // matter.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl and seccomp with a valid program pointer; _exit never returns.
            unsafe {
                let prog =
                    libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const _) != 0
                {
                    libc::_exit(NOT_APPLIED);
                }
                let ret = call();
                let errno = *libc::__errno_location();
                libc::_exit(encode(ret, errno))
            }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, NOT_APPLIED) => panic!("the filter could not be applied"),
            WaitStatus::Exited(_, 0) => End::Returned(0, 0),
            WaitStatus::Exited(_, code) => End::Returned(-1, code - 1),
            WaitStatus::Signaled(_, sig, _) => End::Killed(sig),
            other => panic!("unexpected wait status {other:?}"),
        },
    }
}

pub fn assert_killed(program: &Program, name: &str, call: fn() -> i64) {
    assert_eq!(under_filter(program, call), End::Killed(Signal::SIGSYS), "{name} must kill the process");
}

pub fn assert_fails_with(program: &Program, name: &str, errno: i32, call: fn() -> i64) {
    assert_eq!(
        under_filter(program, call),
        End::Returned(-1, errno),
        "{name} must be allowed and fail with errno {errno}"
    );
}

pub fn assert_succeeds(program: &Program, name: &str, call: fn() -> i64) {
    assert_eq!(under_filter(program, call), End::Returned(0, 0), "{name} must be allowed and succeed");
}

// The `sys*` helpers are only called with integer arguments, NULL, pointers to static
// NUL-terminated strings or to a live buffer of the given length.
pub fn sys1(nr: libc::c_long, a: u64) -> i64 {
    // SAFETY: see above; the kernel reads or writes no memory the arguments do not describe.
    unsafe { libc::syscall(nr, a) as i64 }
}
pub fn sys2(nr: libc::c_long, a: u64, b: u64) -> i64 {
    // SAFETY: as for sys1.
    unsafe { libc::syscall(nr, a, b) as i64 }
}
pub fn sys3(nr: libc::c_long, a: u64, b: u64, c: u64) -> i64 {
    // SAFETY: as for sys1.
    unsafe { libc::syscall(nr, a, b, c) as i64 }
}
pub fn sys5(nr: libc::c_long, a: u64, b: u64, c: u64, d: u64, e: u64) -> i64 {
    // SAFETY: as for sys1.
    unsafe { libc::syscall(nr, a, b, c, d, e) as i64 }
}
pub fn sys6(nr: libc::c_long, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> i64 {
    // SAFETY: as for sys1.
    unsafe { libc::syscall(nr, a, b, c, d, e, f) as i64 }
}

pub const BAD_FD: u64 = -1i64 as u64;
pub const TRUE: &[u8] = b"/bin/true\0";
pub const MISSING: &[u8] = b"/nonexistent-qga-seccomp-canary\0";

pub fn ptr(s: &'static [u8]) -> u64 {
    s.as_ptr() as u64
}
