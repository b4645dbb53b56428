//! The command line and the config file, turned into an [`Action`].
//!
//! Order, as in qemu-ga 7.2: the config file is read first (`-c FILE`, else `$QGA_CONF`,
//! else `/etc/qemu/qemu-ga.conf`), then the options are applied in command-line order.
//! Scalars: the last setting wins, so the command line overrides the file. Block and allow
//! lists accumulate: the file's entries first, then the options', each entry keeping its
//! source for messages. `-h`, `-V` and `-b help` act as soon as they are reached, so they win
//! over anything after them, but a broken config file still fails first (7.2 does the same).
//!
//! Differences from 7.2, all on the strict side:
//! - a non-option argument is an error (7.2 silently ignores it);
//! - an unknown method is an error here (7.2 fails later, at channel set-up);
//! - `--blacklist` warns, like the config key;
//! - the config file's `blacklist` and `block-rpcs` both count (7.2 drops `block-rpcs` when
//!   both are present); list names are trimmed of blanks (7.2 keeps them, which makes
//!   `-b "a, b"` silently not block `b`);
//! - `-D` lists block names in the order given (7.2 reverses each comma list, an artefact of
//!   building its list by prepending).
//!
//! Names in the lists are not checked here: the policy merge does that, failing closed.

pub mod help;
mod keyfile;
mod options;

use crate::config::{Action, Config, Method, NamedRpc, DEFAULT_CONFIG_FILE, DEFAULT_FSFREEZE_HOOK};
use keyfile::{KeyFile, KeyFileError, Writer};
use options::Opt;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Sources recorded in [`NamedRpc::source`].
pub const SOURCE_BLOCK: &str = "-b";
pub const SOURCE_BLACKLIST: &str = "--blacklist";
pub const SOURCE_ALLOW: &str = "-a";
pub const SOURCE_CONFIG_BLOCK: &str = "config block-rpcs";
pub const SOURCE_CONFIG_BLACKLIST: &str = "config blacklist";
pub const SOURCE_CONFIG_ALLOW: &str = "config allow-rpcs";

const WARN_BLACKLIST_OPTION: &str = "option '--blacklist' is deprecated, use '--block-rpcs' instead";
const WARN_BLACKLIST_KEY: &str =
    "config using deprecated 'blacklist' key, should be replaced with the 'block-rpcs' key.";

/// The parse result with the warnings the caller should log (deprecated spellings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub action: Action,
    pub warnings: Vec<String>,
}

/// Why the command line or config file was refused. The agent exits 1 for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CliError {
    /// getopt's complaint (unknown option, missing or unexpected argument, ambiguous prefix).
    Usage(String),
    /// A non-option argument.
    Operand(OsString),
    /// The config file could not be read (absent `-c` file, or anything but "not found" for
    /// the implicit one).
    ConfigRead { file: PathBuf, message: String },
    /// The config file is malformed, or a known key has a bad value.
    Config { file: PathBuf, line: usize, message: String },
    /// `-m` or the `method` key names no method.
    InvalidMethod(String),
    /// An option value that must be text (a method, path, user or RPC name) is not UTF-8.
    NotUtf8 { option: &'static str },
    /// Options that cannot be combined.
    Conflict(String),
}

impl CliError {
    /// The exit status the agent uses (7.2 uses 1 for every start-up failure).
    pub fn exit_code(&self) -> i32 {
        1
    }

    /// 7.2's second line after a getopt error, for the usage errors only.
    pub fn usage_hint(&self, program: &str) -> Option<String> {
        match self {
            CliError::Usage(_) | CliError::Operand(_) => {
                Some(format!("Unknown option, try '{program} --help' for more information."))
            }
            _ => None,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Operand(a) => write!(f, "unexpected argument '{}'", a.to_string_lossy()),
            CliError::ConfigRead { file, message } => {
                write!(f, "error loading configuration from path: {}, {message}", file.display())
            }
            CliError::Config { file, line, message } => {
                write!(f, "error loading configuration from path: {}:{line}: {message}", file.display())
            }
            CliError::InvalidMethod(m) => write!(f, "invalid method: {m}"),
            CliError::NotUtf8 { option } => write!(f, "the argument of {option} is not valid UTF-8"),
            CliError::Conflict(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments (without argv[0]) and the config file. The warnings are dropped:
/// callers that log should use [`parse_with_warnings`].
// The contracted entry point: it stays even when the caller uses `parse_with_warnings`.
#[allow(dead_code)]
pub fn parse(args: Vec<OsString>, env_qga_conf: Option<OsString>) -> Result<Action, CliError> {
    parse_with_warnings(args, env_qga_conf).map(|p| p.action)
}

/// The largest config file read: far above any real one, and it keeps `-c /dev/zero` from
/// exhausting memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a config file, refusing one over [`MAX_CONFIG_BYTES`] and one that someone other than
/// root or the agent's user could have written (it names the freeze hook root runs; see
/// [`qga_helper::trust`]).
fn read_config_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    // Checked before it is opened, so that a FIFO there is refused rather than waited on.
    qga_helper::trust::check_file_to_act_on(path).map_err(|e| match e.why {
        qga_helper::trust::Why::Io(io) => io,
        _ => io::Error::new(io::ErrorKind::PermissionDenied, format!("refused: {e}")),
    })?;
    let mut file = std::fs::File::open(path)?;
    let mut data = Vec::new();
    (&mut file).take(MAX_CONFIG_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    Ok(data)
}

/// [`parse`], keeping the warnings. Reads the config file from disk.
pub fn parse_with_warnings(args: Vec<OsString>, env_qga_conf: Option<OsString>) -> Result<Parsed, CliError> {
    parse_with_reader(&args, env_qga_conf.as_deref().map(Path::new), read_config_file)
}

/// The parser proper; `read` stands for `std::fs::read` so tests can supply files.
pub fn parse_with_reader<R>(args: &[OsString], env_qga_conf: Option<&Path>, mut read: R) -> Result<Parsed, CliError>
where
    R: FnMut(&Path) -> io::Result<Vec<u8>>,
{
    let scan = options::scan(args);
    let mut b = Builder::new();

    // The file is needed before any option applies, and `-c` may come anywhere: take the
    // last `-c` seen before a getopt error (the scan stops there, as 7.2 does).
    let explicit = scan.tokens.iter().rev().find(|t| t.opt == Opt::Config).and_then(|t| t.arg.clone());
    let (file, required) = match (&explicit, env_qga_conf) {
        (Some(c), _) => (PathBuf::from(c), true),
        (None, Some(env)) => (env.to_path_buf(), false),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    match read(&file) {
        Ok(data) => b.load_config(&data, &file)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
        Err(e) => return Err(CliError::ConfigRead { file, message: e.to_string() }),
    }

    for token in scan.tokens {
        if let Some(action) = b.apply(token.opt, token.arg)? {
            return Ok(Parsed { action, warnings: b.warnings });
        }
    }
    if let Some(e) = scan.error {
        return Err(CliError::Usage(e));
    }
    if let Some(operand) = scan.operands.into_iter().next() {
        return Err(CliError::Operand(operand));
    }
    b.finish()
}

/// The settings being built, before the method is checked.
struct Builder {
    config: Config,
    /// The method as given: checked only at the end, since a later setting may replace a
    /// bad one (7.2 checks only the final value).
    method: String,
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
    if is_block && value.trim().is_empty() {
        return;
    }
    list.extend(value.split(',').map(|name| NamedRpc { name: name.trim().to_string(), source: source.to_string() }));
}

impl Builder {
    fn new() -> Builder {
        let config = Config::default();
        Builder {
            method: config.method.name().to_string(),
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

    /// Applies the `[general]` keys in the order 7.2 reads them, then ours.
    fn load_config(&mut self, data: &[u8], file: &Path) -> Result<(), CliError> {
        let located = |e: KeyFileError| CliError::Config { file: file.to_path_buf(), line: e.line, message: e.message };
        let kf = KeyFile::parse(data).map_err(located)?;
        let string = |key: &str| kf.get_string("general", key).transpose().map_err(located);
        let boolean = |key: &str| kf.get_boolean("general", key).transpose().map_err(located);

        // The key is `daemon`; `daemonize` (as in some documentation) is an unknown key and,
        // like every unknown key, ignored.
        if let Some(v) = boolean("daemon")? {
            self.config.daemonize = v;
        }
        if let Some(v) = string("method")? {
            self.method = v;
        }
        if let Some(v) = string("path")? {
            self.config.path = Some(v);
        }
        if let Some(v) = string("logfile")? {
            self.config.logfile = Some(v.into());
        }
        if let Some(v) = string("pidfile")? {
            self.config.pidfile = v.into();
        }
        if let Some(v) = string("fsfreeze-hook")? {
            self.config.fsfreeze_hook = Some(v.into());
        }
        if let Some(v) = string("statedir")? {
            self.config.statedir = v.into();
        }
        if let Some(v) = boolean("verbose")? {
            self.config.verbose = v;
        }
        if let Some(v) = boolean("retry-path")? {
            self.config.retry_path = v;
        }
        if let Some(v) = string("blacklist")? {
            self.warn(WARN_BLACKLIST_KEY);
            push_list(&mut self.config.block_rpcs, &v, SOURCE_CONFIG_BLACKLIST, true);
        }
        if let Some(v) = string("block-rpcs")? {
            push_list(&mut self.config.block_rpcs, &v, SOURCE_CONFIG_BLOCK, true);
        }
        if let Some(v) = string("allow-rpcs")? {
            push_list(&mut self.config.allow_rpcs, &v, SOURCE_CONFIG_ALLOW, false);
        }
        if let Some(v) = string("user")? {
            self.config.user = Some(v);
        }
        if let Some(v) = string("policy")? {
            self.config.policy = Some(v.into());
        }
        Ok(())
    }

    /// Applies one option; `Some` for the options that end parsing at once.
    fn apply(&mut self, opt: Opt, arg: Option<OsString>) -> Result<Option<Action>, CliError> {
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
            Opt::SeccompLog => self.config.sandbox = crate::config::SandboxMode::Log,
            Opt::NoSandbox => self.config.sandbox = crate::config::SandboxMode::Off,
        }
        Ok(None)
    }

    fn finish(mut self) -> Result<Parsed, CliError> {
        self.config.method = Method::from_name(&self.method).ok_or(CliError::InvalidMethod(self.method))?;
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
        Ok(Parsed { action, warnings: self.warnings })
    }
}

fn names(list: &[NamedRpc]) -> String {
    list.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(",")
}

/// The `-D` text: 7.2's keys in 7.2's order and spelling (`path` resolved to the method's
/// default, `block-rpcs` always present), then ours when set. Paths that are not UTF-8 are
/// shown lossily (a key file holds UTF-8 only).
pub fn dump(config: &Config) -> String {
    let mut w = Writer::new("general");
    w.boolean("daemon", config.daemonize);
    w.string("method", config.method.name());
    if let Some(path) = config.path.as_deref().or(config.method.default_path()) {
        w.string("path", path);
    }
    if let Some(logfile) = &config.logfile {
        w.string("logfile", &logfile.to_string_lossy());
    }
    w.string("pidfile", &config.pidfile.to_string_lossy());
    if let Some(hook) = &config.fsfreeze_hook {
        w.string("fsfreeze-hook", &hook.to_string_lossy());
    }
    w.string("statedir", &config.statedir.to_string_lossy());
    w.boolean("verbose", config.verbose);
    w.boolean("retry-path", config.retry_path);
    w.string("block-rpcs", &names(&config.block_rpcs));
    if !config.allow_rpcs.is_empty() {
        w.string("allow-rpcs", &names(&config.allow_rpcs));
    }
    if let Some(user) = &config.user {
        w.string("user", user);
    }
    if let Some(policy) = &config.policy {
        w.string("policy", &policy.to_string_lossy());
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::ffi::OsStrExt;

    /// Parses with the given files as the whole file system.
    fn run_env(args: &[&str], env: Option<&str>, files: &[(&str, &str)]) -> Result<Parsed, CliError> {
        let files: HashMap<PathBuf, Vec<u8>> =
            files.iter().map(|(p, c)| (PathBuf::from(p), c.as_bytes().to_vec())).collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_with_reader(&args, env.map(Path::new), |p| {
            files.get(p).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        })
    }

    fn run(args: &[&str]) -> Result<Parsed, CliError> {
        run_env(args, None, &[])
    }

    /// Parses with `conf` as the default config file.
    fn with_conf(args: &[&str], conf: &str) -> Result<Parsed, CliError> {
        run_env(args, None, &[(DEFAULT_CONFIG_FILE, conf)])
    }

    fn action(r: Result<Parsed, CliError>) -> Action {
        match r {
            Ok(p) => p.action,
            Err(e) => panic!("error: {e}"),
        }
    }

    fn config(r: Result<Parsed, CliError>) -> Config {
        match action(r) {
            Action::Run(c) => c,
            other => panic!("not Run: {other:?}"),
        }
    }

    fn error(r: Result<Parsed, CliError>) -> CliError {
        match r {
            Ok(p) => panic!("parsed: {:?}", p.action),
            Err(e) => e,
        }
    }

    fn rpc(name: &str, source: &str) -> NamedRpc {
        NamedRpc { name: name.to_string(), source: source.to_string() }
    }

    fn default_resolved() -> Config {
        Config { path: Some("/dev/virtio-ports/org.qemu.guest_agent.0".to_string()), ..Config::default() }
    }

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
    fn lists_accumulate_config_first_then_options_in_order_with_sources() {
        let conf =
            "[general]\nallow-rpcs=guest-info\nblock-rpcs=guest-exec\nblacklist=guest-file-open,guest-file-read\n";
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
    fn list_names_are_trimmed_and_empty_items_kept_for_the_policy_to_reject() {
        let c = config(run(&["-b", " guest-ping , guest-info,", "-a", "guest-sync,,x"]));
        assert_eq!(c.block_rpcs, vec![rpc("guest-ping", "-b"), rpc("guest-info", "-b"), rpc("", "-b")]);
        assert_eq!(c.allow_rpcs, vec![rpc("guest-sync", "-a"), rpc("", "-a"), rpc("x", "-a")]);
    }

    #[test]
    fn empty_block_value_blocks_nothing_but_empty_allow_value_is_kept() {
        let c = config(with_conf(&["-b", "", "-a", ""], "[general]\nblock-rpcs=\nblacklist=  \nallow-rpcs=\n"));
        assert_eq!(c.block_rpcs, vec![]);
        assert_eq!(c.allow_rpcs, vec![rpc("", "config allow-rpcs"), rpc("", "-a")]);
    }

    #[test]
    fn list_names_are_not_validated_here() {
        let c = config(run(&["-b", "no-such-command", "-a", "guest-*"]));
        assert_eq!(c.block_rpcs, vec![rpc("no-such-command", "-b")]);
        assert_eq!(c.allow_rpcs, vec![rpc("guest-*", "-a")]);
    }

    const FULL_CONF: &str = "\
# every key
[general]
daemon=true
method=isa-serial
path=/dev/ttyS3
logfile=/var/log/qga.log
pidfile=/run/qga.pid
fsfreeze-hook=/etc/hook
statedir=/var/lib/qga
verbose=1
retry-path=true
block-rpcs=guest-exec
allow-rpcs=guest-ping
user=qga
policy=/etc/qga.policy
";

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
        assert!(
            matches!(&e, CliError::Config { line: 3, file, .. } if file == Path::new(DEFAULT_CONFIG_FILE)),
            "{e:?}"
        );
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
        assert_eq!(
            with_conf(&["-b", "guest-ping"], "[general]\nblock-rpcs=guest-info\n").map(|p| p.warnings),
            Ok(vec![])
        );
    }

    #[test]
    fn blacklist_option_and_key_warn_once_each() {
        let p = with_conf(&["--blacklist", "a", "--blacklist=b"], "[general]\nblacklist=c\n");
        assert_eq!(p.map(|p| p.warnings), Ok(vec![WARN_BLACKLIST_KEY.to_string(), WARN_BLACKLIST_OPTION.to_string()]));
    }

    #[test]
    fn the_sandbox_is_enforced_unless_a_debug_or_profiling_switch_says_otherwise() {
        use crate::config::SandboxMode;
        assert_eq!(config(run(&[])).sandbox, SandboxMode::Enforce);
        assert_eq!(config(run(&["--seccomp-log"])).sandbox, SandboxMode::Log);
        assert_eq!(config(run(&["--no-sandbox"])).sandbox, SandboxMode::Off);
    }

    #[test]
    fn dump_conf_action() {
        assert_eq!(action(run(&["-D"])), Action::DumpConf(default_resolved()));
        assert_eq!(
            action(run(&["--dump-conf", "-v"])),
            Action::DumpConf(Config { verbose: true, ..default_resolved() })
        );
    }

    #[test]
    fn dump_of_defaults_is_7_2s_text() {
        let expected = "\
[general]
daemon=false
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
pidfile=/var/run/qemu-ga.pid
statedir=/var/run
verbose=false
retry-path=false
block-rpcs=
";
        assert_eq!(dump(&config(run(&[]))), expected);
        // A Config made elsewhere, path unresolved, dumps the same.
        assert_eq!(dump(&Config::default()), expected);
    }

    #[test]
    fn dump_with_logfile_hook_and_blocks_has_7_2s_key_order() {
        let Action::DumpConf(c) = action(run(&["-D", "-b", "guest-ping,guest-info", "-F", "-l", "/x"])) else {
            panic!("not DumpConf")
        };
        // 7.2 prints "guest-info,guest-ping" (its list is built backwards); the keys and
        // their order are the same.
        assert_eq!(
            dump(&c),
            "\
[general]
daemon=false
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
logfile=/x
pidfile=/var/run/qemu-ga.pid
fsfreeze-hook=/etc/qemu/fsfreeze-hook
statedir=/var/run
verbose=false
retry-path=false
block-rpcs=guest-ping,guest-info
"
        );
    }

    #[test]
    fn dump_adds_our_keys_after_7_2s() {
        let c = config(run(&["-a", "guest-ping,guest-sync", "--user", "qga", "--policy", "/p", "-vd"]));
        assert_eq!(
            dump(&c),
            "\
[general]
daemon=true
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
pidfile=/var/run/qemu-ga.pid
statedir=/var/run
verbose=true
retry-path=false
block-rpcs=
allow-rpcs=guest-ping,guest-sync
user=qga
policy=/p
"
        );
    }

    #[test]
    fn dump_escapes_values_like_gkeyfile() {
        let c = config(run(&["-p", "  x\ty\\z", "-l", "/a b "]));
        let text = dump(&c);
        assert!(text.contains("path=\\s\\sx\ty\\\\z\n"), "{text}");
        assert!(text.contains("logfile=/a b \n"), "{text}");
    }

    /// The names of a config's lists with the sources a dumped file gives them.
    fn as_reread(mut c: Config) -> Config {
        for r in &mut c.block_rpcs {
            r.source = SOURCE_CONFIG_BLOCK.to_string();
        }
        for r in &mut c.allow_rpcs {
            r.source = SOURCE_CONFIG_ALLOW.to_string();
        }
        c
    }

    #[test]
    fn dump_read_back_as_config_gives_the_same_config() {
        let cases: &[&[&str]] = &[
            &[],
            &["-vdr"],
            &["-m", "isa-serial"],
            &["-m", "unix-listen", "-p", "/run/qga.sock"],
            &["-m", "vsock-listen", "-p", "3:1234", "-F"],
            &["-F/h", "-l", "/log", "-f", "/pid", "-t", "/state"],
            &["--fsfreeze-hook=", "-p", "", "-l", ""],
            &["-p", "  lead\tand trail  ", "-l", "back\\slash", "--user", " u "],
            &["-b", "guest-ping,guest-info", "--blacklist", "guest-exec", "-b", ""],
            &["-b", "a,,b,", "-a", ""],
            &["-a", "guest-ping", "-a", "guest-info,", "--policy", "/etc/p", "--user", "qga"],
        ];
        for args in cases {
            let Action::DumpConf(first) = action(run(&[&["-D"], *args].concat())) else { panic!("{args:?}") };
            let text = dump(&first);
            let again = config(with_conf(&[], &text));
            assert_eq!(again, as_reread(first.clone()), "{args:?}\n{text}");
            assert_eq!(dump(&again), text, "{args:?}");
        }
        let again = config(with_conf(&[], &dump(&config(with_conf(&[], FULL_CONF)))));
        assert_eq!(again, config(with_conf(&[], FULL_CONF)));
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
}
