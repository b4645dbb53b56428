//! Every way a policy can fail to load or merge. The agent refuses to start on any of them, so
//! each message names where the problem is (`FILE:LINE:` for the file, the option or config key
//! for `-b`/`-a` lists) and, for a misspelt command, the nearest real one.

use std::fmt;
use std::io;

use crate::rules::ConditionError;

/// A policy the agent did not fully understand. Display gives the one-line message to print.
#[derive(Debug)]
pub enum PolicyError {
    /// The file could not be opened or read (missing, permission denied, I/O error).
    Unreadable { path: String, error: io::Error },
    /// The opened file is not a regular file (a directory, a device, a FIFO).
    NotRegularFile { path: String },
    /// The opened file's mode lets its group or everyone write it.
    Writable { path: String, mode: u32 },
    /// The file, or a directory above it, has an owner other than root or the agent's user, or
    /// is writable by others (the reason names which and why).
    Untrusted { reason: String },
    /// The file is larger than [`crate::file::MAX_FILE_SIZE`].
    TooLarge { path: String, limit: u64 },
    /// A line is not valid UTF-8.
    NotUtf8 { origin: String, line: usize },
    /// The first word of a line is not `default`, `allow` or `deny`.
    UnknownKeyword { origin: String, line: usize, word: String, hint: Option<&'static str> },
    /// `allow`, `deny` or `default` with nothing after it.
    MissingArgument { origin: String, line: usize, keyword: &'static str },
    /// More words after the one argument a rule takes.
    TrailingText { origin: String, line: usize, text: String },
    /// `default` followed by something other than `allow` or `deny`.
    BadDefault { origin: String, line: usize, word: String },
    /// A glob with a character other than lower-case letters, digits, `-` and `*`.
    BadGlob { origin: String, line: usize, pattern: String },
    /// A name that is not one of the agent's commands.
    UnknownCommand { origin: String, line: usize, name: String, hint: Option<&'static str> },
    /// A glob that matches none of the agent's commands.
    GlobMatchesNothing { origin: String, line: usize, pattern: String },
    /// The same rule (same pattern) twice with the same action.
    DuplicateRule { origin: String, line: usize, rule: String, first_line: usize },
    /// Two rules of the same specificity that say opposite things about one command.
    ContradictoryRule {
        origin: String,
        line: usize,
        rule: String,
        command: &'static str,
        other_line: usize,
        other_rule: String,
    },
    /// A `"` left open.
    UnterminatedQuote { origin: String, line: usize },
    /// `KEY=VALUE` conditions on a `deny` or a glob: only an exact `allow` narrows.
    ConditionsNotAllowed { origin: String, line: usize, rule: String },
    /// A rule's conditions are invalid (unknown key, bad value, missing key…).
    BadConditions { origin: String, line: usize, error: ConditionError },
    /// A plain `allow`/`deny` of a command beside an `allow` of it with conditions.
    ConditionsConflict { origin: String, line: usize, rule: String, other_line: usize, other_rule: String },
    /// No `default` line.
    MissingDefault { origin: String },
    /// A second `default` line.
    DuplicateDefault { origin: String, line: usize, first_line: usize },
    /// A `-b`/`-a` (or config list) entry that is empty, e.g. from a trailing comma.
    EmptyListName { source: String },
    /// A `-b`/`-a` (or config list) entry that is not one of the agent's commands.
    UnknownListName { source: String, name: String, hint: Option<&'static str> },
    /// A `-b`/`-a` entry with a `*`: those lists take exact names, as in qemu-ga.
    GlobInList { source: String, name: String },
    /// The config file (re-read for its block and allow lists) could not be read.
    ConfigUnreadable { path: String, message: String },
    /// The config file is not a valid key file, or a list key's value has an invalid escape.
    Config { path: String, line: usize, message: String },
}

/// "; did you mean 'x'?" or nothing.
fn hint(h: &Option<&'static str>) -> String {
    match h {
        Some(name) => format!("; did you mean '{name}'?"),
        None => String::new(),
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PolicyError::*;
        match self {
            Unreadable { path, error } => write!(f, "{path}: cannot read policy file: {error}"),
            NotRegularFile { path } => write!(f, "{path}: policy file is not a regular file"),
            Writable { path, mode } => write!(
                f,
                "{path}: policy file is group- or world-writable (mode {:04o}); \
                 make it writable by its owner only (chmod go-w)",
                mode & 0o7777
            ),
            Untrusted { reason } => write!(f, "policy file refused: {reason}"),
            TooLarge { path, limit } => {
                write!(f, "{path}: policy file is larger than {limit} bytes")
            }
            NotUtf8 { origin, line } => write!(f, "{origin}:{line}: line is not valid UTF-8"),
            UnknownKeyword { origin, line, word, hint: h } => write!(
                f,
                "{origin}:{line}: unknown keyword '{word}' (expected 'default', 'allow' or 'deny'){}",
                hint(h)
            ),
            MissingArgument { origin, line, keyword } => {
                if *keyword == "default" {
                    write!(f, "{origin}:{line}: 'default' needs 'allow' or 'deny'")
                } else {
                    write!(f, "{origin}:{line}: '{keyword}' needs a command name or glob")
                }
            }
            TrailingText { origin, line, text } => {
                write!(f, "{origin}:{line}: unexpected '{text}' (one command name or glob per line)")
            }
            BadDefault { origin, line, word } => {
                write!(f, "{origin}:{line}: 'default' must be followed by 'allow' or 'deny', not '{word}'")
            }
            BadGlob { origin, line, pattern } => {
                write!(f, "{origin}:{line}: invalid glob '{pattern}' (only lower-case letters, digits, '-' and '*')")
            }
            UnknownCommand { origin, line, name, hint: h } => {
                write!(f, "{origin}:{line}: unknown command '{name}'{}", hint(h))
            }
            GlobMatchesNothing { origin, line, pattern } => {
                write!(f, "{origin}:{line}: glob '{pattern}' matches no command")
            }
            DuplicateRule { origin, line, rule, first_line } => {
                write!(f, "{origin}:{line}: duplicate rule '{rule}' (already at line {first_line})")
            }
            ContradictoryRule { origin, line, rule, command, other_line, other_rule } => {
                write!(f, "{origin}:{line}: '{rule}' contradicts line {other_line} '{other_rule}' for {command}")
            }
            UnterminatedQuote { origin, line } => write!(f, "{origin}:{line}: unterminated '\"'"),
            ConditionsNotAllowed { origin, line, rule } => write!(
                f,
                "{origin}:{line}: '{rule}' cannot take KEY=VALUE conditions (only 'allow' of one exact command can)"
            ),
            BadConditions { origin, line, error } => write!(f, "{origin}:{line}: {error}"),
            ConditionsConflict { origin, line, rule, other_line, other_rule } => write!(
                f,
                "{origin}:{line}: '{rule}' conflicts with line {other_line} '{other_rule}': a command is either \
                 allowed with conditions or without, not both"
            ),
            MissingDefault { origin } => {
                write!(f, "{origin}: no 'default allow' or 'default deny' line")
            }
            DuplicateDefault { origin, line, first_line } => {
                write!(f, "{origin}:{line}: second 'default' line (first at line {first_line})")
            }
            EmptyListName { source } => write!(f, "{source}: empty command name"),
            UnknownListName { source, name, hint: h } => {
                write!(f, "{source}: unknown command '{name}'{}", hint(h))
            }
            GlobInList { source, name } => {
                write!(f, "{source}: '{name}': globs are only supported in the policy file; name each command")
            }
            ConfigUnreadable { path, message } => write!(f, "{path}: cannot read config file: {message}"),
            Config { path, line, message } => write!(f, "{path}:{line}: {message}"),
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PolicyError::Unreadable { error, .. } => Some(error),
            _ => None,
        }
    }
}
