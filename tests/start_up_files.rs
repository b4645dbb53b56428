//! The files root opens at start-up and the files that make root act (security review
//! findings 1 and 6): each test plants what an attacker would and shows the real agent refuses
//! it, or does not follow it, and that the planted target is untouched.
//!
//! Safety: nothing here freezes, thaws or acts on the machine. The agents that do start are
//! stopped with SIGKILL, helper first.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// What root must never overwrite: a file whose contents the test checks afterwards.
struct Victim(PathBuf);

impl Victim {
    const TEXT: &'static [u8] = b"root-only contents\n";

    fn new(dir: &Path) -> Victim {
        let path = dir.join("victim");
        fs::write(&path, Self::TEXT).unwrap();
        Victim(path)
    }

    #[track_caller]
    fn assert_untouched(&self) {
        assert_eq!(fs::read(&self.0).unwrap(), Self::TEXT, "{} was written through a planted link", self.0.display());
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(path: &Path) {
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
}

/// Runs the agent on a socket in `state` with `-t state` and `extra`; it must refuse to start.
#[track_caller]
fn refused_start(state: &Path, extra: &[&str]) -> String {
    require_root();
    let sock = state.join("qga.sock");
    let mut args = vec!["-m", "unix-listen", "-p", sock.to_str().unwrap(), "-t", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_to_exit(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the agent started; stderr:\n{stderr}");
    assert!(!sock.exists(), "the channel was opened before the refusal");
    stderr
}

// ---- finding 1: root follows symlinks at start-up ----

#[test]
fn a_symlink_planted_as_the_state_file_is_not_followed() {
    let dir = TempDir::new();
    let victim = Victim::new(dir.path());
    symlink(&victim.0, dir.path().join("qga.state")).unwrap();
    let stderr = refused_start(dir.path(), &[]);
    assert!(stderr.contains("qga.state is a symbolic link, which is not followed"), "stderr:\n{stderr}");
    victim.assert_untouched();
}

#[test]
fn a_state_directory_others_can_write_is_refused_even_sticky_as_tmp() {
    let dir = TempDir::new();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    for mode in [0o777, 0o1777, 0o775] {
        chmod(&state, mode);
        let stderr = refused_start(&state, &[]);
        assert!(stderr.contains("state directory refused") && stderr.contains("writable"), "stderr:\n{stderr}");
        assert!(!state.join("qga.state").exists(), "a state file was created in a refused directory");
    }
    // The directory of the README's old example.
    let stderr = refused_start(Path::new("/tmp"), &[]);
    assert!(stderr.contains("state directory refused"), "stderr:\n{stderr}");
    // Owned by another user.
    chmod(&state, 0o755);
    chown_nobody(&state);
    let stderr = refused_start(&state, &[]);
    assert!(stderr.contains("owned by uid 65534"), "stderr:\n{stderr}");
}

#[test]
fn a_symlink_planted_as_the_log_is_not_followed() {
    let dir = TempDir::new();
    let victim = Victim::new(dir.path());
    // A directory anyone may add entries to, as /tmp.
    let scratch = dir.scratch();
    let log = scratch.join("qga.log");
    symlink(&victim.0, &log).unwrap();
    let stderr = refused_start(dir.path(), &["-l", log.to_str().unwrap()]);
    assert!(stderr.contains("qga.log is a symbolic link, which is not followed"), "stderr:\n{stderr}");
    victim.assert_untouched();
    // A hard link to it is refused as well.
    fs::remove_file(&log).unwrap();
    fs::hard_link(&victim.0, &log).unwrap();
    let stderr = refused_start(dir.path(), &["-l", log.to_str().unwrap()]);
    assert!(stderr.contains("hard links"), "stderr:\n{stderr}");
    victim.assert_untouched();
}

/// The running front whose command line names `path`.
fn front_naming(path: &Path) -> Option<u32> {
    let front = fs::canonicalize(FRONT).unwrap();
    let needle = path.as_os_str().as_encoded_bytes();
    fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let names = cmdline.split(|&b| b == 0).any(|arg| arg == needle);
        (names && is_alive(pid) && exe_of(pid).as_deref() == Some(front.as_path())).then_some(pid)
    })
}

#[test]
fn a_symlink_planted_as_the_pidfile_is_not_followed() {
    require_root();
    ensure_helper_built();
    let dir = TempDir::new();
    let victim = Victim::new(dir.path());
    let pidfile = dir.scratch().join("qga.pid");
    symlink(&victim.0, &pidfile).unwrap();
    let sock = dir.path().join("qga.sock");
    let log = dir.path().join("log");
    let out = Command::new(FRONT)
        .args(["-d", "-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .arg("-f")
        .arg(&pidfile)
        .arg("-l")
        .arg(&log)
        .env("QGA_CONF", dir.path().join("no-such.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "the daemonizing parent failed: {}", String::from_utf8_lossy(&out.stderr));
    // The daemon serves; find it through the socket and stop it.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(&sock);
    assert!(c.sync(7).is_empty());
    // Not the socket's peer credentials: they name the process that listened, the parent
    // that has exited since (the daemon forks after opening the channel).
    let daemon = front_naming(&sock).expect("the daemon runs");
    let mut tree = descendants(daemon);
    tree.push(daemon);
    for pid in &tree {
        kill(*pid, Signal::SIGKILL);
    }
    assert!(wait_gone(daemon, TIMEOUT));
    victim.assert_untouched();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("pidfile not written"), "log:\n{text}");
}

#[test]
fn front_and_helper_agree_that_a_dangling_frozen_marker_means_frozen() {
    let dir = TempDir::new();
    symlink(dir.path().join("nowhere"), dir.path().join("qga.state.isfrozen")).unwrap();
    let mut agent = Agent::start_in(dir, &["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let mut c = agent.connect();
    // Before anything asks the helper: the front itself came up frozen, so it refuses what the
    // frozen helper would refuse (by exiting) before a request gets there.
    let r = c.cmd(r#"{"execute":"guest-get-time"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-get-time has been disabled: the agent is in frozen state");
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), serde_json::json!({"return": "frozen"}));
    assert!(c.sync(9).is_empty());
    assert!(is_alive(agent.helper_pid), "the helper exited; stderr:\n{}", agent.stderr());
    // No thaw: helper first, with SIGKILL.
    agent.kill_all();
}

#[test]
fn started_as_another_user_the_agent_serves_with_a_state_directory_of_its_own() {
    require_root();
    ensure_helper_built();
    let dir = TempDir::new();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    chown_nobody(&state);
    let sock = state.join("qga.sock");
    let mut cmd = Command::new(FRONT);
    cmd.args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(&state)
        .env("QGA_CONF", dir.path().join("no-such.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setgroups/setgid/setuid are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let nobody = 65534;
            if nix::libc::setgroups(0, std::ptr::null()) != 0
                || nix::libc::setgid(nobody) != 0
                || nix::libc::setuid(nobody) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !sock.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let out: Output = child.wait_with_output().unwrap();
            panic!("exited with {status}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(std::time::Instant::now() < deadline, "no socket within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(&sock);
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    assert!(state.join("qga.state").exists(), "no state file in the user's own directory");
    for pid in children_of(child.id()) {
        kill(pid, Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---- finding 6: nothing checked who owns the files that make root act ----

#[test]
fn a_policy_owned_by_another_user_is_refused_and_check_policy_says_so() {
    let dir = TempDir::new();
    let policy = dir.path().join("theirs.policy");
    fs::copy(shipped_policy("allow-all"), &policy).unwrap();
    chmod(&policy, 0o644);
    chown_nobody(&policy);
    let stderr = refused_start(dir.path(), &["--policy", policy.to_str().unwrap()]);
    assert!(stderr.contains("policy file refused") && stderr.contains("owned by uid 65534"), "stderr:\n{stderr}");
    let out = run_to_exit(&["--check-policy", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "--check-policy reports the same refusal");
}

#[test]
fn a_policy_below_a_directory_others_can_write_is_refused() {
    let dir = TempDir::new();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let policy = open.join("allow-all.policy");
    fs::copy(shipped_policy("allow-all"), &policy).unwrap();
    chmod(&policy, 0o644);
    let stderr = refused_start(dir.path(), &["--policy", policy.to_str().unwrap()]);
    assert!(stderr.contains(&format!("{} is group- or world-writable", open.display())), "stderr:\n{stderr}");
}

#[test]
fn a_world_writable_config_file_naming_the_freeze_hook_is_refused() {
    let dir = TempDir::new();
    let conf = dir.path().join("qemu-ga.conf");
    fs::write(&conf, "[general]\nfsfreeze-hook=/bin/true\n").unwrap();
    chmod(&conf, 0o666);
    let stderr = refused_start(dir.path(), &["-c", conf.to_str().unwrap()]);
    assert!(stderr.contains("error loading configuration") && stderr.contains("world-writable"), "stderr:\n{stderr}");
}

#[test]
fn a_freeze_hook_others_can_edit_is_refused_and_so_is_its_d_directory() {
    let dir = TempDir::new();
    let hook = dir.path().join("fsfreeze-hook");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    chmod(&hook, 0o777);
    let hook_arg = format!("--fsfreeze-hook={}", hook.display());
    let stderr = refused_start(dir.path(), &[&hook_arg]);
    assert!(stderr.contains("fsfreeze hook refused") && stderr.contains("world-writable"), "stderr:\n{stderr}");
    chmod(&hook, 0o755);
    chown_nobody(&hook);
    let stderr = refused_start(dir.path(), &[&hook_arg]);
    assert!(stderr.contains("owned by uid 65534"), "stderr:\n{stderr}");
    nix::unistd::chown(&hook, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    let scripts = dir.path().join("fsfreeze-hook.d");
    fs::create_dir(&scripts).unwrap();
    chmod(&scripts, 0o777);
    let stderr = refused_start(dir.path(), &[&hook_arg]);
    assert!(stderr.contains(&format!("{} is group- or world-writable", scripts.display())), "stderr:\n{stderr}");
    chmod(&scripts, 0o755);
    let script = scripts.join("10-anyone");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    chmod(&script, 0o757);
    let stderr = refused_start(dir.path(), &[&hook_arg]);
    assert!(stderr.contains("10-anyone is group- or world-writable"), "stderr:\n{stderr}");
    // Made safe, the same hook is accepted.
    chmod(&script, 0o755);
    let mut agent = Agent::start_in(dir, &[&hook_arg]);
    agent.kill_all();
}
