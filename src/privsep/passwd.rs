//! The front's user, looked up with the agent's one reader of the account files
//! (`qga_policy::passwd`: the files themselves, never NSS, which would load its modules into
//! this root process).

use std::path::Path;

pub use qga_policy::passwd::PASSWD;

/// The fields of a passwd entry that demotion uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Finds `name` in the passwd file at `path`. `Ok(None)`: no such user.
pub fn lookup_in(path: &Path, name: &str) -> std::io::Result<Option<Account>> {
    let entry = qga_policy::passwd::entry_in(path, name.as_bytes())?;
    Ok(entry.map(|e| Account { name: name.to_owned(), uid: e.uid, gid: e.gid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_user_is_found_with_its_ids_and_its_name() {
        let path = std::env::temp_dir().join(format!("qga-front-passwd-{}", std::process::id()));
        std::fs::write(
            &path,
            "root:x:0:0:root:/root:/bin/bash\nqemu-ga-rs:x:998:997::/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        let found = lookup_in(&path, "qemu-ga-rs").unwrap();
        assert_eq!(found, Some(Account { name: "qemu-ga-rs".into(), uid: 998, gid: 997 }));
        assert_eq!(lookup_in(&path, "qemu").unwrap(), None);
        let _ = std::fs::remove_file(&path);
        assert!(lookup_in(&path, "root").is_err(), "a missing file is an error, not 'no such user'");
    }
}
