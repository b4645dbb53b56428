//! Where the effective policy comes from, read the same way at start-up (by the front, as root)
//! and on a reload (by the privileged helper, which is root and the authority): the policy file,
//! the config file's block and allow lists, and the `-b`/`-a` lists of the command line.
//!
//! What a reload may change: anything the front's start-up sandbox already covers. The front
//! enters an empty filesystem view and a narrower system call filter when it starts without the
//! `guest-file-*` commands; a policy that enables them then needs a restart ([`needs_restart`]).
//! Narrowing never does. Argument-level rules, once the policy file has them, are part of the
//! same [`Effective`] and reload with it.

use crate::catalog::Command;
use crate::error::PolicyError;
use crate::gate::Policy;
use crate::keyfile::KeyFile;
use crate::merge::{merge, Effective, ListEntry};
use crate::rules::{Access, Conditions, PathPattern};
use crate::trust;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where a config list entry came from, for messages.
pub const SOURCE_CONFIG_BLOCK: &str = "config block-rpcs";
pub const SOURCE_CONFIG_BLACKLIST: &str = "config blacklist";
pub const SOURCE_CONFIG_ALLOW: &str = "config allow-rpcs";

/// The largest config file read: far above any real one, and it keeps `-c /dev/zero` from
/// exhausting memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The config file the agent started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Named with `-c`: it must exist. Otherwise (`$QGA_CONF`, the default path) a missing file
    /// means no settings.
    pub required: bool,
}

/// Everything the effective policy is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// `--policy` or the config's `policy` key as given at start-up; `None` is the default path
    /// (or the built-in default where it does not exist). Fixed for the agent's lifetime.
    pub policy: Option<PathBuf>,
    /// Re-read on a reload for its lists.
    pub config: Option<ConfigFile>,
    /// The command line's lists, fixed for the agent's lifetime.
    pub block: Vec<ListEntry>,
    pub allow: Vec<ListEntry>,
}

/// Reads a config file, refusing one over [`MAX_CONFIG_BYTES`] and one that someone other than
/// root or the agent's user could have written (it names the freeze hook root runs; see
/// [`trust`]).
pub fn read_config_file(path: &Path) -> io::Result<Vec<u8>> {
    // Checked before it is opened, so that a FIFO there is refused rather than waited on.
    trust::check_file_to_act_on(path).map_err(|e| match e.why {
        trust::Why::Io(io) => io,
        _ => io::Error::new(io::ErrorKind::PermissionDenied, format!("refused: {e}")),
    })?;
    let mut data = Vec::new();
    std::fs::File::open(path)?.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    Ok(data)
}

/// One list value of the config file or an option: split on ',', blanks trimmed, empty items
/// kept so that the merge rejects them. One exception: an all-blank block value adds nothing,
/// because `block-rpcs=` is what `-D` writes for "no blocks". An empty allow value stays one
/// empty (rejected) name: read as "no allow list" it would enable everything.
pub fn list_value(value: &str, source: &str, is_block: bool) -> Vec<ListEntry> {
    if is_block && value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(|name| ListEntry::new(name.trim(), source)).collect()
}

/// The block and allow lists of a config file's `[general]` group, in the order the front reads
/// them (`blacklist`, then `block-rpcs`).
pub fn config_lists(config: &ConfigFile) -> Result<(Vec<ListEntry>, Vec<ListEntry>), PolicyError> {
    let shown = config.path.display().to_string();
    let data = match read_config_file(&config.path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !config.required => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(PolicyError::ConfigUnreadable { path: shown, message: e.to_string() }),
    };
    let located =
        |e: crate::keyfile::KeyFileError| PolicyError::Config { path: shown.clone(), line: e.line, message: e.message };
    let kf = KeyFile::parse(&data).map_err(located)?;
    let mut block = Vec::new();
    let mut allow = Vec::new();
    for (key, source, is_block) in [
        ("blacklist", SOURCE_CONFIG_BLACKLIST, true),
        ("block-rpcs", SOURCE_CONFIG_BLOCK, true),
        ("allow-rpcs", SOURCE_CONFIG_ALLOW, false),
    ] {
        if let Some(value) = kf.get_string("general", key).transpose().map_err(located)? {
            let target = if is_block { &mut block } else { &mut allow };
            target.extend(list_value(&value, source, is_block));
        }
    }
    Ok((block, allow))
}

/// The effective policy from a policy file (`explicit`, else the default path, else the built-in
/// default) and the lists. A policy file that someone other than root or the agent's user could
/// have written is refused (see [`trust`]).
pub fn effective(explicit: Option<&Path>, block: &[ListEntry], allow: &[ListEntry]) -> Result<Effective, PolicyError> {
    let path = explicit.unwrap_or(Path::new(crate::file::DEFAULT_PATH));
    match trust::check_file_to_act_on(path) {
        Ok(()) => {}
        // A missing file is the loader's to report (or, at the default path, to replace with
        // the built-in default).
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(PolicyError::Untrusted { reason: e.to_string() }),
    }
    let policy_file = crate::file::load_configured(explicit)?;
    merge(&policy_file, block, allow)
}

/// Re-reads everything a reload re-reads: the policy file and the config file's lists; the
/// command line's lists are added after the config's, as at start-up.
pub fn load(sources: &Sources) -> Result<Effective, PolicyError> {
    let (mut block, mut allow) = match &sources.config {
        Some(c) => config_lists(c)?,
        None => (Vec::new(), Vec::new()),
    };
    block.extend(sources.block.iter().cloned());
    allow.extend(sources.allow.iter().cloned());
    effective(sources.policy.as_deref(), &block, &allow)
}

/// Whether a policy needs the front's filesystem (the `guest-file-*` commands).
pub fn needs_files(policy: &Policy) -> bool {
    Command::all().any(|c| c.name().starts_with("guest-file-") && policy.is_enabled(c))
}

/// Why `new` cannot be applied to a front that started with (`started_with_files`) or without
/// the file commands, or `None` when a reload can apply it.
pub fn needs_restart(new: &Policy, started_with_files: bool) -> Option<String> {
    // Argument conditions reload: the helper replaces its own copy and sends the front the
    // new one with the enabled set; they need nothing of the front's sandbox.
    if started_with_files || !needs_files(new) {
        return None;
    }
    let files: Vec<&str> = Command::all()
        .filter(|c| c.name().starts_with("guest-file-") && new.is_enabled(*c))
        .map(|c| c.name())
        .collect();
    Some(format!(
        "it enables {}, but the agent started without file commands (an empty filesystem view and a narrower \
         system call filter): this change needs a restart",
        files.join(", ")
    ))
}

/// Where guest-file-open may open files, as the helper's filesystem sandbox is built from it at
/// start-up: per rule, the directory it opens beneath (the directory for `path=DIR/`, the file's
/// directory for one file, the directory before the first `*` for a pattern) with the rule's
/// access; without rules `/` with every right (7.2's any path). Empty when it is disabled.
pub fn file_open_reach(policy: &Policy) -> Vec<(PathBuf, Access)> {
    if !policy.is_enabled(Command::FileOpen) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for rule in policy.conditions_of(Command::FileOpen) {
        let Conditions::FileOpen(r) = rule else { continue };
        let dir = match &r.path {
            PathPattern::Tree(d) => d.trim_end_matches('/'),
            PathPattern::Exact(p) => &p[..p.rfind('/').unwrap_or(0)],
            PathPattern::Glob(g) => {
                let literal = &g[..g.find('*').unwrap_or(g.len())];
                &literal[..literal.rfind('/').unwrap_or(0)]
            }
        };
        out.push((PathBuf::from(if dir.is_empty() { "/" } else { dir }), r.access));
    }
    if out.is_empty() {
        out.push((PathBuf::from("/"), Access { read: true, write: true, append: true, create: true }));
    }
    out
}

/// Why a reload cannot give guest-file-open the reach `new` (from [`file_open_reach`]) when the
/// helper's sandbox was fixed at start-up to `started`, or `None` when every directory of `new`
/// lies beneath started directories (compared by path components) whose access together covers
/// its own. The sandbox cannot be widened while the agent runs: applied anyway, the new rule
/// would be enabled and pass the gate, and every open beneath its directory would then fail with
/// "Permission denied". Conservative: a directory reachable only through a symbolic link, or a
/// right the kernel's rules would happen to share (append with write), counts as not covered.
pub fn reach_needs_restart(started: &[(PathBuf, Access)], new: &[(PathBuf, Access)]) -> Option<String> {
    let beyond: Vec<String> = new
        .iter()
        .filter(|(dir, need)| {
            let given =
                started.iter().filter(|(base, _)| dir.starts_with(base)).fold(Access::default(), |a, (_, b)| Access {
                    read: a.read || b.read,
                    write: a.write || b.write,
                    append: a.append || b.append,
                    create: a.create || b.create,
                });
            !given.covers(*need)
        })
        .map(|(dir, need)| format!("{} beneath {}", access_words(*need), dir.display()))
        .collect();
    if beyond.is_empty() {
        return None;
    }
    let was = if started.is_empty() {
        "nothing".to_string()
    } else {
        started
            .iter()
            .map(|(d, a)| format!("{} beneath {}", access_words(*a), d.display()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(format!(
        "it lets guest-file-open {}, but the helper's filesystem sandbox was fixed at start-up to {was}: this change \
         needs a restart",
        beyond.join("; ")
    ))
}

/// "read, write" for the log.
fn access_words(a: Access) -> String {
    let words: Vec<&str> = [(a.read, "read"), (a.write, "write"), (a.append, "append"), (a.create, "create")]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
    if words.is_empty() {
        "open nothing".to_string()
    } else {
        words.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(text: &str) -> Vec<(PathBuf, Access)> {
        let rules = text
            .lines()
            .map(|l| {
                crate::gate::Narrowing::parse(Command::FileOpen, l.split(' ').map(str::to_string).collect()).unwrap()
            })
            .collect();
        file_open_reach(&Policy::allow_all().with_conditions(rules))
    }

    #[test]
    fn file_open_reach_is_each_rules_directory_or_everything_without_rules() {
        let r = reach("path=/srv/drop/ access=write,create\npath=/etc/motd\npath=/var/log/*/app.log");
        let dirs: Vec<_> = r.iter().map(|(d, _)| d.to_str().unwrap()).collect();
        assert_eq!(dirs, ["/srv/drop", "/etc", "/var/log"]);
        assert_eq!(r[0].1, Access { write: true, create: true, ..Access::default() });
        let all = file_open_reach(&Policy::allow_all());
        assert_eq!(all, [(PathBuf::from("/"), Access { read: true, write: true, append: true, create: true })]);
        assert!(file_open_reach(&Policy::only([Command::Ping])).is_empty());
    }

    #[test]
    fn a_reload_may_narrow_file_open_within_its_start_up_reach_but_not_widen_it() {
        let started = reach("path=/srv/backup/ access=read,write,create");
        assert_eq!(reach_needs_restart(&started, &reach("path=/srv/backup/export/ access=read")), None);
        assert_eq!(reach_needs_restart(&started, &reach("path=/srv/backup/a.log access=write,create")), None);
        assert_eq!(reach_needs_restart(&started, &[]), None);
        let why = reach_needs_restart(&started, &reach("path=/srv/new/ access=read")).expect("a new directory");
        assert_eq!(
            why,
            "it lets guest-file-open read beneath /srv/new, but the helper's filesystem sandbox was fixed at start-up \
             to read, write, create beneath /srv/backup: this change needs a restart"
        );
        assert!(reach_needs_restart(&started, &reach("path=/srv/backup/x/ access=append")).is_some(), "a new right");
        assert!(reach_needs_restart(&started, &reach("path=/srv/ access=read")).is_some(), "a parent directory");
        assert!(reach_needs_restart(&started, &reach("path=/srv/backupx/ access=read")).is_some(), "a longer name");
        // Rules dropped: any path, beyond every rule's directory.
        assert!(reach_needs_restart(&started, &file_open_reach(&Policy::allow_all())).is_some());
        // Two rules together may cover what neither does alone.
        let two = reach("path=/srv/ access=read\npath=/srv/drop/ access=write,create");
        assert_eq!(reach_needs_restart(&two, &reach("path=/srv/drop/in/ access=read,write,create")), None);
        // Without rules at start, everything is within reach.
        assert_eq!(reach_needs_restart(&file_open_reach(&Policy::allow_all()), &reach("path=/x/ access=read")), None);
    }

    #[test]
    fn argument_conditions_reload_but_not_the_file_commands_they_may_come_with() {
        let n = crate::gate::Narrowing::parse(Command::Shutdown, vec!["mode=reboot".into()]).unwrap();
        let p = Policy::allow_all().with_conditions(vec![n.clone()]);
        assert_eq!(needs_restart(&p, true), None);
        assert_eq!(needs_restart(&Policy::only([Command::Shutdown]).with_conditions(vec![n]), false), None);
        assert!(needs_restart(&p, false).is_some_and(|r| r.contains("guest-file-open")));
    }

    fn with_files() -> Policy {
        Policy::only(Command::all().filter(|c| c.name() == "guest-file-open"))
    }

    #[test]
    fn enabling_file_commands_needs_a_restart_only_for_a_front_started_without_them() {
        let reason = needs_restart(&with_files(), false).expect("a wider sandbox is needed");
        assert!(reason.contains("guest-file-open") && reason.contains("needs a restart"), "{reason}");
        assert_eq!(needs_restart(&with_files(), true), None);
    }

    #[test]
    fn narrowing_never_needs_a_restart() {
        assert_eq!(needs_restart(&Policy::only([]), false), None);
        assert_eq!(needs_restart(&Policy::only([]), true), None);
        assert_eq!(needs_restart(&Policy::only([Command::Ping]), false), None);
    }

    #[test]
    fn an_all_blank_block_value_adds_nothing_but_an_empty_allow_value_is_kept() {
        assert!(list_value(" ", SOURCE_CONFIG_BLOCK, true).is_empty());
        assert_eq!(list_value("", SOURCE_CONFIG_ALLOW, false), vec![ListEntry::new("", SOURCE_CONFIG_ALLOW)]);
        assert_eq!(
            list_value("guest-ping, guest-info", SOURCE_CONFIG_BLOCK, true),
            vec![ListEntry::new("guest-ping", SOURCE_CONFIG_BLOCK), ListEntry::new("guest-info", SOURCE_CONFIG_BLOCK)]
        );
    }
}
