//! The one reader of the guest's account files, `/etc/passwd` and `/etc/group`, for every
//! process that needs an account: the front (the user it becomes, and the ids a dynamic user
//! must not take), the launcher (the user an exec rule names) and the account commands' key
//! children.
//!
//! The files are read directly, never through NSS: NSS would load whatever modules
//! `/etc/nsswitch.conf` names (systemd, sss, ldap...) into a root process and leave them mapped;
//! the binaries are static and cannot load them safely anyway. Accounts that exist only in a
//! directory service are therefore not found; system accounts and the users an admin names in
//! a policy live in these files.
//!
//! One strictness for all: an entry is `name:password:uid:gid:gecos:home:shell` with all seven
//! fields and ids of decimal digits only; anything else (comments, NIS compat `+`/`-` lines, a
//! `+5` or `12x` id, a truncated line) is skipped, and the first valid entry of a name wins, as
//! getpwnam on the files database does.

use std::io::Read;
use std::path::Path;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";
/// Larger account files are refused rather than read whole into a root process.
const MAX_FILE: u64 = 16 << 20;
/// The most supplementary groups collected (the kernel's NGROUPS_MAX is 65536; a user in more
/// than this many groups of the files database is not a real configuration).
const MAX_GROUPS: usize = 1024;

/// An account's entry in the passwd file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
}

/// An account with its groups, as a process becoming that user sets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
    /// The primary group first, then every group of the group file listing the user.
    pub groups: Vec<u32>,
}

/// The whole file at `path`, refused past 16 MiB.
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    std::fs::File::open(path)?.take(MAX_FILE + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!("{} is larger than 16 MiB", path.display())));
    }
    Ok(text)
}

/// `name`'s entry in the passwd file at `path`. `Ok(None)`: no such user.
pub fn entry_in(path: &Path, name: &[u8]) -> std::io::Result<Option<Entry>> {
    Ok(find(&read_bounded(path)?, name))
}

/// `name` with its groups, from the real files. `Ok(None)`: no such user. A missing or
/// unreadable group file leaves the primary group only.
pub fn lookup(name: &[u8]) -> std::io::Result<Option<Account>> {
    let Some(e) = entry_in(Path::new(PASSWD), name)? else { return Ok(None) };
    let group = read_bounded(Path::new(GROUP)).unwrap_or_default();
    Ok(Some(Account { uid: e.uid, gid: e.gid, groups: groups_of(&group, name, e.gid), home: e.home }))
}

/// `name`'s entry in passwd-format text.
pub fn find(text: &[u8], name: &[u8]) -> Option<Entry> {
    if name.is_empty() || name.contains(&b':') || name.contains(&b'\n') {
        return None;
    }
    entries(text, 7).find_map(|f| {
        if f[0] != name {
            return None;
        }
        Some(Entry { uid: parse_id(f[2])?, gid: parse_id(f[3])?, home: f[5].to_vec() })
    })
}

/// The primary group, then every group of `group`-format text (`name:password:gid:members`)
/// that lists `name` among its members, each once.
pub fn groups_of(text: &[u8], name: &[u8], primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for f in entries(text, 4) {
        let Some(gid) = parse_id(f[2]) else { continue };
        if f[3].split(|&b| b == b',').any(|m| m == name) && !out.contains(&gid) && out.len() < MAX_GROUPS {
            out.push(gid);
        }
    }
    out
}

/// Every decimal id in field `field` (0-based) of any line of an account file, whatever its
/// other fields: the ids a new id must not take. Wider than an entry on purpose (a line another
/// reader might accept still counts).
pub fn ids(text: &[u8], field: usize) -> impl Iterator<Item = u32> + '_ {
    // Signs and blanks too: strtoul, which the C library's own reader uses, accepts them.
    text.split(|&b| b == b'\n')
        .filter_map(move |line| std::str::from_utf8(line.split(|&b| b == b':').nth(field)?).ok()?.trim().parse().ok())
}

/// The lines of an account file with exactly `fields` fields, split, comments and NIS compat
/// entries left out.
fn entries(text: &[u8], fields: usize) -> impl Iterator<Item = Vec<&[u8]>> {
    text.split(|&b| b == b'\n').filter_map(move |line| {
        if line.starts_with(b"#") || line.starts_with(b"+") || line.starts_with(b"-") {
            return None;
        }
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        (f.len() == fields).then_some(f)
    })
}

/// A decimal id: digits only (no sign, no space), within u32.
fn parse_id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &[u8] = b"\
root:x:0:0:root:/root:/bin/bash
# a comment
+nisuser::::::
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:x:12x:5::/:
signed:x:+5:5::/:
short:x:7:7
alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh
nobody:x:1:1:second entry is ignored:/:
";

    #[test]
    fn the_first_valid_entry_of_a_name_is_the_account() {
        assert_eq!(find(PASSWD_TEXT, b"alice"), Some(Entry { uid: 1000, gid: 1000, home: b"/home/alice".to_vec() }));
        assert_eq!(find(PASSWD_TEXT, b"nobody").map(|e| (e.uid, e.gid)), Some((65534, 65534)));
    }

    #[test]
    fn entries_with_bad_ids_or_missing_fields_are_skipped() {
        assert_eq!(find(PASSWD_TEXT, b"broken"), None);
        assert_eq!(find(PASSWD_TEXT, b"signed"), None, "a sign is not a digit");
        assert_eq!(find(PASSWD_TEXT, b"short"), None, "fewer than seven fields");
    }

    #[test]
    fn names_that_cannot_be_in_the_file_match_nothing() {
        for name in [&b""[..], b"root:x", b"+nisuser", b"roo", b"alice\n", b"nosuch"] {
            assert_eq!(find(PASSWD_TEXT, name), None, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn supplementary_groups_are_the_groups_listing_the_user_primary_first() {
        let group = b"wheel:x:10:alice,bob\nusers:x:100:bob\nalice:x:1000:\nstaff:x:50:carol,alice\n#x:x:7:alice\n";
        assert_eq!(groups_of(group, b"alice", 1000), [1000, 10, 50]);
        assert_eq!(groups_of(group, b"ali", 1000), [1000]);
        assert_eq!(groups_of(b"", b"alice", 5), [5]);
    }

    #[test]
    fn ids_count_every_line_that_holds_one_even_one_no_lookup_accepts() {
        assert_eq!(ids(PASSWD_TEXT, 2).collect::<Vec<_>>(), [0, 65534, 5, 7, 1000, 1]);
        assert_eq!(ids(PASSWD_TEXT, 3).collect::<Vec<_>>(), [0, 65534, 5, 5, 7, 1000, 1]);
        assert_eq!(ids(b"users:x:100:alice,bob\nbad:x:1e3:\n", 2).collect::<Vec<_>>(), [100]);
    }

    #[test]
    fn a_file_past_the_bound_is_refused() {
        let path = std::env::temp_dir().join(format!("qga-passwd-bound-{}", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE + 1).unwrap();
        assert!(read_bounded(&path).is_err());
        f.set_len(3).unwrap();
        assert_eq!(read_bounded(&path).unwrap(), b"\0\0\0");
        let _ = std::fs::remove_file(&path);
    }
}
