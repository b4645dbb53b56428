//! The policy as the running agent applies it: shipped policy files, -b/-a, refusal to start
//! on anything not fully understood, and --check-policy.

mod common;

use common::*;
use qga_policy::{decide, Command, Decision};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

fn policy_arg(name: &str) -> String {
    shipped_policy(name).to_str().unwrap().to_string()
}

/// What the policy crate says each command's enabled flag is under a shipped policy file.
fn expected_from_policy_crate(name: &str) -> HashMap<String, bool> {
    let file = qga_policy::load_file(&shipped_policy(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let effective = qga_policy::merge(&file, &[], &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    Command::all().map(|c| (c.name().to_string(), decide(effective.policy(), c, false) == Decision::Enabled)).collect()
}

/// The commands that make the host root in the guest, which the shipped default policy
/// disables: files, exec, passwords and SSH keys.
fn root_equivalent(name: &str) -> bool {
    name.starts_with("guest-file-")
        || name.starts_with("guest-exec")
        || name.starts_with("guest-ssh-")
        || name == "guest-set-user-password"
}

fn enabled_names(map: &HashMap<String, bool>) -> Vec<&str> {
    let mut v: Vec<&str> = map.iter().filter(|(_, e)| **e).map(|(n, _)| n.as_str()).collect();
    v.sort();
    v
}

#[test]
fn default_policy_disables_guest_file_open_with_7_2s_text_and_guest_info_says_so() {
    let agent = Agent::start(&["--policy", &policy_arg("default")]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/hostname"},"id":1}"#);
    assert_eq!(r["id"], 1);
    assert_error(&r, "CommandNotFound", "Command guest-file-open has been disabled");
    // Disabled comes before the argument check, as 7.2: even invalid arguments get this text.
    let r = c.cmd(r#"{"execute":"guest-file-read","arguments":{"bogus":1}}"#);
    assert_error(&r, "CommandNotFound", "Command guest-file-read has been disabled");
    let enabled = enabled_map(&mut c);
    assert_eq!(enabled.len(), qga_policy::COUNT);
    for (name, on) in &enabled {
        let expected = !root_equivalent(name) && !UNAVAILABLE_ON_LINUX.contains(&name.as_str());
        assert_eq!(*on, expected, "{name} under the default policy");
    }
}

#[test]
fn guest_info_enabled_flags_match_the_policy_crate_for_every_shipped_policy() {
    for name in ["default", "allow-all", "backup-only", "monitoring-only", "exec-programs", "backup-appliance"] {
        let expected = expected_from_policy_crate(name);
        let agent = Agent::start(&["--policy", &policy_arg(name)]);
        let mut c = agent.connect();
        let got = enabled_map(&mut c);
        assert_eq!(enabled_names(&got), enabled_names(&expected), "enabled commands under {name}.policy");
        assert_eq!(got, expected, "guest-info under {name}.policy");
        // And the gate agrees with guest-info, command by command.
        for cmd in schema_order() {
            assert_eq!(probe_enabled(&mut c, cmd), got[cmd], "the gate vs guest-info for {cmd} under {name}.policy");
        }
    }
}

#[test]
fn shipped_policies_enable_what_their_comments_promise() {
    // An explicit list, independent of the policy crate, so a broken crate cannot make the
    // comparison above pass vacuously.
    let backup = [
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-freeze-list",
        "guest-fsfreeze-status",
        "guest-fsfreeze-thaw",
        "guest-info",
        "guest-ping",
        "guest-sync",
        "guest-sync-delimited",
    ];
    let monitoring = [
        "guest-fsfreeze-status",
        "guest-get-cpustats",
        "guest-get-disks",
        "guest-get-diskstats",
        "guest-get-fsinfo",
        "guest-get-host-name",
        "guest-get-memory-block-info",
        "guest-get-memory-blocks",
        "guest-get-osinfo",
        "guest-get-time",
        "guest-get-timezone",
        "guest-get-users",
        "guest-get-vcpus",
        "guest-info",
        "guest-network-get-interfaces",
        "guest-ping",
        "guest-sync",
        "guest-sync-delimited",
    ];
    for (name, list) in [("backup-only", &backup[..]), ("monitoring-only", &monitoring[..])] {
        let agent = Agent::start(&["--policy", &policy_arg(name)]);
        let mut c = agent.connect();
        let got = enabled_map(&mut c);
        assert_eq!(enabled_names(&got), list, "{name}");
        let r = c.cmd(r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[]}}"#);
        assert_error(&r, "CommandNotFound", "Command guest-set-vcpus has been disabled");
    }
}

#[test]
fn a_misspelt_block_rpcs_name_refuses_start_and_names_the_nearest_command() {
    let dir = TempDir::new();
    let sock = dir.path().join("qga.sock");
    let out = start_to_exit(dir.path(), &["-b", "guest-pign"]);
    assert!(!out.status.success(), "started with a misspelt -b name");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'guest-pign'") && stderr.contains("did you mean 'guest-ping'?"), "stderr: {stderr}");
    assert!(!sock.exists(), "the channel was opened before the policy was checked");
}

#[test]
fn check_policy_exits_0_and_prints_the_effective_table() {
    let file = policy_arg("default");
    let out = run_to_exit(&["--check-policy", &file]);
    assert!(out.status.success(), "--check-policy failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&format!("policy: {file}\n")), "stdout: {stdout}");
    for name in schema_order() {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from the table:\n{stdout}"));
        let state = line.split_whitespace().nth(1).unwrap();
        let off = root_equivalent(name) || UNAVAILABLE_ON_LINUX.contains(&name);
        assert_eq!(state, if off { "disabled" } else { "enabled" }, "{line}");
        if UNAVAILABLE_ON_LINUX.contains(&name) {
            assert!(line.ends_with("not available on Linux (qemu-ga 7.2 disables it too)"), "{line}");
        }
    }
}

#[test]
fn a_group_writable_policy_file_refuses_start() {
    let dir = TempDir::new();
    let policy = dir.path().join("writable.policy");
    std::fs::copy(shipped_policy("default"), &policy).unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o664)).unwrap();
    let sock = dir.path().join("qga.sock");
    let out = start_to_exit(dir.path(), &["--policy", policy.to_str().unwrap()]);
    assert!(!out.status.success(), "started with a group-writable policy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("group- or world-writable"), "stderr: {stderr}");
    assert!(!sock.exists());
    // The same file, made owner-writable only, is accepted.
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_to_exit(&["--check-policy", policy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn block_rpcs_disables_guest_ping_with_7_2s_text() {
    let agent = Agent::start(&["--policy", &policy_arg("allow-all"), "-b", "guest-ping"]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-ping"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-ping has been disabled");
    let enabled = enabled_map(&mut c);
    assert!(!enabled["guest-ping"]);
    let off: Vec<&str> = enabled.iter().filter(|(_, e)| !**e).map(|(n, _)| n.as_str()).collect();
    assert!(
        off.iter().all(|n| *n == "guest-ping" || UNAVAILABLE_ON_LINUX.contains(n)),
        "only guest-ping (and what Linux never has) is disabled: {enabled:?}"
    );
}

#[test]
fn allow_rpcs_enables_only_the_listed_commands() {
    let agent =
        Agent::start(&["--policy", &policy_arg("allow-all"), "-a", "guest-ping,guest-sync,guest-sync-delimited"]);
    let mut c = agent.connect();
    // guest-info is not on the list, so each command is probed instead (safely: with an
    // argument no command takes, which an enabled command refuses before running).
    let mut enabled = Vec::new();
    for name in schema_order() {
        if probe_enabled(&mut c, name) {
            enabled.push(name);
        }
    }
    assert_eq!(enabled, ["guest-sync-delimited", "guest-sync", "guest-ping"]);
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    let r = c.cmd(r#"{"execute":"guest-info"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-info has been disabled");
}

#[test]
fn block_rpcs_beats_allow_rpcs() {
    let agent = Agent::start(&[
        "--policy",
        &policy_arg("allow-all"),
        "-a",
        "guest-ping,guest-sync,guest-sync-delimited",
        "-b",
        "guest-ping",
    ]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-ping"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-ping has been disabled");
    assert_eq!(c.cmd(r#"{"execute":"guest-sync","arguments":{"id":2}}"#), serde_json::json!({"return": 2}));
    let r = c.cmd(r#"{"execute":"guest-get-time"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-get-time has been disabled");
}

#[test]
fn check_policy_accepts_every_shipped_file_and_tables_its_effective_state() {
    for (name, _) in qga_policy::SHIPPED {
        let stem = name.trim_end_matches(".policy");
        let file = policy_arg(stem);
        let out = run_to_exit(&["--check-policy", &file]);
        assert!(out.status.success(), "--check-policy {file} failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = qga_policy::load_file(std::path::Path::new(&file)).unwrap().policy();
        for cmd in qga_policy::Command::all() {
            let line = stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(cmd.name()))
                .unwrap_or_else(|| panic!("{} missing from the table of {file}:\n{stdout}", cmd.name()));
            let state = line.split_whitespace().nth(1).unwrap();
            let want = if expected.is_enabled(cmd) { "enabled" } else { "disabled" };
            assert_eq!(state, want, "{file}: {line}");
        }
    }
}
