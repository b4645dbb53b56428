//! The merge: one effective [`Policy`] from the policy file, the config lists (`block-rpcs`,
//! `blacklist`, `allow-rpcs`) and the options (`-b`/`--block-rpcs`/`--blacklist`,
//! `-a`/`--allow-rpcs`), with a record of what decided each command.
//!
//! Precedence (a command runs only if every layer lets it):
//! 1. the policy file decides first (its exact rule, else its globs, else its `default`);
//! 2. an allow list, if any entry exists from any source, restricts: a command not on it is
//!    disabled. It never enables a command the file disables: the file is the admin's ceiling;
//! 3. a block always wins, over the file and over the allow list;
//! 4. the frozen state overrides all of it at run time: that is [`crate::gate::decide`]'s job,
//!    not the merge's.
//!
//! Lists take exact command names, as qemu-ga's do, but unlike qemu-ga an unknown name is an
//! error (with the nearest command as a hint) instead of being silently ignored.

use crate::catalog::{Command, TABLE};
use crate::error::PolicyError;
use crate::file::{FileDecider, FileVerdict, PolicyFile};
use crate::gate::Policy;
use crate::names;

/// One name from a block or allow list, with where it came from for messages and the table:
/// e.g. "-b", "--blacklist", "--allow-rpcs", "config block-rpcs".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: String,
    pub source: String,
}

impl ListEntry {
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> ListEntry {
        ListEntry { name: name.into(), source: source.into() }
    }
}

/// Splits one option or config value the way qemu-ga does (on ','), trimming blanks around
/// each name. Empty items (a trailing comma, an empty value) are kept, so that [`merge`]
/// rejects them: silently dropping them could turn `-a ""` (allow nothing) into "no allow list"
/// (allow everything).
pub fn split_list(value: &str, source: &str) -> Vec<ListEntry> {
    value.split(',').map(|name| ListEntry::new(name.trim(), source)).collect()
}

/// Where a command stands with respect to the allow list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowListVerdict {
    /// No allow list was given: it restricts nothing.
    NoAllowList,
    /// On the allow list; the source of its first entry.
    Listed { source: String },
    /// An allow list exists and does not name the command.
    NotListed,
}

/// Why one command ended up enabled or disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub command: Command,
    pub enabled: bool,
    /// What the policy file said, and which line.
    pub file: FileVerdict,
    /// The allow list's say.
    pub allow_list: AllowListVerdict,
    /// The source of the first block entry naming the command, if any.
    pub blocked_by: Option<String>,
    /// The one-line reason shown by `--check-policy`, e.g. "blocked by -b",
    /// "/etc/qemu-ga-rs/policy:9 (deny guest-file-*)", "default allow (policy:3)".
    pub decided_by: String,
}

/// The merged result: the policy to enforce and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    policy: Policy,
    origin: String,
    explanations: Vec<Explanation>,
    warnings: Vec<String>,
}

impl Effective {
    /// The effective policy for [`crate::gate::decide`], guest-info and the helper.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy file's origin (path or [`crate::file::BUILTIN_ORIGIN`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// One explanation per command, in schema order.
    pub fn explanations(&self) -> &[Explanation] {
        &self.explanations
    }

    pub fn explanation(&self, cmd: Command) -> &Explanation {
        &self.explanations[cmd.index()]
    }

    /// Things that are legal but probably not what the admin meant: an allow-list name that
    /// the file or a block keeps disabled. The front logs them; they never change the result.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The `--check-policy` table: one line per command in schema order,
    /// `NAME<spaces>enabled|disabled<spaces>REASON`, names padded to the longest, each line
    /// ending in '\n'. Stable, so scripts may grep it.
    pub fn render_table(&self) -> String {
        let width = TABLE.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for e in &self.explanations {
            let state = if e.enabled { "enabled" } else { "disabled" };
            out.push_str(&format!("{:<width$}  {:<8}  {}\n", e.command.name(), state, e.decided_by));
        }
        out
    }
}

/// `--check-policy`'s reason for a command no policy can enable.
pub const UNAVAILABLE_REASON: &str = "not available on Linux (qemu-ga 7.2 disables it too)";

/// Checks every list name: exact, known, non-empty. The same checks for `-b` and `-a`, for the
/// options and for the config keys.
fn resolve_list(entries: &[ListEntry]) -> Result<Vec<(Command, &ListEntry)>, PolicyError> {
    entries
        .iter()
        .map(|e| {
            if e.name.is_empty() {
                return Err(PolicyError::EmptyListName { source: e.source.clone() });
            }
            if e.name.contains('*') {
                return Err(PolicyError::GlobInList { source: e.source.clone(), name: e.name.clone() });
            }
            names::lookup(&e.name).map(|cmd| (cmd, e)).map_err(|hint| PolicyError::UnknownListName {
                source: e.source.clone(),
                name: e.name.clone(),
                hint,
            })
        })
        .collect()
}

/// "FILE:LINE (RULE)" or "default allow|deny (FILE:LINE)".
fn file_reason(origin: &str, v: &FileVerdict) -> String {
    match &v.by {
        FileDecider::Rule { line, text } => format!("{origin}:{line} ({text})"),
        FileDecider::Default { line } => {
            let action = if v.enabled { "allow" } else { "deny" };
            format!("default {action} ({origin}:{line})")
        }
    }
}

/// Merges the file with the block and allow lists (see the module docs for the precedence).
/// `block` holds `-b`/`--block-rpcs`/`--blacklist` and config `block-rpcs`/`blacklist`;
/// `allow` holds `-a`/`--allow-rpcs` and config `allow-rpcs`. Each entry is one exact name
/// (use [`split_list`] for comma-separated values). `-b help` is the caller's to handle first.
pub fn merge(file: &PolicyFile, block: &[ListEntry], allow: &[ListEntry]) -> Result<Effective, PolicyError> {
    let blocked = resolve_list(block)?;
    let allowed = resolve_list(allow)?;
    let origin = file.origin().to_string();

    // The sources of the allow list, once each, in order: what a "not in allow list" line cites.
    let mut allow_sources: Vec<&str> = Vec::new();
    for (_, e) in &allowed {
        if !allow_sources.contains(&e.source.as_str()) {
            allow_sources.push(&e.source);
        }
    }

    let mut policy = Policy::only([]).with_conditions(file.conditions());
    let mut explanations = Vec::with_capacity(TABLE.len());
    for cmd in Command::all() {
        let fv = file.verdict(cmd).clone();
        let blocked_by = blocked.iter().find(|(c, _)| *c == cmd).map(|(_, e)| e.source.clone());
        let allow_list = if allowed.is_empty() {
            AllowListVerdict::NoAllowList
        } else {
            match allowed.iter().find(|(c, _)| *c == cmd) {
                Some((_, e)) => AllowListVerdict::Listed { source: e.source.clone() },
                None => AllowListVerdict::NotListed,
            }
        };
        let enabled =
            cmd.available() && fv.enabled && allow_list != AllowListVerdict::NotListed && blocked_by.is_none();

        // Cite the strongest layer that disabled it (platform, block, then file, then allow
        // list); for an enabled command, every layer that had a say.
        let decided_by = if !cmd.available() {
            UNAVAILABLE_REASON.to_string()
        } else if let Some(src) = &blocked_by {
            format!("blocked by {src}")
        } else if !fv.enabled {
            file_reason(&origin, &fv)
        } else {
            match &allow_list {
                AllowListVerdict::NotListed => format!("not in allow list ({})", allow_sources.join(", ")),
                AllowListVerdict::Listed { source } => {
                    format!("on allow list ({source}); {}", file_reason(&origin, &fv))
                }
                AllowListVerdict::NoAllowList => file_reason(&origin, &fv),
            }
        };
        policy.set(cmd, enabled);
        explanations.push(Explanation { command: cmd, enabled, file: fv, allow_list, blocked_by, decided_by });
    }

    let mut warnings = Vec::new();
    for (cmd, e) in &allowed {
        let ex = &explanations[cmd.index()];
        if !cmd.available() {
            warnings.push(format!("{}: {} stays disabled: {UNAVAILABLE_REASON}", e.source, cmd.name()));
        } else if let Some(src) = &ex.blocked_by {
            warnings.push(format!("{}: {} is also blocked by {src}; the block wins", e.source, cmd.name()));
        } else if !ex.file.enabled {
            warnings.push(format!(
                "{}: {} stays disabled by {}; an allow list cannot enable what the policy file disables",
                e.source,
                cmd.name(),
                file_reason(&origin, &ex.file)
            ));
        }
    }

    if policy.is_enabled(Command::FsfreezeFreeze) && !policy.is_enabled(Command::FsfreezeThaw) {
        warnings.push(format!(
            "{origin}: {} is enabled but {} is not: the host can freeze filesystems and never thaw them",
            Command::FsfreezeFreeze.name(),
            Command::FsfreezeThaw.name()
        ));
    }

    Ok(Effective { policy, origin, explanations, warnings })
}
