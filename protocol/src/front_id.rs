//! The front's user id of its own, used when no user is configured and the package's
//! `qemu-ga-rs` user does not exist: a number in [`RANGE`] that is no account, no group, no
//! dynamic id systemd holds for one of its services, and the uid or gid of no running process,
//! chosen as systemd's DynamicUser does. Sharing a user (such as `nobody`) with other services
//! would let the front reach them through /proc and them reach it.
//!
//! Checking "no running process" reads every process's status (about 1 ms on a guest of a
//! hundred processes: most of a start-up), so the front records its choice in the state
//! directory ([`RECORD_NAME`]) and a restart takes the recorded id back after the cheap checks
//! alone (accounts, groups, systemd's locks), which also keeps the id stable across restarts,
//! as systemd's is. The process check still runs on every start: a restart passes the recorded
//! id to the helper, which reads every process in its own start-up (in the background of the
//! front's) and, finding the id in use, forgets the record and refuses to serve, so the agent
//! stops and the next start chooses again. Meanwhile the front is not dumpable and its /proc
//! shows no other process: a process sharing the id could neither reach it nor be reached.
//!
//! What both sides need lives here once: the range, the record's name and format, the scan.

use std::ops::RangeInclusive;
use std::path::Path;

/// systemd's range for dynamic users (61184–65519): kept free of system and regular accounts
/// by Debian's and systemd's allocation rules.
pub const RANGE: RangeInclusive<u32> = 61184..=65519;

/// The record of the id the front last ran as, inside the state directory.
pub const RECORD_NAME: &str = "qga-rs.front-id";

/// Where systemd keeps one lock file per dynamic id it has given a service, named by the id.
pub const SYSTEMD_DYNAMIC_IDS: &str = "/run/systemd/dynamic-uid";

/// The id a record holds: one decimal number in [`RANGE`] and a newline, nothing else.
pub fn parse_record(text: &[u8]) -> Option<u32> {
    let digits = text.strip_suffix(b"\n")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let id: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    RANGE.contains(&id).then_some(id)
}

/// A record's text for `id`.
pub fn render_record(id: u32) -> String {
    format!("{id}\n")
}

/// Whether systemd has given `id` to one of its services (a lock file named by the id in
/// `dir`, normally [`SYSTEMD_DYNAMIC_IDS`]): systemd does not know the front's id, and the
/// front must not take one of systemd's, even while that service is not running.
pub fn held_by_systemd(dir: &Path, id: u32) -> bool {
    dir.join(id.to_string()).symlink_metadata().is_ok()
}

/// The real, effective, saved and filesystem uids and gids in one `/proc/PID/status` text.
pub fn ids_in_status(status: &[u8]) -> impl Iterator<Item = u32> + '_ {
    status.split(|&b| b == b'\n').filter(|l| l.starts_with(b"Uid:") || l.starts_with(b"Gid:")).flat_map(|l| {
        l[4..].split(|b| b.is_ascii_whitespace()).filter_map(|v| std::str::from_utf8(v).ok()?.parse().ok())
    })
}

/// The `Name:` line of a status text (the command's name, at most 15 bytes from the kernel).
pub fn name_in_status(status: &[u8]) -> &[u8] {
    status.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"Name:")).map_or(&[][..], |n| n.trim_ascii())
}

/// Room for a whole `/proc/PID/status` (about 1.5 KiB; Uid and Gid are its 9th and 10th
/// lines, within its first few hundred bytes whatever the process's name).
const STATUS_BUF: usize = 4096;

/// Calls `each(pid, status)` for every process under `proc_dir`. The kernel writes a status
/// file whole on the first read, so each process costs one openat beneath the directory
/// already open, one read into a buffer on the stack and one close (no path building, no
/// statx, no allocation). A process that exits meanwhile is left out: it holds no id either.
pub fn for_each_status(proc_dir: &Path, mut each: impl FnMut(u32, &[u8])) -> std::io::Result<()> {
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
        let Some(pid) = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok()) else { continue };
        // "PID/status", NUL-terminated in place: no allocation per process.
        path[..name.len()].copy_from_slice(name);
        let end = name.len() + b"/status".len();
        path[name.len()..end].copy_from_slice(b"/status");
        path[end] = 0;
        let Ok(relative) = std::ffi::CStr::from_bytes_with_nul(&path[..=end]) else { continue };
        let Ok(fd) = openat(&dir, relative, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) else { continue };
        if let Ok(n) = nix::unistd::read(&fd, &mut buf) {
            each(pid, &buf[..n]);
        }
    }
    Ok(())
}

/// A process that uses an id.
#[derive(Debug, PartialEq, Eq)]
pub struct User {
    pub pid: u32,
    /// Its command name, as the kernel reports it (bytes the process chose: escape to log).
    pub name: Vec<u8>,
}

/// The first process under `proc_dir`, other than `except`, with `id` among its uids or gids.
pub fn process_using(proc_dir: &Path, id: u32, except: u32) -> std::io::Result<Option<User>> {
    let mut found = None;
    for_each_status(proc_dir, |pid, status| {
        if found.is_none() && pid != except && ids_in_status(status).any(|i| i == id) {
            found = Some(User { pid, name: name_in_status(status).to_vec() });
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uid_and_gid_of_a_process_counts() {
        let status = b"Name:\tsleep\nUid:\t61184\t61185\t61186\t61187\nGid:\t1\t2\t3\t4\nGroups:\t9\n";
        assert_eq!(ids_in_status(status).collect::<Vec<_>>(), [61184, 61185, 61186, 61187, 1, 2, 3, 4]);
        assert_eq!(name_in_status(status), b"sleep");
    }

    #[test]
    fn a_record_holds_one_id_of_the_range_and_nothing_else() {
        assert_eq!(parse_record(render_record(61925).as_bytes()), Some(61925));
        for bad in [&b""[..], b"\n", b"61925", b"61925\n\n", b" 61925\n", b"+61925\n", b"0\n", b"65534\n", b"1000\n"] {
            assert_eq!(parse_record(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_record(b"061925\n"), None, "six digits");
        assert_eq!(parse_record(b"4294967296\n"), None);
    }

    #[test]
    fn an_id_systemd_holds_a_lock_for_is_held() {
        let dir = std::env::temp_dir().join(format!("qga-front-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("61200"), b"").unwrap();
        assert!(held_by_systemd(&dir, 61200));
        assert!(!held_by_systemd(&dir, 61201));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_is_found_by_its_uid_unless_left_out() {
        let uid = nix::unistd::Uid::current().as_raw();
        let me = std::process::id();
        // Some process uses this test's uid: at least this one.
        let found = process_using(Path::new("/proc"), uid, 0).unwrap();
        assert!(found.is_some());
        // An id nothing uses (beyond the 32-bit ids a status can show in practice).
        assert_eq!(process_using(Path::new("/proc"), 4_000_000_000, me).unwrap(), None);
    }
}
