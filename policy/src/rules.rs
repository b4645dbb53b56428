//! Argument rules: the `KEY=VALUE` conditions an `allow` line may carry after a command name,
//! which narrow what that command may do (which shutdown modes, which programs, which paths…).
//!
//! ```text
//! allow guest-shutdown mode=powerdown,reboot
//! allow guest-exec program=/usr/bin/uptime user=nobody capture=yes
//! ```
//!
//! The kind of conditions a command takes is decided by its name ([`kind_of`]), not by the
//! command table, so that the syntax of every rule kind exists (and is checked) before the
//! command itself does: a rule for a command the agent does not have is still refused by the
//! file parser as an unknown command. Every value is checked here, at load; a rule this module
//! accepts needs no further validation when a request is checked against it ([`crate::gate`]).

use std::fmt;

/// Largest output one captured stream may keep: qemu-ga 7.2's own truncation point.
pub const MAX_OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;
/// The captured-output limit of an exec rule that names none.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 1024 * 1024;
/// The time limit of an exec rule that names none, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// The longest time limit an exec rule may give: a day.
pub const MAX_TIMEOUT: u64 = 24 * 60 * 60;
/// Bounds on lists inside one rule, so a rule is always small.
const MAX_LIST: usize = 64;

/// Which family of conditions a command takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    FileOpen,
    Exec,
    /// guest-set-user-password: user names, and optionally crypted passwords only.
    Password,
    /// guest-ssh-get/add/remove-authorized-keys: user names.
    SshKeys,
    Shutdown,
    SetTime,
    SetVcpus,
    SetMemoryBlocks,
    Fstrim,
}

/// The condition kind of a command name, or `None` for a command that takes no conditions
/// (its arguments change nothing a policy could want to narrow, or it has none: the suspend
/// modes are the three suspend commands themselves).
pub fn kind_of(command: &str) -> Option<Kind> {
    Some(match command {
        "guest-file-open" => Kind::FileOpen,
        "guest-exec" => Kind::Exec,
        "guest-set-user-password" => Kind::Password,
        "guest-ssh-get-authorized-keys" | "guest-ssh-add-authorized-keys" | "guest-ssh-remove-authorized-keys" => {
            Kind::SshKeys
        }
        "guest-shutdown" => Kind::Shutdown,
        "guest-set-time" => Kind::SetTime,
        "guest-set-vcpus" => Kind::SetVcpus,
        "guest-set-memory-blocks" => Kind::SetMemoryBlocks,
        "guest-fstrim" => Kind::Fstrim,
        _ => return None,
    })
}

impl Kind {
    /// The keys a rule of this kind may use, in the order the man page lists them.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::FileOpen => &["path", "access", "special"],
            Kind::Exec => {
                &["program", "user", "arg", "args", "input", "capture", "env", "pass-env", "timeout", "output-limit"]
            }
            Kind::Password => &["user", "crypted"],
            Kind::SshKeys => &["user"],
            Kind::Shutdown => &["mode"],
            Kind::SetTime => &["max-step"],
            Kind::SetVcpus => &["cpus"],
            Kind::SetMemoryBlocks => &["blocks"],
            Kind::Fstrim => &["floor"],
        }
    }

    /// Whether several rules of this kind may exist for one command (one per program, path
    /// tree or user group); the others say one thing about the command and take one line.
    pub fn repeatable(self) -> bool {
        matches!(self, Kind::FileOpen | Kind::Exec | Kind::Password | Kind::SshKeys)
    }

    /// The keys repeated within one rule, each occurrence adding an item.
    fn repeated_key(self, key: &str) -> bool {
        matches!((self, key), (Kind::Exec, "arg") | (Kind::Exec, "env"))
    }
}

/// One shutdown mode, as guest-shutdown names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    Powerdown,
    Halt,
    Reboot,
}

impl ShutdownMode {
    pub fn name(self) -> &'static str {
        match self {
            ShutdownMode::Powerdown => "powerdown",
            ShutdownMode::Halt => "halt",
            ShutdownMode::Reboot => "reboot",
        }
    }

    fn from_word(w: &str) -> Option<ShutdownMode> {
        match w {
            "powerdown" => Some(ShutdownMode::Powerdown),
            "halt" => Some(ShutdownMode::Halt),
            "reboot" => Some(ShutdownMode::Reboot),
            _ => None,
        }
    }
}

/// What a guest-file-open rule lets a request do with the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
}

impl Access {
    /// Whether every right `need` asks for is in `self`.
    pub fn covers(self, need: Access) -> bool {
        (self.read || !need.read)
            && (self.write || !need.write)
            && (self.append || !need.append)
            && (self.create || !need.create)
    }
}

/// Which paths a guest-file-open rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// `path=/dir/`: everything beneath the directory (not the directory itself).
    Tree(String),
    /// `path=/a/*.log`: `*` matches any run of characters other than `/`.
    Glob(String),
    /// `path=/etc/motd`: that file.
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOpenRule {
    pub path: PathPattern,
    pub access: Access,
    /// Device nodes and FIFOs may be opened (never by default).
    pub special: bool,
}

/// The argument lists an exec rule allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgList {
    /// `args=any`.
    Any,
    /// One pattern per argument (`arg=` repeated; none means no arguments at all); `*` in a
    /// pattern matches any run of characters.
    Exact(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRule {
    /// Absolute, normalised path; a request must name exactly this.
    pub program: String,
    /// The user it runs as (looked up when it runs; a missing user refuses the run).
    pub user: String,
    pub args: ArgList,
    pub input: bool,
    pub capture: bool,
    /// The environment it gets, in rule order: `NAME=VALUE` each.
    pub env: Vec<(String, String)>,
    /// Names the request's `env` may set (nothing else from the request is passed).
    pub pass_env: Vec<String>,
    /// Seconds; past it the program and its children are killed.
    pub timeout: u64,
    /// Bytes kept per captured stream; the rest is dropped and reported truncated.
    pub output_limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRule {
    pub users: Vec<String>,
    /// guest-set-user-password only: refuse plain-text passwords.
    pub crypted_only: bool,
}

/// An inclusive range of numbers.
pub type Range = (u64, u64);

/// The conditions of one `allow` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conditions {
    FileOpen(FileOpenRule),
    Exec(ExecRule),
    Password(AccountRule),
    SshKeys(AccountRule),
    Shutdown(Vec<ShutdownMode>),
    /// The largest step, in seconds, guest-set-time may move the clock; it also refuses the
    /// form without `time` (set from the hardware clock), whose step cannot be known ahead.
    SetTime {
        max_step: u64,
    },
    SetVcpus(Vec<Range>),
    SetMemoryBlocks(Vec<Range>),
    /// The smallest `minimum` guest-fstrim may ask for (an absent `minimum` is 0).
    Fstrim {
        floor: u64,
    },
}

impl Conditions {
    pub fn kind(&self) -> Kind {
        match self {
            Conditions::FileOpen(_) => Kind::FileOpen,
            Conditions::Exec(_) => Kind::Exec,
            Conditions::Password(_) => Kind::Password,
            Conditions::SshKeys(_) => Kind::SshKeys,
            Conditions::Shutdown(_) => Kind::Shutdown,
            Conditions::SetTime { .. } => Kind::SetTime,
            Conditions::SetVcpus(_) => Kind::SetVcpus,
            Conditions::SetMemoryBlocks(_) => Kind::SetMemoryBlocks,
            Conditions::Fstrim { .. } => Kind::Fstrim,
        }
    }
}

/// Why a rule's conditions were refused. The file parser adds `FILE:LINE:` in front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionError {
    /// The command takes no conditions.
    NoConditions {
        command: String,
    },
    /// A word without `=`.
    NotKeyValue {
        word: String,
    },
    UnknownKey {
        command: String,
        key: String,
        valid: &'static [&'static str],
    },
    RepeatedKey {
        key: String,
    },
    MissingKey {
        command: String,
        key: &'static str,
    },
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    /// Two keys that cannot be used together.
    Conflict {
        first: &'static str,
        second: &'static str,
    },
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionError::NoConditions { command } => write!(f, "{command} takes no argument conditions"),
            ConditionError::NotKeyValue { word } => write!(f, "'{word}' is not KEY=VALUE"),
            ConditionError::UnknownKey { command, key, valid } => {
                write!(f, "unknown key '{key}' for {command} (valid: {})", valid.join(", "))
            }
            ConditionError::RepeatedKey { key } => write!(f, "key '{key}' given twice"),
            ConditionError::MissingKey { command, key } => write!(f, "{command} rule needs '{key}='"),
            ConditionError::BadValue { key, value, expected } => {
                write!(f, "invalid {key}='{value}' (expected {expected})")
            }
            ConditionError::Conflict { first, second } => write!(f, "'{first}=' and '{second}=' exclude each other"),
        }
    }
}

fn bad(key: &str, value: &str, expected: &'static str) -> ConditionError {
    ConditionError::BadValue { key: key.to_string(), value: value.to_string(), expected }
}

/// Parses the `KEY=VALUE` words after `allow COMMAND`. `words` is never empty.
pub fn parse(command: &str, words: &[String]) -> Result<Conditions, ConditionError> {
    let kind = kind_of(command).ok_or_else(|| ConditionError::NoConditions { command: command.to_string() })?;
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(words.len());
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| ConditionError::NotKeyValue { word: w.clone() })?;
        if !kind.keys().contains(&k) {
            return Err(ConditionError::UnknownKey {
                command: command.to_string(),
                key: k.to_string(),
                valid: kind.keys(),
            });
        }
        if !kind.repeated_key(k) && pairs.iter().any(|(pk, _)| *pk == k) {
            return Err(ConditionError::RepeatedKey { key: k.to_string() });
        }
        pairs.push((k, v));
    }
    let one = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let need = |key: &'static str| one(key).ok_or(ConditionError::MissingKey { command: command.to_string(), key });
    Ok(match kind {
        Kind::FileOpen => Conditions::FileOpen(FileOpenRule {
            path: path_pattern(need("path")?)?,
            access: one("access").map(access).transpose()?.unwrap_or(Access { read: true, ..Access::default() }),
            special: one("special").map(|v| yes_no("special", v)).transpose()?.unwrap_or(false),
        }),
        Kind::Exec => Conditions::Exec(exec_rule(&pairs, need("program")?, need("user")?)?),
        Kind::Password => Conditions::Password(AccountRule {
            users: users(need("user")?)?,
            crypted_only: match one("crypted") {
                None | Some("any") => false,
                Some("only") => true,
                Some(v) => return Err(bad("crypted", v, "'only' or 'any'")),
            },
        }),
        Kind::SshKeys => Conditions::SshKeys(AccountRule { users: users(need("user")?)?, crypted_only: false }),
        Kind::Shutdown => Conditions::Shutdown(shutdown_modes(need("mode")?)?),
        Kind::SetTime => Conditions::SetTime { max_step: number("max-step", need("max-step")?, u64::MAX)? },
        Kind::SetVcpus => Conditions::SetVcpus(ranges("cpus", need("cpus")?)?),
        Kind::SetMemoryBlocks => Conditions::SetMemoryBlocks(ranges("blocks", need("blocks")?)?),
        Kind::Fstrim => Conditions::Fstrim { floor: size("floor", need("floor")?, u64::MAX)? },
    })
}

fn exec_rule(pairs: &[(&str, &str)], program: &str, user: &str) -> Result<ExecRule, ConditionError> {
    let one = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let program = absolute_path("program", program)?;
    if program.ends_with('/') || program.contains('*') {
        return Err(bad("program", &program, "the absolute path of one program"));
    }
    let user = user_name("user", user)?;
    let arg_words: Vec<String> = pairs.iter().filter(|(k, _)| *k == "arg").map(|(_, v)| v.to_string()).collect();
    let args = match one("args") {
        Some("any") if arg_words.is_empty() => ArgList::Any,
        Some("any") => return Err(ConditionError::Conflict { first: "args", second: "arg" }),
        Some("none") if arg_words.is_empty() => ArgList::Exact(Vec::new()),
        Some("none") => return Err(ConditionError::Conflict { first: "args", second: "arg" }),
        Some(v) => return Err(bad("args", v, "'any' or 'none'")),
        None => ArgList::Exact(arg_words),
    };
    if let ArgList::Exact(a) = &args {
        if a.len() > MAX_LIST {
            return Err(bad("arg", &a.len().to_string(), "at most 64 arguments"));
        }
    }
    let mut env = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| *k == "env") {
        let (name, value) = v.split_once('=').ok_or_else(|| bad("env", v, "NAME=VALUE"))?;
        if !env_name(name) {
            return Err(bad("env", v, "NAME=VALUE with NAME of letters, digits and '_'"));
        }
        if env.iter().any(|(n, _): &(String, String)| n == name) {
            return Err(bad("env", v, "each NAME once"));
        }
        env.push((name.to_string(), value.to_string()));
    }
    if env.len() > MAX_LIST {
        return Err(bad("env", &env.len().to_string(), "at most 64 variables"));
    }
    let pass_env = match one("pass-env") {
        None => Vec::new(),
        Some(v) => {
            let names: Vec<String> = v.split(',').map(str::to_string).collect();
            if names.len() > MAX_LIST || names.iter().any(|n| !env_name(n)) {
                return Err(bad("pass-env", v, "NAME[,NAME...] of letters, digits and '_'"));
            }
            names
        }
    };
    Ok(ExecRule {
        program,
        user,
        args,
        input: one("input").map(|v| yes_no("input", v)).transpose()?.unwrap_or(false),
        capture: one("capture").map(|v| yes_no("capture", v)).transpose()?.unwrap_or(false),
        env,
        pass_env,
        timeout: match one("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => match number("timeout", v, MAX_TIMEOUT)? {
                0 => return Err(bad("timeout", v, "seconds from 1 to 86400")),
                n => n,
            },
        },
        output_limit: match one("output-limit") {
            None => DEFAULT_OUTPUT_LIMIT,
            Some(v) => size("output-limit", v, MAX_OUTPUT_LIMIT)?,
        },
    })
}

fn env_name(n: &str) -> bool {
    !n.is_empty() && !n.as_bytes()[0].is_ascii_digit() && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn yes_no(key: &str, v: &str) -> Result<bool, ConditionError> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(bad(key, v, "'yes' or 'no'")),
    }
}

/// A decimal number of at most `max`, no sign, no leading `+`, no blanks.
fn number(key: &str, v: &str, max: u64) -> Result<u64, ConditionError> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad(key, v, "a decimal number"));
    }
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad(key, v, "a number in range")),
    }
}

/// Bytes: a decimal number with an optional `K`, `M` or `G` (powers of 1024), at most `max`.
fn size(key: &str, v: &str, max: u64) -> Result<u64, ConditionError> {
    let (digits, unit) = match v.as_bytes().last() {
        Some(b'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    let n = number(key, digits, u64::MAX).map_err(|_| bad(key, v, "bytes, optionally with K, M or G"))?;
    match n.checked_mul(unit) {
        Some(b) if b <= max => Ok(b),
        _ => Err(bad(key, v, "a size in range")),
    }
}

/// `1-3,5`: inclusive ranges of decimal numbers, each ascending.
fn ranges(key: &str, v: &str) -> Result<Vec<Range>, ConditionError> {
    let expected = "ranges such as 0-3,5";
    let mut out = Vec::new();
    for part in v.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo = number(key, lo, u64::MAX).map_err(|_| bad(key, v, expected))?;
        let hi = number(key, hi, u64::MAX).map_err(|_| bad(key, v, expected))?;
        if lo > hi || out.len() == MAX_LIST {
            return Err(bad(key, v, expected));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

fn shutdown_modes(v: &str) -> Result<Vec<ShutdownMode>, ConditionError> {
    let mut modes = Vec::new();
    for w in v.split(',') {
        match ShutdownMode::from_word(w) {
            Some(m) if !modes.contains(&m) => modes.push(m),
            _ => return Err(bad("mode", v, "powerdown, halt, reboot, comma-separated, each once")),
        }
    }
    Ok(modes)
}

/// `read,write,append,create`, each once, at least one.
fn access(v: &str) -> Result<Access, ConditionError> {
    let mut a = Access::default();
    for w in v.split(',') {
        let slot = match w {
            "read" => &mut a.read,
            "write" => &mut a.write,
            "append" => &mut a.append,
            "create" => &mut a.create,
            _ => return Err(bad("access", v, "read, write, append, create, comma-separated")),
        };
        if *slot {
            return Err(bad("access", v, "each right once"));
        }
        *slot = true;
    }
    Ok(a)
}

/// An absolute path with no `.` or `..` component, no empty component (`//`), and no NUL.
fn absolute_path(key: &str, v: &str) -> Result<String, ConditionError> {
    let expected = "an absolute path without '.', '..' or '//'";
    if !v.starts_with('/') || v.contains('\0') {
        return Err(bad(key, v, expected));
    }
    let inner = v.trim_end_matches('/');
    if inner.is_empty() && v != "/" {
        return Err(bad(key, v, expected));
    }
    for comp in inner.split('/').skip(1) {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(bad(key, v, expected));
        }
    }
    if v.len() > 1 && v.ends_with("//") {
        return Err(bad(key, v, expected));
    }
    Ok(v.to_string())
}

fn path_pattern(v: &str) -> Result<PathPattern, ConditionError> {
    let p = absolute_path("path", v)?;
    if p.ends_with('/') {
        if p.contains('*') {
            return Err(bad("path", v, "a directory (ending in '/') or a pattern, not both"));
        }
        Ok(PathPattern::Tree(p))
    } else if p.contains('*') {
        Ok(PathPattern::Glob(p))
    } else {
        Ok(PathPattern::Exact(p))
    }
}

/// A user name as useradd accepts it (letters, digits, `_`, `-`, `.`, not starting with `-`),
/// at most 32 bytes.
fn user_name(key: &str, v: &str) -> Result<String, ConditionError> {
    let ok = !v.is_empty()
        && v.len() <= 32
        && !v.starts_with('-')
        && v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad(key, v, "a user name"))
    }
}

fn users(v: &str) -> Result<Vec<String>, ConditionError> {
    let mut out: Vec<String> = Vec::new();
    for w in v.split(',') {
        let u = user_name("user", w)?;
        if out.contains(&u) || out.len() == MAX_LIST {
            return Err(bad("user", v, "user names, comma-separated, each once"));
        }
        out.push(u);
    }
    Ok(out)
}

/// Whether `text` matches `pattern`, `*` matching any run of bytes (`slash` false: none of
/// them a `/`). Greedy with one backtrack point: linear in practice, no recursion.
pub fn pattern_matches(pattern: &[u8], text: &[u8], slash: bool) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if pi < pattern.len() && pattern[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < pattern.len() && pattern[pi] == text[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            if !slash && text[st] == b'/' {
                return false;
            }
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(command: &str, words: &[&str]) -> Result<Conditions, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        parse(command, &words).map_err(|e| e.to_string())
    }

    #[test]
    fn exec_rule_defaults_are_the_narrow_ones() {
        let Ok(Conditions::Exec(r)) = p("guest-exec", &["program=/bin/true", "user=nobody"]) else { panic!() };
        assert_eq!(r.args, ArgList::Exact(vec![]));
        assert!(!r.input && !r.capture && r.env.is_empty() && r.pass_env.is_empty());
        assert_eq!((r.timeout, r.output_limit), (DEFAULT_TIMEOUT, DEFAULT_OUTPUT_LIMIT));
    }

    #[test]
    fn exec_rule_takes_every_key() {
        let r = p(
            "guest-exec",
            &[
                "program=/bin/sh",
                "user=nobody",
                "arg=-c",
                "arg=exit *",
                "input=yes",
                "capture=yes",
                "env=PATH=/usr/bin:/bin",
                "env=LANG=C",
                "pass-env=TZ,LC_ALL",
                "timeout=5",
                "output-limit=64K",
            ],
        );
        let Ok(Conditions::Exec(r)) = r else { panic!("{r:?}") };
        assert_eq!(r.args, ArgList::Exact(vec!["-c".into(), "exit *".into()]));
        assert_eq!(r.env, [("PATH".into(), "/usr/bin:/bin".into()), ("LANG".into(), "C".into())]);
        assert_eq!(r.pass_env, ["TZ", "LC_ALL"]);
        assert_eq!((r.timeout, r.output_limit, r.input, r.capture), (5, 65536, true, true));
    }

    #[test]
    fn bad_exec_rules_say_what_is_wrong() {
        let e = |w: &[&str]| p("guest-exec", w).unwrap_err();
        assert_eq!(e(&["user=nobody"]), "guest-exec rule needs 'program='");
        assert_eq!(e(&["program=/bin/true"]), "guest-exec rule needs 'user='");
        assert!(e(&["program=true", "user=nobody"]).starts_with("invalid program='true'"));
        assert!(e(&["program=/bin/../sbin/x", "user=nobody"]).starts_with("invalid program="));
        assert!(e(&["program=/bin/*", "user=nobody"]).starts_with("invalid program="));
        assert_eq!(
            e(&["program=/bin/true", "user=nobody", "args=any", "arg=x"]),
            "'args=' and 'arg=' exclude each other"
        );
        assert!(e(&["program=/bin/true", "user=nobody", "timeout=0"]).starts_with("invalid timeout='0'"));
        assert!(e(&["program=/bin/true", "user=nobody", "timeout=86401"]).starts_with("invalid timeout="));
        assert!(e(&["program=/bin/true", "user=nobody", "output-limit=17M"]).starts_with("invalid output-limit="));
        assert!(e(&["program=/bin/true", "user=nobody", "env=1X=y"]).starts_with("invalid env="));
        assert!(e(&["program=/bin/true", "user=nobody", "env=X=1", "env=X=2"]).starts_with("invalid env="));
        assert!(e(&["program=/bin/true", "user=-x"]).starts_with("invalid user="));
        assert_eq!(e(&["program=/bin/true", "program=/bin/false", "user=x"]), "key 'program' given twice");
        assert!(e(&["program=/bin/true", "user=x", "shell=yes"]).starts_with("unknown key 'shell' for guest-exec"));
        assert_eq!(e(&["program"]), "'program' is not KEY=VALUE");
        assert!(e(&["program=/bin/true", "user=x", "capture=true"]).starts_with("invalid capture='true'"));
    }

    #[test]
    fn privileged_command_rules_parse_and_check_their_values() {
        assert_eq!(
            p("guest-shutdown", &["mode=powerdown,reboot"]),
            Ok(Conditions::Shutdown(vec![ShutdownMode::Powerdown, ShutdownMode::Reboot]))
        );
        assert!(p("guest-shutdown", &["mode=off"]).is_err());
        assert!(p("guest-shutdown", &["mode=halt,halt"]).is_err());
        assert_eq!(p("guest-set-time", &["max-step=300"]), Ok(Conditions::SetTime { max_step: 300 }));
        assert!(p("guest-set-time", &["max-step=-1"]).is_err());
        assert_eq!(p("guest-set-vcpus", &["cpus=1-3,5"]), Ok(Conditions::SetVcpus(vec![(1, 3), (5, 5)])));
        assert!(p("guest-set-vcpus", &["cpus=3-1"]).is_err());
        assert!(p("guest-set-vcpus", &["cpus="]).is_err());
        assert_eq!(p("guest-set-memory-blocks", &["blocks=32-63"]), Ok(Conditions::SetMemoryBlocks(vec![(32, 63)])));
        assert_eq!(p("guest-fstrim", &["floor=1M"]), Ok(Conditions::Fstrim { floor: 1 << 20 }));
        assert!(p("guest-fstrim", &["floor=1T"]).is_err());
        assert_eq!(p("guest-ping", &["x=y"]), Err("guest-ping takes no argument conditions".into()));
        assert_eq!(p("guest-suspend-ram", &["mode=x"]), Err("guest-suspend-ram takes no argument conditions".into()));
    }

    #[test]
    fn file_and_account_rules_parse() {
        assert_eq!(
            p("guest-file-open", &["path=/var/backup/", "access=read,write,create"]),
            Ok(Conditions::FileOpen(FileOpenRule {
                path: PathPattern::Tree("/var/backup/".into()),
                access: Access { read: true, write: true, append: false, create: true },
                special: false
            }))
        );
        let Ok(Conditions::FileOpen(r)) = p("guest-file-open", &["path=/var/log/*.log"]) else { panic!() };
        assert_eq!(
            (r.path, r.access),
            (PathPattern::Glob("/var/log/*.log".into()), Access { read: true, ..Default::default() })
        );
        assert!(p("guest-file-open", &["path=/a/*/"]).is_err());
        assert!(p("guest-file-open", &["path=/a//b"]).is_err());
        assert!(p("guest-file-open", &["path=/a", "access=read,read"]).is_err());
        assert_eq!(
            p("guest-set-user-password", &["user=alice,bob", "crypted=only"]),
            Ok(Conditions::Password(AccountRule { users: vec!["alice".into(), "bob".into()], crypted_only: true }))
        );
        assert!(p("guest-set-user-password", &["user=alice,alice"]).is_err());
        assert!(p("guest-ssh-add-authorized-keys", &["user=alice", "crypted=only"]).is_err());
    }

    #[test]
    fn patterns_match_runs_and_optionally_stop_at_slashes() {
        assert!(pattern_matches(b"exit *", b"exit 3", true));
        assert!(pattern_matches(b"*", b"", true));
        assert!(!pattern_matches(b"exit *", b"exi", true));
        assert!(pattern_matches(b"/var/log/*.log", b"/var/log/syslog.log", false));
        assert!(!pattern_matches(b"/var/log/*.log", b"/var/log/a/b.log", false));
        assert!(pattern_matches(b"/var/log/*.log", b"/var/log/a/b.log", true));
    }
}
