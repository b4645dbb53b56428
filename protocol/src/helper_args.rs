//! The helper's command line: [`Args::to_argv`] is what the front passes, [`parse`] what the
//! helper accepts, strictly (the front is the only caller, so anything unexpected is a bug or an
//! attack and the helper refuses to start). Both sides use this one declaration, and a test
//! checks that every command line the front can write parses back to what it wrote.
//!
//! `qemu-ga-rs-helper --statedir DIR --enabled NAME[,NAME...] [--fsfreeze-hook PATH]
//! [--hook-timeout SECS] [--fsfreeze-timeout SECS] [--conditions LINES] [--seccomp=log | --no-sandbox]`
//!
//! The reload options say where the effective policy comes from, as the front (root, before it
//! read a byte from the host) resolved it at start-up: `--policy PATH`, `--config PATH`
//! (`--config-required` when `-c` named it), `--cli-block NAMES` and `--cli-allow NAMES` (the
//! command line's lists) and `--front-files` (the front's sandbox includes the file commands).
//! `--background-start`: the front started the helper under SCHED_IDLE (see the helper's
//! `background` module); every process of the helper returns to SCHED_OTHER before it serves.
//! Without `--config` and `--policy` a reload reads the default policy path only.
//!
//! `--seccomp=log` (debugging) and `--no-sandbox` (profiling, e.g. under valgrind) weaken the
//! seccomp filter (the helper's `seccomp` module). They are exact words, not `--seccomp VALUE`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use qga_policy::{split_words, Command, Narrowing, Policy, Process};

use qga_policy::seccomp::SandboxMode;

/// How long the fsfreeze hook may run when `--hook-timeout` is not given.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of `--hook-timeout`: a day is already far beyond any sane hook.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 24 * 60 * 60;

/// The validated command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub statedir: PathBuf,
    /// Exactly the helper-run commands the effective policy enables.
    pub enabled: Policy,
    pub hook: Option<PathBuf>,
    pub hook_timeout: Duration,
    /// The freeze time limit: the helper thaws on its own when a freeze lasts this long.
    pub freeze_timeout: Option<Duration>,
    /// The seccomp filter: enforced unless `--seccomp=log` or `--no-sandbox` is given.
    pub sandbox: SandboxMode,
    /// The CPU the front runs on, which the helper joins (see [`crate::placement`]).
    pub cpu: Option<usize>,
    /// What a reload re-reads.
    pub reload: qga_policy::reload::Sources,
    /// The front started with the file commands (a filesystem view and their system calls).
    pub front_files: bool,
    /// The front started the helper under SCHED_IDLE, its own policy being SCHED_OTHER.
    pub background_start: bool,
    /// The front took back its recorded dynamic id without reading every process: the helper
    /// reads them before it serves (see [`crate::front_id`]).
    pub verify_front_id: Option<u32>,
}

/// The switches that weaken the sandbox, as the front passes them.
pub const SECCOMP_LOG: &str = "--seccomp=log";
pub const NO_SANDBOX: &str = "--no-sandbox";
/// The front started the helper under SCHED_IDLE.
pub const BACKGROUND_START: &str = "--background-start";
/// The front's recorded dynamic id, for the helper to check against every process.
pub const VERIFY_FRONT_ID: &str = "--verify-front-id";

#[derive(Debug, PartialEq, Eq)]
pub enum ArgsError {
    UnknownOption(String),
    MissingValue(&'static str),
    Duplicate(&'static str),
    Missing(&'static str),
    NotUtf8(&'static str),
    NotAbsolute(&'static str),
    UnknownCommand(String),
    /// A command the front runs itself: it has no business in the helper's list.
    NotAHelperCommand(String),
    DuplicateCommand(String),
    BadTimeout(String),
    BadFreezeTimeout(String),
    BadCpu(String),
    /// `--verify-front-id` out of the dynamic range or not a number.
    BadFrontId(String),
    /// A `--conditions` line that does not parse as a helper command's conditions.
    BadConditions(String),
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::UnknownOption(o) => write!(f, "unknown argument '{o}'"),
            ArgsError::MissingValue(o) => write!(f, "option {o} needs a value"),
            ArgsError::Duplicate(o) => write!(f, "option {o} given more than once"),
            ArgsError::Missing(o) => write!(f, "option {o} is required"),
            ArgsError::NotUtf8(o) => write!(f, "the value of {o} is not valid UTF-8"),
            ArgsError::NotAbsolute(o) => write!(f, "the value of {o} must be an absolute path"),
            ArgsError::BadConditions(l) => write!(f, "invalid line in --conditions: '{l}'"),
            ArgsError::UnknownCommand(c) => write!(f, "unknown command '{c}' in --enabled"),
            ArgsError::NotAHelperCommand(c) => write!(f, "command '{c}' in --enabled is not run by the helper"),
            ArgsError::DuplicateCommand(c) => write!(f, "command '{c}' appears twice in --enabled"),
            ArgsError::BadCpu(v) => write!(f, "--cpu '{v}' is not a CPU number"),
            ArgsError::BadFrontId(v) => write!(f, "{VERIFY_FRONT_ID} '{v}' is not an id of the dynamic range"),
            ArgsError::BadFreezeTimeout(v) => {
                write!(f, "--fsfreeze-timeout '{v}' is not a number of seconds in 1..={MAX_HOOK_TIMEOUT_SECS}")
            }
            ArgsError::BadTimeout(v) => {
                write!(f, "--hook-timeout '{v}' is not a number of seconds in 1..={MAX_HOOK_TIMEOUT_SECS}")
            }
        }
    }
}

impl std::error::Error for ArgsError {}

impl Args {
    /// The arguments after argv[0], as the front passes them; [`parse`] gives back `self`.
    pub fn to_argv(&self) -> Vec<OsString> {
        let enabled: Vec<&str> = self.enabled.enabled_commands().map(|c| c.name()).collect();
        let mut argv: Vec<OsString> =
            vec!["--statedir".into(), self.statedir.clone().into(), "--enabled".into(), enabled.join(",").into()];
        // One line per conditioned `allow`, which the helper parses again with the policy's
        // own parser: it enforces them on what it does, not on what the front says.
        let conditions: Vec<String> = self.enabled.conditions().iter().map(|n| n.to_line()).collect();
        if !conditions.is_empty() {
            argv.extend(["--conditions".into(), conditions.join("\n").into()]);
        }
        if let Some(hook) = &self.hook {
            argv.extend(["--fsfreeze-hook".into(), hook.clone().into()]);
        }
        if self.hook_timeout != DEFAULT_HOOK_TIMEOUT {
            argv.extend(["--hook-timeout".into(), self.hook_timeout.as_secs().to_string().into()]);
        }
        if let Some(t) = self.freeze_timeout {
            argv.extend(["--fsfreeze-timeout".into(), t.as_secs().to_string().into()]);
        }
        if let Some(cpu) = self.cpu {
            argv.extend(["--cpu".into(), cpu.to_string().into()]);
        }
        if let Some(policy) = &self.reload.policy {
            argv.extend(["--policy".into(), policy.clone().into()]);
        }
        if let Some(config) = &self.reload.config {
            argv.extend(["--config".into(), config.path.clone().into()]);
            if config.required {
                argv.push("--config-required".into());
            }
        }
        for (option, list) in [("--cli-block", &self.reload.block), ("--cli-allow", &self.reload.allow)] {
            if !list.is_empty() {
                let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
                argv.extend([option.into(), names.join(",").into()]);
            }
        }
        if self.front_files {
            argv.push("--front-files".into());
        }
        if self.background_start {
            argv.push(BACKGROUND_START.into());
        }
        if let Some(id) = self.verify_front_id {
            argv.extend([VERIFY_FRONT_ID.into(), id.to_string().into()]);
        }
        match self.sandbox {
            SandboxMode::Enforce => {}
            SandboxMode::Log => argv.push(SECCOMP_LOG.into()),
            SandboxMode::Off => argv.push(NO_SANDBOX.into()),
        }
        argv
    }
}

/// The source the helper gives the command line's block and allow entries.
pub const CLI_BLOCK_SOURCE: &str = "-b";
pub const CLI_ALLOW_SOURCE: &str = "-a";

/// The helper-run commands a policy enables, with their argument conditions: what `--enabled`
/// and `--conditions` carry.
pub fn helper_commands(policy: &Policy) -> Policy {
    let helper_run = |c: Command| c.spec().process == Process::Helper && policy.is_enabled(c);
    let conditions = policy.conditions().iter().filter(|n| helper_run(n.command)).cloned().collect();
    Policy::only(policy.enabled_commands().filter(|c| helper_run(*c))).with_conditions(conditions)
}

/// Parses the arguments after argv[0].
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, ArgsError> {
    let mut statedir: Option<PathBuf> = None;
    let mut enabled: Option<Policy> = None;
    let mut hook: Option<PathBuf> = None;
    let mut timeout: Option<Duration> = None;
    let mut freeze_timeout: Option<Duration> = None;
    let mut sandbox: Option<SandboxMode> = None;
    let mut cpu: Option<usize> = None;
    let mut policy: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut config_required = false;
    let mut cli_block: Option<String> = None;
    let mut cli_allow: Option<String> = None;
    let mut front_files = false;
    let mut background_start = false;
    let mut verify_front_id: Option<u32> = None;
    let mut conditions: Option<Vec<Narrowing>> = None;

    let mut it = args.into_iter();
    while let Some(opt) = it.next() {
        let opt = opt.into_string().map_err(|o| ArgsError::UnknownOption(o.to_string_lossy().into_owned()))?;
        match opt.as_str() {
            "--statedir" => {
                let v = value(&mut it, "--statedir")?;
                set_once(&mut statedir, absolute(v, "--statedir")?, "--statedir")?;
            }
            "--enabled" => {
                let v = value(&mut it, "--enabled")?.into_string().map_err(|_| ArgsError::NotUtf8("--enabled"))?;
                set_once(&mut enabled, parse_enabled(&v)?, "--enabled")?;
            }
            "--conditions" => {
                let v =
                    value(&mut it, "--conditions")?.into_string().map_err(|_| ArgsError::NotUtf8("--conditions"))?;
                set_once(&mut conditions, parse_conditions(&v)?, "--conditions")?;
            }
            "--fsfreeze-hook" => {
                let v = value(&mut it, "--fsfreeze-hook")?;
                set_once(&mut hook, absolute(v, "--fsfreeze-hook")?, "--fsfreeze-hook")?;
            }
            "--hook-timeout" => {
                let v = value(&mut it, "--hook-timeout")?
                    .into_string()
                    .map_err(|_| ArgsError::NotUtf8("--hook-timeout"))?;
                set_once(&mut timeout, parse_timeout(&v)?, "--hook-timeout")?;
            }
            "--fsfreeze-timeout" => {
                let v = value(&mut it, "--fsfreeze-timeout")?
                    .into_string()
                    .map_err(|_| ArgsError::NotUtf8("--fsfreeze-timeout"))?;
                let t = parse_timeout(&v).map_err(|_| ArgsError::BadFreezeTimeout(v))?;
                set_once(&mut freeze_timeout, t, "--fsfreeze-timeout")?;
            }
            "--cpu" => {
                let v = value(&mut it, "--cpu")?.into_string().map_err(|_| ArgsError::NotUtf8("--cpu"))?;
                set_once(&mut cpu, parse_cpu(&v)?, "--cpu")?;
            }
            "--policy" => {
                let v = value(&mut it, "--policy")?;
                set_once(&mut policy, absolute(v, "--policy")?, "--policy")?;
            }
            "--config" => {
                let v = value(&mut it, "--config")?;
                set_once(&mut config, absolute(v, "--config")?, "--config")?;
            }
            "--config-required" => once_flag(&mut config_required, "--config-required")?,
            "--front-files" => once_flag(&mut front_files, "--front-files")?,
            BACKGROUND_START => once_flag(&mut background_start, BACKGROUND_START)?,
            VERIFY_FRONT_ID => {
                let v =
                    value(&mut it, VERIFY_FRONT_ID)?.into_string().map_err(|_| ArgsError::NotUtf8(VERIFY_FRONT_ID))?;
                let id = crate::front_id::parse_record(format!("{v}\n").as_bytes()).ok_or(ArgsError::BadFrontId(v))?;
                set_once(&mut verify_front_id, id, VERIFY_FRONT_ID)?;
            }
            "--cli-block" => {
                let v = value(&mut it, "--cli-block")?.into_string().map_err(|_| ArgsError::NotUtf8("--cli-block"))?;
                set_once(&mut cli_block, v, "--cli-block")?;
            }
            "--cli-allow" => {
                let v = value(&mut it, "--cli-allow")?.into_string().map_err(|_| ArgsError::NotUtf8("--cli-allow"))?;
                set_once(&mut cli_allow, v, "--cli-allow")?;
            }
            SECCOMP_LOG => set_once(&mut sandbox, SandboxMode::Log, "--seccomp=log/--no-sandbox")?,
            NO_SANDBOX => set_once(&mut sandbox, SandboxMode::Off, "--seccomp=log/--no-sandbox")?,
            _ => return Err(ArgsError::UnknownOption(opt)),
        }
    }

    if config_required && config.is_none() {
        return Err(ArgsError::Missing("--config"));
    }
    // The lists are checked by the merge on every reload, as at start-up.
    let list = |v: Option<String>, source| v.map(|v| qga_policy::split_list(&v, source)).unwrap_or_default();
    // Sources of the command line's entries as the helper reports them (the front writes names
    // only: `--blacklist` entries come back as `-b`).
    let reload = qga_policy::reload::Sources {
        policy,
        config: config.map(|path| qga_policy::reload::ConfigFile { path, required: config_required }),
        block: list(cli_block, CLI_BLOCK_SOURCE),
        allow: list(cli_allow, CLI_ALLOW_SOURCE),
    };
    Ok(Args {
        reload,
        front_files,
        background_start,
        verify_front_id,
        statedir: statedir.ok_or(ArgsError::Missing("--statedir"))?,
        enabled: enabled.ok_or(ArgsError::Missing("--enabled"))?.with_conditions(conditions.unwrap_or_default()),
        hook,
        hook_timeout: timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT),
        freeze_timeout,
        sandbox: sandbox.unwrap_or(SandboxMode::Enforce),
        cpu,
    })
}

/// A CPU number: decimal digits only, below the affinity mask's size.
fn parse_cpu(v: &str) -> Result<usize, ArgsError> {
    let bad = || ArgsError::BadCpu(v.to_owned());
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let cpu: usize = v.parse().map_err(|_| bad())?;
    if crate::placement::is_valid_cpu(cpu) {
        Ok(cpu)
    } else {
        Err(bad())
    }
}

fn value(it: &mut impl Iterator<Item = OsString>, opt: &'static str) -> Result<OsString, ArgsError> {
    it.next().ok_or(ArgsError::MissingValue(opt))
}

fn set_once<T>(slot: &mut Option<T>, v: T, opt: &'static str) -> Result<(), ArgsError> {
    if slot.is_some() {
        return Err(ArgsError::Duplicate(opt));
    }
    *slot = Some(v);
    Ok(())
}

fn once_flag(flag: &mut bool, opt: &'static str) -> Result<(), ArgsError> {
    if *flag {
        return Err(ArgsError::Duplicate(opt));
    }
    *flag = true;
    Ok(())
}

fn absolute(v: OsString, opt: &'static str) -> Result<PathBuf, ArgsError> {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(ArgsError::NotAbsolute(opt))
    }
}

/// `--enabled` is a comma-separated list of helper-run command names; the empty string enables
/// nothing.
pub fn parse_enabled(list: &str) -> Result<Policy, ArgsError> {
    let mut commands: Vec<Command> = Vec::new();
    if list.is_empty() {
        return Ok(Policy::only(commands));
    }
    for name in list.split(',') {
        let cmd = Command::from_name(name).ok_or_else(|| ArgsError::UnknownCommand(name.to_owned()))?;
        if cmd.spec().process != Process::Helper {
            return Err(ArgsError::NotAHelperCommand(name.to_owned()));
        }
        if commands.contains(&cmd) {
            return Err(ArgsError::DuplicateCommand(name.to_owned()));
        }
        commands.push(cmd);
    }
    Ok(Policy::only(commands))
}

/// `--conditions`: one line per `allow` line with conditions, the command name then its
/// `KEY=VALUE` words quoted (see `Narrowing::to_line`), parsed by the policy file's own parser.
/// Only helper-run commands; anything else is refused.
pub fn parse_conditions(text: &str) -> Result<Vec<Narrowing>, ArgsError> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let bad = || ArgsError::BadConditions(line.to_owned());
        let words = split_words(line).map_err(|_| bad())?;
        let (name, rest) = words.split_first().ok_or_else(bad)?;
        let cmd = Command::from_name(name).ok_or_else(|| ArgsError::UnknownCommand(name.to_owned()))?;
        if cmd.spec().process != Process::Helper {
            return Err(ArgsError::NotAHelperCommand(name.to_owned()));
        }
        if rest.is_empty() {
            return Err(bad());
        }
        out.push(Narrowing::parse(cmd, rest.to_vec()).map_err(|_| bad())?);
    }
    Ok(out)
}

fn parse_timeout(v: &str) -> Result<Duration, ArgsError> {
    // Digits only: no sign, no whitespace, no "1e3".
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ArgsError::BadTimeout(v.to_owned()));
    }
    match v.parse::<u64>() {
        Ok(s) if (1..=MAX_HOOK_TIMEOUT_SECS).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(ArgsError::BadTimeout(v.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Args, ArgsError> {
        parse(a.iter().map(OsString::from))
    }

    #[test]
    fn the_front_id_to_verify_is_one_number_of_the_dynamic_range() {
        let base = ["--statedir", "/run", "--enabled", ""];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        assert_eq!(with(&[]).unwrap().verify_front_id, None);
        assert_eq!(with(&[VERIFY_FRONT_ID, "61925"]).unwrap().verify_front_id, Some(61925));
        for bad in ["", "0", "65534", "61925\n", "+61925", "x"] {
            assert!(matches!(with(&[VERIFY_FRONT_ID, bad]), Err(ArgsError::BadFrontId(_))), "{bad:?}");
        }
        assert!(matches!(
            with(&[VERIFY_FRONT_ID, "61925", VERIFY_FRONT_ID, "61925"]),
            Err(ArgsError::Duplicate(VERIFY_FRONT_ID))
        ));
    }

    #[test]
    fn cpu_is_a_decimal_number_within_the_affinity_mask() {
        let base = ["--statedir", "/run", "--enabled", ""];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        assert_eq!(with(&[]).unwrap().cpu, None);
        assert_eq!(with(&["--cpu", "0"]).unwrap().cpu, Some(0));
        assert_eq!(with(&["--cpu", "17"]).unwrap().cpu, Some(17));
        for bad in ["", "-1", "+1", "1x", "0x1", " 1", "1048576", "99999999999999999999"] {
            assert!(matches!(with(&["--cpu", bad]), Err(ArgsError::BadCpu(_))), "{bad:?}");
        }
        assert!(matches!(with(&["--cpu"]), Err(ArgsError::MissingValue("--cpu"))));
        assert!(matches!(with(&["--cpu", "1", "--cpu", "1"]), Err(ArgsError::Duplicate("--cpu"))));
    }

    #[test]
    fn minimal_command_line_uses_the_default_hook_timeout() {
        let a = p(&["--statedir", "/run", "--enabled", ""]).unwrap();
        assert_eq!(a.statedir, PathBuf::from("/run"));
        assert_eq!(a.hook, None);
        assert_eq!(a.hook_timeout, DEFAULT_HOOK_TIMEOUT);
        assert_eq!(a.enabled.enabled_commands().count(), 0);
        assert_eq!(a.sandbox, SandboxMode::Enforce);
    }

    #[test]
    fn the_sandbox_switches_are_exact_words_and_exclusive() {
        let base = ["--statedir", "/run", "--enabled", ""];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        assert_eq!(with(&["--seccomp=log"]).unwrap().sandbox, SandboxMode::Log);
        assert_eq!(with(&["--no-sandbox"]).unwrap().sandbox, SandboxMode::Off);
        assert!(matches!(with(&["--seccomp=log", "--no-sandbox"]), Err(ArgsError::Duplicate(_))));
        assert!(matches!(with(&["--no-sandbox", "--no-sandbox"]), Err(ArgsError::Duplicate(_))));
        for bad in [&["--seccomp", "log"][..], &["--seccomp=kill"], &["--seccomp=LOG"], &["--seccomp"]] {
            assert!(matches!(with(bad), Err(ArgsError::UnknownOption(_))), "{bad:?}");
        }
    }

    #[test]
    fn full_command_line_is_accepted_in_any_order() {
        let a = p(&[
            "--hook-timeout",
            "5",
            "--enabled",
            "guest-fsfreeze-freeze,guest-fsfreeze-thaw",
            "--fsfreeze-hook",
            "/etc/qemu/fsfreeze-hook",
            "--statedir",
            "/var/run",
        ])
        .unwrap();
        assert_eq!(a.hook, Some(PathBuf::from("/etc/qemu/fsfreeze-hook")));
        assert_eq!(a.hook_timeout, Duration::from_secs(5));
        let cmds: Vec<_> = a.enabled.enabled_commands().collect();
        assert_eq!(cmds, [Command::FsfreezeFreeze, Command::FsfreezeThaw]);
    }

    #[test]
    fn unknown_options_and_equals_forms_are_refused() {
        assert_eq!(p(&["--verbose"]), Err(ArgsError::UnknownOption("--verbose".into())));
        assert!(matches!(p(&["--statedir=/run", "--enabled", ""]), Err(ArgsError::UnknownOption(_))));
        assert!(matches!(p(&["--statedir", "/run", "--enabled", "", "extra"]), Err(ArgsError::UnknownOption(_))));
    }

    #[test]
    fn required_options_and_values_are_enforced() {
        assert_eq!(p(&["--enabled", ""]), Err(ArgsError::Missing("--statedir")));
        assert_eq!(p(&["--statedir", "/run"]), Err(ArgsError::Missing("--enabled")));
        assert_eq!(p(&["--statedir"]), Err(ArgsError::MissingValue("--statedir")));
        assert_eq!(
            p(&["--statedir", "/a", "--statedir", "/b", "--enabled", ""]),
            Err(ArgsError::Duplicate("--statedir"))
        );
    }

    #[test]
    fn paths_must_be_absolute() {
        assert_eq!(p(&["--statedir", "run", "--enabled", ""]), Err(ArgsError::NotAbsolute("--statedir")));
        assert_eq!(
            p(&["--statedir", "/run", "--enabled", "", "--fsfreeze-hook", "hook"]),
            Err(ArgsError::NotAbsolute("--fsfreeze-hook"))
        );
    }

    #[test]
    fn enabled_accepts_only_helper_commands_once_each() {
        assert!(parse_enabled("guest-shutdown,guest-set-time").is_ok());
        assert_eq!(parse_enabled("guest-get-load"), Err(ArgsError::UnknownCommand("guest-get-load".into())));
        assert_eq!(parse_enabled("guest-ping"), Err(ArgsError::NotAHelperCommand("guest-ping".into())));
        assert_eq!(
            parse_enabled("guest-shutdown,guest-shutdown"),
            Err(ArgsError::DuplicateCommand("guest-shutdown".into()))
        );
        assert_eq!(parse_enabled("guest-shutdown,"), Err(ArgsError::UnknownCommand("".into())));
    }

    #[test]
    fn conditions_are_helper_commands_parsed_by_the_policy_parser() {
        let c = parse_conditions("guest-shutdown \"mode=reboot\"\nguest-fstrim \"floor=4K\"").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].to_line(), "guest-fstrim \"floor=4K\"");
        // guest-file-open is opened by the helper, so its path rules travel too.
        assert_eq!(
            parse_conditions("guest-file-open \"path=/a/\"").unwrap()[0].to_line(),
            "guest-file-open \"path=/a/\""
        );
        assert_eq!(parse_conditions("guest-ping \"x=1\""), Err(ArgsError::NotAHelperCommand("guest-ping".into())));
        assert!(matches!(parse_conditions("guest-shutdown \"mode=off\""), Err(ArgsError::BadConditions(_))));
        assert!(matches!(parse_conditions("guest-shutdown"), Err(ArgsError::BadConditions(_))));
        assert!(matches!(parse_conditions(""), Err(ArgsError::BadConditions(_))));
        let a = p(&["--statedir", "/run", "--enabled", "guest-shutdown", "--conditions", "guest-shutdown mode=halt"])
            .unwrap();
        assert_eq!(a.enabled.conditions().len(), 1);
    }

    #[test]
    fn every_helper_command_can_be_enabled() {
        let all: Vec<_> = qga_policy::TABLE.iter().filter(|s| s.process == Process::Helper).map(|s| s.name).collect();
        let policy = parse_enabled(&all.join(",")).unwrap();
        assert_eq!(policy.enabled_commands().count(), all.len());
    }

    #[test]
    fn the_reload_sources_are_taken_as_given_once_each() {
        let base = ["--statedir", "/run", "--enabled", ""];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        let a = with(&[]).unwrap();
        assert_eq!(a.reload, qga_policy::reload::Sources::default());
        assert!(!a.front_files);
        let a = with(&[
            "--policy",
            "/etc/p",
            "--config",
            "/etc/c",
            "--config-required",
            "--cli-block",
            "guest-ping,guest-info",
            "--cli-allow",
            "guest-ping",
            "--front-files",
        ])
        .unwrap();
        assert_eq!(a.reload.policy, Some(PathBuf::from("/etc/p")));
        assert_eq!(
            a.reload.config,
            Some(qga_policy::reload::ConfigFile { path: PathBuf::from("/etc/c"), required: true })
        );
        assert_eq!(a.reload.block.len(), 2);
        assert_eq!(a.reload.allow.len(), 1);
        assert!(a.front_files);
        assert_eq!(with(&["--policy", "p"]), Err(ArgsError::NotAbsolute("--policy")));
        assert_eq!(with(&["--config-required"]), Err(ArgsError::Missing("--config")));
        assert_eq!(with(&["--front-files", "--front-files"]), Err(ArgsError::Duplicate("--front-files")));
    }

    #[test]
    fn hook_timeout_is_a_plain_positive_number_of_seconds() {
        for bad in ["0", "-1", "+5", " 5", "1e3", "", "86401", "99999999999999999999"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timeout("86400"), Ok(Duration::from_secs(86400)));
    }

    #[test]
    fn the_freeze_time_limit_is_optional_and_a_plain_positive_number_of_seconds() {
        let base = ["--statedir", "/run", "--enabled", ""];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        assert_eq!(with(&[]).unwrap().freeze_timeout, None);
        assert_eq!(with(&["--fsfreeze-timeout", "30"]).unwrap().freeze_timeout, Some(Duration::from_secs(30)));
        assert_eq!(with(&["--fsfreeze-timeout", "0"]), Err(ArgsError::BadFreezeTimeout("0".into())));
        assert_eq!(
            with(&["--fsfreeze-timeout", "1", "--fsfreeze-timeout", "2"]),
            Err(ArgsError::Duplicate("--fsfreeze-timeout"))
        );
    }

    #[test]
    fn every_command_line_the_front_writes_parses_back_to_itself() {
        let hooks = [None, Some(PathBuf::from("/etc/qemu/fsfreeze-hook"))];
        let narrowed = qga_policy::parse(
            "default allow\nallow guest-shutdown mode=reboot\nallow guest-fstrim \"floor=4K\"\nallow guest-file-open path=/a/\n",
            "p",
        )
        .unwrap()
        .policy();
        let policies = [
            Policy::only([]),
            helper_commands(&Policy::allow_all()),
            Policy::only([Command::Shutdown]),
            helper_commands(&narrowed),
        ];
        // The helper's commands' conditions travel (guest-file-open's included: the helper opens).
        assert_eq!(helper_commands(&narrowed).conditions().len(), 3);
        for hook in &hooks {
            for enabled in &policies {
                for sandbox in [SandboxMode::Enforce, SandboxMode::Log, SandboxMode::Off] {
                    for cpu in [None, Some(0), Some(3)] {
                        for (hook_timeout, freeze_timeout) in
                            [(DEFAULT_HOOK_TIMEOUT, None), (Duration::from_secs(5), Some(Duration::from_secs(30)))]
                        {
                            let a = Args {
                                statedir: PathBuf::from("/run/qemu-ga-rs"),
                                enabled: enabled.clone(),
                                hook: hook.clone(),
                                hook_timeout,
                                freeze_timeout,
                                sandbox,
                                cpu,
                                reload: Default::default(),
                                front_files: false,
                                background_start: false,
                                verify_front_id: None,
                            };
                            assert_eq!(parse(a.to_argv()), Ok(a.clone()), "{:?}", a.to_argv());
                            let reload = qga_policy::reload::Sources {
                                policy: Some(PathBuf::from("/etc/qemu-ga-rs/policy")),
                                config: Some(qga_policy::reload::ConfigFile {
                                    path: PathBuf::from("/etc/qemu/qemu-ga.conf"),
                                    required: hook.is_some(),
                                }),
                                block: qga_policy::split_list("guest-ping,guest-info", CLI_BLOCK_SOURCE),
                                allow: qga_policy::split_list("guest-ping", CLI_ALLOW_SOURCE),
                            };
                            let a = Args {
                                reload,
                                front_files: cpu.is_some(),
                                background_start: cpu == Some(3),
                                verify_front_id: cpu.map(|_| 61925),
                                ..a
                            };
                            assert_eq!(parse(a.to_argv()), Ok(a.clone()), "{:?}", a.to_argv());
                        }
                    }
                }
            }
        }
    }
}
