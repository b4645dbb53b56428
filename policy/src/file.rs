//! The policy file: a hand-edited text file that says which commands the agent answers.
//!
//! Grammar (one rule per line; `man 5 qemu-ga-rs-policy` has the full text):
//!
//! ```text
//! file    = { line }
//! line    = [ rule ] [ "#" comment ] NEWLINE
//! rule    = "default" ( "allow" | "deny" )
//!         | ( "allow" | "deny" ) ( NAME | GLOB )
//! NAME    = a command name from the table, e.g. guest-ping
//! GLOB    = a NAME-like word with one or more "*", each matching any run of characters
//! ```
//!
//! Exactly one `default` line. Line order does not matter: an exact name beats any glob, the
//! globs that match one command must agree, and two rules for the same name are an error. So
//! every command's verdict comes from one line, and a reader never has to replay the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::catalog::{Command, COUNT};
use crate::error::PolicyError;
use crate::gate::Narrowing;
use crate::gate::Policy;
use crate::names;
use crate::rules;

/// Where the agent looks for its policy when neither `--policy` nor config `policy` names one.
pub const DEFAULT_PATH: &str = "/etc/qemu-ga-rs/policy";

/// The origin name of the built-in copy of `default.policy`, used when [`DEFAULT_PATH`] is missing.
pub const BUILTIN_ORIGIN: &str = "built-in:default.policy";

/// A policy file is a few dozen lines; anything much larger is not one.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;

/// `O_NONBLOCK`, so that opening a FIFO put at the policy path fails the regular-file check
/// instead of hanging the agent at start. std has no constant for it; the value differs on a
/// few architectures.
#[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "mips32r6", target_arch = "mips64r6"))]
const O_NONBLOCK: i32 = 0o200;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const O_NONBLOCK: i32 = 0x4000;
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const O_NONBLOCK: i32 = 0o4000;

/// What a rule or the default does to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }

    pub fn enables(self) -> bool {
        self == Action::Allow
    }
}

/// One `allow`/`deny` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line number.
    pub line: usize,
    pub action: Action,
    /// The name or glob as written.
    pub pattern: String,
    /// Whether `pattern` has a `*` (and so is weaker than an exact name).
    pub glob: bool,
    /// The commands it matches, in schema order (never empty).
    pub commands: Vec<Command>,
    /// An `allow` of one exact command with `KEY=VALUE` conditions: what they say, and the
    /// words as written (for messages and the helper's command line).
    pub conditions: Option<Narrowing>,
}

impl Rule {
    /// The rule as it would be written, e.g. "deny guest-file-*" (conditions as written but
    /// unquoted, so for messages only).
    pub fn text(&self) -> String {
        match &self.conditions {
            None => format!("{} {}", self.action.as_str(), self.pattern),
            Some(n) => format!("{} {} {}", self.action.as_str(), self.pattern, n.words.join(" ")),
        }
    }
}

/// A line with a `"` left open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenQuote;

/// Splits one line into words: blanks separate them, `#` outside quotes starts a comment, and
/// inside a word `"..."` quotes blanks and `#` (`\"` and `\\` escape inside quotes). Command
/// names never contain either character, so lines without quotes read as they always did.
/// `Err` for a quote left open.
pub fn split_words(line: &str) -> Result<Vec<String>, OpenQuote> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(OpenQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => return Err(OpenQuote),
                        },
                        Some(other) => w.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    Ok(words)
}

/// Which line of the file decided one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileDecider {
    /// An `allow`/`deny` line: its number and text.
    Rule { line: usize, text: String },
    /// No rule names the command: the `default` line.
    Default { line: usize },
}

/// What the file alone says about one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileVerdict {
    pub enabled: bool,
    pub by: FileDecider,
}

/// A parsed, fully checked policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    origin: String,
    default: Action,
    default_line: usize,
    rules: Vec<Rule>,
    /// Indexed by `Command::index()`.
    verdicts: Vec<FileVerdict>,
}

impl PolicyFile {
    /// The name used in messages: the path as given, or [`BUILTIN_ORIGIN`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether this is the built-in default (the default path did not exist).
    pub fn is_builtin(&self) -> bool {
        self.origin == BUILTIN_ORIGIN
    }

    pub fn default_action(&self) -> Action {
        self.default
    }

    pub fn default_line(&self) -> usize {
        self.default_line
    }

    /// The `allow`/`deny` lines, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What the file says about `cmd`, and which line said it.
    pub fn verdict(&self, cmd: Command) -> &FileVerdict {
        &self.verdicts[cmd.index()]
    }

    /// The file's policy on its own, before `-b`/`-a` and the config lists.
    pub fn policy(&self) -> Policy {
        Policy::only(Command::all().filter(|c| self.verdict(*c).enabled)).with_conditions(self.conditions())
    }

    /// The argument conditions of the `allow` lines, in file order, with their command.
    pub fn conditions(&self) -> Vec<Narrowing> {
        self.rules.iter().filter_map(|r| r.conditions.clone()).collect()
    }
}

/// Parses policy text. `origin` names it in messages (normally the path). Pure: no file system.
pub fn parse(text: &str, origin: &str) -> Result<PolicyFile, PolicyError> {
    let o = || origin.to_string();
    let mut default: Option<(Action, usize)> = None;
    let mut rules: Vec<Rule> = Vec::new();

    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        let words = split_words(raw).map_err(|OpenQuote| PolicyError::UnterminatedQuote { origin: o(), line })?;
        let Some(keyword) = words.first().map(String::as_str) else { continue };
        let keyword: &'static str = match keyword {
            "default" => "default",
            "allow" => "allow",
            "deny" => "deny",
            other => {
                return Err(PolicyError::UnknownKeyword {
                    origin: o(),
                    line,
                    word: other.to_string(),
                    hint: keyword_hint(other),
                })
            }
        };
        let Some(arg) = words.get(1).map(String::as_str) else {
            return Err(PolicyError::MissingArgument { origin: o(), line, keyword });
        };
        // After the name only KEY=VALUE conditions may follow (and only on an exact allow).
        if let Some(extra) = words[2..].iter().find(|w| keyword == "default" || !w.contains('=')) {
            return Err(PolicyError::TrailingText { origin: o(), line, text: extra.to_string() });
        }
        let condition_words = &words[2..];

        if keyword == "default" {
            let action = match arg {
                "allow" => Action::Allow,
                "deny" => Action::Deny,
                other => return Err(PolicyError::BadDefault { origin: o(), line, word: other.to_string() }),
            };
            if let Some((_, first_line)) = default {
                return Err(PolicyError::DuplicateDefault { origin: o(), line, first_line });
            }
            default = Some((action, line));
            continue;
        }

        let action = if keyword == "allow" { Action::Allow } else { Action::Deny };
        let glob = arg.contains('*');
        if !condition_words.is_empty() && (glob || action == Action::Deny) {
            return Err(PolicyError::ConditionsNotAllowed { origin: o(), line, rule: format!("{keyword} {arg}") });
        }
        let commands = if glob {
            if !names::glob_is_well_formed(arg) {
                return Err(PolicyError::BadGlob { origin: o(), line, pattern: arg.to_string() });
            }
            let matched = names::glob_commands(arg);
            if matched.is_empty() {
                return Err(PolicyError::GlobMatchesNothing { origin: o(), line, pattern: arg.to_string() });
            }
            matched
        } else {
            match names::lookup(arg) {
                Ok(cmd) => vec![cmd],
                Err(hint) => {
                    return Err(PolicyError::UnknownCommand { origin: o(), line, name: arg.to_string(), hint })
                }
            }
        };
        let conditions = if condition_words.is_empty() {
            None
        } else {
            let conditions = rules::parse(arg, condition_words).map_err(|error| PolicyError::BadConditions {
                origin: o(),
                line,
                error,
            })?;
            Some(Narrowing { command: commands[0], conditions, words: condition_words.to_vec() })
        };
        let rule = Rule { line, action, pattern: arg.to_string(), glob, commands, conditions };
        check_against_earlier(&rule, &rules, origin)?;
        rules.push(rule);
    }

    let Some((default, default_line)) = default else {
        return Err(PolicyError::MissingDefault { origin: o() });
    };
    let verdicts = Command::all().map(|cmd| resolve(cmd, &rules, default, default_line)).collect::<Vec<_>>();
    debug_assert_eq!(verdicts.len(), COUNT);
    Ok(PolicyFile { origin: o(), default, default_line, rules, verdicts })
}

/// Enforces "no two rules of the same specificity disagree, no rule twice": the same pattern
/// twice is a duplicate (same action) or a contradiction (opposite action); two different globs
/// that share a command must have the same action. Exact names sharing a command have the same
/// pattern, so the first check covers them; an exact name and a glob never conflict (the name
/// wins, that is the point of writing it).
fn check_against_earlier(rule: &Rule, earlier: &[Rule], origin: &str) -> Result<(), PolicyError> {
    for prev in earlier {
        if prev.pattern == rule.pattern && (prev.conditions.is_some() || rule.conditions.is_some()) {
            if prev.action != rule.action || prev.conditions.is_none() || rule.conditions.is_none() {
                // `allow X` beside `allow X KEY=...` (or `deny X`) would leave X both
                // unrestricted and narrowed: say which line to drop.
                return Err(PolicyError::ConditionsConflict {
                    origin: origin.to_string(),
                    line: rule.line,
                    rule: rule.text(),
                    other_line: prev.line,
                    other_rule: prev.text(),
                });
            }
            let kind = rule.conditions.as_ref().map(|n| n.conditions.kind());
            if kind.is_some_and(|k| !k.repeatable()) {
                return Err(PolicyError::DuplicateRule {
                    origin: origin.to_string(),
                    line: rule.line,
                    rule: rule.text(),
                    first_line: prev.line,
                });
            }
            continue;
        }
        if prev.pattern == rule.pattern {
            return Err(if prev.action == rule.action {
                PolicyError::DuplicateRule {
                    origin: origin.to_string(),
                    line: rule.line,
                    rule: rule.text(),
                    first_line: prev.line,
                }
            } else {
                PolicyError::ContradictoryRule {
                    origin: origin.to_string(),
                    line: rule.line,
                    rule: rule.text(),
                    command: rule.commands[0].name(),
                    other_line: prev.line,
                    other_rule: prev.text(),
                }
            });
        }
        if rule.glob && prev.glob && prev.action != rule.action {
            if let Some(shared) = rule.commands.iter().find(|c| prev.commands.contains(c)) {
                return Err(PolicyError::ContradictoryRule {
                    origin: origin.to_string(),
                    line: rule.line,
                    rule: rule.text(),
                    command: shared.name(),
                    other_line: prev.line,
                    other_rule: prev.text(),
                });
            }
        }
    }
    Ok(())
}

/// One command's verdict: its exact rule, else the first glob that matches it (all matching
/// globs agree, so "first" only picks which line the explanation cites), else the default.
fn resolve(cmd: Command, rules: &[Rule], default: Action, default_line: usize) -> FileVerdict {
    let matching = |want_glob: bool| rules.iter().find(|r| r.glob == want_glob && r.commands.contains(&cmd));
    match matching(false).or_else(|| matching(true)) {
        Some(r) => FileVerdict { enabled: r.action.enables(), by: FileDecider::Rule { line: r.line, text: r.text() } },
        None => FileVerdict { enabled: default.enables(), by: FileDecider::Default { line: default_line } },
    }
}

/// "did you mean" for a misspelt keyword: only the three keywords, only near misses (two
/// edits; the keywords are short, so more would suggest one for almost any word).
fn keyword_hint(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    ["default", "allow", "deny"].into_iter().find(|k| names::distance(&lower, k) <= 2)
}

/// Opens, checks and parses a policy file.
///
/// The checks run on the opened file (fstat through the descriptor, not a second look-up of the
/// path), so what is checked is what is read: it must be a regular file, not group- or
/// world-writable, at most [`MAX_FILE_SIZE`] bytes, and valid UTF-8.
pub fn load_file(path: &Path) -> Result<PolicyFile, PolicyError> {
    let shown = path.display().to_string();
    let unreadable = |error: io::Error| PolicyError::Unreadable { path: shown.clone(), error };
    let file: File = OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(PolicyError::NotRegularFile { path: shown });
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(PolicyError::Writable { path: shown, mode });
    }
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(PolicyError::TooLarge { path: shown, limit: MAX_FILE_SIZE });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| PolicyError::NotUtf8 {
        origin: shown.clone(),
        line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
    })?;
    parse(text, &shown)
}

/// Loads `path` if it exists; if it does not (and only then), the built-in `default.policy`.
/// For the default location only: a path the admin named must exist, so use [`load_file`].
pub fn load_or_builtin(path: &Path) -> Result<PolicyFile, PolicyError> {
    match load_file(path) {
        Err(PolicyError::Unreadable { error, .. }) if error.kind() == io::ErrorKind::NotFound => Ok(builtin_default()),
        other => other,
    }
}

/// The policy the agent runs with: `explicit` (from `--policy` or config `policy`, which must
/// exist), else [`DEFAULT_PATH`], else the built-in default.
pub fn load_configured(explicit: Option<&Path>) -> Result<PolicyFile, PolicyError> {
    match explicit {
        Some(path) => load_file(path),
        None => load_or_builtin(Path::new(DEFAULT_PATH)),
    }
}

/// The shipped policy files, embedded so the agent and `--check-policy` never depend on where
/// (or whether) they were installed. Name and text.
pub const SHIPPED: [(&str, &str); 7] = [
    ("default.policy", include_str!("../default.policy")),
    ("allow-all.policy", include_str!("../allow-all.policy")),
    ("backup-only.policy", include_str!("../backup-only.policy")),
    ("monitoring-only.policy", include_str!("../monitoring-only.policy")),
    ("cloud-image.policy", include_str!("../cloud-image.policy")),
    ("exec-programs.policy", include_str!("../exec-programs.policy")),
    ("backup-appliance.policy", include_str!("../backup-appliance.policy")),
];

/// The text of the shipped `default.policy`.
pub const DEFAULT_POLICY_TEXT: &str = SHIPPED[0].1;

/// The shipped `default.policy`, parsed, with origin [`BUILTIN_ORIGIN`].
pub fn builtin_default() -> PolicyFile {
    match parse(DEFAULT_POLICY_TEXT, BUILTIN_ORIGIN) {
        Ok(p) => p,
        // The text is compiled in and a test parses it, so this cannot happen at run time; if it
        // somehow did, failing closed beats guessing.
        Err(e) => panic!("built-in default.policy does not parse: {e}"),
    }
}
