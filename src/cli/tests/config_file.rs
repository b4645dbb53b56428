//! The config file: which one is read, its keys, and how the options combine with them.

use super::*;
use crate::cli::settings::{WARN_BLACKLIST_KEY, WARN_BLACKLIST_OPTION};

#[test]
fn lists_accumulate_config_first_then_options_in_order_with_sources() {
    let conf = "[general]\nallow-rpcs=guest-info\nblock-rpcs=guest-exec\nblacklist=guest-file-open,guest-file-read\n";
    let c = config(with_conf(
        &[
            "-a",
            "guest-ping",
            "-b",
            "guest-shutdown",
            "--blacklist",
            "guest-fstrim",
            "--block-rpcs=guest-sync",
            "--allow-rpcs",
            "guest-sync",
        ],
        conf,
    ));
    assert_eq!(
        c.block_rpcs,
        vec![
            rpc("guest-file-open", "config blacklist"),
            rpc("guest-file-read", "config blacklist"),
            rpc("guest-exec", "config block-rpcs"),
            rpc("guest-shutdown", "-b"),
            rpc("guest-fstrim", "--blacklist"),
            rpc("guest-sync", "-b"),
        ]
    );
    assert_eq!(
        c.allow_rpcs,
        vec![rpc("guest-info", "config allow-rpcs"), rpc("guest-ping", "-a"), rpc("guest-sync", "-a")]
    );
}

#[test]
fn empty_block_value_blocks_nothing_but_empty_allow_value_is_kept() {
    let c = config(with_conf(&["-b", "", "-a", ""], "[general]\nblock-rpcs=\nblacklist=  \nallow-rpcs=\n"));
    assert_eq!(c.block_rpcs, vec![]);
    assert_eq!(c.allow_rpcs, vec![rpc("", "config allow-rpcs"), rpc("", "-a")]);
}

#[test]
fn config_file_sets_every_key() {
    let c = config(with_conf(&[], FULL_CONF));
    assert_eq!(
        c,
        Config {
            daemonize: true,
            method: Method::IsaSerial,
            path: Some("/dev/ttyS3".to_string()),
            logfile: Some("/var/log/qga.log".into()),
            pidfile: "/run/qga.pid".into(),
            fsfreeze_hook: Some("/etc/hook".into()),
            statedir: "/var/lib/qga".into(),
            verbose: true,
            retry_path: true,
            block_rpcs: vec![rpc("guest-exec", "config block-rpcs")],
            allow_rpcs: vec![rpc("guest-ping", "config allow-rpcs")],
            user: Some("qga".to_string()),
            policy: Some("/etc/qga.policy".into()),
            sandbox: crate::config::SandboxMode::Enforce,
            audit: crate::config::AuditScope::All,
            fsfreeze_timeout: Some(600),
            audit_file: Some("/var/log/qga-audit.log".into()),
        }
    );
}

#[test]
fn command_line_overrides_config_scalars() {
    let c = config(with_conf(
        &[
            "-m",
            "unix-listen",
            "-p",
            "/s",
            "-l",
            "/l2",
            "-f",
            "/p2",
            "-F/h2",
            "-t",
            "/t2",
            "--user",
            "u2",
            "--policy",
            "/pol2",
        ],
        FULL_CONF,
    ));
    assert_eq!(c.method, Method::UnixListen);
    assert_eq!(c.path.as_deref(), Some("/s"));
    assert_eq!(c.logfile, Some("/l2".into()));
    assert_eq!(c.pidfile, PathBuf::from("/p2"));
    assert_eq!(c.fsfreeze_hook, Some("/h2".into()));
    assert_eq!(c.statedir, PathBuf::from("/t2"));
    assert_eq!(c.user.as_deref(), Some("u2"));
    assert_eq!(c.policy, Some("/pol2".into()));
    // Flags can only be switched on from the command line; the file's `true` stays.
    assert!(c.daemonize && c.verbose && c.retry_path);
    let c = config(with_conf(&["-d"], "[general]\ndaemon=false\n"));
    assert!(c.daemonize);
}

#[test]
fn daemonize_is_not_a_config_key_daemon_is() {
    assert!(!config(with_conf(&[], "[general]\ndaemonize=1\n")).daemonize);
    assert!(config(with_conf(&[], "[general]\ndaemon=1\n")).daemonize);
}

#[test]
fn unknown_keys_and_other_groups_are_ignored() {
    let conf = "[other]\ndaemon=true\nmethod=bogus\n[general]\nunknown=\\q\nverbose=true\n[more]\nx=y\n";
    assert_eq!(config(with_conf(&[], conf)), Config { verbose: true, ..default_resolved() });
}

#[test]
fn config_errors_name_the_file_and_line() {
    let e = error(with_conf(&[], "[general]\n# c\nverbose=yes\n"));
    assert!(matches!(&e, CliError::Config { line: 3, file, .. } if file == Path::new(DEFAULT_CONFIG_FILE)), "{e:?}");
    assert!(e.to_string().starts_with("error loading configuration from path: /etc/qemu/qemu-ga.conf:3: "), "{e}");
    assert_eq!(e.exit_code(), 1);
    assert_eq!(e.usage_hint("x"), None);
    let line = |conf: &str| match error(with_conf(&[], conf)) {
        CliError::Config { line, .. } => line,
        other => panic!("{other:?}"),
    };
    assert_eq!(line("path=/x\n[general]\n"), 1);
    assert_eq!(line("[general]\n\njunk\n"), 3);
    assert_eq!(line("[general]\npath=/x\\q\n"), 2);
    assert_eq!(line("[general]\nretry-path=2\n"), 2);
    assert_eq!(line("[general]\nverbose=true\n[x]\n[broken\n"), 4);
}

#[test]
fn broken_config_fails_before_help_as_in_7_2() {
    assert!(matches!(error(with_conf(&["-h"], "[general]\ndaemon=maybe\n")), CliError::Config { line: 2, .. }));
}

#[test]
fn config_file_selection() {
    let files = [
        ("/env.conf", "[general]\nverbose=true\n"),
        ("/c.conf", "[general]\nretry-path=true\n"),
        (DEFAULT_CONFIG_FILE, "[general]\ndaemon=true\n"),
    ];
    // The default file.
    assert!(config(run_env(&[], None, &files)).daemonize);
    // $QGA_CONF replaces it; its absence is fine.
    let c = config(run_env(&[], Some("/env.conf"), &files));
    assert!(c.verbose && !c.daemonize);
    assert_eq!(config(run_env(&[], Some("/missing"), &files)), default_resolved());
    // -c replaces both, wherever it is, and the last one counts.
    let c = config(run_env(&["-v", "-c", "/nope", "--config=/c.conf"], Some("/env.conf"), &files));
    assert!(c.retry_path && c.verbose && !c.daemonize);
    // An explicit file must exist.
    let e = error(run_env(&["-c", "/missing"], None, &files));
    assert!(matches!(&e, CliError::ConfigRead { file, .. } if file == Path::new("/missing")), "{e:?}");
}

#[test]
fn unreadable_implicit_config_is_an_error() {
    let args: Vec<OsString> = vec![];
    let r = parse_with_reader(&args, None, |_| Err(io::Error::from(io::ErrorKind::PermissionDenied)));
    assert!(matches!(r, Err(CliError::ConfigRead { .. })));
}

#[test]
fn no_warnings_normally() {
    assert_eq!(with_conf(&["-b", "guest-ping"], "[general]\nblock-rpcs=guest-info\n").map(|p| p.warnings), Ok(vec![]));
}

#[test]
fn blacklist_option_and_key_warn_once_each() {
    let p = with_conf(&["--blacklist", "a", "--blacklist=b"], "[general]\nblacklist=c\n");
    assert_eq!(p.map(|p| p.warnings), Ok(vec![WARN_BLACKLIST_KEY.to_string(), WARN_BLACKLIST_OPTION.to_string()]));
}

#[test]
fn oversized_config_file_is_refused() {
    let r = parse(vec!["-c".into(), "/dev/zero".into()], None);
    assert!(matches!(r, Err(CliError::ConfigRead { .. })), "{r:?}");
}

#[test]
fn parse_reads_the_config_file_named_by_the_environment() {
    // Only the non-existing path case can be exercised without touching the disk: an
    // absent $QGA_CONF file is no error.
    let r = parse(vec!["-V".into()], Some("/nonexistent/qemu-ga-rs-test.conf".into()));
    assert_eq!(r, Ok(Action::Version));
}
