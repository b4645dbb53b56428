//! Host strings in the log (security review finding 8): a path holding a newline must not
//! forge a record, and a huge one must not make a huge line. Uses guest-file-open on a path
//! that does not exist: nothing on the machine is touched.

mod common;

use common::*;

/// The front's record format: `SECONDS.MICROS: LEVEL: TEXT`.
fn is_a_record(line: &str) -> bool {
    let Some((stamp, rest)) = line.split_once(": ") else { return false };
    let stamp_ok = stamp.split_once('.').is_some_and(|(s, us)| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && us.len() == 6
            && us.bytes().all(|b| b.is_ascii_digit())
    });
    stamp_ok && ["error: ", "warning: ", "info: ", "debug: "].iter().any(|l| rest.starts_with(l))
}

#[test]
fn a_newline_in_a_host_path_cannot_forge_a_log_record_and_long_paths_are_bounded() {
    let dir = TempDir::new();
    let log = dir.path().join("log");
    let policy = shipped_policy("allow-all");
    let mut agent = Agent::start_in(dir, &["-v", "--policy", policy.to_str().unwrap(), "-l", log.to_str().unwrap()]);
    let mut c = agent.connect();
    let forged = "/nonexistent-qga-test\\n1700000000.000000: error: FORGED record\\r\\u001b[2J";
    let r = c.cmd(&format!(r#"{{"execute":"guest-file-open","arguments":{{"path":"{forged}"}}}}"#));
    assert!(r.get("error").is_some(), "{r}");
    let long = format!("/nonexistent-qga-test/{}", "x".repeat(60_000));
    let r = c.cmd(&format!(r#"{{"execute":"guest-file-open","arguments":{{"path":"{long}"}}}}"#));
    assert!(r.get("error").is_some(), "{r}");
    assert!(c.sync(3).is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        assert!(is_a_record(line), "a line that is not a record of the agent: {line:?}");
        assert!(!line.contains('\r') && !line.contains('\u{1b}'), "a control character reached the log: {line:?}");
        assert!(line.len() < 2200, "a record of {} bytes", line.len());
    }
    let opened =
        text.lines().find(|l| l.contains("/nonexistent-qga-test\\n")).unwrap_or_else(|| panic!("log:\n{text}"));
    assert!(opened.contains("\\n1700000000.000000: error: FORGED record\\r\\u{1b}[2J"), "{opened}");
    assert!(text.contains("bytes in all)"), "the long path was not cut:\n{text}");
    assert_eq!(agent.terminate().code(), Some(0));
}
