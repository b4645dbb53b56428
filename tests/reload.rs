//! Reloading the policy on SIGHUP, observed over the real binaries: a client stays connected
//! and keeps its file handles while commands are enabled and disabled; a file that does not
//! validate, or one that needs a wider front sandbox, changes nothing and the log says why; the
//! config file's lists reload with the policy file, the command line's stay.

mod common;

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An agent whose policy file is `DIR/policy` with `text`, plus `extra` options.
fn agent_with_policy(text: &str, extra: &[&str]) -> (Agent, PathBuf) {
    require_root();
    let dir = TempDir::new();
    let policy = dir.path().join("policy");
    write_trusted(&policy, text);
    let mut args = vec!["--policy".to_string(), policy.to_str().unwrap().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Agent::start_in(dir, &args), policy)
}

/// Sends SIGHUP and waits until the agent logged the reload's outcome (the `n`-th one); returns
/// that line.
fn reload(agent: &Agent, n: usize) -> String {
    kill(agent.front_pid, Signal::SIGHUP);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let log = agent.stderr();
        let outcomes: Vec<&str> =
            log.lines().filter(|l| l.contains("policy reloaded:") || l.contains("policy reload refused")).collect();
        if outcomes.len() >= n {
            return outcomes[n - 1].to_string();
        }
        assert!(Instant::now() < deadline, "no reload outcome #{n} in the log within {TIMEOUT:?}:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `--check-policy FILE`'s verdict line for an agent started with `statedir`.
fn check_policy_verdict(statedir: &Path, file: &Path) -> String {
    let out = run_to_exit(&["-t", statedir.to_str().unwrap(), "--check-policy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout.lines().find(|l| l.starts_with("reload: ")).unwrap_or_else(|| panic!("no verdict:\n{stdout}")).to_string()
}

fn file_cmd(c: &mut Client, name: &str, args: Value) -> Value {
    c.cmd(&json!({"execute": name, "arguments": args}).to_string())
}

#[test]
fn enable_and_disable_by_reload_while_a_client_stays_connected_and_keeps_its_file_handles() {
    let (agent, policy) = agent_with_policy("default allow\n", &[]);
    let data = agent.dir.scratch().join("data");
    write_trusted(&data, "0123456789");
    let mut c = agent.connect();
    let at_start = enabled_map(&mut c);
    let handle = file_cmd(&mut c, "guest-file-open", json!({"path": data, "mode": "r"}))["return"].clone();
    assert!(handle.is_i64(), "guest-file-open: {handle}");
    let r = file_cmd(&mut c, "guest-file-read", json!({"handle": handle, "count": 2}));
    assert_eq!(r["return"]["buf-b64"], "MDE=", "{r}");

    // Disable guest-get-time and guest-file-read: both refused as disabled, guest-info says so.
    write_trusted(&policy, "default allow\ndeny guest-get-time\ndeny guest-file-read\n");
    let line = reload(&agent, 1);
    assert!(line.contains("disabled guest-get-time, guest-file-read"), "{line}");
    let r = c.cmd(r#"{"execute":"guest-get-time"}"#);
    assert_error(&r, "CommandNotFound", "Command guest-get-time has been disabled");
    let r = file_cmd(&mut c, "guest-file-read", json!({"handle": handle, "count": 2}));
    assert_error(&r, "CommandNotFound", "Command guest-file-read has been disabled");
    let enabled = enabled_map(&mut c);
    assert!(!enabled["guest-get-time"] && !enabled["guest-file-read"] && enabled["guest-file-close"]);

    // Enable them again: the same connection, the same handle, read on where it stopped.
    write_trusted(&policy, "default allow\n");
    let line = reload(&agent, 2);
    assert!(line.contains("enabled guest-get-time, guest-file-read"), "{line}");
    assert!(c.cmd(r#"{"execute":"guest-get-time"}"#)["return"].is_i64());
    let r = file_cmd(&mut c, "guest-file-read", json!({"handle": handle, "count": 2}));
    assert_eq!(r["return"]["buf-b64"], "MjM=", "the handle and its position survived two reloads: {r}");
    assert_eq!(enabled_map(&mut c), at_start, "the same file, the same policy");
    let r = file_cmd(&mut c, "guest-file-close", json!({"handle": handle}));
    assert_eq!(r["return"], json!({}), "{r}");
}

#[test]
fn a_file_that_does_not_validate_keeps_the_old_policy_and_the_log_names_file_and_line() {
    let (agent, policy) = agent_with_policy("default allow\ndeny guest-file-*\n", &[]);
    let mut c = agent.connect();
    let before = enabled_map(&mut c);
    // Line 3 is wrong; line 2 alone would disable guest-get-time.
    write_trusted(&policy, "default allow\ndeny guest-get-time\nalow guest-ping\n");
    let line = reload(&agent, 1);
    assert!(line.contains(&format!("{}:3: unknown keyword 'alow'", policy.display())), "{line}");
    assert!(line.contains("unchanged"), "{line}");
    assert_eq!(enabled_map(&mut c), before, "nothing changed");
    assert!(c.cmd(r#"{"execute":"guest-get-time"}"#)["return"].is_i64());
    // A file made group-writable is refused too, before it is read.
    write_trusted(&policy, "default allow\ndeny guest-get-time\n");
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o664)).unwrap();
    let line = reload(&agent, 2);
    assert!(line.contains("unchanged") && line.contains(&policy.display().to_string()), "{line}");
    assert_eq!(enabled_map(&mut c), before);
}

#[test]
fn a_reload_that_needs_a_wider_front_sandbox_applies_nothing_and_says_it_needs_a_restart() {
    let (agent, policy) = agent_with_policy("default allow\ndeny guest-file-*\n", &[]);
    let mut c = agent.connect();
    let before = enabled_map(&mut c);
    // Enables the file commands (the front started without them) and disables guest-get-time.
    write_trusted(&policy, "default allow\ndeny guest-get-time\n");
    let line = reload(&agent, 1);
    assert!(line.contains("needs a restart") && line.contains("guest-file-open"), "{line}");
    assert_eq!(enabled_map(&mut c), before, "not even the narrowing part applies");
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/etc/hostname"}}"#);
    assert_error(&r, "CommandNotFound", "Command guest-file-open has been disabled");
    // Narrowing alone does apply.
    write_trusted(&policy, "default allow\ndeny guest-file-*\ndeny guest-get-time\n");
    let line = reload(&agent, 2);
    assert!(line.contains("policy reloaded: disabled guest-get-time"), "{line}");
    assert!(!enabled_map(&mut c)["guest-get-time"]);
}

#[test]
fn the_config_files_lists_reload_and_the_command_lines_stay() {
    require_root();
    let conf_dir = TempDir::new();
    let conf = conf_dir.path().join("qemu-ga.conf");
    write_trusted(&conf, "[general]\nblock-rpcs=guest-get-time\n");
    let (agent, _policy) =
        agent_with_policy("default allow\ndeny guest-file-*\n", &["-c", conf.to_str().unwrap(), "-b", "guest-ping"]);
    let mut c = agent.connect();
    let e = enabled_map(&mut c);
    assert!(!e["guest-get-time"] && !e["guest-ping"] && e["guest-get-vcpus"]);
    write_trusted(&conf, "[general]\nblock-rpcs=guest-get-vcpus\n");
    let line = reload(&agent, 1);
    assert!(line.contains("enabled guest-get-time; disabled guest-get-vcpus"), "{line}");
    let e = enabled_map(&mut c);
    assert!(e["guest-get-time"] && !e["guest-ping"] && !e["guest-get-vcpus"], "-b guest-ping still applies");
    // A broken config file changes nothing, and the log names its line.
    write_trusted(&conf, "[general]\nblock-rpcs=guest-info\nnot a key\n");
    let line = reload(&agent, 2);
    assert!(line.contains(&format!("{}:3:", conf.display())) && line.contains("unchanged"), "{line}");
    assert!(enabled_map(&mut c)["guest-info"]);
    // An unknown name in the config list is refused as at start-up.
    write_trusted(&conf, "[general]\nallow-rpcs=guest-pnig\n");
    let line = reload(&agent, 3);
    assert!(line.contains("config allow-rpcs: unknown command 'guest-pnig'"), "{line}");
}

#[test]
fn sighup_reloads_instead_of_ending_the_agent_and_sigterm_still_ends_it() {
    let (mut agent, _policy) = agent_with_policy("default allow\ndeny guest-file-*\n", &[]);
    let mut c = agent.connect();
    let line = reload(&agent, 1);
    assert!(line.contains("policy reloaded: no change"), "{line}");
    assert!(c.cmd(r#"{"execute":"guest-ping"}"#)["return"].is_object());
    drop(c);
    let status = agent.terminate();
    assert!(status.success(), "{status}; stderr:\n{}", agent.stderr());
}

#[test]
fn check_policy_tells_whether_a_running_agent_can_reload_a_file_or_needs_a_restart() {
    let (agent, _policy) = agent_with_policy("default allow\ndeny guest-file-*\n", &[]);
    let record = std::fs::read_to_string(agent.path("qga-rs.sandbox")).expect("the start-up record");
    assert_eq!(record, "file-commands=disabled\n");
    let candidates = TempDir::new();
    let wider = candidates.path().join("wider");
    write_trusted(&wider, "default allow\n");
    let narrower = candidates.path().join("narrower");
    // Argument conditions reload too.
    write_trusted(
        &narrower,
        "default allow\ndeny guest-file-*\ndeny guest-get-time\nallow guest-shutdown mode=reboot\n",
    );
    let verdict = |file: &Path| check_policy_verdict(agent.dir.path(), file);
    let line = verdict(&wider);
    assert!(line.starts_with("reload: needs a restart: it enables guest-file-open"), "{line}");
    let line = verdict(&narrower);
    assert_eq!(line, "reload: a running agent applies this policy on SIGHUP (systemctl reload)");
    // And the agent agrees with both verdicts.
    write_trusted(&agent.path("policy"), &std::fs::read_to_string(&wider).unwrap());
    assert!(reload(&agent, 1).contains("needs a restart"));
    write_trusted(&agent.path("policy"), &std::fs::read_to_string(&narrower).unwrap());
    assert!(reload(&agent, 2).contains("policy reloaded: disabled guest-get-time"));
}

#[test]
fn the_audit_trail_records_each_reload_applied_or_refused_and_why() {
    require_root();
    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let (agent, policy) =
        agent_with_policy("default allow\ndeny guest-file-*\n", &["--audit-file", audit.to_str().unwrap()]);
    write_trusted(&policy, "default allow\ndeny guest-file-*\ndeny guest-get-time\n");
    reload(&agent, 1);
    write_trusted(&policy, "default allow\nalow guest-ping\n");
    reload(&agent, 2);
    let deadline = Instant::now() + TIMEOUT;
    let lines = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<String> =
            text.lines().filter(|l| l.contains(" event=policy-reload")).map(String::from).collect();
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("event=policy-reload-applied detail=\"disabled guest-get-time\""), "{}", lines[0]);
    assert!(lines[1].contains("event=policy-reload-refused detail=\"invalid policy: "), "{}", lines[1]);
    assert!(lines[1].contains(&format!("{}:2: unknown keyword", policy.display())), "{}", lines[1]);
}

#[test]
fn enable_narrow_and_drop_argument_conditions_by_reload_while_a_client_keeps_its_file_handles() {
    let (mut agent, policy) = agent_with_policy("default allow\n", &[]);
    let data = agent.dir.scratch().join("data");
    write_trusted(&data, "0123456789");
    let other = agent.dir.scratch().join("other");
    write_trusted(&other, "abc");
    let data_s = data.to_str().unwrap();
    let other_s = other.to_str().unwrap();
    let mut c = agent.connect();
    let h = file_cmd(&mut c, "guest-file-open", json!({"path": data_s}))["return"].as_i64().expect("a handle");
    // The memory block asked for does not exist (and is online): even a gate that let it
    // through would change nothing.
    let blocks =
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":999999999,"online":true}]}}"#;

    // Conditions brought in by a reload: only the data file, for reading; memory blocks 0-1.
    write_trusted(
        &policy,
        &format!(
            "default allow\nallow guest-file-open path={data_s} access=read\nallow guest-set-memory-blocks blocks=0-1\n"
        ),
    );
    let line = reload(&agent, 1);
    assert!(line.contains("policy reloaded: argument conditions: guest-file-open"), "{line}");
    let r = file_cmd(&mut c, "guest-file-open", json!({"path": other_s}));
    assert_error(&r, "GenericError", &format!("the policy does not allow guest-file-open '{other_s}'"));
    let r = file_cmd(&mut c, "guest-file-open", json!({"path": data_s, "mode": "r+"}));
    assert_error(&r, "GenericError", &format!("the policy does not allow guest-file-open '{data_s}' in this mode"));
    let r = c.cmd(blocks);
    assert_error(&r, "GenericError", "the policy does not allow guest-set-memory-blocks phys-index 999999999");
    // The handle opened before the reload still reads.
    let r = file_cmd(&mut c, "guest-file-read", json!({"handle": h, "count": 4}));
    assert_eq!(r["return"]["buf-b64"], "MDEyMw==", "{r}");

    // Narrowed further: now only the other file.
    write_trusted(&policy, &format!("default allow\nallow guest-file-open path={other_s} access=read\n"));
    let line = reload(&agent, 2);
    assert!(line.contains(&format!("argument conditions: guest-file-open \"path={other_s}\"")), "{line}");
    let r = file_cmd(&mut c, "guest-file-open", json!({"path": data_s}));
    assert_error(&r, "GenericError", &format!("the policy does not allow guest-file-open '{data_s}'"));
    let h2 = file_cmd(&mut c, "guest-file-open", json!({"path": other_s}))["return"].as_i64().expect("a handle");
    // The memory block rule is gone with its line: the command is unrestricted again, so it is
    // not asked (it would reach the helper).

    // Disabled by a reload, then dropped: every condition goes, the command comes back whole.
    write_trusted(&policy, "default allow\ndeny guest-file-open\n");
    let line = reload(&agent, 3);
    assert!(line.contains("disabled guest-file-open; argument conditions: none"), "{line}");
    let r = file_cmd(&mut c, "guest-file-open", json!({"path": data_s}));
    assert_error(&r, "CommandNotFound", "Command guest-file-open has been disabled");
    write_trusted(&policy, "default allow\n");
    let line = reload(&agent, 4);
    assert!(line.contains("policy reloaded: enabled guest-file-open"), "{line}");
    let r = file_cmd(&mut c, "guest-file-open", json!({"path": data_s}));
    let h3 = r["return"].as_i64().unwrap_or_else(|| panic!("unrestricted again: {r}"));
    for h in [h, h2, h3] {
        let r = file_cmd(&mut c, "guest-file-close", json!({"handle": h}));
        assert!(r["return"].is_object(), "{r}");
    }
    drop(c);
    let status = agent.terminate();
    assert!(status.success(), "{status}; stderr:\n{}", agent.stderr());
}

#[test]
fn a_reload_that_gives_guest_file_open_a_directory_beyond_its_start_up_sandbox_keeps_the_old_policy() {
    // The helper's Landlock ruleset is built at start from the one directory the rule names;
    // a reload cannot widen it, so a rule for another directory must not half-apply (enabled,
    // passing the gate, then "Permission denied" on every open).
    let data = TempDir::new();
    let (old_dir, new_dir) = (data.path().join("old"), data.path().join("new"));
    std::fs::create_dir(&old_dir).unwrap();
    std::fs::create_dir(&new_dir).unwrap();
    let (old_file, new_file) = (old_dir.join("a"), new_dir.join("b"));
    write_trusted(&old_file, "old");
    write_trusted(&new_file, "new");
    let (old_s, new_s) = (old_dir.to_str().unwrap(), new_dir.to_str().unwrap());
    let (agent, policy) = agent_with_policy(&format!("default allow\nallow guest-file-open path={old_s}/\n"), &[]);
    let mut c = agent.connect();
    let open = |c: &mut Client, path: &Path| file_cmd(c, "guest-file-open", json!({"path": path, "mode": "r"}));
    let h = open(&mut c, &old_file)["return"].as_i64().expect("the start-up rule's file opens");
    file_cmd(&mut c, "guest-file-close", json!({"handle": h}));

    let record = std::fs::read_to_string(agent.path("qga-rs.sandbox")).expect("the start-up record");
    assert_eq!(record, format!("file-commands=enabled\nfile-open-reach=r--- {old_s}\n"));
    write_trusted(
        &policy,
        &format!("default allow\nallow guest-file-open path={old_s}/\nallow guest-file-open path={new_s}/\n"),
    );
    // --check-policy says so before the reload is tried, for the same reason.
    let verdict = check_policy_verdict(agent.dir.path(), &policy);
    assert!(verdict.starts_with("reload: needs a restart: ") && verdict.contains(&format!("read beneath {new_s}")));
    let line = reload(&agent, 1);
    assert!(
        line.contains("policy reload refused, the policy in force is unchanged")
            && line.contains(&format!("read beneath {new_s}"))
            && line.contains("needs a restart"),
        "{line}"
    );
    // The old policy is in force: its gate refuses the new directory by name; nothing is opened.
    let r = open(&mut c, &new_file);
    assert_error(&r, "GenericError", &format!("the policy does not allow guest-file-open '{}'", new_file.display()));
    let h = open(&mut c, &old_file)["return"].as_i64().expect("the old rule still opens");
    file_cmd(&mut c, "guest-file-close", json!({"handle": h}));

    // Rules dropped altogether would mean any path: beyond the ruleset too.
    write_trusted(&policy, "default allow\n");
    let verdict = check_policy_verdict(agent.dir.path(), &policy);
    assert!(verdict.starts_with("reload: needs a restart: ") && verdict.contains("beneath /,"), "{verdict}");
    let line = reload(&agent, 2);
    assert!(line.contains("refused") && line.contains("beneath /,") && line.contains("needs a restart"), "{line}");
    let r = open(&mut c, &new_file);
    assert_error(&r, "GenericError", &format!("the policy does not allow guest-file-open '{}'", new_file.display()));

    // Narrowing within the start-up directory applies.
    write_trusted(&policy, &format!("default allow\nallow guest-file-open path={}\n", old_file.display()));
    let verdict = check_policy_verdict(agent.dir.path(), &policy);
    assert_eq!(verdict, "reload: a running agent applies this policy on SIGHUP (systemctl reload)");
    let line = reload(&agent, 3);
    assert!(line.contains("policy reloaded: argument conditions: guest-file-open"), "{line}");
    let h = open(&mut c, &old_file)["return"].as_i64().expect("the narrowed rule's file opens");
    file_cmd(&mut c, "guest-file-close", json!({"handle": h}));

    // A restart applies the wider policy: the new directory opens.
    let wide = data.path().join("wide.policy");
    write_trusted(
        &wide,
        &format!("default allow\nallow guest-file-open path={old_s}/\nallow guest-file-open path={new_s}/\n"),
    );
    drop(c);
    drop(agent);
    let agent = Agent::start(&["--policy", wide.to_str().unwrap()]);
    let mut c = agent.connect();
    let r = open(&mut c, &new_file);
    let h = r["return"].as_i64().unwrap_or_else(|| panic!("after a restart the new directory opens: {r}"));
    let r = file_cmd(&mut c, "guest-file-read", json!({"handle": h, "count": 8}));
    assert_eq!(r["return"]["buf-b64"], "bmV3", "{r}");
}

#[test]
fn a_restart_with_another_sandbox_rewrites_the_start_up_record_whole() {
    // The record is compared before it is rewritten: the new text must start at offset 0,
    // whatever the comparison read, and leave nothing of the old one.
    let (mut agent, policy) = agent_with_policy("default allow\n", &[]);
    let record = agent.path("qga-rs.sandbox");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "file-commands=enabled\nfile-open-reach=rwac /\n");
    let one_directory = "default allow\nallow guest-file-open path=/srv/x/ access=read\n";
    for (text, expected) in [
        ("default allow\ndeny guest-file-*\n", "file-commands=disabled\n"),
        (one_directory, "file-commands=enabled\nfile-open-reach=r--- /srv/x\n"),
        (one_directory, "file-commands=enabled\nfile-open-reach=r--- /srv/x\n"),
        ("default allow\n", "file-commands=enabled\nfile-open-reach=rwac /\n"),
    ] {
        write_trusted(&policy, text);
        agent.restart();
        assert_eq!(std::fs::read_to_string(&record).unwrap(), expected);
    }
}
