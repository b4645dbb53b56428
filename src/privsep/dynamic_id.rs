//! A uid and gid of the front's own when no `qemu-ga-rs` system user exists and none is
//! configured, chosen at start as systemd's DynamicUser does: a number in [`RANGE`] that is no
//! user in `/etc/passwd`, no group in `/etc/group`, and the uid or gid of no running process.
//! Sharing a user (such as `nobody`) with other services would let the front reach them through
//! /proc (their environment, their memory, their root directory) and them reach it.
//!
//! The search starts at a point derived from the agent's pid, so two agents started together
//! are unlikely to race for the same number.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::Path;

use super::passwd::Account;
use qga_policy::passwd;

/// systemd's range for dynamic users (61184–65519): kept free of system and regular accounts
/// by Debian's and systemd's allocation rules.
pub const RANGE: RangeInclusive<u32> = 61184..=65519;

/// The name the front is logged under when it runs with a dynamic id.
pub const DYNAMIC_NAME: &str = "(dynamic)";

/// The real, effective, saved and filesystem uids and gids in one `/proc/PID/status` text.
pub fn ids_in_status(status: &[u8]) -> impl Iterator<Item = u32> + '_ {
    status.split(|&b| b == b'\n').filter(|l| l.starts_with(b"Uid:") || l.starts_with(b"Gid:")).flat_map(|l| {
        l[4..].split(|b| b.is_ascii_whitespace()).filter_map(|v| std::str::from_utf8(v).ok()?.parse().ok())
    })
}

/// Room for a whole `/proc/PID/status` (about 1.5 KiB; Uid and Gid are its 9th and 10th
/// lines, within its first few hundred bytes whatever the process's name).
const STATUS_BUF: usize = 4096;

/// Adds the ids in `/proc/PID/status` of every process under `proc_dir` to `taken`. The
/// kernel writes a status file whole on the first read, so each process costs one openat
/// beneath the directory already open, one read into a buffer on the stack and one close (no
/// path building, no statx, no allocation): this scan is most of a start-up with a dynamic
/// id, once per process of the guest.
fn add_process_ids(proc_dir: &Path, taken: &mut BTreeSet<u32>) -> std::io::Result<()> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    use std::os::unix::ffi::OsStrExt;
    let dir = std::fs::File::open(proc_dir)?;
    let mut buf = [0u8; STATUS_BUF];
    let mut path = [0u8; 32];
    for entry in std::fs::read_dir(proc_dir)?.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.is_empty() || !name.iter().all(u8::is_ascii_digit) || name.len() + b"/status\0".len() > path.len() {
            continue;
        }
        // "PID/status", NUL-terminated in place: no allocation per process.
        path[..name.len()].copy_from_slice(name);
        let end = name.len() + b"/status".len();
        path[name.len()..end].copy_from_slice(b"/status");
        path[end] = 0;
        let Ok(relative) = std::ffi::CStr::from_bytes_with_nul(&path[..=end]) else { continue };
        // A process that exits meanwhile has no status any more: it holds no id either.
        let Ok(fd) = openat(&dir, relative, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) else { continue };
        if let Ok(n) = nix::unistd::read(&fd, &mut buf) {
            taken.extend(ids_in_status(&buf[..n]));
        }
    }
    Ok(())
}

/// The first number of [`RANGE`] from `start` on (wrapping) that is not in `taken`.
pub fn first_free(taken: &BTreeSet<u32>, start: u32) -> Option<u32> {
    let (lo, hi) = (*RANGE.start(), *RANGE.end());
    let span = hi - lo + 1;
    (0..span).map(|i| lo + (start.wrapping_add(i)) % span).find(|id| !taken.contains(id))
}

/// Every id this machine uses now: passwd uids and gids, group gids, and the ids of every
/// running process.
fn taken_ids(passwd: &Path, group: &Path, proc_dir: &Path) -> std::io::Result<BTreeSet<u32>> {
    let mut taken = BTreeSet::new();
    let passwd_text = passwd::read_bounded(passwd)?;
    taken.extend(passwd::ids(&passwd_text, 2));
    taken.extend(passwd::ids(&passwd_text, 3));
    taken.extend(passwd::ids(&passwd::read_bounded(group)?, 2));
    add_process_ids(proc_dir, &mut taken)?;
    Ok(taken)
}

/// Picks the front's dynamic uid (the gid is the same number).
pub fn pick() -> std::io::Result<Account> {
    let taken = taken_ids(Path::new(passwd::PASSWD), Path::new(passwd::GROUP), Path::new("/proc"))?;
    let start = std::process::id().wrapping_mul(2_654_435_761);
    let id = first_free(&taken, start)
        .ok_or_else(|| std::io::Error::other(format!("no free id in {}-{}", RANGE.start(), RANGE.end())))?;
    Ok(Account { name: DYNAMIC_NAME.to_owned(), uid: id, gid: id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uid_and_gid_of_a_process_counts() {
        let status = b"Name:\tsleep\nUid:\t61184\t61185\t61186\t61187\nGid:\t1\t2\t3\t4\nGroups:\t9\n";
        assert_eq!(ids_in_status(status).collect::<Vec<_>>(), [61184, 61185, 61186, 61187, 1, 2, 3, 4]);
    }

    #[test]
    fn the_first_free_id_in_the_range_is_chosen_wrapping_around() {
        let taken: BTreeSet<u32> = [61184, 61185, 65519].into_iter().collect();
        assert_eq!(first_free(&taken, 0), Some(61186));
        // Starting at the range's last number, which is taken: wrap to its start.
        assert_eq!(first_free(&taken, RANGE.end() - RANGE.start()), Some(61186));
        let all: BTreeSet<u32> = RANGE.collect();
        assert_eq!(first_free(&all, 7), None);
    }

    #[test]
    fn the_real_machine_has_a_free_id_that_nothing_uses() {
        let taken = taken_ids(Path::new("/etc/passwd"), Path::new("/etc/group"), Path::new("/proc")).unwrap();
        assert!(taken.contains(&0), "root is in use");
        let id = pick().unwrap();
        assert!(RANGE.contains(&id.uid) && id.uid == id.gid);
        assert!(!taken.contains(&id.uid));
    }
}
