//! The two processes' lifecycle: clean exit on SIGTERM, neither survives the other, restart
//! while frozen, and no pidfile without -d.
//!
//! Safety: nothing here freezes or thaws. The frozen-start test stops its agent with SIGKILL
//! to the helper first (a helper that sees its front go while frozen would thaw).

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const PROMPTLY: Duration = Duration::from_secs(3);

fn allow_all(extra: &[&str]) -> Agent {
    let policy = shipped_policy("allow-all");
    let mut args = vec!["--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

#[test]
fn sigterm_exits_0_and_the_helper_is_gone() {
    let mut agent = allow_all(&[]);
    let helper = agent.helper_pid;
    let status = agent.terminate();
    assert_eq!(status.code(), Some(0), "exit status {status}; stderr:\n{}", agent.stderr());
    assert!(wait_gone(helper, PROMPTLY), "the helper {helper} outlived the front");
    assert!(std::fs::metadata(format!("/proc/{helper}")).is_err(), "the helper was not reaped by the front");
    assert!(agent.stderr().contains("received SIGTERM, exiting"), "stderr:\n{}", agent.stderr());
}

#[test]
fn a_sigterm_during_start_up_still_ends_the_agent_with_status_0() {
    // What QEMU's test-qga does for `-l`: start the agent, connect as soon as its socket
    // exists, and stop it at once, while the front is still starting (the helper's spawn, its
    // view, demotion). The signal must wait for the loop, not kill the front halfway.
    require_root();
    ensure_helper_built();
    for attempt in 0..5 {
        let dir = TempDir::new();
        let sock = dir.path().join("qga.sock");
        let mut child = std::process::Command::new(FRONT)
            .args(["-m", "unix-listen", "-p", sock.to_str().unwrap(), "-t", dir.path().to_str().unwrap()])
            .env("QGA_CONF", dir.path().join("no-such.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while !sock.exists() {
            assert!(Instant::now() < deadline, "no socket");
            std::thread::sleep(Duration::from_micros(200));
        }
        kill(child.id(), Signal::SIGTERM);
        let status = child.wait().unwrap();
        assert_eq!((status.code(), status.signal()), (Some(0), None), "attempt {attempt}: {status}");
    }
}

#[test]
fn sigint_also_exits_0() {
    let mut agent = allow_all(&[]);
    kill(agent.front_pid, Signal::SIGINT);
    let status = agent.wait_exit(TIMEOUT).expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(wait_gone(agent.helper_pid, PROMPTLY));
}

#[test]
fn killing_the_helper_makes_the_front_exit_non_zero_promptly_and_log_why() {
    let dir = TempDir::new();
    let log = dir.path().join("log");
    let policy = shipped_policy("allow-all");
    let mut agent = Agent::start_in(dir, &["--policy", policy.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let start = Instant::now();
    kill(agent.helper_pid, Signal::SIGKILL);
    let status =
        agent.wait_exit(PROMPTLY).unwrap_or_else(|| panic!("the front still runs {PROMPTLY:?} after its helper died"));
    assert!(!status.success() && status.signal().is_none(), "front exit status {status}");
    assert!(start.elapsed() < PROMPTLY);
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(text.contains("privileged helper exited"), "log:\n{text}");
}

#[test]
fn killing_the_front_makes_the_helper_exit_promptly() {
    let mut agent = allow_all(&[]);
    let helper = agent.helper_pid;
    let launcher: Vec<u32> = children_of(helper);
    let mut child = agent.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wait_gone(helper, PROMPTLY), "the helper still runs {PROMPTLY:?} after its front died");
    for pid in launcher {
        assert!(wait_gone(pid, PROMPTLY), "the helper's child {pid} outlived it");
    }
}

#[test]
fn an_isfrozen_marker_at_start_brings_the_agent_up_frozen() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("qga.state.isfrozen"), b"").unwrap();
    let log = dir.path().join("log");
    let pidfile = dir.path().join("qga.pid");
    let mut agent = Agent::start_in(
        dir,
        &[
            "--policy",
            shipped_policy("allow-all").to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-f",
            pidfile.to_str().unwrap(),
        ],
    );
    let mut c = agent.connect();
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), serde_json::json!({"return": "frozen"}));
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/hostname"}}"#);
    assert_error(&r, "CommandNotFound", "Command guest-file-open has been disabled: the agent is in frozen state");
    let r = c.cmd(r#"{"execute":"guest-get-time"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-get-time has been disabled: the agent is in frozen state");
    let info = info_commands(&mut c);
    assert_eq!(info.len(), qga_policy::COUNT);
    for (name, enabled, _) in &info {
        assert_eq!(*enabled, FROZEN_ALLOWLIST.contains(&name.as_str()), "{name} while frozen");
    }
    // The gate agrees with guest-info (probing never runs a command, thaw included).
    for name in schema_order() {
        assert_eq!(probe_enabled(&mut c, name), FROZEN_ALLOWLIST.contains(&name), "gate for {name} while frozen");
    }
    // 7.2's check_is_frozen: no log file, no state file is created while frozen.
    assert!(!log.exists(), "the log file was created while frozen");
    assert!(!agent.path("qga.state").exists(), "qga.state was created while frozen");
    assert!(
        agent.stderr().contains("previous instance appears to have exited with frozen filesystems"),
        "stderr:\n{}",
        agent.stderr()
    );
    // No thaw: stop with SIGKILL, the launcher before the helper, so nothing acts on the frozen
    // state.
    agent.kill_all();
    assert!(wait_gone(agent.helper_pid, PROMPTLY) && wait_gone(agent.front_pid, PROMPTLY));
    assert!(agent.path("qga.state.isfrozen").exists(), "the marker is only removed by a thaw");
}

#[test]
fn killing_the_helper_while_frozen_makes_the_launcher_thaw_and_remove_the_marker() {
    // Frozen by the marker alone (nothing on this machine is frozen: the launcher's thaw of
    // every mount then changes nothing but the marker).
    let dir = TempDir::new();
    std::fs::write(dir.path().join("qga.state.isfrozen"), b"").unwrap();
    let agent = Agent::start_in(dir, &["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let mut c = agent.connect();
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), serde_json::json!({"return": "frozen"}));
    drop(c);
    let launcher = children_of(agent.helper_pid);
    assert!(!launcher.is_empty(), "the helper has no launcher");
    kill(agent.helper_pid, Signal::SIGKILL);
    let marker = agent.path("qga.state.isfrozen");
    let deadline = Instant::now() + PROMPTLY;
    while marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!marker.exists(), "the marker is still there {PROMPTLY:?} after the helper died frozen");
    for pid in launcher {
        assert!(wait_gone(pid, PROMPTLY), "the launcher {pid} outlived its thaw");
    }
    // The launcher's record of it reaches the agent's log: the front, going away with its
    // helper, waits for the helper side's pipe to close before it exits.
    let mut agent = agent;
    agent.wait_exit(Duration::from_secs(10)).expect("the front exits after its helper died");
    let log = agent.stderr();
    assert!(
        log.contains("helper: launcher: the helper died while frozen: thawed") && log.contains("removed the marker"),
        "the launcher's thaw is not in the log:\n{log}"
    );
}

#[test]
fn without_daemonize_no_pidfile_is_written() {
    let dir = TempDir::new();
    let pidfile = dir.path().join("qga.pid");
    let mut agent = Agent::start_in(
        dir,
        &["--policy", shipped_policy("allow-all").to_str().unwrap(), "-f", pidfile.to_str().unwrap()],
    );
    let mut c = agent.connect();
    assert!(c.sync(1).is_empty());
    assert!(!pidfile.exists(), "a pidfile was written without -d");
    drop(c);
    assert_eq!(agent.terminate().code(), Some(0));
    assert!(!pidfile.exists());
}
