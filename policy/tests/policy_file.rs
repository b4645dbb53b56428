//! The policy file format: what parses, what each rule means, and every load error with its
//! exact message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use qga_policy::{load_configured, load_file, load_or_builtin, parse, Command, FileDecider, PolicyFile};

fn ok(text: &str) -> PolicyFile {
    match parse(text, "policy") {
        Ok(p) => p,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, "policy") {
        Ok(p) => panic!("parsed, but should not have: {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn enabled(p: &PolicyFile) -> Vec<&'static str> {
    p.policy().enabled_commands().map(|c| c.name()).collect()
}

/// A fresh directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

fn scratch(test: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("qga-policy-test-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    Scratch(dir)
}

fn write_mode(path: &PathBuf, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).expect("write policy");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod policy");
}

// ---- what parses and what it means ----

#[test]
fn default_allow_with_no_rules_enables_everything() {
    assert_eq!(ok("default allow\n").policy(), qga_policy::Policy::allow_all());
}

#[test]
fn default_deny_with_no_rules_disables_everything() {
    assert_eq!(enabled(&ok("default deny\n")), Vec::<&str>::new());
}

#[test]
fn the_default_decides_every_command_no_rule_names() {
    let p = ok("default deny\nallow guest-ping\n");
    assert_eq!(enabled(&p), ["guest-ping"]);
    assert_eq!(p.verdict(Command::Sync).by, FileDecider::Default { line: 1 });
    assert_eq!(p.verdict(Command::Ping).by, FileDecider::Rule { line: 2, text: "allow guest-ping".into() });
}

#[test]
fn a_glob_matches_every_command_with_that_shape() {
    let p = ok("default allow\ndeny guest-file-*\n");
    let off: Vec<_> = Command::all().filter(|c| !p.verdict(*c).enabled).map(|c| c.name()).collect();
    assert_eq!(
        off,
        [
            "guest-file-open",
            "guest-file-close",
            "guest-file-read",
            "guest-file-write",
            "guest-file-seek",
            "guest-file-flush"
        ]
    );
}

#[test]
fn a_glob_may_have_a_star_anywhere_and_several() {
    assert_eq!(enabled(&ok("default deny\nallow guest-*-status\n")), ["guest-fsfreeze-status", "guest-exec-status"]);
    assert_eq!(enabled(&ok("default deny\nallow *sync*\n")), ["guest-sync-delimited", "guest-sync"]);
    assert_eq!(enabled(&ok("default deny\nallow guest-ping*\n")), ["guest-ping"]);
}

#[test]
fn an_exact_name_beats_a_glob_either_way() {
    let p = ok("default allow\ndeny guest-file-*\nallow guest-file-read\n");
    assert!(p.verdict(Command::FileRead).enabled);
    assert!(!p.verdict(Command::FileWrite).enabled);
    // The exact line is cited, not the glob, whatever the order.
    let p = ok("default deny\nallow guest-file-read\nallow guest-*\ndeny guest-shutdown\n");
    assert!(!p.verdict(Command::Shutdown).enabled);
    assert_eq!(p.verdict(Command::Shutdown).by, FileDecider::Rule { line: 4, text: "deny guest-shutdown".into() });
    assert_eq!(p.verdict(Command::FileRead).by, FileDecider::Rule { line: 2, text: "allow guest-file-read".into() });
    assert_eq!(p.verdict(Command::Ping).by, FileDecider::Rule { line: 3, text: "allow guest-*".into() });
}

#[test]
fn overlapping_globs_that_agree_are_fine_and_the_first_is_cited() {
    let p = ok("default allow\ndeny guest-file-*\ndeny guest-*-read\n");
    assert_eq!(p.verdict(Command::FileRead).by, FileDecider::Rule { line: 2, text: "deny guest-file-*".into() });
}

#[test]
fn a_rule_that_repeats_the_default_is_allowed() {
    assert_eq!(enabled(&ok("default deny\ndeny guest-shutdown\nallow guest-ping\n")), ["guest-ping"]);
}

#[test]
fn line_order_does_not_matter() {
    let a = ok("default deny\nallow guest-fsfreeze-*\ndeny guest-fsfreeze-freeze\n");
    let b = ok("deny guest-fsfreeze-freeze\nallow guest-fsfreeze-*\ndefault deny\n");
    assert_eq!(a.policy(), b.policy());
    assert_eq!(enabled(&a), ["guest-fsfreeze-status", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw"]);
}

#[test]
fn comments_blank_lines_indentation_and_crlf_are_ignored() {
    let p = ok("# a comment\r\n\r\n   default   deny   # trailing comment\r\n\tallow guest-ping#no space needed\r\n   # indented comment\n");
    assert_eq!(enabled(&p), ["guest-ping"]);
    assert_eq!(p.default_line(), 3);
}

#[test]
fn rules_and_origin_are_kept_for_explanations() {
    let p = ok("default allow\n\ndeny guest-file-*\n");
    assert_eq!(p.origin(), "policy");
    assert_eq!(p.rules().len(), 1);
    assert_eq!(p.rules()[0].line, 3);
    assert_eq!(p.rules()[0].text(), "deny guest-file-*");
    assert!(p.rules()[0].glob);
    assert_eq!(p.rules()[0].commands.len(), 6);
}

// ---- every parse error, with its exact message ----

#[test]
fn misspelt_command_names_file_line_and_the_nearest_command() {
    assert_eq!(
        err("default allow\n\ndeny guest-file-raed\n"),
        "policy:3: unknown command 'guest-file-raed'; did you mean 'guest-file-read'?"
    );
}

#[test]
fn command_without_guest_prefix_suggests_the_full_name() {
    assert_eq!(err("default deny\nallow ping\n"), "policy:2: unknown command 'ping'; did you mean 'guest-ping'?");
}

#[test]
fn unknown_command_far_from_any_has_no_hint() {
    assert_eq!(err("default allow\ndeny guest-get-load\n"), "policy:2: unknown command 'guest-get-load'");
}

#[test]
fn upper_case_name_is_unknown_with_the_lower_case_hint() {
    assert_eq!(
        err("default deny\nallow Guest-Ping\n"),
        "policy:2: unknown command 'Guest-Ping'; did you mean 'guest-ping'?"
    );
}

#[test]
fn glob_matching_nothing_is_an_error() {
    assert_eq!(err("default allow\ndeny guest-fiel-*\n"), "policy:2: glob 'guest-fiel-*' matches no command");
}

#[test]
fn glob_with_other_special_characters_is_an_error() {
    assert_eq!(
        err("default allow\ndeny guest-file-?*\n"),
        "policy:2: invalid glob 'guest-file-?*' (only lower-case letters, digits, '-' and '*')"
    );
}

#[test]
fn unknown_keyword_is_an_error_with_a_hint() {
    assert_eq!(
        err("default deny\nalow guest-ping\n"),
        "policy:2: unknown keyword 'alow' (expected 'default', 'allow' or 'deny'); did you mean 'allow'?"
    );
    assert_eq!(
        err("default deny\nguest-ping\n"),
        "policy:2: unknown keyword 'guest-ping' (expected 'default', 'allow' or 'deny')"
    );
}

#[test]
fn rule_without_a_name_is_an_error() {
    assert_eq!(err("default deny\nallow\n"), "policy:2: 'allow' needs a command name or glob");
    assert_eq!(err("default deny\ndeny   # nothing\n"), "policy:2: 'deny' needs a command name or glob");
}

#[test]
fn two_names_on_one_line_is_an_error() {
    assert_eq!(
        err("default deny\nallow guest-ping guest-sync\n"),
        "policy:2: unexpected 'guest-sync' (one command name or glob per line)"
    );
    assert_eq!(
        err("default deny\nallow guest-ping, guest-sync\n"),
        "policy:2: unexpected 'guest-sync' (one command name or glob per line)"
    );
}

#[test]
fn default_needs_allow_or_deny() {
    assert_eq!(err("default\n"), "policy:1: 'default' needs 'allow' or 'deny'");
    assert_eq!(err("default permit\n"), "policy:1: 'default' must be followed by 'allow' or 'deny', not 'permit'");
    assert_eq!(err("default allow deny\n"), "policy:1: unexpected 'deny' (one command name or glob per line)");
}

#[test]
fn missing_default_is_an_error() {
    assert_eq!(err("# nothing but\nallow guest-ping\n"), "policy: no 'default allow' or 'default deny' line");
    assert_eq!(err(""), "policy: no 'default allow' or 'default deny' line");
}

#[test]
fn second_default_is_an_error_even_if_it_agrees() {
    assert_eq!(
        err("default deny\nallow guest-ping\ndefault deny\n"),
        "policy:3: second 'default' line (first at line 1)"
    );
    assert_eq!(err("default deny\ndefault allow\n"), "policy:2: second 'default' line (first at line 1)");
}

#[test]
fn same_rule_twice_is_a_duplicate() {
    assert_eq!(
        err("default deny\nallow guest-ping\nallow guest-sync\nallow guest-ping\n"),
        "policy:4: duplicate rule 'allow guest-ping' (already at line 2)"
    );
    assert_eq!(
        err("default allow\ndeny guest-file-*\ndeny guest-file-*\n"),
        "policy:3: duplicate rule 'deny guest-file-*' (already at line 2)"
    );
}

#[test]
fn allowing_and_denying_the_same_name_is_a_contradiction() {
    assert_eq!(
        err("default deny\nallow guest-ping\ndeny guest-ping\n"),
        "policy:3: 'deny guest-ping' contradicts line 2 'allow guest-ping' for guest-ping"
    );
}

#[test]
fn allowing_and_denying_the_same_glob_is_a_contradiction() {
    assert_eq!(
        err("default deny\nallow guest-file-*\ndeny guest-file-*\n"),
        "policy:3: 'deny guest-file-*' contradicts line 2 'allow guest-file-*' for guest-file-open"
    );
}

#[test]
fn overlapping_globs_that_disagree_are_a_contradiction() {
    assert_eq!(
        err("default allow\ndeny guest-file-*\nallow guest-*-read\n"),
        "policy:3: 'allow guest-*-read' contradicts line 2 'deny guest-file-*' for guest-file-read"
    );
    // Even when an exact rule settles the shared command: the globs still disagree, and
    // "globs that match one command agree" is simpler to read than "unless".
    assert_eq!(
        err("default allow\nallow guest-file-read\ndeny guest-file-*\nallow guest-*-read\n"),
        "policy:4: 'allow guest-*-read' contradicts line 3 'deny guest-file-*' for guest-file-read"
    );
}

#[test]
fn the_first_error_in_line_order_is_reported() {
    assert_eq!(
        err("default deny\nallow guest-pnig\nallow\n"),
        "policy:2: unknown command 'guest-pnig'; did you mean 'guest-ping'?"
    );
}

// ---- load_file: the checks on the opened file ----

#[test]
fn load_file_reads_an_owner_only_writable_file() {
    let dir = scratch("load-ok");
    let path = dir.join("policy");
    write_mode(&path, b"default deny\nallow guest-ping\n", 0o644);
    let p = load_file(&path).expect("loads");
    assert_eq!(p.origin(), path.display().to_string());
    assert_eq!(enabled(&p), ["guest-ping"]);
    write_mode(&path, b"default deny\nallow guest-ping\n", 0o400);
    assert!(load_file(&path).is_ok());
}

#[test]
fn load_file_errors_name_the_path_and_line() {
    let dir = scratch("load-line");
    let path = dir.join("policy");
    write_mode(&path, b"default allow\ndeny guest-file-raed\n", 0o600);
    let e = load_file(&path).expect_err("typo").to_string();
    assert_eq!(e, format!("{}:2: unknown command 'guest-file-raed'; did you mean 'guest-file-read'?", path.display()));
}

#[test]
fn group_writable_file_is_refused() {
    let dir = scratch("group-w");
    let path = dir.join("policy");
    write_mode(&path, b"default allow\n", 0o664);
    assert_eq!(
        load_file(&path).expect_err("group-writable").to_string(),
        format!(
            "{}: policy file is group- or world-writable (mode 0664); make it writable by its owner only (chmod go-w)",
            path.display()
        )
    );
}

#[test]
fn world_writable_file_is_refused() {
    let dir = scratch("world-w");
    let path = dir.join("policy");
    write_mode(&path, b"default allow\n", 0o646);
    assert_eq!(
        load_file(&path).expect_err("world-writable").to_string(),
        format!(
            "{}: policy file is group- or world-writable (mode 0646); make it writable by its owner only (chmod go-w)",
            path.display()
        )
    );
}

#[test]
fn a_directory_is_not_a_policy_file() {
    let dir = scratch("dir");
    assert_eq!(
        load_file(&dir.0).expect_err("directory").to_string(),
        format!("{}: policy file is not a regular file", dir.display())
    );
}

#[test]
fn a_fifo_is_refused_without_blocking_the_agent() {
    let dir = scratch("fifo");
    let path = dir.join("policy");
    // std cannot make a FIFO; without the mkfifo tool there is nothing to test.
    match std::process::Command::new("mkfifo").arg(&path).status() {
        Ok(s) if s.success() => {}
        _ => return,
    }
    assert_eq!(
        load_file(&path).expect_err("fifo").to_string(),
        format!("{}: policy file is not a regular file", path.display())
    );
}

#[test]
fn missing_named_file_is_an_error() {
    let dir = scratch("missing");
    let path = dir.join("nope");
    assert_eq!(
        load_file(&path).expect_err("missing").to_string(),
        format!("{}: cannot read policy file: No such file or directory (os error 2)", path.display())
    );
    // --policy / config `policy` name a file that must exist.
    assert!(load_configured(Some(&path)).is_err());
}

#[test]
fn unreachable_path_is_an_error_not_the_builtin_default() {
    // Only a missing file falls back to the built-in default; any other failure fails closed.
    let dir = scratch("notdir");
    let file = dir.join("file");
    write_mode(&file, b"default allow\n", 0o644);
    let path = file.join("policy");
    assert_eq!(
        load_or_builtin(&path).expect_err("ENOTDIR").to_string(),
        format!("{}: cannot read policy file: Not a directory (os error 20)", path.display())
    );
}

/// Makes this thread's file-system checks those of an unprivileged user until dropped.
/// `setfsuid` is per thread, and moving the file-system uid away from 0 clears the thread's
/// DAC-override capabilities, so even root is refused a mode-0000 file while it is held.
struct UnprivilegedFileAccess(nix::unistd::Uid);

impl UnprivilegedFileAccess {
    fn begin() -> UnprivilegedFileAccess {
        // `nobody` on Debian; any uid that owns nothing here would do.
        let previous = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
        UnprivilegedFileAccess(previous)
    }
}

impl Drop for UnprivilegedFileAccess {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.0);
    }
}

#[test]
fn unreadable_file_is_an_error() {
    let dir = scratch("unreadable");
    let path = dir.join("policy");
    write_mode(&path, b"default allow\n", 0o000);
    // As root (where CI runs) the file is readable unless the checks are an ordinary user's;
    // as an ordinary user they are already.
    let access = nix::unistd::geteuid().is_root().then(UnprivilegedFileAccess::begin);
    let error = load_file(&path).expect_err("unreadable").to_string();
    drop(access);
    assert_eq!(error, format!("{}: cannot read policy file: Permission denied (os error 13)", path.display()));
}

#[test]
fn non_utf8_line_is_an_error_naming_the_line() {
    let dir = scratch("utf8");
    let path = dir.join("policy");
    write_mode(&path, b"default allow\n# caf\xe9\n", 0o644);
    assert_eq!(
        load_file(&path).expect_err("latin-1").to_string(),
        format!("{}:2: line is not valid UTF-8", path.display())
    );
}

#[test]
fn oversized_file_is_refused() {
    let dir = scratch("large");
    let path = dir.join("policy");
    let mut text = b"default allow\n".to_vec();
    text.resize(qga_policy::MAX_FILE_SIZE as usize + 1, b'\n');
    write_mode(&path, &text, 0o644);
    assert_eq!(
        load_file(&path).expect_err("large").to_string(),
        format!("{}: policy file is larger than 65536 bytes", path.display())
    );
    // Exactly at the limit is fine.
    text.truncate(qga_policy::MAX_FILE_SIZE as usize);
    write_mode(&path, &text, 0o644);
    assert!(load_file(&path).is_ok());
}

#[test]
fn missing_default_location_means_the_builtin_default() {
    let dir = scratch("builtin");
    let p = load_or_builtin(&dir.join("policy")).expect("falls back");
    assert!(p.is_builtin());
    assert_eq!(p.origin(), "built-in:default.policy");
    assert_eq!(p, qga_policy::builtin_default());
}

#[test]
fn existing_default_location_is_read_not_the_builtin() {
    let dir = scratch("default-exists");
    let path = dir.join("policy");
    write_mode(&path, b"default deny\n", 0o644);
    let p = load_or_builtin(&path).expect("loads");
    assert!(!p.is_builtin());
    assert_eq!(enabled(&p), Vec::<&str>::new());
    // A broken file at the default location is an error, never a silent fallback.
    write_mode(&path, b"default deny\nallow guest-pnig\n", 0o644);
    assert!(load_or_builtin(&path).is_err());
}

// ---- argument conditions ----

#[test]
fn an_allow_with_conditions_enables_the_command_and_carries_them() {
    let p = ok("default deny\nallow guest-shutdown mode=powerdown,reboot  # no halt\nallow guest-fstrim floor=1M\n");
    assert_eq!(enabled(&p), ["guest-shutdown", "guest-fstrim"]);
    let policy = p.policy();
    assert_eq!(policy.conditions().len(), 2);
    assert_eq!(policy.conditions_of(Command::Shutdown).count(), 1);
    assert_eq!(policy.conditions_of(Command::Ping).count(), 0);
}

#[test]
fn without_conditions_existing_policies_mean_what_they_meant() {
    // The shipped files that predate argument conditions; the newer examples exist to show them.
    let examples_with_conditions = ["cloud-image.policy", "exec-programs.policy", "backup-appliance.policy"];
    for (name, text) in qga_policy::SHIPPED.iter().filter(|(n, _)| !examples_with_conditions.contains(n)) {
        let p = parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.policy().conditions().is_empty(), "{name}");
    }
}

#[test]
fn quoted_condition_values_keep_blanks_and_hashes() {
    let p = ok("default deny\nallow guest-file-open \"path=/srv/a b/\" access=read # c\n");
    assert_eq!(p.rules()[0].text(), "allow guest-file-open path=/srv/a b/ access=read");
    assert_eq!(err("default deny\nallow guest-file-open \"path=/srv\n"), "policy:2: unterminated '\"'");
}

#[test]
fn hostile_condition_rules_are_refused_with_file_and_line() {
    let cases = [
        (
            "deny guest-shutdown mode=halt",
            "policy:2: 'deny guest-shutdown' cannot take KEY=VALUE conditions (only 'allow' of one exact command can)",
        ),
        (
            "allow guest-* mode=halt",
            "policy:2: 'allow guest-*' cannot take KEY=VALUE conditions (only 'allow' of one exact command can)",
        ),
        ("allow guest-ping count=1", "policy:2: guest-ping takes no argument conditions"),
        (
            "allow guest-shutdown mode=off",
            "policy:2: invalid mode='off' (expected powerdown, halt, reboot, comma-separated, each once)",
        ),
        ("allow guest-shutdown modes=halt", "policy:2: unknown key 'modes' for guest-shutdown (valid: mode)"),
        ("allow guest-shutdown mode=halt mode=reboot", "policy:2: key 'mode' given twice"),
        ("allow guest-set-time max-step=1e3", "policy:2: invalid max-step='1e3' (expected a decimal number)"),
        ("allow guest-set-vcpus cpus=4-2", "policy:2: invalid cpus='4-2' (expected ranges such as 0-3,5)"),
        ("allow guest-fstrim floor=-1", "policy:2: invalid floor='-1' (expected bytes, optionally with K, M or G)"),
        (
            "allow guest-file-open path=relative",
            "policy:2: invalid path='relative' (expected an absolute path without '.', '..' or '//')",
        ),
        (
            "allow guest-file-open path=/srv/../etc/",
            "policy:2: invalid path='/srv/../etc/' (expected an absolute path without '.', '..' or '//')",
        ),
        ("allow guest-file-open access=read", "policy:2: guest-file-open rule needs 'path='"),
        ("allow guest-exec program=/bin/true", "policy:2: guest-exec rule needs 'user='"),
        (
            "allow guest-exec program=true user=nobody",
            "policy:2: invalid program='true' (expected an absolute path without '.', '..' or '//')",
        ),
        (
            "allow guest-exec program=/bin/true user=nobody timeout=0",
            "policy:2: invalid timeout='0' (expected seconds from 1 to 86400)",
        ),
        (
            "allow guest-exec program=/bin/true user=nobody output-limit=17M",
            "policy:2: invalid output-limit='17M' (expected a size in range)",
        ),
        ("allow guest-exec program=/bin/sh user=nobody shell=yes", "policy:2: unknown key 'shell' for guest-exec (valid: program, user, arg, args, input, capture, env, pass-env, timeout, output-limit)"),
    ];
    for (rule, want) in cases {
        assert_eq!(err(&format!("default deny\n{rule}\n")), want, "{rule}");
    }
}

#[test]
fn a_command_is_either_narrowed_or_not_and_single_rules_stay_single() {
    assert_eq!(
        err("default deny\nallow guest-shutdown\nallow guest-shutdown mode=halt\n"),
        "policy:3: 'allow guest-shutdown mode=halt' conflicts with line 2 'allow guest-shutdown': a command is either \
         allowed with conditions or without, not both"
    );
    assert_eq!(
        err("default deny\nallow guest-shutdown mode=halt\ndeny guest-shutdown\n"),
        "policy:3: 'deny guest-shutdown' conflicts with line 2 'allow guest-shutdown mode=halt': a command is either \
         allowed with conditions or without, not both"
    );
    assert_eq!(
        err("default deny\nallow guest-shutdown mode=halt\nallow guest-shutdown mode=reboot\n"),
        "policy:3: duplicate rule 'allow guest-shutdown mode=reboot' (already at line 2)"
    );
    let p = ok("default deny\nallow guest-file-open path=/srv/a/\nallow guest-file-open path=/srv/b/ access=write\n");
    assert_eq!(p.policy().conditions_of(Command::FileOpen).count(), 2);
}

#[test]
fn an_exact_narrowed_allow_beats_a_denying_glob() {
    let p = ok("default allow\ndeny guest-s*\nallow guest-shutdown mode=powerdown\n");
    assert!(enabled(&p).contains(&"guest-shutdown"));
    assert!(!enabled(&p).contains(&"guest-sync"));
}
