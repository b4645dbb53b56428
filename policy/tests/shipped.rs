//! The policy files shipped in policy/: each one is loaded (from the copy in the repository and
//! from the copy embedded in the crate) and yields exactly the commands its comment promises.

use std::path::Path;

use qga_policy::{builtin_default, load_file, merge, parse, Command, Policy, PolicyFile, SHIPPED, TABLE};

/// Loads a shipped file the way the agent would: from disk, through every check of
/// `load_file`, when its mode allows that (a checkout made under umask 002 is group-writable,
/// which load_file rightly refuses); and always from the embedded copy, which must be identical.
fn load(name: &str) -> PolicyFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let on_disk = std::fs::read_to_string(&path).expect("shipped file exists");
    let embedded = SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("embedded");
    assert_eq!(on_disk, embedded, "{name}: embedded copy differs from the file");
    let parsed = parse(embedded, name).unwrap_or_else(|e| panic!("{e}"));
    if let Ok(from_disk) = load_file(&path) {
        assert_eq!(from_disk.policy(), parsed.policy());
    }
    parsed
}

fn enabled(p: &PolicyFile) -> Vec<&'static str> {
    p.policy().enabled_commands().map(|c| c.name()).collect()
}

#[test]
fn every_shipped_file_is_embedded_and_tested() {
    let names: Vec<_> = SHIPPED.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["default.policy", "allow-all.policy", "backup-only.policy", "monitoring-only.policy"]);
    let mut on_disk: Vec<String> = std::fs::read_dir(env!("CARGO_MANIFEST_DIR"))
        .expect("crate dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".policy"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "a .policy file in policy/ is not embedded (and so not tested)");
}

#[test]
fn default_policy_enables_everything_but_guest_file() {
    let p = load("default.policy");
    let expected: Vec<_> =
        TABLE.iter().filter(|s| !s.name.starts_with("guest-file-") && s.command.available()).map(|s| s.name).collect();
    assert_eq!(enabled(&p), expected);
    assert!(expected.contains(&"guest-get-cpustats") && !expected.contains(&"guest-get-devices"));
    assert!(expected.contains(&"guest-set-memory-blocks") && expected.contains(&"guest-fsfreeze-freeze-list"));
}

#[test]
fn builtin_default_is_the_shipped_default_policy() {
    let b = builtin_default();
    assert_eq!(b.policy(), load("default.policy").policy());
    assert_eq!(b.origin(), "built-in:default.policy");
}

#[test]
fn allow_all_policy_is_exactly_qemu_ga() {
    assert_eq!(load("allow-all.policy").policy(), Policy::allow_all());
}

#[test]
fn backup_only_policy_is_ping_sync_info_and_fsfreeze() {
    assert_eq!(
        enabled(&load("backup-only.policy")),
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
fn monitoring_only_policy_is_the_read_only_commands() {
    let expected: Vec<_> = TABLE.iter().filter(|s| s.read_only && s.command.available()).map(|s| s.name).collect();
    assert_eq!(enabled(&load("monitoring-only.policy")), expected);
    assert!(!expected.contains(&Command::FsfreezeFreeze.name()));
}

#[test]
fn every_shipped_file_merges_cleanly_without_lists() {
    for (name, text) in SHIPPED {
        let p = parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        let e = merge(&p, &[], &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.policy(), &p.policy(), "{name}");
        assert!(e.warnings().is_empty(), "{name}");
    }
}
