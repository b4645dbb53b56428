//! The start-up sandbox record: what a running agent's sandbox was fixed to when it started.
//! The front writes it into the state directory (as root, before it gives up root);
//! `--check-policy` reads it to say, before anyone sends SIGHUP, whether a reload can apply a
//! policy file. The helper refuses such a reload by itself in any case (the record only lets
//! the admin know first), so the record decides nothing: a missing or unreadable one only
//! makes the verdict vaguer.
//!
//! Two things a reload cannot change are recorded: whether the front started with the
//! `guest-file-*` commands (its filesystem view and system call filter), and where the helper's
//! filesystem sandbox lets guest-file-open reach ([`file_open_reach`]). One `key=value` per
//! line:
//!
//! ```text
//! file-commands=enabled
//! file-open-reach=r-ac /srv/backup/drop
//! ```
//!
//! Rule paths are single words of the policy file, so a line cannot hold another.

use crate::gate::Policy;
use crate::reload::{file_open_reach, needs_files, needs_restart, reach_needs_restart};
use crate::rules::Access;
use std::path::PathBuf;

/// What one agent's start-up fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRecord {
    /// The front started with the `guest-file-*` commands.
    pub file_commands: bool,
    /// Where the helper's filesystem sandbox lets guest-file-open reach.
    pub file_open_reach: Vec<(PathBuf, Access)>,
}

const FILE_COMMANDS: &str = "file-commands=";
const REACH: &str = "file-open-reach=";

impl SandboxRecord {
    /// The record of an agent started with `policy`; `narrowed` says whether the helper narrows
    /// its filesystem at all (not under `--no-sandbox`: then guest-file-open reaches everything).
    pub fn of(policy: &Policy, narrowed: bool) -> SandboxRecord {
        let reach = if narrowed {
            file_open_reach(policy)
        } else {
            vec![(PathBuf::from("/"), Access { read: true, write: true, append: true, create: true })]
        };
        SandboxRecord { file_commands: needs_files(policy), file_open_reach: reach }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = format!("{FILE_COMMANDS}{}\n", if self.file_commands { "enabled" } else { "disabled" });
        for (dir, access) in &self.file_open_reach {
            out.push_str(&format!("{REACH}{} {}\n", access_letters(*access), dir.display()));
        }
        out
    }

    /// The record in `text`; `None` for anything this version does not write (a record of
    /// another version is not guessed at).
    pub fn parse(text: &str) -> Option<SandboxRecord> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        let file_commands = match lines.next()?.strip_prefix(FILE_COMMANDS)? {
            "enabled" => true,
            "disabled" => false,
            _ => return None,
        };
        let mut file_open_reach = Vec::new();
        for line in lines {
            let (letters, dir) = line.strip_prefix(REACH)?.split_once(' ')?;
            if !dir.starts_with('/') {
                return None;
            }
            file_open_reach.push((PathBuf::from(dir), parse_letters(letters)?));
        }
        Some(SandboxRecord { file_commands, file_open_reach })
    }

    /// Why an agent started like this cannot apply `new` by a reload, if it cannot: the same
    /// two checks the helper makes on SIGHUP.
    pub fn reload_needs_restart(&self, new: &Policy) -> Option<String> {
        needs_restart(new, self.file_commands)
            .or_else(|| reach_needs_restart(&self.file_open_reach, &file_open_reach(new)))
    }
}

/// `rwac` with `-` for a right not given, in that order.
fn access_letters(a: Access) -> String {
    [(a.read, 'r'), (a.write, 'w'), (a.append, 'a'), (a.create, 'c')]
        .into_iter()
        .map(|(on, letter)| if on { letter } else { '-' })
        .collect()
}

fn parse_letters(letters: &str) -> Option<Access> {
    let b = letters.as_bytes();
    let right = |i: usize, letter: u8| match b.get(i) {
        Some(&c) if c == letter => Some(true),
        Some(b'-') => Some(false),
        _ => None,
    };
    if b.len() != 4 {
        return None;
    }
    Some(Access { read: right(0, b'r')?, write: right(1, b'w')?, append: right(2, b'a')?, create: right(3, b'c')? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Command;
    use crate::gate::Narrowing;

    fn with_file_rules(rules: &[&str]) -> Policy {
        let rules = rules
            .iter()
            .map(|r| Narrowing::parse(Command::FileOpen, r.split(' ').map(str::to_string).collect()).unwrap())
            .collect();
        Policy::allow_all().with_conditions(rules)
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let p =
            with_file_rules(&["path=/srv/backup/export/ access=read", "path=/srv/backup/drop/ access=write,create"]);
        let record = SandboxRecord::of(&p, true);
        assert_eq!(
            record.render(),
            "file-commands=enabled\nfile-open-reach=r--- /srv/backup/export\nfile-open-reach=-w-c /srv/backup/drop\n"
        );
        assert_eq!(SandboxRecord::parse(&record.render()), Some(record));
        let none = SandboxRecord::of(&Policy::only([Command::Ping]), true);
        assert_eq!(none.render(), "file-commands=disabled\n");
        assert_eq!(SandboxRecord::parse(&none.render()), Some(none));
    }

    #[test]
    fn without_the_filesystem_sandbox_the_reach_is_everything() {
        let record = SandboxRecord::of(&with_file_rules(&["path=/srv/a/ access=read"]), false);
        assert_eq!(record.render(), "file-commands=enabled\nfile-open-reach=rwac /\n");
        assert_eq!(record.reload_needs_restart(&with_file_rules(&["path=/etc/ access=read,write"])), None);
    }

    #[test]
    fn a_record_of_another_form_is_not_guessed_at() {
        for text in [
            "",
            "file-commands=enabled",
            "file-commands=yes\n",
            "file-commands=enabled\nfile-open-reach=rwac relative\n",
            "file-commands=enabled\nfile-open-reach=rw /srv\n",
            "file-commands=enabled\nfile-open-reach=wrac /srv\n",
            "file-commands=enabled\nsomething=else\n",
            "file-commands=enabled\n\n",
        ] {
            assert_eq!(SandboxRecord::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_verdict_makes_both_checks_the_helper_makes_on_a_reload() {
        let started = SandboxRecord::of(&with_file_rules(&["path=/srv/backup/ access=read,write,create"]), true);
        assert_eq!(started.reload_needs_restart(&with_file_rules(&["path=/srv/backup/x/ access=read"])), None);
        let why = started.reload_needs_restart(&with_file_rules(&["path=/srv/other/ access=read"])).unwrap();
        assert!(why.contains("beneath /srv/other") && why.contains("needs a restart"), "{why}");
        let without = SandboxRecord::of(&Policy::only([Command::Ping]), true);
        let why = without.reload_needs_restart(&with_file_rules(&["path=/srv/backup/ access=read"])).unwrap();
        assert!(why.contains("started without file commands"), "{why}");
        assert_eq!(without.reload_needs_restart(&Policy::only([Command::Ping, Command::Info])), None);
    }
}
