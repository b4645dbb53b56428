//! Argument conditions in the policy file, as the running agent applies them: a request the
//! conditions refuse gets a GenericError naming what was refused, and nothing is done; a bad
//! condition refuses start with FILE:LINE; the helper starts with the conditions of the
//! commands it runs. Only front-run guest-file-open is exercised for real here: refusals of
//! the privileged commands are checked in the helper's unit tests, never on this machine.

mod common;

use common::*;

#[test]
fn file_open_conditions_allow_the_named_file_in_its_access_and_refuse_everything_else() {
    let dir = TempDir::new();
    let policy =
        dir.trusted_file("test.policy", "default allow\nallow guest-file-open path=/etc/hostname access=read\n");
    let agent = Agent::start(&["--policy", policy.to_str().unwrap()]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/hostname"}}"#);
    assert!(r["return"].is_i64(), "{r}");
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/hostname","mode":"a"}}"#);
    assert_error(&r, "GenericError", "the policy does not allow guest-file-open '/etc/hostname' in this mode");
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/passwd"},"id":7}"#);
    assert_eq!(r["id"], 7);
    assert_error(&r, "GenericError", "the policy does not allow guest-file-open '/etc/passwd'");
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/../etc/hostname"}}"#);
    assert_error(
        &r,
        "GenericError",
        "the policy does not allow guest-file-open '/etc/../etc/hostname' (not an absolute path without '.', '..' or '//')",
    );
    // A refused mode creates nothing.
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/qga-rs-never-created","mode":"w"}}"#);
    assert_eq!(r["error"]["class"], "GenericError", "{r}");
    assert!(!std::path::Path::new("/etc/qga-rs-never-created").exists());
}

#[test]
fn the_helper_starts_with_the_conditions_of_the_commands_it_runs() {
    let dir = TempDir::new();
    let policy = dir.trusted_file("test.policy",
        "default deny\nallow guest-ping\nallow guest-info\nallow guest-shutdown mode=reboot\nallow guest-fstrim floor=1M\n",
    );
    let agent = Agent::start(&["--policy", policy.to_str().unwrap()]);
    let mut c = agent.connect();
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#)["return"], serde_json::json!({}));
    let enabled = enabled_map(&mut c);
    assert!(enabled["guest-shutdown"] && enabled["guest-fstrim"] && !enabled["guest-set-time"]);
    // The helper's command line carries both conditions (and it accepted them: it is alive).
    let statedir = agent.path("x").parent().unwrap().to_str().unwrap().to_string();
    let helper = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let words: Vec<String> =
                cmdline.split(|&b| b == 0).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
            (words.contains(&statedir) && words.first().is_some_and(|w| w.ends_with("qemu-ga-rs-helper")))
                .then_some(words)
        })
        .expect("the helper process");
    let i = helper.iter().position(|w| w == "--conditions").expect("--conditions on the helper's command line");
    assert_eq!(helper[i + 1], "guest-shutdown \"mode=reboot\"\nguest-fstrim \"floor=1M\"");
}

#[test]
fn a_bad_condition_refuses_start_and_check_policy_with_file_and_line() {
    let dir = TempDir::new();
    let policy = dir.trusted_file("test.policy", "default deny\n\nallow guest-shutdown mode=off\n");
    let shown = policy.to_str().unwrap();
    let want = format!("{shown}:3: invalid mode='off'");
    let out = run_to_exit(&["--check-policy", shown]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&want), "stderr: {stderr}");
    let sock = dir.path().join("qga.sock");
    let out = start_to_exit(dir.path(), &["--policy", shown]);
    assert!(!out.status.success(), "started with a bad condition");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&want), "stderr: {stderr}");
    assert!(!sock.exists());
}

#[test]
fn check_policy_shows_a_narrowed_command_with_its_conditions() {
    let dir = TempDir::new();
    let policy = dir.trusted_file("test.policy", "default deny\nallow guest-shutdown mode=powerdown,reboot\n");
    let out = run_to_exit(&["--check-policy", policy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table.lines().find(|l| l.starts_with("guest-shutdown ")).expect("guest-shutdown line");
    assert!(line.contains("enabled") && line.ends_with(":2 (allow guest-shutdown mode=powerdown,reboot)"), "{line}");
}
