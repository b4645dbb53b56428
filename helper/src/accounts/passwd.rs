//! The target account of an account command, read from the guest's `/etc/passwd` and
//! `/etc/group` by the launcher itself: the binaries are static and load no NSS modules, so
//! accounts that exist only in a directory service (LDAP, sss) are not found.

use std::path::Path;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";
/// Larger account files are refused rather than read whole into the launcher.
const MAX_FILE: u64 = 16 << 20;

/// What the key commands need of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
    /// Supplementary groups (the groups whose member list names the user), primary included.
    pub groups: Vec<u32>,
}

pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)?.take(MAX_FILE + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other("the account file is too large"));
    }
    Ok(text)
}

/// Looks `name` up in the real files. `Ok(None)`: no such user.
pub fn lookup(name: &[u8]) -> std::io::Result<Option<Account>> {
    let passwd = read_bounded(Path::new(PASSWD))?;
    let Some((uid, gid, home)) = find(&passwd, name) else { return Ok(None) };
    // A missing group file leaves the primary group only.
    let group = read_bounded(Path::new(GROUP)).unwrap_or_default();
    Ok(Some(Account { uid, gid, home, groups: groups_of(&group, name, gid) }))
}

/// Finds `name` in passwd-format text: the first entry whose name matches, as getpwnam does on
/// the files database; comments, NIS compat entries and lines whose ids do not parse are skipped.
pub fn find(text: &[u8], name: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    if name.is_empty() || name.contains(&b':') || name.contains(&b'\n') {
        return None;
    }
    text.split(|&b| b == b'\n').find_map(|line| {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some((parse_id(f[2])?, parse_id(f[3])?, f[5].to_vec()))
    })
}

/// The primary group, then every group of `group`-format text that lists `name` as a member.
pub fn groups_of(text: &[u8], name: &[u8], primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() < 4 || f[0].starts_with(b"#") {
            continue;
        }
        let Some(gid) = parse_id(f[2]) else { continue };
        if f[3].split(|&b| b == b',').any(|m| m == name) && !out.contains(&gid) && out.len() < 1024 {
            out.push(gid);
        }
    }
    out
}

fn parse_id(field: &[u8]) -> Option<u32> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        # comment\n\
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh\n\
        bob:x:bad:1001::/home/bob:/bin/sh\n\
        alice:x:2000:2000::/other:/bin/sh\n";

    #[test]
    fn the_first_entry_with_parsable_ids_is_the_account() {
        assert_eq!(find(PASSWD_TEXT, b"alice"), Some((1000, 1000, b"/home/alice".to_vec())));
        assert_eq!(find(PASSWD_TEXT, b"bob"), None);
        assert_eq!(find(PASSWD_TEXT, b"nosuch"), None);
        assert_eq!(find(PASSWD_TEXT, b""), None);
        assert_eq!(find(PASSWD_TEXT, b"root:x"), None);
    }

    #[test]
    fn supplementary_groups_are_the_groups_listing_the_user() {
        let group = b"wheel:x:10:alice,bob\nusers:x:100:bob\nalice:x:1000:\nstaff:x:50:carol,alice\n";
        assert_eq!(groups_of(group, b"alice", 1000), [1000, 10, 50]);
        assert_eq!(groups_of(group, b"ali", 1000), [1000]);
    }
}
