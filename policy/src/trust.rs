//! Which files may make root act, and how the files root writes at start-up are opened.
//!
//! OpenSSH's StrictModes at heart. A *trusted owner* is root or the user the agent runs as. Every
//! directory from the file up to `/` (symbolic links resolved) must have a trusted owner and must
//! not be writable by group or others, unless it has the sticky bit, as `/tmp` has: others may
//! add entries there but cannot rename or remove ours, so it cannot be used to swap a checked
//! file (StrictModes refuses those too; the agent's own tests live under `/tmp`).
//!
//! * Files root reads and acts on (the configuration file, the policy, the freeze hook and the
//!   hook's `.d` directory): a regular file (or directory) with a trusted owner, not writable
//!   by group or others.
//! * Files root writes (the state file, the pidfile, the log): opened relative to their opened
//!   directory with `O_NOFOLLOW`, never blocking (a FIFO fails the check instead of hanging);
//!   what was opened must be a regular file with a trusted owner, one link and no group or
//!   other write permission. The state directory itself must not be writable by group or
//!   others, sticky or not.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, openat, FcntlArg, OFlag};
use nix::sys::stat::Mode;

/// Why a file was refused.
#[derive(Debug)]
pub enum Why {
    /// Owned by someone other than root or the agent's user.
    Owner {
        uid: u32,
    },
    /// Writable by group or others.
    Writable {
        mode: u32,
    },
    NotRegularFile,
    NotDirectory,
    /// A symbolic link where a file root writes is expected: never followed.
    SymbolicLink,
    /// A hard link to a file that lives elsewhere too.
    Links {
        count: u64,
    },
    Io(io::Error),
}

/// A refused path and the reason.
#[derive(Debug)]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: Why,
}

impl Untrusted {
    fn new(path: &Path, why: Why) -> Untrusted {
        Untrusted { path: path.to_path_buf(), why }
    }

    /// Whether the refusal is only that the path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(&self.why, Why::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.why {
            Why::Owner { uid } => {
                write!(f, "{path} is owned by uid {uid}; only root or uid {} may own it", effective_uid())
            }
            Why::Writable { mode } => write!(
                f,
                "{path} is group- or world-writable (mode {:04o}); make it writable by its owner only (chmod go-w)",
                mode & 0o7777
            ),
            Why::NotRegularFile => write!(f, "{path} is not a regular file"),
            Why::NotDirectory => write!(f, "{path} is not a directory"),
            Why::SymbolicLink => write!(f, "{path} is a symbolic link, which is not followed"),
            Why::Links { count } => write!(f, "{path} has {count} hard links; it must have one"),
            Why::Io(e) => write!(f, "{path}: {e}"),
        }
    }
}

impl std::error::Error for Untrusted {}

fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn owner_is_trusted(uid: u32) -> bool {
    uid == 0 || uid == effective_uid()
}

fn check_owner(path: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    if owner_is_trusted(meta.uid()) {
        Ok(())
    } else {
        Err(Untrusted::new(path, Why::Owner { uid: meta.uid() }))
    }
}

fn check_not_writable(path: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    let mode = meta.permissions().mode();
    if mode & 0o022 == 0 {
        Ok(())
    } else {
        Err(Untrusted::new(path, Why::Writable { mode }))
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> Untrusted + '_ {
    move |e| Untrusted::new(path, Why::Io(e))
}

/// The directories from `start` up to `/`, each with a trusted owner and not writable by group
/// or others unless sticky. `start` has no symbolic links.
fn check_directories(start: &Path) -> Result<(), Untrusted> {
    for dir in start.ancestors() {
        let meta = dir.symlink_metadata().map_err(io_error(dir))?;
        if !meta.is_dir() {
            return Err(Untrusted::new(dir, Why::NotDirectory));
        }
        check_owner(dir, &meta)?;
        if meta.permissions().mode() & 0o1000 == 0 {
            check_not_writable(dir, &meta)?;
        }
    }
    Ok(())
}

/// StrictModes for a file root reads and acts on: the file (links resolved) is a regular file
/// and it and every directory above it have a trusted owner and are not group/other-writable.
pub fn check_file_to_act_on(path: &Path) -> Result<(), Untrusted> {
    let real = std::fs::canonicalize(path).map_err(io_error(path))?;
    let meta = real.metadata().map_err(io_error(&real))?;
    if !meta.is_file() {
        return Err(Untrusted::new(&real, Why::NotRegularFile));
    }
    check_owner(&real, &meta)?;
    check_not_writable(&real, &meta)?;
    check_directories(real.parent().unwrap_or(Path::new("/")))
}

/// StrictModes for a directory root runs what is in: a directory with a trusted owner, not
/// group/other-writable (sticky or not), below directories checked as for a file.
pub fn check_directory_to_act_on(path: &Path) -> Result<(), Untrusted> {
    let real = std::fs::canonicalize(path).map_err(io_error(path))?;
    let meta = real.metadata().map_err(io_error(&real))?;
    if !meta.is_dir() {
        return Err(Untrusted::new(&real, Why::NotDirectory));
    }
    check_owner(&real, &meta)?;
    check_not_writable(&real, &meta)?;
    check_directories(real.parent().unwrap_or(Path::new("/")))
}

/// The freeze hook root runs, and, if it exists, the `HOOK.d` directory whose scripts the
/// shipped hook runs, and each regular file in it.
pub fn check_hook(hook: &Path) -> Result<(), Untrusted> {
    check_file_to_act_on(hook)?;
    let mut scripts = hook.as_os_str().to_owned();
    scripts.push(".d");
    let scripts = PathBuf::from(scripts);
    match check_directory_to_act_on(&scripts) {
        Err(e) if e.is_not_found() => return Ok(()),
        other => other?,
    }
    for entry in std::fs::read_dir(&scripts).map_err(io_error(&scripts))? {
        let path = entry.map_err(io_error(&scripts))?.path();
        if path.metadata().is_ok_and(|m| m.is_file()) {
            check_file_to_act_on(&path)?;
        }
    }
    Ok(())
}

/// Opens a directory root creates and writes files in: its owner trusted, not writable by
/// group or others (sticky or not), and the directories above it checked. Returns the opened
/// directory and its path with links resolved.
pub fn open_directory_to_write_in(path: &Path) -> Result<(OwnedFd, PathBuf), Untrusted> {
    let real = std::fs::canonicalize(path).map_err(io_error(path))?;
    let dir = open_directory(&real)?;
    let meta = File::from(dir.try_clone().map_err(io_error(&real))?).metadata().map_err(io_error(&real))?;
    if !meta.is_dir() {
        return Err(Untrusted::new(&real, Why::NotDirectory));
    }
    check_owner(&real, &meta)?;
    check_not_writable(&real, &meta)?;
    if let Some(parent) = real.parent() {
        check_directories(parent)?;
    }
    Ok((dir, real))
}

fn open_directory(real: &Path) -> Result<OwnedFd, Untrusted> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(real, flags, Mode::empty()).map_err(|e| Untrusted::new(real, Why::Io(e.into())))
}

/// How a file root writes is opened.
#[derive(Clone, Copy, Debug)]
pub struct WriteOpen {
    /// Append (a log) rather than read and write from the start (state, pidfile).
    pub append: bool,
    /// Create it if missing (never while filesystems are frozen: that would block).
    pub create: bool,
    /// Permissions of a new file.
    pub mode: u32,
}

/// Opens `name` inside the opened directory `dir` (shown as `dir_path`) for writing, never
/// following a link, and checks what was opened.
pub fn open_file_to_write_in(
    dir: &impl AsFd,
    dir_path: &Path,
    name: &OsStr,
    how: WriteOpen,
) -> Result<File, Untrusted> {
    let path = dir_path.join(name);
    let mut flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    flags |= if how.append { OFlag::O_WRONLY | OFlag::O_APPEND } else { OFlag::O_RDWR };
    if how.create {
        flags |= OFlag::O_CREAT;
    }
    let fd = openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(how.mode)).map_err(|e| match e {
        nix::errno::Errno::ELOOP => Untrusted::new(&path, Why::SymbolicLink),
        e => Untrusted::new(&path, Why::Io(e.into())),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_error(&path))?;
    if !meta.is_file() {
        return Err(Untrusted::new(&path, Why::NotRegularFile));
    }
    check_owner(&path, &meta)?;
    check_not_writable(&path, &meta)?;
    if meta.nlink() != 1 {
        return Err(Untrusted::new(&path, Why::Links { count: meta.nlink() }));
    }
    // Opened without blocking only so that a FIFO could not hang start-up; a regular file
    // is written normally.
    let status = if how.append { OFlag::O_APPEND } else { OFlag::empty() };
    fcntl(&file, FcntlArg::F_SETFL(status)).map_err(|e| Untrusted::new(&path, Why::Io(e.into())))?;
    Ok(file)
}

/// Opens a file root writes outside the state directory (the pidfile, the log): its directory
/// and those above it are checked (a sticky one such as `/tmp` is accepted), then the file as
/// [`open_file_to_write_in`].
pub fn open_file_to_write(path: &Path, how: WriteOpen) -> Result<File, Untrusted> {
    let name = path.file_name().ok_or_else(|| Untrusted::new(path, Why::NotRegularFile))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let real_parent = std::fs::canonicalize(parent).map_err(io_error(parent))?;
    check_directories(&real_parent)?;
    let dir = open_directory(&real_parent)?;
    open_file_to_write_in(&dir, &real_parent, name, how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("qga-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    const LOG: WriteOpen = WriteOpen { append: true, create: true, mode: 0o640 };

    #[test]
    fn a_symlink_in_place_of_a_written_file_is_not_followed() {
        let dir = scratch("symlink");
        let target = dir.join("target");
        std::fs::write(&target, b"keep").unwrap();
        symlink(&target, dir.join("log")).unwrap();
        let e = open_file_to_write(&dir.join("log"), LOG).unwrap_err();
        assert!(matches!(e.why, Why::SymbolicLink), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_in_place_of_a_written_file_is_refused_without_blocking() {
        let dir = scratch("fifo");
        nix::unistd::mkfifo(&dir.join("log"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_file_to_write(&dir.join("log"), LOG).unwrap_err();
        assert!(matches!(e.why, Why::NotRegularFile | Why::Io(_)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hard_link_in_place_of_a_written_file_is_refused() {
        let dir = scratch("hardlink");
        std::fs::write(dir.join("elsewhere"), b"keep").unwrap();
        std::fs::hard_link(dir.join("elsewhere"), dir.join("log")).unwrap();
        let e = open_file_to_write(&dir.join("log"), LOG).unwrap_err();
        assert!(matches!(e.why, Why::Links { count: 2 }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_world_writable_directory_is_refused_unless_sticky_above_a_written_file() {
        let dir = scratch("dirs");
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = open_file_to_write(&open.join("log"), LOG).unwrap_err();
        assert!(matches!(e.why, Why::Writable { .. }), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        open_file_to_write(&open.join("log"), LOG).unwrap();
        // A state directory must not be writable by others even with the sticky bit.
        let e = open_directory_to_write_in(&open).unwrap_err();
        assert!(matches!(e.why, Why::Writable { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_to_act_on_must_not_be_writable_by_others_nor_any_directory_above_it() {
        let dir = scratch("act");
        let file = dir.join("conf");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        check_file_to_act_on(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o646)).unwrap();
        assert!(matches!(check_file_to_act_on(&file).unwrap_err().why, Why::Writable { .. }));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = check_file_to_act_on(&file).unwrap_err();
        assert!(matches!(e.why, Why::Writable { .. }) && e.path == dir, "{e}");
        // Sticky, as /tmp: others cannot swap what is in it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_file_to_act_on(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
