//! The audit trail reaches syslog in the documented layout: facility authpriv, priority
//! notice (`<85>`), tag `qemu-ga-rs-audit` with the front's pid, then the record exactly as
//! the man page's AUDIT section describes it. The agent runs in a mount namespace of its own
//! where the syslog sockets (`/dev/log` when the machine has one, and `/var/run/syslog`) are
//! this test's datagram socket, so the machine's own syslog is neither needed nor touched.

mod common;

use common::*;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn audit_records_reach_syslog_as_authpriv_notice_in_the_man_pages_layout() {
    require_root();
    ensure_helper_built();
    let dir = TempDir::new();
    let logdir = dir.path().join("syslog");
    std::fs::create_dir(&logdir).unwrap();
    let syslog = UnixDatagram::bind(logdir.join("syslog")).expect("bind the test's syslog socket");
    syslog.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let sock = dir.path().join("qga.sock");
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let policy = shipped_policy("default");
    let mut cmd = Command::new(FRONT);
    cmd.args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .arg("--policy")
        .arg(&policy)
        .env("QGA_CONF", dir.path().join("no-such.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    // Everything the child uses is prepared before the fork: it only makes system calls.
    let logdir_c = logdir.clone();
    let logsock = logdir.join("syslog");
    let dev_log = Path::new("/dev/log").exists();
    // SAFETY: between fork and exec only unshare and mount, on paths built before the fork
    // (nix passes short paths through a stack buffer): no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            unshare(CloneFlags::CLONE_NEWNS)?;
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
            // /var/run is /run: /var/run/syslog is now the test's socket.
            mount(Some(&logdir_c), "/run", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            if dev_log {
                mount(Some(&logsock), "/dev/log", None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn qemu-ga-rs");
    let pid = child.id();
    let deadline = Instant::now() + TIMEOUT;
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "the agent does not listen; stderr:\n{}", stderr_of(dir.path()));
        assert!(child.try_wait().unwrap().is_none(), "the agent exited; stderr:\n{}", stderr_of(dir.path()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(&sock);
    // The shipped default policy disables the file commands: a refused request, audited.
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/nonexistent-qga-syslog"}}"#);
    assert_eq!(r["error"]["class"], "CommandNotFound", "{r}");
    let tag = format!(" qemu-ga-rs-audit[{pid}]: ");
    let mut seen = Vec::new();
    let record = loop {
        let mut buf = [0u8; 4096];
        if let Ok(n) = syslog.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(&tag) {
                break text;
            }
            seen.push(text);
        }
        assert!(Instant::now() < deadline, "no audit record on the syslog socket; got {seen:#?}");
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(record.starts_with("<85>"), "not authpriv.notice: {record}");
    let message = &record[record.find(&tag).unwrap() + tag.len()..];
    let message = message.trim_end_matches(['\n', '\0']);
    let fields: Vec<&str> = message.split(' ').collect();
    assert!(fields[0].strip_prefix("time=").is_some_and(|t| t.split_once('.').is_some()), "{message}");
    assert_eq!(
        &fields[1..7],
        [
            "channel=unix-listen",
            "command=\"guest-file-open\"",
            "decision=refused",
            "rule=policy",
            "outcome=error",
            "class=CommandNotFound"
        ],
        "{message}"
    );
    assert!(fields[7].strip_prefix("duration_us=").is_some_and(|d| d.parse::<u64>().is_ok()), "{message}");
    assert_eq!(fields[8..], ["arg.path=\"/nonexistent-qga-syslog\""], "{message}");
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}
