//! The authorized_keys work of the key commands, run by a child of the launcher that has
//! already become the target user (so it can never write where the user cannot), and never
//! through a link the user planted: `~/.ssh` is opened `O_DIRECTORY|O_NOFOLLOW` and everything
//! below it relative to that descriptor, `authorized_keys` `O_NOFOLLOW`. The file is replaced
//! atomically (a temporary file in `~/.ssh`, fsync, rename, fsync of the directory) with mode
//! 0600; a `~/.ssh` it creates is 0700. Owners are the user's by construction.
//!
//! The line handling and error texts are 7.2's (qga/commands-posix-ssh.c), paths included.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

use super::strerror;
use crate::protocol::accounts::MAX_AUTHKEYS_FILE;

/// What to do with the user's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysOp<'a> {
    Get,
    Add { keys: &'a [Vec<u8>], reset: bool },
    Remove { keys: &'a [Vec<u8>] },
}

/// The result, as the reply carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysResult {
    Keys(Vec<Vec<u8>>),
    Done,
    Failed(String),
}

/// GLib's g_strsplit on "\n": an empty text has no lines; otherwise a trailing newline leaves
/// an empty last line.
pub fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(|&b| b == b'\n').collect()
}

/// guest-ssh-get-authorized-keys' list: each line stripped of ASCII blanks, empty lines and
/// comments skipped, in reverse file order (7.2 prepends each key to its list).
pub fn keys_of(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = split_lines(text)
        .into_iter()
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .map(<[u8]>::to_vec)
        .collect();
    out.reverse();
    out
}

/// The file after an add: the existing lines as they are, then each new key no line equals yet,
/// joined by newlines (no final newline, as 7.2 writes it).
pub fn added(existing: Option<&[u8]>, keys: &[Vec<u8>]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = existing.map(split_lines).unwrap_or_default();
    for k in keys {
        if !lines.contains(&k.as_slice()) {
            lines.push(k);
        }
    }
    lines.join(&b'\n')
}

/// The file after a remove: every line equal to none of `keys`.
pub fn removed(existing: &[u8], keys: &[Vec<u8>]) -> Vec<u8> {
    let lines: Vec<&[u8]> = split_lines(existing).into_iter().filter(|l| !keys.iter().any(|k| k == l)).collect();
    lines.join(&b'\n')
}

/// The paths as 7.2 names them in its errors (g_build_filename of the home directory).
pub struct Paths {
    pub ssh: String,
    pub keys: String,
}

impl Paths {
    pub fn new(home: &[u8]) -> Paths {
        let home = String::from_utf8_lossy(home);
        let base = home.trim_end_matches('/');
        let ssh = format!("{base}/.ssh");
        let keys = format!("{ssh}/authorized_keys");
        Paths { ssh, keys }
    }
}

enum ReadError {
    Os(Errno),
    TooLarge,
    NotRegular,
}

impl ReadError {
    fn text(&self, p: &Paths) -> String {
        let why = match self {
            ReadError::Os(e) => format!("Failed to open file \u{201c}{}\u{201d}: {}", p.keys, strerror(*e)),
            ReadError::TooLarge => format!("the file is larger than {MAX_AUTHKEYS_FILE} bytes"),
            ReadError::NotRegular => "not a regular file".to_string(),
        };
        format!("failed to read '{}': {why}", p.keys)
    }
}

const DIR: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

fn open_ssh(home: &OwnedFd) -> Result<OwnedFd, Errno> {
    openat(home, ".ssh", DIR, Mode::empty())
}

fn read_keys(home: Result<&OwnedFd, Errno>) -> Result<Vec<u8>, ReadError> {
    let ssh = open_ssh(home.map_err(ReadError::Os)?).map_err(ReadError::Os)?;
    // Non-blocking: a FIFO planted there must not hang the child; it is refused below.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(&ssh, "authorized_keys", flags, Mode::empty()).map_err(ReadError::Os)?;
    let st = fstat(&fd).map_err(ReadError::Os)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(ReadError::NotRegular);
    }
    let mut text = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_AUTHKEYS_FILE as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| ReadError::Os(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    if text.len() > MAX_AUTHKEYS_FILE {
        return Err(ReadError::TooLarge);
    }
    Ok(text)
}

/// `~/.ssh`, created 0700 if missing (7.2's mkdir and chmod); never a link.
fn ensure_ssh(home: Result<&OwnedFd, Errno>, p: &Paths) -> Result<OwnedFd, String> {
    let fail = |e: Errno| format!("failed to create directory '{}': {}", p.ssh, strerror(e));
    let home = home.map_err(fail)?;
    match open_ssh(home) {
        Ok(fd) => return Ok(fd),
        // Something that is not a directory: 7.2's mkdir fails with EEXIST.
        Err(Errno::ENOTDIR) => return Err(fail(Errno::EEXIST)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(fail(e)),
    }
    mkdirat(home, ".ssh", Mode::from_bits_truncate(0o700)).map_err(fail)?;
    let fd = open_ssh(home).map_err(fail)?;
    fchmod(&fd, Mode::from_bits_truncate(0o700))
        .map_err(|e| format!("failed to set permissions of directory '{}': {}", p.ssh, strerror(e)))?;
    Ok(fd)
}

/// Replaces `authorized_keys` in `ssh` atomically with `content`, mode 0600.
fn write_keys(ssh: &OwnedFd, content: &[u8], p: &Paths) -> Result<(), String> {
    let fail = |what: String| format!("failed to write to '{}': {what}", p.keys);
    if content.len() > MAX_AUTHKEYS_FILE {
        return Err(fail(format!("the file would be larger than {MAX_AUTHKEYS_FILE} bytes")));
    }
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut attempt = 0u32;
    let (tmp, fd) = loop {
        let name = format!("authorized_keys.{}{attempt:02}", std::process::id());
        match openat(ssh, name.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => break (name, fd),
            Err(Errno::EEXIST) if attempt < 99 => attempt += 1,
            Err(e) => {
                return Err(fail(format!("Failed to create file \u{201c}{}/{name}\u{201d}: {}", p.ssh, strerror(e))));
            }
        }
    };
    let tmp_path = format!("{}/{tmp}", p.ssh);
    let result = (|| {
        let mut f = std::fs::File::from(fd);
        f.write_all(content)
            .map_err(|e| format!("Failed to write file \u{201c}{tmp_path}\u{201d}: write() failed: {e}"))?;
        fchmod(f.as_fd(), Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("Failed to set permissions of \u{201c}{tmp_path}\u{201d}: {}", strerror(e)))?;
        fsync(f.as_fd())
            .map_err(|e| format!("Failed to write file \u{201c}{tmp_path}\u{201d}: fsync() failed: {}", strerror(e)))?;
        renameat(ssh, tmp.as_str(), ssh, "authorized_keys").map_err(|e| {
            format!(
                "Failed to rename file \u{201c}{tmp_path}\u{201d} to \u{201c}{}\u{201d}: g_rename() failed: {}",
                p.keys,
                strerror(e)
            )
        })
    })();
    if let Err(e) = result {
        let _ = unlinkat(ssh, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(fail(e));
    }
    // The rename itself is durable once the directory is.
    let _ = fsync(ssh);
    Ok(())
}

/// Carries out `op` on the keys of the user whose home is `home`. Call only as that user.
pub fn run(home: &[u8], op: &KeysOp<'_>) -> KeysResult {
    let p = Paths::new(home);
    let home_fd = nix::fcntl::open(
        std::ffi::OsStr::new(&*String::from_utf8_lossy(home)),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    );
    let home_fd = home_fd.as_ref().map_err(|e| *e);
    let result = match op {
        KeysOp::Get => read_keys(home_fd).map(|t| KeysResult::Keys(keys_of(&t))).map_err(|e| e.text(&p)),
        KeysOp::Add { keys, reset } => (|| {
            let existing = match reset {
                true => None,
                // 7.2 writes over a file it could not read; here only a missing one is new, and
                // anything else (a link, a FIFO, no permission) is refused.
                false => match read_keys(home_fd) {
                    Ok(t) => Some(t),
                    Err(ReadError::Os(Errno::ENOENT)) => None,
                    Err(e) => return Err(e.text(&p)),
                },
            };
            let ssh = ensure_ssh(home_fd, &p)?;
            write_keys(&ssh, &added(existing.as_deref(), keys), &p).map(|()| KeysResult::Done)
        })(),
        KeysOp::Remove { keys } => (|| {
            let existing = match read_keys(home_fd) {
                Ok(t) => t,
                // 7.2 does nothing when the file does not exist.
                Err(ReadError::Os(Errno::ENOENT)) => return Ok(KeysResult::Done),
                Err(e) => return Err(e.text(&p)),
            };
            let ssh = home_fd.and_then(open_ssh).map_err(|e| ReadError::Os(e).text(&p))?;
            write_keys(&ssh, &removed(&existing, keys), &p).map(|()| KeysResult::Done)
        })(),
    };
    result.unwrap_or_else(KeysResult::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(keys: &[&str]) -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn get_strips_skips_comments_and_blank_lines_and_reverses_like_72() {
        let text = b"algo key1 comments\n# a commented line\n  algo some-key another \t\n\n";
        assert_eq!(keys_of(text), v(&["algo some-key another", "algo key1 comments"]));
        assert!(keys_of(b"").is_empty());
    }

    #[test]
    fn add_appends_keys_not_yet_present_after_the_existing_lines() {
        assert_eq!(added(None, &v(&["algo key2 comments"])), b"algo key2 comments");
        let once = added(Some(b"algo key2 comments"), &v(&["algo key1 comments", "algo key2 comments"]));
        assert_eq!(once, b"algo key2 comments\nalgo key1 comments");
        // A final newline leaves an empty line, kept as 7.2 keeps it.
        assert_eq!(added(Some(b"a\n"), &v(&["b"])), b"a\n\nb");
        assert_eq!(added(Some(b""), &v(&["b", "b"])), b"b");
    }

    #[test]
    fn remove_drops_exactly_equal_lines() {
        assert_eq!(removed(b"a\nb\nc", &v(&["b"])), b"a\nc");
        assert_eq!(removed(b"a\n b\n", &v(&["b", ""])), b"a\n b");
    }

    #[test]
    fn paths_are_built_like_g_build_filename() {
        assert_eq!(Paths::new(b"/home/alice/").keys, "/home/alice/.ssh/authorized_keys");
        assert_eq!(Paths::new(b"/").ssh, "/.ssh");
    }

    /// The file work itself, in a scratch home owned by whoever runs the test.
    #[test]
    fn add_get_remove_in_a_scratch_home_with_modes_and_no_link_followed() {
        use std::os::unix::fs::PermissionsExt;
        let home = std::env::temp_dir().join(format!("qga-authkeys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir(&home).unwrap();
        let h = home.to_str().unwrap().as_bytes();
        let keys = v(&["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"]);
        assert_eq!(run(h, &KeysOp::Add { keys: &keys, reset: false }), KeysResult::Done);
        let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&home.join(".ssh")), 0o700);
        assert_eq!(mode(&home.join(".ssh/authorized_keys")), 0o600);
        assert_eq!(run(h, &KeysOp::Get), KeysResult::Keys(v(&["ssh-ed25519 BBBB two", "ssh-ed25519 AAAA one"])));
        assert_eq!(run(h, &KeysOp::Remove { keys: &keys[..1] }), KeysResult::Done);
        assert_eq!(std::fs::read(home.join(".ssh/authorized_keys")).unwrap(), b"ssh-ed25519 BBBB two");
        // A planted link is never read or written through.
        let target = home.join("target");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::remove_file(home.join(".ssh/authorized_keys")).unwrap();
        std::os::unix::fs::symlink(&target, home.join(".ssh/authorized_keys")).unwrap();
        let KeysResult::Failed(e) = run(h, &KeysOp::Get) else { panic!("a link was followed") };
        assert!(e.ends_with("Too many levels of symbolic links"), "{e}");
        assert!(matches!(run(h, &KeysOp::Add { keys: &keys, reset: false }), KeysResult::Failed(_)));
        assert!(matches!(run(h, &KeysOp::Remove { keys: &keys }), KeysResult::Failed(_)));
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        let leftovers: Vec<_> = std::fs::read_dir(home.join(".ssh")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "a temporary file was left behind");
        // A missing file: get fails with 7.2's text, remove does nothing.
        std::fs::remove_file(home.join(".ssh/authorized_keys")).unwrap();
        let KeysResult::Failed(e) = run(h, &KeysOp::Get) else { panic!() };
        let p = Paths::new(h).keys;
        assert_eq!(
            e,
            format!("failed to read '{p}': Failed to open file \u{201c}{p}\u{201d}: No such file or directory")
        );
        assert_eq!(run(h, &KeysOp::Remove { keys: &keys }), KeysResult::Done);
        std::fs::remove_dir_all(&home).unwrap();
    }
}
