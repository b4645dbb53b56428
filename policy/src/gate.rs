//! The one gate: whether a command may run now ([`decide`]), and whether its arguments are
//! allowed ([`permit`]). Dispatch, guest-info, the handlers and the helper's re-check all call
//! these; nothing else decides.

use crate::catalog::{Command, COUNT};
use crate::rules::{Access, ArgList, Conditions, ExecRule, Range, ShutdownMode};

/// The effective policy: for each command, enabled or not, after merging the policy file, the
/// config keys and the command line (see [`mod@crate::merge`]), and the argument conditions of
/// the file's `allow` lines. A command unavailable on Linux
/// ([`crate::catalog::UNAVAILABLE_ON_LINUX`]) is never enabled, whatever is asked, as in 7.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    enabled: [bool; COUNT],
    /// In file order; a command with none here is unrestricted when enabled.
    conditions: Vec<Narrowing>,
}

/// One `allow` line's conditions: the command, what they say, and the words as written (the
/// front hands them to the helper, which parses them again with the same parser).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Narrowing {
    pub command: Command,
    pub conditions: Conditions,
    pub words: Vec<String>,
}

impl Narrowing {
    /// Parses `words` (KEY=VALUE each) as conditions of `command`.
    pub fn parse(command: Command, words: Vec<String>) -> Result<Narrowing, crate::rules::ConditionError> {
        let conditions = crate::rules::parse(command.name(), &words)?;
        Ok(Narrowing { command, conditions, words })
    }

    /// One line the policy file's word splitter reads back to the same words: the command
    /// name, then each word quoted.
    pub fn to_line(&self) -> String {
        let mut line = self.command.name().to_string();
        for w in &self.words {
            line.push_str(" \"");
            line.push_str(&w.replace('\\', "\\\\").replace('"', "\\\""));
            line.push('"');
        }
        line
    }
}

impl Policy {
    /// Every command enabled: qemu-ga's own behaviour.
    pub fn allow_all() -> Policy {
        Policy::only(Command::all())
    }

    /// Exactly the given commands enabled.
    pub fn only(commands: impl IntoIterator<Item = Command>) -> Policy {
        let mut enabled = [false; COUNT];
        for c in commands {
            enabled[c.index()] = c.available();
        }
        Policy { enabled, conditions: Vec::new() }
    }

    /// The same policy with these argument conditions (file order).
    pub fn with_conditions(mut self, conditions: Vec<Narrowing>) -> Policy {
        self.conditions = conditions;
        self
    }

    /// Every argument condition, in file order.
    pub fn conditions(&self) -> &[Narrowing] {
        &self.conditions
    }

    /// The argument conditions of one command, in file order; empty: unrestricted.
    pub fn conditions_of(&self, cmd: Command) -> impl Iterator<Item = &Conditions> + '_ {
        self.conditions.iter().filter(move |n| n.command == cmd).map(|n| &n.conditions)
    }

    pub fn is_enabled(&self, cmd: Command) -> bool {
        self.enabled[cmd.index()]
    }

    pub fn set(&mut self, cmd: Command, enabled: bool) {
        self.enabled[cmd.index()] = enabled && cmd.available();
    }

    /// The enabled commands, in schema order.
    pub fn enabled_commands(&self) -> impl Iterator<Item = Command> + '_ {
        Command::all().filter(|c| self.is_enabled(*c))
    }
}

/// What the gate says about one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Enabled,
    /// Disabled by the policy (file, config or command line).
    Disabled,
    /// Enabled by the policy but not allowed while filesystems are frozen.
    Frozen,
}

/// The gate. Order: the policy (allowlist restricts, a block always wins, both already merged
/// into `policy`), then the frozen state overrides: only the freeze allowlist runs while frozen.
pub fn decide(policy: &Policy, cmd: Command, frozen: bool) -> Decision {
    if frozen && !cmd.spec().allowed_while_frozen {
        Decision::Frozen
    } else if !policy.is_enabled(cmd) {
        Decision::Disabled
    } else {
        Decision::Enabled
    }
}

/// One request's arguments as far as a policy can narrow them: what the handler is about to
/// do (the front) or is doing (the helper, on its own reading of the request).
#[derive(Clone, Copy, Debug)]
pub enum Invocation<'a> {
    Shutdown {
        mode: ShutdownMode,
    },
    /// `step`: how far the clock would move, in seconds; `None` for the form without `time`.
    SetTime {
        step: Option<u64>,
    },
    /// The logical CPU ids the request changes.
    SetVcpus {
        cpus: &'a [u64],
    },
    /// The memory block ids the request changes.
    SetMemoryBlocks {
        blocks: &'a [u64],
    },
    Fstrim {
        minimum: u64,
    },
    FileOpen {
        path: &'a [u8],
        access: Access,
    },
    /// `env`: the request's `NAME=VALUE` strings.
    Exec {
        program: &'a [u8],
        args: &'a [Vec<u8>],
        env: &'a [Vec<u8>],
        input: bool,
        capture: bool,
    },
    SetUserPassword {
        user: &'a [u8],
        crypted: bool,
    },
    SshKeys {
        user: &'a [u8],
    },
}

/// What the policy lets a request do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant<'p> {
    /// No argument condition for the command: it does what 7.2 does.
    Unrestricted,
    /// An exec rule allows it: run it as that rule says (user, environment, limits).
    Exec(&'p ExecRule),
    /// Another rule allows it.
    Allowed,
}

/// What the policy refused, said to the host as a GenericError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn shown(b: &[u8]) -> String {
    // Bounded and one line: the text goes back to the host and into the log.
    let s = String::from_utf8_lossy(&b[..b.len().min(256)]);
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn in_ranges(ranges: &[Range], n: u64) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= n && n <= hi)
}

/// The argument gate: given an enabled command and what it is asked to do, the first rule of
/// the command that allows it, or why none does. Pure; the front calls it before anything is
/// done or sent, the helper again on what it actually does.
pub fn permit<'p>(policy: &'p Policy, cmd: Command, inv: &Invocation<'_>) -> Result<Grant<'p>, Refusal> {
    permit_among(cmd.name(), policy.conditions_of(cmd), inv)
}

/// [`permit`] over one command's rules (`name` for the error text), for callers holding the
/// rules rather than a [`Policy`].
pub fn permit_among<'p>(
    name: &str,
    rules: impl Iterator<Item = &'p Conditions>,
    inv: &Invocation<'_>,
) -> Result<Grant<'p>, Refusal> {
    let mut rules = rules.peekable();
    if rules.peek().is_none() {
        return Ok(Grant::Unrestricted);
    }
    let refuse = |what: String| Err(Refusal(format!("the policy does not allow {name} {what}")));
    // A rule's directory is a prefix only of what lies beneath it when the path is written
    // without `.`, `..` or empty components: anything else is refused before any rule is tried.
    if let Invocation::FileOpen { path, .. } = inv {
        if !normal_path(path) {
            return refuse(format!("'{}' (not an absolute path without '.', '..' or '//')", shown(path)));
        }
    }
    // The most specific reason seen, for the error text (e.g. the program is allowed but not
    // with these arguments).
    let mut reason: Option<String> = None;
    for rule in rules {
        match (rule, inv) {
            (Conditions::Shutdown(modes), Invocation::Shutdown { mode }) => {
                if modes.contains(mode) {
                    return Ok(Grant::Allowed);
                }
                return refuse(format!("mode '{}'", mode.name()));
            }
            (Conditions::SetTime { max_step }, Invocation::SetTime { step }) => {
                return match step {
                    Some(s) if s <= max_step => Ok(Grant::Allowed),
                    Some(s) => refuse(format!("a step of {s} seconds (at most {max_step})")),
                    None => refuse("without a time (from the hardware clock)".to_string()),
                };
            }
            (Conditions::SetVcpus(ranges), Invocation::SetVcpus { cpus }) => {
                return match cpus.iter().find(|c| !in_ranges(ranges, **c)) {
                    None => Ok(Grant::Allowed),
                    Some(c) => refuse(format!("logical-id {c}")),
                };
            }
            (Conditions::SetMemoryBlocks(ranges), Invocation::SetMemoryBlocks { blocks }) => {
                return match blocks.iter().find(|b| !in_ranges(ranges, **b)) {
                    None => Ok(Grant::Allowed),
                    Some(b) => refuse(format!("phys-index {b}")),
                };
            }
            (Conditions::Fstrim { floor }, Invocation::Fstrim { minimum }) => {
                if minimum >= floor {
                    return Ok(Grant::Allowed);
                }
                return refuse(format!("minimum {minimum} (at least {floor})"));
            }
            (Conditions::FileOpen(r), Invocation::FileOpen { path, access }) => {
                let matches = match &r.path {
                    crate::rules::PathPattern::Tree(dir) => path.starts_with(dir.as_bytes()) && path.len() > dir.len(),
                    crate::rules::PathPattern::Glob(g) => crate::rules::pattern_matches(g.as_bytes(), path, false),
                    crate::rules::PathPattern::Exact(p) => p.as_bytes() == *path,
                };
                if matches && r.access.covers(*access) {
                    return Ok(Grant::Allowed);
                }
                if matches {
                    reason = reason.or(Some(format!("'{}' in this mode", shown(path))));
                }
            }
            (Conditions::Exec(r), Invocation::Exec { program, args, env, input, capture }) => {
                if r.program.as_bytes() != *program {
                    continue;
                }
                let why = exec_mismatch(r, args, env, *input, *capture);
                match why {
                    None => return Ok(Grant::Exec(r)),
                    Some(w) => reason = reason.or(Some(format!("of '{}' {w}", shown(program)))),
                }
            }
            (Conditions::Password(r), Invocation::SetUserPassword { user, crypted }) => {
                if r.users.iter().any(|u| u.as_bytes() == *user) {
                    if r.crypted_only && !crypted {
                        reason = reason.or(Some("with a plain-text password (crypted only)".to_string()));
                        continue;
                    }
                    return Ok(Grant::Allowed);
                }
            }
            (Conditions::SshKeys(r), Invocation::SshKeys { user }) => {
                if r.users.iter().any(|u| u.as_bytes() == *user) {
                    return Ok(Grant::Allowed);
                }
            }
            // A request of another kind than the command's rules: a caller's mistake. Refuse.
            _ => return refuse("(arguments of another command)".to_string()),
        }
    }
    let what = match (reason, inv) {
        (Some(r), _) => r,
        (None, Invocation::FileOpen { path, .. }) => format!("'{}'", shown(path)),
        (None, Invocation::Exec { program, .. }) => format!("of '{}'", shown(program)),
        (None, Invocation::SetUserPassword { user, .. } | Invocation::SshKeys { user }) => {
            format!("for user '{}'", shown(user))
        }
        (None, _) => "with these arguments".to_string(),
    };
    refuse(what)
}

/// Absolute, with no `.`, `..` or empty component (so no `//` and no trailing `/`).
pub fn normal_path(path: &[u8]) -> bool {
    path.starts_with(b"/") && path[1..].split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Why an exec rule for the right program does not allow this request, or `None` if it does.
fn exec_mismatch(r: &ExecRule, args: &[Vec<u8>], env: &[Vec<u8>], input: bool, capture: bool) -> Option<String> {
    if let ArgList::Exact(patterns) = &r.args {
        let fits = patterns.len() == args.len()
            && patterns.iter().zip(args).all(|(p, a)| crate::rules::pattern_matches(p.as_bytes(), a, true));
        if !fits {
            return Some("with these arguments".to_string());
        }
    }
    if input && !r.input {
        return Some("with input-data".to_string());
    }
    if capture && !r.capture {
        return Some("with capture-output".to_string());
    }
    for e in env {
        let name = e.split(|&b| b == b'=').next().unwrap_or(&[]);
        if !r.pass_env.iter().any(|n| n.as_bytes() == name) {
            return Some(format!("with environment variable '{}'", shown(name)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_unavailable_on_linux_is_never_enabled() {
        let mut p = Policy::only([Command::GetDevices, Command::Ping]);
        assert_eq!(decide(&p, Command::GetDevices, false), Decision::Disabled);
        p.set(Command::GetDevices, true);
        assert!(!p.is_enabled(Command::GetDevices));
        assert!(!Policy::allow_all().is_enabled(Command::GetDevices));
        assert!(Policy::allow_all().is_enabled(Command::GetCpustats));
    }

    #[test]
    fn frozen_overrides_an_enabled_command() {
        let p = Policy::allow_all();
        assert_eq!(decide(&p, Command::FileOpen, true), Decision::Frozen);
        assert_eq!(decide(&p, Command::FileOpen, false), Decision::Enabled);
    }

    #[test]
    fn frozen_also_overrides_a_disabled_command_with_its_own_reason() {
        let p = Policy::only([Command::Ping]);
        assert_eq!(decide(&p, Command::FileOpen, true), Decision::Frozen);
    }

    #[test]
    fn a_disabled_allowlisted_command_stays_disabled_while_frozen() {
        let p = Policy::only([Command::Sync]);
        assert_eq!(decide(&p, Command::Ping, true), Decision::Disabled);
        assert_eq!(decide(&p, Command::Sync, true), Decision::Enabled);
    }
}

#[cfg(test)]
mod permit_tests {
    use super::*;

    /// `allow COMMAND KEY=VALUE...` lines (no quotes) as the file parser would read them; the
    /// file parser itself is tested in `policy/tests`, and importing it here would be a cycle.
    fn policy(text: &str) -> Policy {
        let conditions = text
            .lines()
            .map(|line| {
                let words: Vec<String> = line.split_whitespace().skip(1).map(str::to_string).collect();
                let cmd = Command::from_name(&words[0]).unwrap();
                Narrowing::parse(cmd, words[1..].to_vec()).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        Policy::allow_all().with_conditions(conditions)
    }

    fn v(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn without_conditions_an_enabled_command_is_unrestricted() {
        let p = Policy::allow_all();
        assert_eq!(
            permit(&p, Command::Shutdown, &Invocation::Shutdown { mode: ShutdownMode::Halt }),
            Ok(Grant::Unrestricted)
        );
    }

    #[test]
    fn shutdown_modes_outside_the_rule_are_refused_by_name() {
        let p = policy("allow guest-shutdown mode=powerdown,reboot\n");
        assert_eq!(
            permit(&p, Command::Shutdown, &Invocation::Shutdown { mode: ShutdownMode::Reboot }),
            Ok(Grant::Allowed)
        );
        assert_eq!(
            permit(&p, Command::Shutdown, &Invocation::Shutdown { mode: ShutdownMode::Halt }),
            Err(Refusal("the policy does not allow guest-shutdown mode 'halt'".into()))
        );
    }

    #[test]
    fn set_time_step_vcpu_range_and_fstrim_floor_are_enforced() {
        let p =
            policy("allow guest-set-time max-step=60\nallow guest-set-vcpus cpus=1-3\nallow guest-fstrim floor=4K\n");
        assert_eq!(permit(&p, Command::SetTime, &Invocation::SetTime { step: Some(60) }), Ok(Grant::Allowed));
        assert!(permit(&p, Command::SetTime, &Invocation::SetTime { step: Some(61) }).is_err());
        assert!(permit(&p, Command::SetTime, &Invocation::SetTime { step: None }).is_err());
        assert_eq!(permit(&p, Command::SetVcpus, &Invocation::SetVcpus { cpus: &[1, 3] }), Ok(Grant::Allowed));
        assert_eq!(
            permit(&p, Command::SetVcpus, &Invocation::SetVcpus { cpus: &[1, 0] }),
            Err(Refusal("the policy does not allow guest-set-vcpus logical-id 0".into()))
        );
        assert_eq!(permit(&p, Command::Fstrim, &Invocation::Fstrim { minimum: 4096 }), Ok(Grant::Allowed));
        assert!(permit(&p, Command::Fstrim, &Invocation::Fstrim { minimum: 0 }).is_err());
    }

    #[test]
    fn file_open_rules_match_trees_globs_and_exact_paths_with_their_access() {
        let p = policy(
            "allow guest-file-open path=/var/backup/ access=read,write,create\nallow guest-file-open path=/var/log/*.log\n",
        );
        let open =
            |path: &str, access| permit(&p, Command::FileOpen, &Invocation::FileOpen { path: path.as_bytes(), access });
        let rw = Access { read: true, write: true, append: false, create: true };
        let r = Access { read: true, ..Access::default() };
        assert_eq!(open("/var/backup/x", rw), Ok(Grant::Allowed));
        assert!(open("/var/backup", r).is_err());
        assert!(open("/var/backupx/y", r).is_err());
        assert_eq!(open("/var/log/syslog.log", r), Ok(Grant::Allowed));
        assert_eq!(
            open("/var/log/syslog.log", rw),
            Err(Refusal("the policy does not allow guest-file-open '/var/log/syslog.log' in this mode".into()))
        );
        assert_eq!(
            open("/etc/shadow", r),
            Err(Refusal("the policy does not allow guest-file-open '/etc/shadow'".into()))
        );
        for escape in
            ["/var/backup/../../etc/shadow", "/var/backup/./x", "/var/backup//x", "var/backup/x", "/var/backup/x/"]
        {
            assert_eq!(
                open(escape, r),
                Err(Refusal(format!(
                    "the policy does not allow guest-file-open '{escape}' (not an absolute path without '.', '..' or '//')"
                ))),
            );
        }
    }

    #[test]
    fn exec_rules_check_program_arguments_input_capture_and_environment() {
        // guest-exec's rules, parsed as the file parser parses them (the gate holds no table).
        let rule = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            crate::rules::parse("guest-exec", &words).unwrap()
        };
        let rules = [
            rule(&["program=/bin/sh", "user=nobody", "arg=-c", "arg=exit *", "capture=yes", "pass-env=TZ"]),
            rule(&["program=/bin/cat", "user=nobody", "input=yes", "capture=yes"]),
        ];
        let exec = |program: &str, args: &[&str], env: &[&str], input, capture| {
            let (args, env) = (v(args), v(env));
            let inv = Invocation::Exec { program: program.as_bytes(), args: &args, env: &env, input, capture };
            permit_among("guest-exec", rules.iter(), &inv).map(|g| matches!(g, Grant::Exec(_)))
        };
        assert_eq!(exec("/bin/sh", &["-c", "exit 3"], &["TZ=UTC"], false, true), Ok(true));
        assert_eq!(exec("/bin/cat", &[], &[], true, true), Ok(true));
        let refused = |r: Result<bool, Refusal>| r.unwrap_err().0;
        assert_eq!(
            refused(exec("/bin/rm", &["-rf", "/"], &[], false, false)),
            "the policy does not allow guest-exec of '/bin/rm'"
        );
        assert_eq!(
            refused(exec("sh", &["-c", "exit 3"], &[], false, false)),
            "the policy does not allow guest-exec of 'sh'"
        );
        assert_eq!(
            refused(exec("/bin/sh", &["-c", "reboot"], &[], false, false)),
            "the policy does not allow guest-exec of '/bin/sh' with these arguments"
        );
        assert_eq!(
            refused(exec("/bin/sh", &["-c", "exit 1"], &[], true, false)),
            "the policy does not allow guest-exec of '/bin/sh' with input-data"
        );
        assert_eq!(
            refused(exec("/bin/sh", &["-c", "exit 1"], &["LD_PRELOAD=/x"], false, false)),
            "the policy does not allow guest-exec of '/bin/sh' with environment variable 'LD_PRELOAD'"
        );
    }
}
