//! Looks the front's user up in `/etc/passwd` itself rather than through NSS.
//!
//! The lookup runs as root before demotion. NSS would load whatever modules
//! `/etc/nsswitch.conf` names (systemd, sss, ldap…) into that root process and leave them
//! mapped for the front's whole life; a system account for a daemon lives in `/etc/passwd`,
//! so the agent reads that file and nothing else. It also keeps the binaries free of NSS,
//! which a statically linked build cannot load safely.

use std::path::Path;

pub const PASSWD: &str = "/etc/passwd";

/// The fields of a passwd entry that demotion uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Finds `name` in the passwd file at `path`. `Ok(None)`: no such user.
pub fn lookup_in(path: &Path, name: &str) -> std::io::Result<Option<Account>> {
    let text = std::fs::read(path)?;
    Ok(find(&text, name))
}

/// Finds `name` in passwd-format text: `name:password:uid:gid:gecos:home:shell` per line.
/// Comment lines, blank lines and NIS compat entries (`+`/`-`) are skipped; the first entry
/// whose name matches wins, as with getpwnam on the files database. A matching line whose
/// ids do not parse is skipped too, as glibc does.
pub fn find(text: &[u8], name: &str) -> Option<Account> {
    if name.is_empty() || name.contains(':') || name.contains('\n') {
        return None;
    }
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let entry_name = fields.next()?;
        if entry_name != name.as_bytes() {
            return None;
        }
        let _password = fields.next()?;
        let uid = parse_id(fields.next()?)?;
        let gid = parse_id(fields.next()?)?;
        Some(Account { name: name.to_owned(), uid, gid })
    })
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

    const SAMPLE: &[u8] = b"\
root:x:0:0:root:/root:/bin/bash
# a comment
+nisuser::::::
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:x:12x:5:::
qemu-ga-rs:x:998:997:qemu-ga-rs front:/nonexistent:/usr/sbin/nologin
nobody:x:1:1:second entry is ignored::
";

    #[test]
    fn finds_a_user_with_its_ids() {
        assert_eq!(find(SAMPLE, "qemu-ga-rs"), Some(Account { name: "qemu-ga-rs".into(), uid: 998, gid: 997 }));
    }

    #[test]
    fn first_matching_entry_wins() {
        assert_eq!(find(SAMPLE, "nobody").map(|a| (a.uid, a.gid)), Some((65534, 65534)));
    }

    #[test]
    fn unknown_user_is_none() {
        assert_eq!(find(SAMPLE, "daemon"), None);
    }

    #[test]
    fn entry_with_unparsable_ids_is_skipped() {
        assert_eq!(find(SAMPLE, "broken"), None);
    }

    #[test]
    fn names_that_cannot_be_in_the_file_match_nothing() {
        assert_eq!(find(SAMPLE, ""), None);
        assert_eq!(find(SAMPLE, "root:x"), None);
        assert_eq!(find(SAMPLE, "+nisuser"), None);
    }

    #[test]
    fn prefix_of_a_name_does_not_match() {
        assert_eq!(find(SAMPLE, "qemu"), None);
        assert_eq!(find(SAMPLE, "roo"), None);
    }
}
