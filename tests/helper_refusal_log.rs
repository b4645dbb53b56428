//! When the helper refuses a request it exits without answering, and the agent with it; the
//! reason it logs must reach the agent's log first (security review finding 2: it used to be
//! lost). A stand-in helper beside a copy of the front refuses the first request the way the
//! real one does (one log line on stderr, exit 3); the request is guest-fsfreeze-status, which
//! acts on nothing.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_helpers_refusal_reason_reaches_the_log_before_the_agent_exits() {
    require_root();
    let dir = TempDir::new();
    let front = dir.path().join("qemu-ga-rs");
    std::fs::copy(FRONT, &front).unwrap();
    let helper = dir.path().join(HELPER_NAME);
    std::fs::write(
        &helper,
        "#!/bin/sh\nhead -c 1 <&3 >/dev/null\necho 'helper: refusing request: stand-in reason; exiting' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("qga.sock");
    let log = dir.path().join("log");
    let mut child = Command::new(&front)
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .arg("-l")
        .arg(&log)
        .env("QGA_CONF", dir.path().join("no-such.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !sock.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the agent exited during start-up");
        assert!(Instant::now() < deadline, "no socket within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(&sock);
    c.send(r#"{"execute":"guest-fsfreeze-status"}"#);
    let status = wait_child(&mut child, TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the agent still runs after its helper exited")
    });
    assert!(!status.success(), "exit status {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    let reason = text.find("helper: refusing request: stand-in reason").unwrap_or_else(|| panic!("log:\n{text}"));
    let lost = text.find("privileged helper lost during").unwrap_or_else(|| panic!("log:\n{text}"));
    assert!(reason < lost, "the reason was logged after the agent's last record:\n{text}");
}
