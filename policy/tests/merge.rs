//! The merge of the policy file with the block and allow lists: every precedence rule, the
//! list-name checks, the explanation table, and the frozen state on top through the gate.

use qga_policy::{
    decide, merge, parse, split_list, AllowListVerdict, Command, Decision, Effective, ListEntry, PolicyFile,
};

fn file(text: &str) -> PolicyFile {
    parse(text, "policy").expect("test policy parses")
}

fn entries(list: &[(&str, &str)]) -> Vec<ListEntry> {
    list.iter().map(|(n, s)| ListEntry::new(*n, *s)).collect()
}

fn eff(text: &str, block: &[(&str, &str)], allow: &[(&str, &str)]) -> Effective {
    merge(&file(text), &entries(block), &entries(allow)).expect("merges")
}

fn enabled(e: &Effective) -> Vec<&'static str> {
    e.policy().enabled_commands().map(|c| c.name()).collect()
}

fn merge_err(block: &[(&str, &str)], allow: &[(&str, &str)]) -> String {
    merge(&file("default allow\n"), &entries(block), &entries(allow)).expect_err("rejected").to_string()
}

// ---- precedence ----

#[test]
fn without_lists_the_file_alone_decides() {
    let e = eff("default allow\ndeny guest-file-*\n", &[], &[]);
    assert_eq!(e.policy(), &file("default allow\ndeny guest-file-*\n").policy());
}

#[test]
fn the_files_default_applies_to_unnamed_commands() {
    let e = eff("default deny\nallow guest-ping\n", &[], &[]);
    assert_eq!(enabled(&e), ["guest-ping"]);
    assert_eq!(e.explanation(Command::Sync).decided_by, "default deny (policy:1)");
    assert_eq!(e.explanation(Command::Ping).decided_by, "policy:2 (allow guest-ping)");
}

#[test]
fn an_allowlist_restricts_to_its_commands() {
    let e = eff("default allow\n", &[], &[("guest-ping", "-a"), ("guest-info", "config allow-rpcs")]);
    assert_eq!(enabled(&e), ["guest-ping", "guest-info"]);
    assert_eq!(e.explanation(Command::Sync).decided_by, "not in allow list (-a, config allow-rpcs)");
    assert_eq!(e.explanation(Command::Sync).allow_list, AllowListVerdict::NotListed);
    assert_eq!(e.explanation(Command::Ping).decided_by, "on allow list (-a); default allow (policy:1)");
    assert_eq!(
        e.explanation(Command::Info).allow_list,
        AllowListVerdict::Listed { source: "config allow-rpcs".into() }
    );
}

#[test]
fn an_allowlist_cannot_enable_what_the_file_disables() {
    let e = eff("default allow\ndeny guest-file-*\n", &[], &[("guest-ping", "-a"), ("guest-file-read", "-a")]);
    assert_eq!(enabled(&e), ["guest-ping"]);
    assert_eq!(e.explanation(Command::FileRead).decided_by, "policy:2 (deny guest-file-*)");
    assert_eq!(
        e.warnings(),
        ["-a: guest-file-read stays disabled by policy:2 (deny guest-file-*); an allow list cannot enable what the policy file disables"]
    );
}

#[test]
fn a_block_beats_an_allow() {
    let e = eff("default allow\n", &[("guest-ping", "-b")], &[("guest-ping", "-a"), ("guest-sync", "-a")]);
    assert_eq!(enabled(&e), ["guest-sync"]);
    assert_eq!(e.explanation(Command::Ping).decided_by, "blocked by -b");
    assert_eq!(e.warnings(), ["-a: guest-ping is also blocked by -b; the block wins"]);
}

#[test]
fn a_block_beats_a_file_allow() {
    let e =
        eff("default deny\nallow guest-shutdown\nallow guest-ping\n", &[("guest-shutdown", "config block-rpcs")], &[]);
    assert_eq!(enabled(&e), ["guest-ping"]);
    assert_eq!(e.explanation(Command::Shutdown).decided_by, "blocked by config block-rpcs");
    assert_eq!(e.explanation(Command::Shutdown).blocked_by.as_deref(), Some("config block-rpcs"));
    assert!(e.explanation(Command::Shutdown).file.enabled);
}

#[test]
fn a_block_of_a_command_the_file_denies_cites_the_block() {
    let e = eff("default deny\n", &[("guest-ping", "--blacklist")], &[]);
    assert_eq!(e.explanation(Command::Ping).decided_by, "blocked by --blacklist");
}

#[test]
fn every_block_source_counts_and_repeats_are_harmless() {
    let e = eff(
        "default allow\n",
        &[
            ("guest-ping", "-b"),
            ("guest-ping", "--block-rpcs"),
            ("guest-sync", "config blacklist"),
            ("guest-info", "--blacklist"),
        ],
        &[],
    );
    let off: Vec<_> =
        Command::all().filter(|c| c.available() && !e.policy().is_enabled(*c)).map(|c| c.name()).collect();
    assert_eq!(off, ["guest-sync", "guest-ping", "guest-info"]);
    // The first entry that names a command is the one cited.
    assert_eq!(e.explanation(Command::Ping).decided_by, "blocked by -b");
}

#[test]
fn frozen_state_overrides_the_policy_through_the_gate() {
    let e = eff("default allow\ndeny guest-ping\n", &[("guest-info", "-b")], &[]);
    let p = e.policy();
    // Enabled by the policy, but not on the freeze allowlist: frozen.
    assert_eq!(decide(p, Command::GetTime, true), Decision::Frozen);
    assert_eq!(decide(p, Command::GetTime, false), Decision::Enabled);
    // On the freeze allowlist but disabled by the file or a block: stays disabled.
    assert_eq!(decide(p, Command::Ping, true), Decision::Disabled);
    assert_eq!(decide(p, Command::Info, true), Decision::Disabled);
    // On the freeze allowlist and enabled: runs.
    assert_eq!(decide(p, Command::FsfreezeThaw, true), Decision::Enabled);
}

#[test]
fn guest_info_enabled_flags_are_the_gates_decisions() {
    // guest-info shows `enabled` = decide(..) == Enabled, so the flags follow the effective
    // policy when thawed and the policy plus the freeze allowlist when frozen.
    let e = eff("default allow\ndeny guest-file-*\n", &[("guest-ping", "-b")], &[]);
    let flags = |frozen: bool| -> Vec<&str> {
        Command::all().filter(|c| decide(e.policy(), *c, frozen) == Decision::Enabled).map(|c| c.name()).collect()
    };
    let thawed: Vec<_> = e.policy().enabled_commands().map(|c| c.name()).collect();
    assert_eq!(flags(false), thawed);
    assert_eq!(
        flags(true),
        ["guest-sync-delimited", "guest-sync", "guest-info", "guest-fsfreeze-status", "guest-fsfreeze-thaw"]
    );
}

// ---- list names ----

#[test]
fn split_list_splits_on_commas_and_trims() {
    assert_eq!(
        split_list("guest-ping, guest-sync ,guest-info", "-b"),
        entries(&[("guest-ping", "-b"), ("guest-sync", "-b"), ("guest-info", "-b")])
    );
}

#[test]
fn unknown_list_name_is_an_error_with_the_nearest_command() {
    assert_eq!(merge_err(&[("guest-pnig", "-b")], &[]), "-b: unknown command 'guest-pnig'; did you mean 'guest-ping'?");
    assert_eq!(
        merge_err(&[], &[("guest-fsfreeze-thwa", "config allow-rpcs")]),
        "config allow-rpcs: unknown command 'guest-fsfreeze-thwa'; did you mean 'guest-fsfreeze-thaw'?"
    );
    assert_eq!(merge_err(&[("guest-get-load", "--blacklist")], &[]), "--blacklist: unknown command 'guest-get-load'");
}

#[test]
fn empty_list_name_is_an_error_so_an_empty_allowlist_never_means_none() {
    // `-a ""` means "allow nothing" in qemu-ga; dropping the empty name would mean "no allow
    // list", i.e. allow everything. It is refused instead.
    let empty = split_list("", "-a");
    assert_eq!(
        merge(&file("default allow\n"), &[], &empty).expect_err("empty -a").to_string(),
        "-a: empty command name"
    );
    let trailing = split_list("guest-ping,", "-b");
    assert_eq!(
        merge(&file("default allow\n"), &trailing, &[]).expect_err("trailing comma").to_string(),
        "-b: empty command name"
    );
}

#[test]
fn globs_in_lists_are_an_error() {
    assert_eq!(
        merge_err(&[("guest-file-*", "-b")], &[]),
        "-b: 'guest-file-*': globs are only supported in the policy file; name each command"
    );
}

// ---- the table ----

#[test]
fn render_table_is_one_line_per_command_in_schema_order() {
    let e = eff("default allow\ndeny guest-file-*\n", &[("guest-shutdown", "-b")], &[]);
    let table = e.render_table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), qga_policy::COUNT);
    for (line, cmd) in lines.iter().zip(Command::all()) {
        assert_eq!(line.split_whitespace().next(), Some(cmd.name()));
    }
    assert_eq!(lines[0], "guest-sync-delimited              enabled   default allow (policy:1)");
    assert_eq!(lines[6], "guest-shutdown                    disabled  blocked by -b");
    assert_eq!(lines[7], "guest-file-open                   disabled  policy:2 (deny guest-file-*)");
    assert_eq!(
        lines[Command::NetworkGetInterfaces.index()],
        "guest-network-get-interfaces      enabled   default allow (policy:1)"
    );
    assert!(table.ends_with('\n'));
}

#[test]
fn render_table_names_the_builtin_default_when_no_file_exists() {
    let e = merge(&qga_policy::builtin_default(), &[], &[]).expect("merges");
    assert!(e.render_table().contains("guest-file-read                   disabled  built-in:default.policy:"));
    assert_eq!(e.origin(), "built-in:default.policy");
}

#[test]
fn a_policy_that_enables_freeze_but_not_thaw_is_warned_about() {
    let e = merge(&file("default allow\ndeny guest-fsfreeze-thaw\n"), &[], &[]).unwrap();
    assert!(
        e.warnings().iter().any(|w| w.contains("guest-fsfreeze-freeze is enabled but guest-fsfreeze-thaw is not")),
        "{:?}",
        e.warnings()
    );
    let both = merge(&file("default allow\n"), &[], &[]).unwrap();
    assert!(both.warnings().is_empty(), "{:?}", both.warnings());
    let neither = merge(&file("default allow\ndeny guest-fsfreeze-*\n"), &[], &[]).unwrap();
    assert!(neither.warnings().is_empty(), "{:?}", neither.warnings());
}

#[test]
fn a_command_unavailable_on_linux_stays_disabled_and_an_allow_list_naming_it_warns() {
    let e = eff("default allow\n", &[], &[("guest-get-devices", "-a"), ("guest-ping", "-a")]);
    assert!(!e.policy().is_enabled(Command::GetDevices));
    assert!(e.policy().is_enabled(Command::Ping));
    assert_eq!(e.explanation(Command::GetDevices).decided_by, "not available on Linux (qemu-ga 7.2 disables it too)");
    assert_eq!(
        e.warnings(),
        ["-a: guest-get-devices stays disabled: not available on Linux (qemu-ga 7.2 disables it too)"]
    );
}
