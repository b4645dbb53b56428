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
    assert_eq!(
        names,
        [
            "default.policy",
            "allow-all.policy",
            "backup-only.policy",
            "monitoring-only.policy",
            "cloud-image.policy",
            "exec-programs.policy",
            "backup-appliance.policy"
        ]
    );
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

/// The account commands: off unless a policy names the users.
fn is_account_command(name: &str) -> bool {
    name == "guest-set-user-password" || name.starts_with("guest-ssh-")
}

#[test]
fn default_policy_enables_everything_but_guest_file_guest_exec_and_the_account_commands() {
    let p = load("default.policy");
    let off =
        |name: &str| name.starts_with("guest-file-") || name.starts_with("guest-exec") || is_account_command(name);
    let expected: Vec<_> = TABLE.iter().filter(|s| !off(s.name) && s.command.available()).map(|s| s.name).collect();
    assert!(!expected.contains(&"guest-exec") && !expected.contains(&"guest-exec-status"));
    assert!(!expected.contains(&"guest-set-user-password") && !expected.contains(&"guest-ssh-add-authorized-keys"));
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
fn cloud_image_policy_allows_the_account_commands_for_its_one_user_only() {
    use qga_policy::{permit, Invocation};
    let p = load("cloud-image.policy").policy();
    let on = p.enabled_commands().map(|c| c.name()).collect::<Vec<_>>();
    assert_eq!(
        on,
        [
            "guest-sync-delimited",
            "guest-sync",
            "guest-ping",
            "guest-get-time",
            "guest-info",
            "guest-shutdown",
            "guest-fsfreeze-status",
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-freeze-list",
            "guest-fsfreeze-thaw",
            "guest-fstrim",
            "guest-network-get-interfaces",
            "guest-get-fsinfo",
            "guest-set-user-password",
            "guest-get-host-name",
            "guest-get-users",
            "guest-get-osinfo",
            "guest-ssh-get-authorized-keys",
            "guest-ssh-add-authorized-keys",
            "guest-ssh-remove-authorized-keys"
        ]
    );
    assert!(!on.iter().any(|c| c.starts_with("guest-file-")));
    for user in [&b"cloud-user"[..], b"root", b"cloud-user2", b""] {
        let allowed = user == b"cloud-user";
        for crypted in [false, true] {
            let inv = Invocation::SetUserPassword { user, crypted };
            assert_eq!(permit(&p, Command::SetUserPassword, &inv).is_ok(), allowed);
        }
        for c in [Command::SshGetAuthorizedKeys, Command::SshAddAuthorizedKeys, Command::SshRemoveAuthorizedKeys] {
            assert_eq!(permit(&p, c, &Invocation::SshKeys { user }).is_ok(), allowed, "{}", c.name());
        }
    }
    let refused = permit(&p, Command::SshAddAuthorizedKeys, &Invocation::SshKeys { user: b"root" }).unwrap_err();
    assert_eq!(refused.0, "the policy does not allow guest-ssh-add-authorized-keys for user 'root'");
}

#[test]
fn exec_programs_policy_runs_only_its_fixed_programs_as_their_users_within_limits() {
    use qga_policy::rules::ArgList;
    use qga_policy::{permit, Grant, Invocation};
    let p = load("exec-programs.policy");
    let off = |name: &str| name.starts_with("guest-file-") || is_account_command(name);
    let expected: Vec<_> = TABLE.iter().filter(|s| !off(s.name) && s.command.available()).map(|s| s.name).collect();
    assert!(expected.contains(&"guest-exec") && expected.contains(&"guest-exec-status"));
    assert_eq!(enabled(&p), expected);
    let policy = p.policy();
    let exec = |program: &str, args: &[&str], env: &[&str], input, capture| {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let env: Vec<Vec<u8>> = env.iter().map(|a| a.as_bytes().to_vec()).collect();
        let inv = Invocation::Exec { program: program.as_bytes(), args: &args, env: &env, input, capture };
        match permit(&policy, Command::Exec, &inv) {
            Ok(Grant::Exec(rule)) => Ok((rule.user.clone(), rule.timeout, rule.output_limit, rule.args.clone())),
            Ok(other) => panic!("{other:?}"),
            Err(refusal) => Err(refusal.0),
        }
    };
    assert_eq!(exec("/usr/bin/uptime", &[], &[], false, true), Ok(("nobody".into(), 5, 4096, ArgList::Exact(vec![]))));
    assert!(exec("/bin/df", &["-h", "/"], &[], false, true).is_ok());
    assert!(exec("/usr/local/sbin/platform-task", &[], &["TZ=UTC"], true, true).is_ok());
    assert_eq!(
        exec("/bin/sh", &["-c", "id"], &[], false, true),
        Err("the policy does not allow guest-exec of '/bin/sh'".into())
    );
    assert!(exec("/bin/df", &["-h", "/etc"], &[], false, true).is_err());
    assert!(exec("/usr/bin/uptime", &[], &[], true, false).is_err(), "no input for uptime");
    assert!(exec("/usr/local/sbin/platform-task", &[], &["LD_PRELOAD=/x"], true, true).is_err());
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

#[test]
fn backup_appliance_policy_freezes_reads_its_export_area_and_drops_files_only() {
    use qga_policy::rules::Access;
    use qga_policy::{permit, Invocation};
    let p = load("backup-appliance.policy").policy();
    assert_eq!(
        p.enabled_commands().map(|c| c.name()).collect::<Vec<_>>(),
        [
            "guest-sync-delimited",
            "guest-sync",
            "guest-ping",
            "guest-info",
            "guest-file-open",
            "guest-file-close",
            "guest-file-read",
            "guest-file-write",
            "guest-file-seek",
            "guest-file-flush",
            "guest-fsfreeze-status",
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-freeze-list",
            "guest-fsfreeze-thaw"
        ]
    );
    // guest-file-open's modes as the protocol maps them (r, w, a, r+).
    let r = Access { read: true, ..Access::default() };
    let w = Access { write: true, create: true, ..Access::default() };
    let a = Access { append: true, create: true, ..Access::default() };
    let r_plus = Access { read: true, write: true, ..Access::default() };
    let open =
        |path: &str, access| permit(&p, Command::FileOpen, &Invocation::FileOpen { path: path.as_bytes(), access });
    assert!(open("/srv/backup/export/db/dump.sql", r).is_ok());
    assert!(open("/srv/backup/drop/restore.tar", w).is_ok());
    for (path, access) in [
        ("/srv/backup/export/dump.sql", w),
        ("/srv/backup/export/dump.sql", r_plus),
        ("/srv/backup/drop/restore.tar", r),
        ("/srv/backup/drop/restore.tar", a),
        ("/srv/backup/drop/restore.tar", r_plus),
        ("/srv/backup/export", r),
        ("/srv/backup/other", w),
        ("/etc/shadow", r),
        ("/srv/backup/export/../../../etc/shadow", r),
    ] {
        assert!(open(path, access).is_err(), "{path} {access:?} is allowed");
    }
}
