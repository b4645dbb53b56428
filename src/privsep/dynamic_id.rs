//! A uid and gid of the front's own when no `qemu-ga-rs` system user exists and none is
//! configured (why, and how the choice is checked on every start: `qga_protocol::front_id`).
//! Chosen afresh by reading every process ([`pick`]), or taken back from the state directory's
//! record ([`Record`]) when the cheap checks allow it ([`reusable`]); the helper then checks
//! the processes in the background.
//!
//! A fresh search starts at a point derived from the agent's pid, so two agents started
//! together are unlikely to race for the same number.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::passwd::Account;
use qga_policy::{passwd, trust};
use qga_protocol::front_id;

pub use front_id::RANGE;

/// The name the front is logged under when it runs with a dynamic id.
pub const DYNAMIC_NAME: &str = "(dynamic)";

/// What the choice reads: the machine's files, or a test's.
pub struct Sources {
    pub passwd: PathBuf,
    pub group: PathBuf,
    pub proc_dir: PathBuf,
    /// systemd's lock files, one per dynamic id it has given a service.
    pub systemd_ids: PathBuf,
}

impl Sources {
    pub fn machine() -> Sources {
        Sources {
            passwd: passwd::PASSWD.into(),
            group: passwd::GROUP.into(),
            proc_dir: "/proc".into(),
            systemd_ids: front_id::SYSTEMD_DYNAMIC_IDS.into(),
        }
    }
}

/// The front's account for the dynamic `id` (the gid is the same number).
pub fn recorded_account(id: u32) -> Account {
    Account { name: DYNAMIC_NAME.to_owned(), uid: id, gid: id }
}

/// Every uid and gid of an account, and every gid of a group.
fn account_ids(sources: &Sources) -> std::io::Result<BTreeSet<u32>> {
    let mut taken = BTreeSet::new();
    let passwd_text = passwd::read_bounded(&sources.passwd)?;
    taken.extend(passwd::ids(&passwd_text, 2));
    taken.extend(passwd::ids(&passwd_text, 3));
    taken.extend(passwd::ids(&passwd::read_bounded(&sources.group)?, 2));
    Ok(taken)
}

/// Whether a recorded id may be taken back without reading every process: no account and no
/// group has it and systemd holds no lock on it. (Whether a process uses it, the helper checks
/// in the background.)
pub fn reusable(id: u32, sources: &Sources) -> std::io::Result<bool> {
    Ok(RANGE.contains(&id)
        && !account_ids(sources)?.contains(&id)
        && !front_id::held_by_systemd(&sources.systemd_ids, id))
}

/// The first number of [`RANGE`] from `start` on (wrapping) that is not in `taken` and not
/// `held` (systemd's).
pub fn first_free(taken: &BTreeSet<u32>, start: u32, held: impl Fn(u32) -> bool) -> Option<u32> {
    let (lo, hi) = (*RANGE.start(), *RANGE.end());
    let span = hi - lo + 1;
    (0..span).map(|i| lo + (start.wrapping_add(i)) % span).find(|&id| !taken.contains(&id) && !held(id))
}

/// Every id this machine uses now: accounts, groups, and the ids of every running process.
fn taken_ids(sources: &Sources) -> std::io::Result<BTreeSet<u32>> {
    let mut taken = account_ids(sources)?;
    front_id::for_each_status(&sources.proc_dir, |_, status| taken.extend(front_id::ids_in_status(status)))?;
    Ok(taken)
}

/// Chooses a fresh id (the gid is the same number), reading every process.
pub fn pick_in(sources: &Sources) -> std::io::Result<Account> {
    let taken = taken_ids(sources)?;
    let start = std::process::id().wrapping_mul(2_654_435_761);
    let id = first_free(&taken, start, |id| front_id::held_by_systemd(&sources.systemd_ids, id))
        .ok_or_else(|| std::io::Error::other(format!("no free id in {}-{}", RANGE.start(), RANGE.end())))?;
    Ok(recorded_account(id))
}

/// [`pick_in`] on this machine.
pub fn pick() -> std::io::Result<Account> {
    pick_in(&Sources::machine())
}

/// How start-up comes to the front's dynamic id.
pub enum Plan {
    /// The id the last start recorded, which the cheap checks allow ([`reusable`]).
    Recorded(Account),
    /// A fresh choice ([`pick`]), to be written into the record when there is one.
    Fresh(Option<Record>),
}

/// Opens the record in the opened state directory `dir` (shown as `dir_path`) and decides. A
/// record that cannot be trusted is reported and left alone: the id is chosen afresh and not
/// recorded. Never while frozen (see [`Record::open`]).
pub fn plan(dir: &impl AsFd, dir_path: &Path) -> Plan {
    let record = match Record::open(dir, dir_path) {
        Ok(r) => r,
        Err(e) => {
            crate::warning!("the front's id record is not used: {e}");
            return Plan::Fresh(None);
        }
    };
    match record.id() {
        Some(id) if reusable(id, &Sources::machine()).unwrap_or(false) => Plan::Recorded(recorded_account(id)),
        _ => Plan::Fresh(Some(record)),
    }
}

/// The state directory's record of the front's id ([`front_id::RECORD_NAME`]), opened by root
/// like the state file: never through a link, a regular file of root's that no one else may
/// write.
pub struct Record {
    file: File,
}

impl Record {
    /// Opens the record in the opened state directory `dir` (shown as `dir_path`), creating
    /// it if missing (so never while frozen: creating on a frozen filesystem blocks).
    pub fn open(dir: &impl AsFd, dir_path: &Path) -> Result<Record, trust::Untrusted> {
        let how = trust::WriteOpen { append: false, create: true, mode: 0o644 };
        let name = std::ffi::OsStr::new(front_id::RECORD_NAME);
        trust::open_file_to_write_in(dir, dir_path, name, how).map(|file| Record { file })
    }

    /// The id recorded, if the record holds exactly one (anything else is ignored and, once a
    /// fresh id is chosen, overwritten).
    pub fn id(&self) -> Option<u32> {
        // A record is at most six bytes: one more tells a longer file apart.
        let mut buf = [0u8; 7];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        front_id::parse_record(&buf[..n])
    }

    /// Records `id` in place of what the file held.
    pub fn write(&self, id: u32) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all_at(front_id::render_record(id).as_bytes(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources_in(dir: &Path, passwd: &str, group: &str) -> Sources {
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        std::fs::write(dir.join("group"), group).unwrap();
        std::fs::create_dir_all(dir.join("dynamic-uid")).unwrap();
        Sources {
            passwd: dir.join("passwd"),
            group: dir.join("group"),
            proc_dir: "/proc".into(),
            systemd_ids: dir.join("dynamic-uid"),
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("qga-dynamic-id-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_first_free_id_in_the_range_is_chosen_wrapping_around() {
        let taken: BTreeSet<u32> = [61184, 61185, 65519].into_iter().collect();
        assert_eq!(first_free(&taken, 0, |_| false), Some(61186));
        // Starting at the range's last number, which is taken: wrap to its start.
        assert_eq!(first_free(&taken, RANGE.end() - RANGE.start(), |_| false), Some(61186));
        // An id systemd holds is skipped like a taken one.
        assert_eq!(first_free(&taken, 0, |id| id == 61186), Some(61187));
        let all: BTreeSet<u32> = RANGE.collect();
        assert_eq!(first_free(&all, 7, |_| false), None);
    }

    #[test]
    fn a_recorded_id_is_reusable_only_while_no_account_group_or_systemd_lock_has_it() {
        let dir = scratch("reuse");
        let free = sources_in(&dir, "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
        assert!(reusable(61925, &free).unwrap());
        assert!(!reusable(1000, &free).unwrap(), "outside the range");
        let account = sources_in(&dir, "root:x:0:0::/root:/bin/sh\nsvc:x:61925:100::/:/bin/false\n", "root:x:0:\n");
        assert!(!reusable(61925, &account).unwrap(), "an account's uid");
        let primary = sources_in(&dir, "svc:x:500:61925::/:/bin/false\n", "root:x:0:\n");
        assert!(!reusable(61925, &primary).unwrap(), "an account's primary gid");
        let group = sources_in(&dir, "root:x:0:0::/root:/bin/sh\n", "svc:x:61925:\n");
        assert!(!reusable(61925, &group).unwrap(), "a group's gid");
        let systemd = sources_in(&dir, "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n");
        std::fs::write(dir.join("dynamic-uid/61925"), b"").unwrap();
        assert!(!reusable(61925, &systemd).unwrap(), "systemd gave it to a service");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_real_machine_has_a_free_id_that_nothing_uses() {
        let sources = Sources::machine();
        let taken = taken_ids(&sources).unwrap();
        assert!(taken.contains(&0), "root is in use");
        let id = pick().unwrap();
        assert!(RANGE.contains(&id.uid) && id.uid == id.gid);
        assert!(!taken.contains(&id.uid));
        assert!(reusable(id.uid, &sources).unwrap());
    }

    #[test]
    fn a_record_gives_back_the_id_written_and_ignores_anything_else() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("record");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let opened = File::open(&dir).unwrap();
        let record = Record::open(&opened, &dir).unwrap();
        assert_eq!(record.id(), None, "a new record holds nothing");
        record.write(61925).unwrap();
        assert_eq!(record.id(), Some(61925));
        record.write(61184).unwrap();
        assert_eq!(std::fs::read(dir.join(front_id::RECORD_NAME)).unwrap(), b"61184\n", "overwritten whole");
        std::fs::write(dir.join(front_id::RECORD_NAME), b"61925\nand more\n").unwrap();
        assert_eq!(Record::open(&opened, &dir).unwrap().id(), None);
        std::fs::set_permissions(dir.join(front_id::RECORD_NAME), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(Record::open(&opened, &dir).is_err(), "a record others may write is not trusted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
