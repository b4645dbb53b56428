//! The one table of the agent's settings: every command-line option and every config-file
//! key, with everything the rest of `cli/` needs to know about it.
//!
//! The option scanner reads [`OPTIONS`] for spellings and argument kinds, the help text is
//! rendered from it, the config-file reader and the `-D` writer both walk [`CONFIG_KEYS`], and
//! a test checks that the man page documents every row. Adding an option or a key is adding a
//! row here (and its effect in `settings.rs` for an option).

use super::settings::Settings;
use crate::config::Config;

/// One option, whatever its spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Help,
    Version,
    DumpConf,
    Logfile,
    Pidfile,
    FsfreezeHook,
    Verbose,
    Method,
    Path,
    Daemonize,
    /// `-b`, `--block-rpcs`.
    BlockRpcs,
    /// `--blacklist`: the deprecated alias of `--block-rpcs`.
    Blacklist,
    AllowRpcs,
    Config,
    Statedir,
    RetryPath,
    User,
    Policy,
    CheckPolicy,
    SeccompLog,
    NoSandbox,
    Audit,
    AuditFile,
    FsfreezeTimeout,
}

/// Whether and how an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    No,
    Required,
    /// Attached only: `-Fx`, `--name=x`.
    Optional,
    /// `--name=x`, or the next argument unless it starts with `-`.
    OptionalOrNext,
}

/// One row of [`OPTIONS`].
#[derive(Debug)]
pub struct CliOption {
    pub opt: Opt,
    pub short: Option<u8>,
    pub long: &'static str,
    pub has_arg: HasArg,
    /// The position in 7.2's `long_options[]` (later options after it): glibc resolves an
    /// abbreviation shared by two names of one option to the first, and lists the
    /// possibilities of an ambiguous one in this order.
    pub getopt_rank: u8,
    /// The `--help` entry; `None` for an option described in another's entry.
    pub help: Option<Help>,
}

/// An option's `--help` entry.
#[derive(Debug)]
pub struct Help {
    /// Written right after the long name (`[=FILE]`).
    pub arg_hint: &'static str,
    /// The description, lines of at most 60 columns; `{name}` placeholders are the defaults
    /// that `help.rs` fills in from `config.rs`.
    pub text: &'static str,
}

const fn help(text: &'static str) -> Option<Help> {
    Some(Help { arg_hint: "", text })
}

/// Every option, in the order `--help` and the man page list them.
pub const OPTIONS: &[CliOption] = &[
    CliOption {
        opt: Opt::Method,
        short: Some(b'm'),
        long: "method",
        has_arg: HasArg::Required,
        getopt_rank: 7,
        help: help(
            "transport method: one of unix-listen, virtio-serial,\n\
             isa-serial, or vsock-listen (virtio-serial is the default)",
        ),
    },
    CliOption {
        opt: Opt::Path,
        short: Some(b'p'),
        long: "path",
        has_arg: HasArg::Required,
        getopt_rank: 8,
        help: help(
            "device/socket path (the default for virtio-serial is:\n\
             {virtio-serial-path},\n\
             the default for isa-serial is:\n\
             {isa-serial-path}).\n\
             Socket addresses for vsock-listen are written as\n\
             <cid>:<port>.",
        ),
    },
    CliOption {
        opt: Opt::Logfile,
        short: Some(b'l'),
        long: "logfile",
        has_arg: HasArg::Required,
        getopt_rank: 3,
        help: help("set logfile path, logs to stderr by default"),
    },
    CliOption {
        opt: Opt::Pidfile,
        short: Some(b'f'),
        long: "pidfile",
        has_arg: HasArg::Required,
        getopt_rank: 4,
        help: help("specify pidfile (default is {pidfile})"),
    },
    CliOption {
        opt: Opt::FsfreezeHook,
        short: Some(b'F'),
        long: "fsfreeze-hook",
        has_arg: HasArg::Optional,
        getopt_rank: 5,
        help: help(
            "enable fsfreeze hook. Accepts an optional argument that\n\
             specifies script to run on freeze/thaw. Script will be\n\
             called with 'freeze'/'thaw' arguments accordingly.\n\
             (default is {fsfreeze-hook})\n\
             If using -F with an argument, do not follow -F with a\n\
             space.\n\
             (for example: -F/var/run/fsfreezehook.sh)",
        ),
    },
    CliOption {
        opt: Opt::Statedir,
        short: Some(b't'),
        long: "statedir",
        has_arg: HasArg::Required,
        getopt_rank: 12,
        help: help(
            "specify dir to store state information (absolute paths\n\
             only, default is {statedir})",
        ),
    },
    CliOption {
        opt: Opt::Verbose,
        short: Some(b'v'),
        long: "verbose",
        has_arg: HasArg::No,
        getopt_rank: 6,
        help: help("log extra debugging information"),
    },
    CliOption {
        opt: Opt::Version,
        short: Some(b'V'),
        long: "version",
        has_arg: HasArg::No,
        getopt_rank: 1,
        help: help("print version information and exit"),
    },
    CliOption {
        opt: Opt::Daemonize,
        short: Some(b'd'),
        long: "daemonize",
        has_arg: HasArg::No,
        getopt_rank: 9,
        help: help("become a daemon"),
    },
    CliOption {
        opt: Opt::BlockRpcs,
        short: Some(b'b'),
        long: "block-rpcs",
        has_arg: HasArg::Required,
        getopt_rank: 10,
        help: help(
            "comma-separated list of RPCs to disable (no spaces,\n\
             use \"help\" to list available RPCs);\n\
             --blacklist is a deprecated alias",
        ),
    },
    CliOption {
        opt: Opt::Blacklist,
        short: None,
        long: "blacklist",
        has_arg: HasArg::Required,
        getopt_rank: 11,
        help: None,
    },
    CliOption {
        opt: Opt::AllowRpcs,
        short: Some(b'a'),
        long: "allow-rpcs",
        has_arg: HasArg::Required,
        getopt_rank: 14,
        help: help(
            "comma-separated list of RPCs to enable, all others are\n\
             disabled (use \"help\" to list available RPCs);\n\
             -b wins over -a",
        ),
    },
    CliOption {
        opt: Opt::Config,
        short: Some(b'c'),
        long: "config",
        has_arg: HasArg::Required,
        getopt_rank: 15,
        help: help(
            "configuration file to use (default is $QGA_CONF if set,\n\
             else {config-file}; a file named with -c\n\
             must exist)",
        ),
    },
    CliOption {
        opt: Opt::DumpConf,
        short: Some(b'D'),
        long: "dump-conf",
        has_arg: HasArg::No,
        getopt_rank: 2,
        help: help(
            "dump a qemu-ga config file based on current config\n\
             options / command-line parameters to stdout",
        ),
    },
    CliOption {
        opt: Opt::RetryPath,
        short: Some(b'r'),
        long: "retry-path",
        has_arg: HasArg::No,
        getopt_rank: 13,
        help: help(
            "attempt re-opening path if it's unavailable or closed\n\
             due to an error which may be recoverable in the future\n\
             (virtio-serial driver re-install, serial device hot\n\
             plug/unplug, etc.)",
        ),
    },
    CliOption {
        opt: Opt::User,
        short: None,
        long: "user",
        has_arg: HasArg::Required,
        getopt_rank: 16,
        help: help(
            "unprivileged user that serves the host (default is\n\
             qemu-ga-rs if that user exists, else a uid of its own)",
        ),
    },
    CliOption {
        opt: Opt::Policy,
        short: None,
        long: "policy",
        has_arg: HasArg::Required,
        getopt_rank: 17,
        help: help(
            "policy file deciding which RPCs are enabled (default is\n\
             {policy-file}; without it the shipped\n\
             default policy applies)",
        ),
    },
    CliOption {
        opt: Opt::CheckPolicy,
        short: None,
        long: "check-policy",
        has_arg: HasArg::OptionalOrNext,
        getopt_rank: 18,
        help: Some(Help {
            arg_hint: "[=FILE]",
            text: "check a policy file (FILE, or the one configured; also\n\
                   accepted as a separate word not starting with '-'),\n\
                   print which RPCs are enabled and why, and exit",
        }),
    },
    CliOption {
        opt: Opt::FsfreezeTimeout,
        short: None,
        long: "fsfreeze-timeout",
        has_arg: HasArg::Required,
        getopt_rank: 23,
        help: help(
            "thaw on its own when a freeze lasts this many seconds\n\
             (1 to 86400; 0 or unset: no limit, as qemu-ga)",
        ),
    },
    CliOption {
        opt: Opt::Audit,
        short: None,
        long: "audit",
        has_arg: HasArg::Required,
        getopt_rank: 21,
        help: help(
            "which requests the audit trail records: changes (every\n\
             command that is not a pure query, and every refused\n\
             request; the default), all, or off",
        ),
    },
    CliOption {
        opt: Opt::AuditFile,
        short: None,
        long: "audit-file",
        has_arg: HasArg::Required,
        getopt_rank: 22,
        help: help("also write the audit trail to this file (it always goes\nto syslog, facility authpriv)"),
    },
    CliOption {
        opt: Opt::SeccompLog,
        short: None,
        long: "seccomp-log",
        has_arg: HasArg::No,
        getopt_rank: 19,
        help: help(
            "debugging only: system calls outside the sandbox's\n\
             allowlists are logged by the kernel instead of\n\
             killing the agent",
        ),
    },
    CliOption {
        opt: Opt::NoSandbox,
        short: None,
        long: "no-sandbox",
        has_arg: HasArg::No,
        getopt_rank: 20,
        help: help(
            "profiling only (e.g. under valgrind): no seccomp\n\
             filters at all; never use it in production",
        ),
    },
    CliOption {
        opt: Opt::Help,
        short: Some(b'h'),
        long: "help",
        has_arg: HasArg::No,
        getopt_rank: 0,
        help: help("display this help and exit"),
    },
];

/// How the config-file reader takes a key's value.
#[derive(Clone, Copy)]
pub enum Read {
    /// `g_key_file_get_boolean`.
    Boolean(fn(&mut Settings, bool)),
    /// `g_key_file_get_string` (escapes decoded).
    String(fn(&mut Settings, String)),
}

/// A value as `-D` writes it.
pub enum Value {
    Boolean(bool),
    String(String),
}

/// One row of [`CONFIG_KEYS`].
pub struct ConfigKey {
    pub name: &'static str,
    /// The option that sets the same thing.
    pub option: Opt,
    pub read: Read,
    /// What `-D` writes for it, `None` when nothing; a key without `dump` is never written
    /// (the deprecated `blacklist`, whose names `block-rpcs` carries).
    pub dump: Option<fn(&Config) -> Option<Value>>,
    /// Read, but written as another key and not listed in `--help`.
    pub deprecated: bool,
}

impl std::fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigKey").field("name", &self.name).field("option", &self.option).finish_non_exhaustive()
    }
}

fn lossy(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Every `[general]` key, in the order 7.2 reads them (which decides which of two bad values
/// is reported and that `blacklist` names come before `block-rpcs` names) and writes them
/// with `-D`, then ours.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        // `daemonize` (as in some documentation) is an unknown key and, like every unknown
        // key, ignored.
        name: "daemon",
        option: Opt::Daemonize,
        read: Read::Boolean(|s, v| s.config.daemonize = v),
        dump: Some(|c| Some(Value::Boolean(c.daemonize))),
        deprecated: false,
    },
    ConfigKey {
        name: "method",
        option: Opt::Method,
        read: Read::String(|s, v| s.method = v),
        dump: Some(|c| Some(Value::String(c.method.name().to_string()))),
        deprecated: false,
    },
    ConfigKey {
        name: "path",
        option: Opt::Path,
        read: Read::String(|s, v| s.config.path = Some(v)),
        // Resolved to the method's default, as 7.2 prints it.
        dump: Some(|c| c.path.as_deref().or(c.method.default_path()).map(|p| Value::String(p.to_string()))),
        deprecated: false,
    },
    ConfigKey {
        name: "logfile",
        option: Opt::Logfile,
        read: Read::String(|s, v| s.config.logfile = Some(v.into())),
        dump: Some(|c| c.logfile.as_deref().map(|p| Value::String(lossy(p)))),
        deprecated: false,
    },
    ConfigKey {
        name: "pidfile",
        option: Opt::Pidfile,
        read: Read::String(|s, v| s.config.pidfile = v.into()),
        dump: Some(|c| Some(Value::String(lossy(&c.pidfile)))),
        deprecated: false,
    },
    ConfigKey {
        name: "fsfreeze-hook",
        option: Opt::FsfreezeHook,
        read: Read::String(|s, v| s.config.fsfreeze_hook = Some(v.into())),
        dump: Some(|c| c.fsfreeze_hook.as_deref().map(|p| Value::String(lossy(p)))),
        deprecated: false,
    },
    ConfigKey {
        name: "statedir",
        option: Opt::Statedir,
        read: Read::String(|s, v| s.config.statedir = v.into()),
        dump: Some(|c| Some(Value::String(lossy(&c.statedir)))),
        deprecated: false,
    },
    ConfigKey {
        name: "verbose",
        option: Opt::Verbose,
        read: Read::Boolean(|s, v| s.config.verbose = v),
        dump: Some(|c| Some(Value::Boolean(c.verbose))),
        deprecated: false,
    },
    ConfigKey {
        name: "retry-path",
        option: Opt::RetryPath,
        read: Read::Boolean(|s, v| s.config.retry_path = v),
        dump: Some(|c| Some(Value::Boolean(c.retry_path))),
        deprecated: false,
    },
    ConfigKey {
        name: "blacklist",
        option: Opt::BlockRpcs,
        read: Read::String(|s, v| s.read_blacklist_key(&v)),
        dump: None,
        deprecated: true,
    },
    ConfigKey {
        name: "block-rpcs",
        option: Opt::BlockRpcs,
        read: Read::String(|s, v| s.read_block_rpcs_key(&v)),
        // Always written, empty for no blocks (7.2 does the same).
        dump: Some(|c| Some(Value::String(super::settings::names(&c.block_rpcs)))),
        deprecated: false,
    },
    ConfigKey {
        name: "allow-rpcs",
        option: Opt::AllowRpcs,
        read: Read::String(|s, v| s.read_allow_rpcs_key(&v)),
        dump: Some(|c| (!c.allow_rpcs.is_empty()).then(|| Value::String(super::settings::names(&c.allow_rpcs)))),
        deprecated: false,
    },
    ConfigKey {
        name: "user",
        option: Opt::User,
        read: Read::String(|s, v| s.config.user = Some(v)),
        dump: Some(|c| c.user.clone().map(Value::String)),
        deprecated: false,
    },
    ConfigKey {
        name: "policy",
        option: Opt::Policy,
        read: Read::String(|s, v| s.config.policy = Some(v.into())),
        dump: Some(|c| c.policy.as_deref().map(|p| Value::String(lossy(p)))),
        deprecated: false,
    },
    ConfigKey {
        name: "audit",
        option: Opt::Audit,
        read: Read::String(|s, v| s.audit = v),
        // Written only when not the default, so `-D` of defaults stays 7.2's text.
        dump: Some(|c| {
            (c.audit != crate::config::AuditScope::Changes).then(|| Value::String(c.audit.name().to_string()))
        }),
        deprecated: false,
    },
    ConfigKey {
        name: "fsfreeze-timeout",
        option: Opt::FsfreezeTimeout,
        read: Read::String(|s, v| s.fsfreeze_timeout = v),
        dump: Some(|c| c.fsfreeze_timeout.map(|t| Value::String(t.to_string()))),
        deprecated: false,
    },
    ConfigKey {
        name: "audit-file",
        option: Opt::AuditFile,
        read: Read::String(|s, v| s.config.audit_file = Some(v.into())),
        dump: Some(|c| c.audit_file.as_deref().map(|p| Value::String(lossy(p)))),
        deprecated: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getopt_ranks_number_the_options_once_each() {
        let mut ranks: Vec<u8> = OPTIONS.iter().map(|o| o.getopt_rank).collect();
        ranks.sort_unstable();
        assert_eq!(ranks, (0..OPTIONS.len() as u8).collect::<Vec<_>>());
    }

    #[test]
    fn names_and_options_are_unique() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert_ne!(a.opt, b.opt);
                assert_ne!(a.long, b.long);
                assert!(a.short.is_none() || a.short != b.short, "{a:?} {b:?}");
            }
        }
        for (i, a) in CONFIG_KEYS.iter().enumerate() {
            assert!(CONFIG_KEYS[i + 1..].iter().all(|b| a.name != b.name), "{a:?}");
        }
    }

    #[test]
    fn only_deprecated_rows_lack_a_help_entry_or_a_dump() {
        for o in OPTIONS {
            assert_eq!(o.help.is_none(), o.opt == Opt::Blacklist, "{o:?}");
        }
        for k in CONFIG_KEYS {
            assert_eq!(k.dump.is_none(), k.deprecated, "{k:?}");
        }
    }
}
