//! Options on their own: spellings, values, actions and errors.

use super::*;
use std::os::unix::ffi::OsStrExt;

#[test]
fn no_options_and_no_config_file_give_the_defaults() {
    assert_eq!(config(run(&[])), default_resolved());
}

#[test]
fn grouped_short_flags_set_each_flag() {
    let c = config(run(&["-vdr"]));
    assert!(c.verbose && c.daemonize && c.retry_path);
}

#[test]
fn attached_and_separate_arguments_and_long_forms() {
    let c = config(run(&["-misa-serial", "-p", "/dev/ttyS1", "--logfile=/l", "--pidfile", "/p", "-t/s"]));
    assert_eq!(c.method, Method::IsaSerial);
    assert_eq!(c.path.as_deref(), Some("/dev/ttyS1"));
    assert_eq!(c.logfile, Some(PathBuf::from("/l")));
    assert_eq!(c.pidfile, PathBuf::from("/p"));
    assert_eq!(c.statedir, PathBuf::from("/s"));
}

#[test]
fn default_path_follows_the_method() {
    assert_eq!(config(run(&["-m", "isa-serial"])).path.as_deref(), Some("/dev/ttyS0"));
    assert_eq!(config(run(&["-m", "unix-listen"])).path, None);
    assert_eq!(config(run(&["-m", "vsock-listen", "-p", "3:1234"])).path.as_deref(), Some("3:1234"));
}

#[test]
fn invalid_method_is_an_error_but_only_the_final_value_counts() {
    assert_eq!(error(run(&["-m", "bogus"])), CliError::InvalidMethod("bogus".to_string()));
    assert_eq!(error(run(&["-m", "bogus"])).to_string(), "invalid method: bogus");
    assert_eq!(config(run(&["-m", "bogus", "-m", "isa-serial"])).method, Method::IsaSerial);
    assert_eq!(
        config(with_conf(&["-m", "unix-listen", "-p", "/s"], "[general]\nmethod=bogus\n")).method,
        Method::UnixListen
    );
    assert_eq!(error(with_conf(&[], "[general]\nmethod=bogus\n")), CliError::InvalidMethod("bogus".to_string()));
}

#[test]
fn fsfreeze_hook_optional_argument_forms() {
    let hook = |args: &[&str]| config(run(args)).fsfreeze_hook;
    assert_eq!(hook(&[]), None);
    assert_eq!(hook(&["-F"]), Some(PathBuf::from(DEFAULT_FSFREEZE_HOOK)));
    assert_eq!(hook(&["--fsfreeze-hook"]), Some(PathBuf::from(DEFAULT_FSFREEZE_HOOK)));
    assert_eq!(hook(&["-F/x"]), Some(PathBuf::from("/x")));
    assert_eq!(hook(&["--fsfreeze-hook=/x"]), Some(PathBuf::from("/x")));
    assert_eq!(hook(&["-vF/x"]), Some(PathBuf::from("/x")));
    // A separate word is not the hook: it is a stray argument.
    assert_eq!(error(run(&["-F", "/x"])), CliError::Operand("/x".into()));
}

#[test]
fn unknown_option_and_missing_argument_are_usage_errors() {
    let e = error(run(&["-x"]));
    assert_eq!(e, CliError::Usage("invalid option -- 'x'".to_string()));
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.usage_hint("qemu-ga-rs").as_deref(),
        Some("Unknown option, try 'qemu-ga-rs --help' for more information.")
    );
    assert_eq!(error(run(&["-v", "-m"])), CliError::Usage("option requires an argument -- 'm'".to_string()));
    assert_eq!(error(run(&["--nope"])), CliError::Usage("unrecognized option '--nope'".to_string()));
    assert_eq!(error(run(&["--path"])), CliError::Usage("option '--path' requires an argument".to_string()));
}

#[test]
fn non_option_arguments_are_errors_even_after_double_dash() {
    assert_eq!(error(run(&["stray", "-D"])), CliError::Operand("stray".into()));
    assert_eq!(error(run(&["--", "-v"])), CliError::Operand("-v".into()));
    assert_eq!(config(run(&["-v", "--"])), Config { verbose: true, ..default_resolved() });
}

#[test]
fn help_and_version_actions_act_in_order() {
    assert_eq!(action(run(&["-h"])), Action::Help);
    assert_eq!(action(run(&["--help"])), Action::Help);
    assert_eq!(action(run(&["-V"])), Action::Version);
    assert_eq!(action(run(&["--version"])), Action::Version);
    assert_eq!(action(run(&["-V", "-h"])), Action::Version);
    assert_eq!(action(run(&["-vh"])), Action::Help);
    // Reached before the bad option or the bad method: they never matter.
    assert_eq!(action(run(&["-h", "-x"])), Action::Help);
    assert_eq!(action(run(&["-m", "bogus", "-h", "stray"])), Action::Help);
    assert!(matches!(error(run(&["-x", "-h"])), CliError::Usage(_)));
}

#[test]
fn help_list_value_lists_commands() {
    for args in [
        &["-b", "help"][..],
        &["--block-rpcs=help"],
        &["-bhelp"],
        &["-b", "?"],
        &["--blacklist", "help"],
        &["-a", "help"],
        &["--allow-rpcs=?"],
        &["-b", "guest-ping", "-b", "help", "-x"],
    ] {
        assert_eq!(action(run(args)), Action::ListCommands, "{args:?}");
    }
    let c = config(run(&["-b", "help,guest-ping"]));
    assert_eq!(c.block_rpcs, vec![rpc("help", "-b"), rpc("guest-ping", "-b")]);
}

#[test]
fn list_names_are_trimmed_and_empty_items_kept_for_the_policy_to_reject() {
    let c = config(run(&["-b", " guest-ping , guest-info,", "-a", "guest-sync,,x"]));
    assert_eq!(c.block_rpcs, vec![rpc("guest-ping", "-b"), rpc("guest-info", "-b"), rpc("", "-b")]);
    assert_eq!(c.allow_rpcs, vec![rpc("guest-sync", "-a"), rpc("", "-a"), rpc("x", "-a")]);
}

#[test]
fn list_names_are_not_validated_here() {
    let c = config(run(&["-b", "no-such-command", "-a", "guest-*"]));
    assert_eq!(c.block_rpcs, vec![rpc("no-such-command", "-b")]);
    assert_eq!(c.allow_rpcs, vec![rpc("guest-*", "-a")]);
}

#[test]
fn the_sandbox_is_enforced_unless_a_debug_or_profiling_switch_says_otherwise() {
    use crate::config::SandboxMode;
    assert_eq!(config(run(&[])).sandbox, SandboxMode::Enforce);
    assert_eq!(config(run(&["--seccomp-log"])).sandbox, SandboxMode::Log);
    assert_eq!(config(run(&["--no-sandbox"])).sandbox, SandboxMode::Off);
}

#[test]
fn check_policy_action_and_file_forms() {
    let check = |args: &[&str]| match action(run(args)) {
        Action::CheckPolicy { config, file } => (config, file),
        other => panic!("{other:?}"),
    };
    assert_eq!(check(&["--check-policy"]), (default_resolved(), None));
    assert_eq!(check(&["--check-policy", "/p"]).1, Some(PathBuf::from("/p")));
    assert_eq!(check(&["--check-policy=/p"]).1, Some(PathBuf::from("/p")));
    let (c, file) = check(&["--check-policy", "-b", "guest-exec", "--policy", "/conf"]);
    assert_eq!(file, None);
    assert_eq!(c.block_rpcs, vec![rpc("guest-exec", "-b")]);
    assert_eq!(c.policy, Some(PathBuf::from("/conf")));
}

#[test]
fn check_policy_and_dump_conf_conflict() {
    assert!(matches!(error(run(&["-D", "--check-policy"])), CliError::Conflict(_)));
}

#[test]
fn user_and_policy_options() {
    let c = config(run(&["--user=qga", "--policy", "/etc/qemu-ga-rs/strict"]));
    assert_eq!(c.user.as_deref(), Some("qga"));
    assert_eq!(c.policy, Some(PathBuf::from("/etc/qemu-ga-rs/strict")));
}

#[test]
fn non_utf8_paths_pass_and_non_utf8_names_fail() {
    let raw = |b: &[u8]| OsString::from(std::ffi::OsStr::from_bytes(b));
    let args = vec![raw(b"-l"), raw(b"/log\xff")];
    let r = parse_with_reader(&args, None, |_| Err(io::Error::from(io::ErrorKind::NotFound)));
    let Ok(Parsed { action: Action::Run(c), .. }) = r else { panic!("{r:?}") };
    assert_eq!(c.logfile, Some(PathBuf::from(raw(b"/log\xff"))));
    let args = vec![raw(b"-b"), raw(b"guest-\xff")];
    let r = parse_with_reader(&args, None, |_| Err(io::Error::from(io::ErrorKind::NotFound)));
    assert_eq!(r, Err(CliError::NotUtf8 { option: "-b" }));
}

#[test]
fn the_freeze_time_limit_is_off_by_default_and_a_number_of_seconds() {
    assert_eq!(config(run(&[])).fsfreeze_timeout, None);
    assert_eq!(config(run(&["--fsfreeze-timeout", "0"])).fsfreeze_timeout, None);
    assert_eq!(config(run(&["--fsfreeze-timeout=600"])).fsfreeze_timeout, Some(600));
    assert_eq!(config(with_conf(&[], "[general]\nfsfreeze-timeout=30\n")).fsfreeze_timeout, Some(30));
    for bad in ["-1", "1e3", "86401", "ten"] {
        assert_eq!(error(run(&["--fsfreeze-timeout", bad])), CliError::InvalidFsfreezeTimeout(bad.to_string()));
    }
}

#[test]
fn audit_scope_and_file_come_from_the_option_or_the_key_and_a_bad_scope_is_an_error() {
    use crate::config::AuditScope;
    assert_eq!(config(run(&[])).audit, AuditScope::Changes);
    assert_eq!(config(run(&["--audit=all"])).audit, AuditScope::All);
    assert_eq!(config(with_conf(&[], "[general]\naudit=off\naudit-file=/var/log/qga-audit\n")).audit, AuditScope::Off);
    assert_eq!(
        config(with_conf(&[], "[general]\naudit-file=/var/log/qga-audit\n")).audit_file.as_deref(),
        Some(std::path::Path::new("/var/log/qga-audit"))
    );
    assert_eq!(error(run(&["--audit", "some"])), CliError::InvalidAudit("some".to_string()));
    assert_eq!(error(run(&["--audit", "some"])).to_string(), "invalid audit scope: some (changes, all or off)");
}
