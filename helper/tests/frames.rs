//! The real helper binary against hostile or odd input on its request socket: garbage,
//! oversized, truncated, disabled and out-of-state frames end it without an answer and without
//! acting. See `common` for what may and may not be sent here.

mod common;

use std::io::Read;
use std::process::Command;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use qga_helper::protocol::{Reply, Request, ShutdownMode, MAX_FRAME};

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
    // The bound depends on the tag (exec's start may be larger), so the tag byte follows:
    // 1 (fsfreeze-status) is bounded by MAX_FRAME.
    h.send_raw(&((MAX_FRAME + 1) as u32).to_le_bytes());
    h.send_raw(&[1]);
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
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test shows the helper demoting itself when started as root: run the tests as root"
    );
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

#[test]
fn an_out_of_state_freeze_while_frozen_ends_the_helper_without_an_answer_after_thawing() {
    // Unprivileged (nobody): the thaw it does before exiting cannot touch this machine.
    let opts = Opts { as_nobody: true, start_frozen: true, ..Opts::default() };
    let mut h = spawn_opts("outofstate-freeze", "guest-fsfreeze-freeze,guest-fsfreeze-thaw", opts);
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: true }, "the marker makes it start frozen");
    h.send(&Request::Freeze);
    let marker = qga_helper::freeze::marker_path(&h.statedir);
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert_eq!(status.code(), Some(3), "log:\n{log}");
    assert!(log.contains("guest-fsfreeze-freeze is not allowed while frozen"), "log:\n{log}");
    assert!(log.contains("before exiting"), "it thaws before exiting; log:\n{log}");
    assert!(!marker.exists(), "the thaw removed the marker");
}

#[test]
fn an_out_of_state_acting_request_while_frozen_is_refused_and_never_runs() {
    // Shutdown would go to the launcher: the refusal must come first. The hook records that it
    // ran for the thaw only.
    let opts = Opts { as_nobody: true, start_frozen: true, ..Opts::default() };
    let mut h = spawn_opts("outofstate-shutdown", "guest-shutdown,guest-fsfreeze-thaw", opts);
    h.send(&Request::Shutdown { mode: ShutdownMode::Powerdown });
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("guest-shutdown is not allowed while frozen"), "log:\n{log}");
    assert!(!log.contains("Shutdown"), "the launcher must not have been asked: {log}");
}
