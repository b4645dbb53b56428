//! The audit trail over a real socket: one record per audited request, in order, with the
//! decision and its rule, in the man page's layout; pure queries only with `--audit=all`.
//! Uses guest-file-open on paths that do not exist and the default policy's refusal of file
//! commands: nothing on the machine is touched.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// The audit file's lines, once it holds at least `n` of them.
fn audit_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `key=value` fields of a record, values as written (quotes kept).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line
        .find(&format!(" {key}="))
        .map(|i| i + key.len() + 2)
        .or_else(|| line.starts_with(&format!("{key}=")).then_some(key.len() + 1))?;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        Some(&rest[..end + 2])
    } else {
        Some(rest.split(' ').next().unwrap_or(""))
    }
}

#[test]
fn changes_and_refusals_are_audited_in_order_and_allowed_queries_are_not() {
    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let policy = shipped_policy("allow-all");
    let agent = Agent::start_in(dir, &["--policy", policy.to_str().unwrap(), "--audit-file", audit.to_str().unwrap()]);
    let mut c = agent.connect();
    c.cmd(r#"{"execute":"guest-ping"}"#);
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/nonexistent-qga-audit","mode":"r"}}"#);
    assert!(r.get("error").is_some(), "{r}");
    c.cmd(r#"{"execute":"guest-no-such-command"}"#);
    c.cmd(r#"{"execute":"guest-info"}"#);
    let lines = audit_lines(&audit, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let open = &lines[0];
    assert_eq!(field(open, "channel"), Some("unix-listen"), "{open}");
    assert_eq!(field(open, "command"), Some("\"guest-file-open\""), "{open}");
    assert_eq!(field(open, "decision"), Some("allowed"), "{open}");
    assert_eq!(field(open, "rule"), Some("policy"), "{open}");
    assert_eq!(field(open, "outcome"), Some("error"), "{open}");
    assert_eq!(field(open, "class"), Some("GenericError"), "{open}");
    assert_eq!(field(open, "arg.path"), Some("\"/nonexistent-qga-audit\""), "{open}");
    assert_eq!(field(open, "arg.mode"), Some("\"r\""), "{open}");
    assert!(field(open, "duration_us").is_some_and(|d| d.parse::<u64>().is_ok()), "{open}");
    let unknown = &lines[1];
    assert_eq!(field(unknown, "command"), Some("\"guest-no-such-command\""), "{unknown}");
    assert_eq!(field(unknown, "decision"), Some("refused"), "{unknown}");
    assert_eq!(field(unknown, "rule"), Some("unknown-command"), "{unknown}");
    assert_eq!(field(unknown, "class"), Some("CommandNotFound"), "{unknown}");
}

#[test]
fn a_command_the_policy_disables_is_audited_as_refused_by_the_policy() {
    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let policy = shipped_policy("default");
    let agent = Agent::start_in(dir, &["--policy", policy.to_str().unwrap(), "--audit-file", audit.to_str().unwrap()]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/nonexistent-qga-audit"}}"#);
    assert!(r.get("error").is_some(), "{r}");
    let lines = audit_lines(&audit, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(field(&lines[0], "decision"), Some("refused"), "{}", lines[0]);
    assert_eq!(field(&lines[0], "rule"), Some("policy"), "{}", lines[0]);
    assert_eq!(field(&lines[0], "class"), Some("CommandNotFound"), "{}", lines[0]);
}

#[test]
fn with_audit_all_queries_are_audited_too_and_with_off_nothing_is() {
    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let agent = Agent::start_in(dir, &["--audit=all", "--audit-file", audit.to_str().unwrap()]);
    let mut c = agent.connect();
    c.cmd(r#"{"execute":"guest-ping"}"#);
    // connect() synchronises with guest-sync first: a query too.
    let lines = audit_lines(&audit, 2);
    let commands: Vec<_> = lines.iter().map(|l| field(l, "command")).collect();
    assert_eq!(commands, [Some("\"guest-sync\""), Some("\"guest-ping\"")], "{lines:#?}");

    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let agent = Agent::start_in(dir, &["--audit=off", "--audit-file", audit.to_str().unwrap()]);
    let mut c = agent.connect();
    c.cmd(r#"{"execute":"guest-no-such-command"}"#);
    c.cmd(r#"{"execute":"guest-ping"}"#);
    assert!(!audit.exists(), "--audit=off still opened the audit file");
}

#[test]
fn a_request_an_argument_condition_refuses_is_audited_with_the_condition_and_its_reason() {
    let dir = TempDir::new();
    let audit = dir.path().join("audit");
    let policy = dir.path().join("conditions.policy");
    // The memory block asked for does not exist and is online: even a gate that let it through
    // would change nothing. The audit's rule tells the front's refusal (a GenericError from the
    // condition) from the helper's (which the front would only see as a failed command).
    std::fs::write(
        &policy,
        "default allow\nallow guest-file-open path=/etc/hostname access=read\n\
         allow guest-set-memory-blocks blocks=0-1\n",
    )
    .unwrap();
    let agent = Agent::start_in(dir, &["--policy", policy.to_str().unwrap(), "--audit-file", audit.to_str().unwrap()]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-file-open","arguments":{"path":"/nonexistent-qga-audit"}}"#);
    assert_error(&r, "GenericError", "the policy does not allow guest-file-open '/nonexistent-qga-audit'");
    let r = c.cmd(
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":999999999,"online":true}]}}"#,
    );
    assert_error(&r, "GenericError", "the policy does not allow guest-set-memory-blocks phys-index 999999999");
    let lines = audit_lines(&audit, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, command, reason) in [
        (&lines[0], "guest-file-open", "the policy does not allow guest-file-open '/nonexistent-qga-audit'"),
        (
            &lines[1],
            "guest-set-memory-blocks",
            "the policy does not allow guest-set-memory-blocks phys-index 999999999",
        ),
    ] {
        assert_eq!(field(line, "command"), Some(format!("\"{command}\"").as_str()), "{line}");
        assert_eq!(field(line, "decision"), Some("refused"), "{line}");
        assert_eq!(field(line, "rule"), Some("condition"), "{line}");
        assert_eq!(field(line, "reason"), Some(format!("\"{reason}\"").as_str()), "{line}");
        assert_eq!(field(line, "class"), Some("GenericError"), "{line}");
    }
    assert!(
        lines[1].ends_with(" arg.mem-blks=\"[{\\\"online\\\": true, \\\"phys-index\\\": 999999999}]\""),
        "{}",
        lines[1]
    );
    // The front refused it: the helper never saw the request.
    assert!(!agent.stderr().contains("refused by the policy's conditions"), "{}", agent.stderr());
}
