//! The agent's settings: the config file (7.2's `[general]` keys plus `user` and `policy`)
//! overlaid by the command line. Parsing lives in `cli/`; this is the result.

use std::path::PathBuf;

/// How the agent talks to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    VirtioSerial,
    IsaSerial,
    UnixListen,
    VsockListen,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::VirtioSerial => "virtio-serial",
            Method::IsaSerial => "isa-serial",
            Method::UnixListen => "unix-listen",
            Method::VsockListen => "vsock-listen",
        }
    }

    pub fn from_name(s: &str) -> Option<Method> {
        [Method::VirtioSerial, Method::IsaSerial, Method::UnixListen, Method::VsockListen]
            .into_iter()
            .find(|m| m.name() == s)
    }

    /// 7.2's default channel path for the method (none for the listening ones).
    pub fn default_path(self) -> Option<&'static str> {
        match self {
            Method::VirtioSerial => Some("/dev/virtio-ports/org.qemu.guest_agent.0"),
            Method::IsaSerial => Some("/dev/ttyS0"),
            Method::UnixListen | Method::VsockListen => None,
        }
    }
}

/// A command name given to `-b`/`-a` or the `block-rpcs`/`allow-rpcs` keys, with where it
/// came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRpc {
    pub name: String,
    pub source: String,
}

/// The effective settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub daemonize: bool,
    pub method: Method,
    /// The channel path; `None` means the method's default.
    pub path: Option<String>,
    pub logfile: Option<PathBuf>,
    pub pidfile: PathBuf,
    pub fsfreeze_hook: Option<PathBuf>,
    pub statedir: PathBuf,
    pub verbose: bool,
    pub retry_path: bool,
    pub block_rpcs: Vec<NamedRpc>,
    pub allow_rpcs: Vec<NamedRpc>,
    /// The unprivileged user the front runs as; `None` means `qemu-ga-rs` if it exists, else a
    /// dynamic uid no other process has (`privsep::dynamic_id`).
    pub user: Option<String>,
    /// The policy file; `None` means the default location (`/etc/qemu-ga-rs/policy`), whose
    /// absence means the shipped default policy.
    pub policy: Option<PathBuf>,
    /// The seccomp sandbox of both processes: enforced unless a debugging or profiling switch
    /// says otherwise (command line only, never from the config file).
    pub sandbox: SandboxMode,
    /// Which requests the audit trail records (`--audit`, key `audit`).
    pub audit: AuditScope,
    /// The audit trail's file, besides syslog (`--audit-file`, key `audit-file`).
    pub audit_file: Option<PathBuf>,
    /// The freeze time limit in seconds (`--fsfreeze-timeout`, key `fsfreeze-timeout`); `None`
    /// (the default, as 7.2) means a freeze lasts until the host thaws.
    pub fsfreeze_timeout: Option<u64>,
}

pub use crate::audit::Scope as AuditScope;

pub use crate::privsep::seccomp::SandboxMode;

/// Default hook path of `-F` without an argument.
pub const DEFAULT_FSFREEZE_HOOK: &str = "/etc/qemu/fsfreeze-hook";
/// Default config file (overridden by `$QGA_CONF` or `-c`).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/qemu/qemu-ga.conf";
/// Default policy file (declared with the policy format).
pub const DEFAULT_POLICY_FILE: &str = qga_policy::DEFAULT_PATH;

impl Default for Config {
    fn default() -> Config {
        Config {
            daemonize: false,
            method: Method::VirtioSerial,
            path: None,
            logfile: None,
            pidfile: PathBuf::from("/var/run/qemu-ga.pid"),
            fsfreeze_hook: None,
            statedir: PathBuf::from("/var/run"),
            verbose: false,
            retry_path: false,
            block_rpcs: Vec::new(),
            allow_rpcs: Vec::new(),
            user: None,
            policy: None,
            sandbox: SandboxMode::Enforce,
            audit: AuditScope::Changes,
            audit_file: None,
            fsfreeze_timeout: None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Run(Config),
    /// `-D`: print the effective config in the config file's format and exit 0.
    DumpConf(Config),
    /// `-h`.
    Help,
    /// `-V`.
    Version,
    /// `-b help` / `-a help`: list every command and exit 0.
    ListCommands,
    /// `--check-policy [FILE]`: validate a policy file (the configured one when no FILE) and
    /// print the effective table.
    CheckPolicy {
        config: Config,
        file: Option<PathBuf>,
    },
}
