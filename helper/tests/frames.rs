//! The real helper binary against hostile or odd input on its request socket.
//!
//! These tests run the binary on the machine that runs the tests, possibly as root, so they
//! only ever send requests that must be refused before acting (malformed frames, commands the
//! policy disables) or that have no effect (FreezeStatus, Quit, EOF). Never send Freeze, Thaw,
//! Trim, Shutdown, Suspend, SetVcpus or SetTime with valid arguments to an enabled helper here.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use qga_helper::protocol::{read_frame, write_frame, Reply, Request, ShutdownMode, MAX_FRAME};

const HELPER: &str = env!("CARGO_BIN_EXE_qemu-ga-rs-helper");
const DEADLINE: Duration = Duration::from_secs(20);

struct Helper {
    child: Child,
    chan: UnixStream,
    statedir: PathBuf,
}

fn statedir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qga-helper-frames-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the helper the way the front does: empty environment, stdin/stdout on /dev/null,
/// stderr piped, and the helper's end of a socketpair on fd 3.
fn spawn(tag: &str, enabled: &str) -> Helper {
    let dir = statedir(tag);
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).expect("socketpair");
    let child = spawn_with_fd3(&theirs, &["--statedir", dir.to_str().unwrap(), "--enabled", enabled]);
    drop(theirs);
    let chan = UnixStream::from(ours);
    chan.set_read_timeout(Some(DEADLINE)).unwrap();
    Helper { child, chan, statedir: dir }
}

fn spawn_with_fd3(fd3: &OwnedFd, args: &[&str]) -> Child {
    let raw = fd3.as_raw_fd();
    let mut cmd = Command::new(HELPER);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls async-signal-safe dup2/fcntl on
    // descriptors this process owns; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                if nix::libc::fcntl(3, nix::libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if nix::libc::dup2(raw, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn helper")
}

fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("helper did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Helper {
    fn send_raw(&mut self, bytes: &[u8]) {
        // The helper may already have gone after a refusal; a failed write is fine then.
        let _ = self.chan.write_all(bytes);
    }

    fn send(&mut self, req: &Request) {
        write_frame(&mut self.chan, &req.encode()).unwrap();
    }

    fn reply(&mut self) -> Reply {
        Reply::decode(&read_frame(&mut self.chan).expect("a reply frame")).expect("a valid reply")
    }

    /// Waits for the exit and checks that not one reply byte was written.
    fn exits_silently(mut self) -> (ExitStatus, String) {
        let status = wait(&mut self.child);
        let mut rest = vec![];
        let _ = self.chan.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the helper answered: {rest:?}");
        (status, self.stderr())
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.statedir);
    }
}

fn assert_refused(status: ExitStatus, log: &str) {
    assert!(!status.success(), "exit status {status:?}, log:\n{log}");
    assert!(log.contains("refusing request"), "log:\n{log}");
}

#[test]
fn garbage_bytes_end_the_helper_without_an_answer() {
    let mut h = spawn("garbage", "");
    // A plausible length, then a payload starting with a tag that does not exist.
    h.send_raw(&[3, 0, 0, 0, 0xaa, 0xbb, 0xcc]);
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
}

#[test]
fn text_instead_of_frames_ends_the_helper_without_an_answer() {
    let mut h = spawn("text", "");
    h.send_raw(b"{\"execute\":\"guest-ping\"}\n");
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
}

#[test]
fn an_oversized_length_prefix_ends_the_helper_without_an_answer() {
    let mut h = spawn("oversized", "");
    h.send_raw(&((MAX_FRAME + 1) as u32).to_le_bytes());
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("exceeds"), "log:\n{log}");
}

#[test]
fn a_truncated_frame_ends_the_helper_without_an_answer() {
    let mut h = spawn("truncated", "");
    h.send_raw(&[10, 0, 0, 0, 1, 2, 3]);
    h.chan.shutdown(std::net::Shutdown::Write).unwrap();
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("truncated"), "log:\n{log}");
}

#[test]
fn an_unknown_tag_ends_the_helper_without_an_answer() {
    let mut h = spawn("tag", "");
    h.send_raw(&[1, 0, 0, 0, 200]);
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("unknown tag 200"), "log:\n{log}");
}

#[test]
fn trailing_bytes_and_bad_values_end_the_helper_without_an_answer() {
    for (tag, bytes) in [("trailing", vec![2, 0, 0, 0, 1, 0]), ("badmode", vec![2, 0, 0, 0, 5, 9])] {
        let mut h = spawn(tag, "guest-shutdown");
        h.send_raw(&bytes);
        let (status, log) = h.exits_silently();
        assert_refused(status, &log);
    }
}

#[test]
fn a_policy_disabled_request_is_refused_before_acting() {
    let mut h = spawn("disabled", "");
    h.send(&Request::Shutdown { mode: ShutdownMode::Powerdown });
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("guest-shutdown is not enabled"), "log:\n{log}");
}

#[test]
fn a_request_for_another_enabled_command_is_still_refused() {
    // Only set-time is enabled; a Freeze must not run.
    let mut h = spawn("other", "guest-set-time");
    h.send(&Request::Freeze);
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("guest-fsfreeze-freeze is not enabled"), "log:\n{log}");
}

#[test]
fn freeze_status_answers_thawed_and_quit_answers_done_and_exits_zero() {
    let mut h = spawn("status", "");
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: false });
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: false });
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
    let status = wait(&mut h.child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn eof_makes_the_helper_exit_at_once() {
    let mut h = spawn("eof", "");
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: false });
    h.chan.shutdown(std::net::Shutdown::Both).unwrap();
    let start = Instant::now();
    let status = wait(&mut h.child);
    assert_eq!(status.code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(5));
    let log = h.stderr();
    assert!(log.contains("closed the channel"), "log:\n{log}");
}

#[test]
fn the_front_sees_eof_when_the_helper_exits() {
    // The launcher must not keep a copy of fd 3: after Quit, our end reads EOF.
    let mut h = spawn("fd3", "");
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
    let mut rest = vec![];
    h.chan.read_to_end(&mut rest).expect("EOF, not a timeout");
    assert!(rest.is_empty());
    assert_eq!(wait(&mut h.child).code(), Some(0));
}

#[test]
fn when_root_privileges_are_reduced_before_serving() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let mut h = spawn("demote", "");
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
    assert_eq!(wait(&mut h.child).code(), Some(0));
    let log = h.stderr();
    assert!(log.contains("privileges reduced to"), "log:\n{log}");
}

#[test]
fn bad_command_lines_exit_2() {
    let (_ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap();
    for args in [
        &["--statedir", "/tmp", "--enabled", "", "--bogus"][..],
        &["--statedir", "/tmp"][..],
        &["--statedir", "/tmp", "--enabled", "guest-ping"][..],
        &["--statedir", "/tmp", "--enabled", "", "--hook-timeout", "0"][..],
    ] {
        let mut child = spawn_with_fd3(&theirs, args);
        assert_eq!(wait(&mut child).code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_missing_request_socket_exits_2() {
    let mut child = Command::new(HELPER)
        .args(["--statedir", "/tmp", "--enabled", ""])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait(&mut child).code(), Some(2));
}

#[test]
fn a_datagram_socket_on_fd_3_exits_2() {
    let (_ours, theirs) = socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC).unwrap();
    let mut child = spawn_with_fd3(&theirs, &["--statedir", "/tmp", "--enabled", ""]);
    assert_eq!(wait(&mut child).code(), Some(2));
}
