//! The settings being built: what each option and config key does to them, and the final
//! checks that turn them into an [`Action`].

use super::error::CliError;
use super::table::Opt;
use crate::config::{Action, AuditScope, Config, Method, NamedRpc, SandboxMode, DEFAULT_FSFREEZE_HOOK};
use std::ffi::OsString;
use std::path::PathBuf;

/// Sources recorded in [`NamedRpc::source`].
pub const SOURCE_BLOCK: &str = "-b";
pub const SOURCE_BLACKLIST: &str = "--blacklist";
pub const SOURCE_ALLOW: &str = "-a";
pub use qga_policy::reload::{SOURCE_CONFIG_ALLOW, SOURCE_CONFIG_BLACKLIST, SOURCE_CONFIG_BLOCK};

pub(super) const WARN_BLACKLIST_OPTION: &str = "option '--blacklist' is deprecated, use '--block-rpcs' instead";
pub(super) const WARN_BLACKLIST_KEY: &str =
    "config using deprecated 'blacklist' key, should be replaced with the 'block-rpcs' key.";

/// The parse result with the warnings the caller should log (deprecated spellings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub action: Action,
    pub warnings: Vec<String>,
    /// The config file looked for, which a policy reload re-reads for its lists.
    pub config_file: Option<qga_policy::reload::ConfigFile>,
}

/// The settings being built, before the method is checked.
pub struct Settings {
    pub(super) config: Config,
    /// The method as given: checked only at the end, since a later setting may replace a
    /// bad one (7.2 checks only the final value).
    pub(super) method: String,
    /// The audit scope as given, checked at the end like the method.
    pub(super) audit: String,
    /// The freeze time limit as given, checked at the end.
    pub(super) fsfreeze_timeout: String,
    dump: bool,
    check_policy: Option<Option<PathBuf>>,
    warnings: Vec<String>,
}

fn utf8(arg: OsString, option: &'static str) -> Result<String, CliError> {
    arg.into_string().map_err(|_| CliError::NotUtf8 { option })
}

/// 7.2's `is_help_option`.
fn is_help(value: &str) -> bool {
    value == "help" || value == "?"
}

/// Splits a list value as the policy crate's `split_list` does: on ',', blanks trimmed, empty
/// items kept so that the merge rejects them. One exception: an all-blank block value adds
/// nothing, because `block-rpcs=` is what `-D` writes for "no blocks" and so must be
/// accepted. An empty allow value is kept as one empty (rejected) name: read as "no allow
/// list" it would enable everything.
fn push_list(list: &mut Vec<NamedRpc>, value: &str, source: &str, is_block: bool) {
    // The one splitting rule, shared with the helper's re-read on a reload.
    list.extend(
        qga_policy::reload::list_value(value, source, is_block)
            .into_iter()
            .map(|e| NamedRpc { name: e.name, source: e.source }),
    );
}

/// A list as one comma-separated value, as `-D` writes it.
pub(super) fn names(list: &[NamedRpc]) -> String {
    list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(",")
}

/// The longest freeze time limit: the helper's bound for its own time limits.
pub const MAX_FSFREEZE_TIMEOUT: u64 = qga_protocol::helper_args::MAX_HOOK_TIMEOUT_SECS;

/// `--fsfreeze-timeout`: empty or 0 is no limit, else decimal seconds up to the maximum.
fn parse_freeze_timeout(v: &str) -> Option<Option<u64>> {
    if v.is_empty() {
        return Some(None);
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match v.parse::<u64>().ok()? {
        0 => Some(None),
        s if s <= MAX_FSFREEZE_TIMEOUT => Some(Some(s)),
        _ => None,
    }
}

impl Settings {
    pub(super) fn new() -> Settings {
        let config = Config::default();
        Settings {
            method: config.method.name().to_string(),
            audit: config.audit.name().to_string(),
            fsfreeze_timeout: String::new(),
            config,
            dump: false,
            check_policy: None,
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, message: &str) {
        if !self.warnings.iter().any(|w| w == message) {
            self.warnings.push(message.to_string());
        }
    }

    pub(super) fn read_blacklist_key(&mut self, value: &str) {
        self.warn(WARN_BLACKLIST_KEY);
        push_list(&mut self.config.block_rpcs, value, SOURCE_CONFIG_BLACKLIST, true);
    }

    pub(super) fn read_block_rpcs_key(&mut self, value: &str) {
        push_list(&mut self.config.block_rpcs, value, SOURCE_CONFIG_BLOCK, true);
    }

    pub(super) fn read_allow_rpcs_key(&mut self, value: &str) {
        push_list(&mut self.config.allow_rpcs, value, SOURCE_CONFIG_ALLOW, false);
    }

    /// Applies one option; `Some` for the options that end parsing at once.
    pub(super) fn apply(&mut self, opt: Opt, arg: Option<OsString>) -> Result<Option<Action>, CliError> {
        // Every option that requires an argument has one here (the scan guarantees it); an
        // empty value stands in rather than trusting that with an unwrap.
        let value = || arg.clone().unwrap_or_default();
        match opt {
            Opt::Help => return Ok(Some(Action::Help)),
            Opt::Version => return Ok(Some(Action::Version)),
            Opt::DumpConf => self.dump = true,
            Opt::Logfile => self.config.logfile = Some(value().into()),
            Opt::Pidfile => self.config.pidfile = value().into(),
            Opt::Statedir => self.config.statedir = value().into(),
            Opt::FsfreezeHook => {
                self.config.fsfreeze_hook =
                    Some(arg.map_or_else(|| PathBuf::from(DEFAULT_FSFREEZE_HOOK), PathBuf::from))
            }
            Opt::Verbose => self.config.verbose = true,
            Opt::Daemonize => self.config.daemonize = true,
            Opt::RetryPath => self.config.retry_path = true,
            // Not UTF-8 cannot name a method: keep it readable for the "invalid method" error.
            Opt::Method => self.method = value().to_string_lossy().into_owned(),
            Opt::Path => self.config.path = Some(utf8(value(), "-p")?),
            Opt::BlockRpcs | Opt::Blacklist | Opt::AllowRpcs => {
                let (option, source, is_block) = match opt {
                    Opt::BlockRpcs => ("-b", SOURCE_BLOCK, true),
                    Opt::Blacklist => ("--blacklist", SOURCE_BLACKLIST, true),
                    _ => ("-a", SOURCE_ALLOW, false),
                };
                let list = utf8(value(), option)?;
                if is_help(&list) {
                    return Ok(Some(Action::ListCommands));
                }
                if opt == Opt::Blacklist {
                    self.warn(WARN_BLACKLIST_OPTION);
                }
                let target = if is_block { &mut self.config.block_rpcs } else { &mut self.config.allow_rpcs };
                push_list(target, &list, source, is_block);
            }
            // Already used to pick the file.
            Opt::Config => {}
            Opt::User => self.config.user = Some(utf8(value(), "--user")?),
            Opt::Policy => self.config.policy = Some(value().into()),
            Opt::CheckPolicy => self.check_policy = Some(arg.map(PathBuf::from)),
            Opt::SeccompLog => self.config.sandbox = SandboxMode::Log,
            Opt::NoSandbox => self.config.sandbox = SandboxMode::Off,
            Opt::Audit => self.audit = value().to_string_lossy().into_owned(),
            Opt::AuditFile => self.config.audit_file = Some(value().into()),
            Opt::FsfreezeTimeout => self.fsfreeze_timeout = value().to_string_lossy().into_owned(),
        }
        Ok(None)
    }

    /// The parse result once every option has been applied.
    pub(super) fn finish(mut self) -> Result<Parsed, CliError> {
        self.config.method = Method::from_name(&self.method).ok_or(CliError::InvalidMethod(self.method))?;
        self.config.audit = AuditScope::from_name(&self.audit).ok_or(CliError::InvalidAudit(self.audit))?;
        self.config.fsfreeze_timeout = parse_freeze_timeout(&self.fsfreeze_timeout)
            .ok_or_else(|| CliError::InvalidFsfreezeTimeout(self.fsfreeze_timeout.clone()))?;
        // Resolved here, as 7.2 does before `-D`, so the dump and the Config agree and a
        // dumped file reads back to the same Config. The listening methods have no default:
        // the caller reports that (unless socket activation supplies the channel).
        if self.config.path.is_none() {
            self.config.path = self.config.method.default_path().map(str::to_string);
        }
        let action = match (self.dump, self.check_policy) {
            (true, Some(_)) => {
                return Err(CliError::Conflict("--dump-conf and --check-policy cannot be combined".to_string()))
            }
            (true, None) => Action::DumpConf(self.config),
            (false, Some(file)) => Action::CheckPolicy { config: self.config, file },
            (false, None) => Action::Run(self.config),
        };
        Ok(Parsed { action, warnings: self.warnings, config_file: None })
    }

    /// Ends parsing early (`-h`, `-V`, `-b help`) with the warnings so far.
    pub(super) fn early(self, action: Action) -> Parsed {
        Parsed { action, warnings: self.warnings, config_file: None }
    }
}
