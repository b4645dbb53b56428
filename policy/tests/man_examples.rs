//! The examples of man/qemu-ga-rs-policy.5, so the page cannot drift from what the code does.

use qga_policy::{merge, parse, Command, ListEntry, DEFAULT_PATH, DEFAULT_POLICY_TEXT};

fn enabled_in(text: &str) -> Vec<&'static str> {
    let p = parse(text, "policy").unwrap_or_else(|e| panic!("{e}"));
    p.policy().enabled_commands().map(|c| c.name()).collect()
}

#[test]
fn snapshot_example_with_a_sync_glob() {
    let text = "default deny\nallow guest-ping\nallow guest-sync*          # guest-sync and guest-sync-delimited\nallow guest-info\nallow guest-fsfreeze-*\n";
    assert_eq!(
        enabled_in(text),
        [
            "guest-sync-delimited",
            "guest-sync",
            "guest-ping",
            "guest-info",
            "guest-fsfreeze-status",
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-freeze-list",
            "guest-fsfreeze-thaw"
        ]
    );
}

#[test]
fn no_freezing_example_keeps_the_status_by_exact_name() {
    let text = "default allow\ndeny guest-file-*\ndeny guest-fsfreeze-*\nallow guest-fsfreeze-status\ndeny guest-shutdown        # this guest is never powered off by the host\n";
    let on = enabled_in(text);
    assert!(on.contains(&"guest-fsfreeze-status"));
    for off in ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw", "guest-shutdown", "guest-file-open"] {
        assert!(!on.contains(&off), "{off}");
    }
    assert_eq!(
        on.len(),
        qga_policy::COUNT - 6 - 3 - 1 - 1,
        "file, freeze, freeze-list, thaw, shutdown off; guest-get-devices never on"
    );
}

#[test]
fn invalid_example_reports_the_disagreeing_globs() {
    let e =
        parse("default allow\ndeny guest-file-*\nallow guest-*-read\n", "/etc/qemu-ga-rs/policy").expect_err("invalid");
    assert_eq!(
        e.to_string(),
        "/etc/qemu-ga-rs/policy:3: 'allow guest-*-read' contradicts line 2 'deny guest-file-*' for guest-file-read"
    );
}

#[test]
fn check_policy_table_example_matches_the_shipped_default() {
    let p = parse(DEFAULT_POLICY_TEXT, DEFAULT_PATH).unwrap_or_else(|e| panic!("{e}"));
    let e = merge(&p, &[ListEntry::new("guest-shutdown", "-b")], &[]).unwrap_or_else(|e| panic!("{e}"));
    let table = e.render_table();
    let line = |cmd: Command| table.lines().nth(cmd.index()).unwrap_or_default().to_string();
    assert_eq!(
        line(Command::SyncDelimited),
        "guest-sync-delimited              enabled   default allow (/etc/qemu-ga-rs/policy:10)"
    );
    assert_eq!(line(Command::Shutdown), "guest-shutdown                    disabled  blocked by -b");
    assert_eq!(
        line(Command::FileOpen),
        "guest-file-open                   disabled  /etc/qemu-ga-rs/policy:12 (deny guest-file-*)"
    );
}

#[test]
fn argument_conditions_example_narrows_shutdown_time_and_files() {
    let text = "default deny\nallow guest-ping\nallow guest-shutdown mode=powerdown,reboot\nallow guest-set-time max-step=60\nallow guest-file-open path=/var/log/ access=read\nallow guest-file-read\nallow guest-file-close\n";
    let p = parse(text, "policy").unwrap_or_else(|e| panic!("{e}"));
    let policy = p.policy();
    assert_eq!(policy.conditions().len(), 3);
    use qga_policy::rules::{Access, ShutdownMode};
    use qga_policy::{permit, Invocation};
    assert!(permit(&policy, Command::Shutdown, &Invocation::Shutdown { mode: ShutdownMode::Reboot }).is_ok());
    let e = permit(&policy, Command::Shutdown, &Invocation::Shutdown { mode: ShutdownMode::Halt }).unwrap_err();
    assert_eq!(e.0, "the policy does not allow guest-shutdown mode 'halt'");
    assert!(permit(&policy, Command::SetTime, &Invocation::SetTime { step: Some(61) }).is_err());
    let read = Access { read: true, ..Access::default() };
    assert!(
        permit(&policy, Command::FileOpen, &Invocation::FileOpen { path: b"/var/log/syslog", access: read }).is_ok()
    );
    assert!(permit(&policy, Command::FileOpen, &Invocation::FileOpen { path: b"/etc/shadow", access: read }).is_err());
}
