//! Narrows the helper's filesystem access with Landlock to what its operations touch. The helper
//! is uid 0 with CAP_DAC_READ_SEARCH: without this, its permissions would let it read
//! /etc/shadow and create, write or delete any root-owned file. After [`restrict`] it may only:
//!
//! - open any directory for reading (`/`, read-dir): freeze, thaw and trim open every mount
//!   point, and mounts come and go while the helper runs;
//! - read its own `/proc/self` (mountinfo), and the block devices' files under `/sys/devices`
//!   and udev's database `/run/udev/data` (guest-get-fsinfo, guest-get-disks);
//! - read and write `/sys/devices/system/cpu` (cpuN/online), `/sys/devices/system/memory`
//!   (memoryN/state), `/sys/power/state` and
//!   `/dev/rtc0` (with its ioctls, where the kernel controls device ioctls);
//! - create, write and remove regular files in the state directory (the freeze marker);
//! - read the policy file and the config file, which a reload re-reads: their whole directory
//!   when it is one of their own (an editor replaces a file by renaming a new one over it, and
//!   a rule on the old file would not cover the new one), else the files alone (see
//!   [`reread_paths`]: a policy kept directly in /etc must not open /etc/shadow to the helper);
//! - only when guest-file-open was enabled at start: read, write, create and truncate files
//!   beneath the directory of each of its policy rules, with that rule's rights, or beneath `/`
//!   when it has no rules (7.2's meaning, any path; `crate::files`).
//!
//! Everything else it opens, creates, removes or renames is refused with EACCES. The launcher
//! was forked before, so it and what it runs (shutdown, the freeze hook) are not restricted.
//!
//! Landlock is used through its three system calls; the ABI the kernel offers is probed and
//! only the access rights it knows are handled. A kernel without Landlock (before 5.13, or
//! with it left out of the LSM list) leaves the helper as it was, and the helper logs that.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::libc;
use nix::sys::stat::Mode;

use crate::clock::RTC_DEVICE;
use crate::memory::SYSFS_MEMORY;
use crate::power::SYS_POWER_STATE;
use crate::vcpus::SYSFS_CPU;

// Access rights of <linux/landlock.h>.
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_REG: u64 = 1 << 8;
/// Every right of ABI 1: execute, write and read files, read directories, remove directories
/// and files, make character devices, directories, regular files, sockets, FIFOs, block
/// devices and symlinks.
const ABI_1: u64 = (1 << 13) - 1;
/// ABI 2: linking or renaming a file into another directory.
const REFER: u64 = 1 << 13;
/// ABI 3: truncating a file.
const TRUNCATE: u64 = 1 << 14;
/// ABI 5: ioctls on character and block devices.
const IOCTL_DEV: u64 = 1 << 15;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_ruleset_attr` as of ABI 1; the kernel accepts this shorter size from
/// programs that handle no network rights.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The rights the kernel knows at `abi`: all of them are handled, so each is refused unless
/// a rule grants it.
pub fn handled_rights(abi: i32) -> u64 {
    let mut rights = ABI_1;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    if abi >= 5 {
        rights |= IOCTL_DEV;
    }
    rights
}

/// The Landlock rights a guest-file-open rule's access needs: reading, writing (append
/// included), creating regular files, and truncating (modes w and w+ open with O_TRUNC).
pub fn file_open_rights(a: qga_policy::rules::Access) -> u64 {
    let mut rights = 0;
    if a.read {
        rights |= READ_FILE;
    }
    if a.write || a.append {
        rights |= WRITE_FILE;
    }
    if a.create {
        rights |= MAKE_REG;
    }
    if a.write {
        rights |= TRUNCATE;
    }
    rights
}

/// What each path may be used for, with why. Rights the kernel does not handle are masked off.
/// `files`: the directories guest-file-open may open beneath, with their rights
/// ([`crate::files::landlock_paths`]; empty when it is disabled).
pub fn rules<'a>(
    statedir: &'a Path,
    reread: &'a [PathBuf],
    files: &'a [(PathBuf, qga_policy::rules::Access)],
) -> Vec<(&'a Path, u64, &'static str)> {
    let mut rules = vec![
        (Path::new("/"), READ_DIR, "freeze, thaw and trim open every mount point as a directory"),
        (Path::new("/proc/self"), READ_FILE, "the helper's own mountinfo"),
        (Path::new("/sys/devices"), READ_FILE, "fsinfo and disks: uevent, dev and size of block devices"),
        (Path::new("/run/udev/data"), READ_FILE, "fsinfo and disks: ID_SERIAL and DM_NAME from udev's database"),
        (Path::new(SYSFS_CPU), READ_FILE | WRITE_FILE, "set-vcpus: cpuN/online"),
        (Path::new(SYSFS_MEMORY), READ_FILE | WRITE_FILE, "set-memory-blocks: memoryN/state"),
        (Path::new(SYS_POWER_STATE), READ_FILE | WRITE_FILE, "suspend's kernel fallback"),
        (Path::new(RTC_DEVICE), READ_FILE | WRITE_FILE | IOCTL_DEV, "set-time: RTC_RD_TIME, RTC_SET_TIME"),
        (statedir, READ_FILE | WRITE_FILE | MAKE_REG | REMOVE_FILE, "the freeze marker"),
    ];
    rules
        .extend(reread.iter().map(|path| (path.as_path(), READ_FILE, "a reload re-reads the policy and config files")));
    rules.extend(
        files
            .iter()
            .map(|(dir, a)| (dir.as_path(), file_open_rights(*a), "guest-file-open beneath a rule's directory")),
    );
    rules
}

/// Most entries a directory of its own may hold (a bounded walk: the directory's tree is what a
/// rule on it grants).
const MAX_DEDICATED_ENTRIES: usize = 256;

/// What a reload may read: the paths given a read rule, and for each file whose directory is
/// not one of its own, why (the helper logs it at start).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reread {
    pub paths: Vec<PathBuf>,
    pub files_only: Vec<(PathBuf, String)>,
}

/// The paths a reload reads: for the policy file and the config file (each as named and as
/// resolved, for a symbolic link), their directory when it is a directory of their own (see
/// [`not_dedicated`]), else the file alone. A rule on a directory covers its whole tree, so a
/// file kept beside others (a policy directly in /etc, next to /etc/shadow) gets a rule on
/// itself only: the helper then reads it when edited in place, not once replaced, and the log
/// says so.
pub fn reread_paths(sources: &qga_policy::reload::Sources) -> Reread {
    let policy = sources.policy.clone().unwrap_or_else(|| PathBuf::from(qga_policy::DEFAULT_PATH));
    let config = sources.config.as_ref().map(|c| c.path.clone());
    let mut out = Reread::default();
    for file in std::iter::once(policy).chain(config) {
        let resolved = std::fs::canonicalize(&file).ok();
        for path in std::iter::once(file).chain(resolved) {
            let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { continue };
            let granted = match not_dedicated(dir) {
                None => dir.to_path_buf(),
                Some(why) => {
                    // Said only of a file there is: a missing one gets no rule and no warning.
                    if path.exists() && !out.files_only.iter().any(|(f, _)| *f == path) {
                        out.files_only.push((path.clone(), why));
                    }
                    path.clone()
                }
            };
            if !out.paths.contains(&granted) {
                out.paths.push(granted);
            }
        }
    }
    out
}

/// Why `dir` is not a directory of its own that the helper may read whole, or `None` when it
/// is: every entry beneath it (at most [`MAX_DEDICATED_ENTRIES`]) is readable by everyone, so
/// reading the tree gives the helper nothing an unprivileged user could not read. A missing
/// directory gets no rule anyway. Checked at start: the admin keeps it that way.
pub fn not_dedicated(dir: &Path) -> Option<String> {
    if dir == Path::new("/") {
        return Some("it is /".into());
    }
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => return None,
            Err(e) => return Some(format!("{} cannot be listed: {e}", d.display())),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return Some(format!("{} cannot be listed: {e}", d.display())),
            };
            seen += 1;
            if seen > MAX_DEDICATED_ENTRIES {
                return Some(format!("it holds more than {MAX_DEDICATED_ENTRIES} entries"));
            }
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => return Some(format!("{}: {e}", path.display())),
            };
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            // A symbolic link grants nothing: Landlock checks where it leads.
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                if mode & 0o005 != 0o005 {
                    return Some(format!("{} is not open to all", path.display()));
                }
                pending.push(path);
            } else if mode & 0o004 == 0 {
                return Some(format!("it holds {}, which not everyone may read", path.display()));
            }
        }
    }
    None
}

/// How [`restrict`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Restricted {
    /// Enforced at this ABI version.
    Enforced(i32),
    /// The kernel has no Landlock (ENOSYS), it is disabled (EOPNOTSUPP), or an outer seccomp
    /// filter forbids it (EPERM).
    Unavailable(Errno),
}

#[derive(Debug)]
pub struct LandlockError {
    step: &'static str,
    errno: Errno,
}

impl std::fmt::Display for LandlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "landlock: {} failed: {}", self.step, self.errno.desc())
    }
}

impl std::error::Error for LandlockError {}

/// The Landlock ABI version the kernel offers, or why there is none.
pub fn abi_version() -> Result<i32, Errno> {
    // SAFETY: with a NULL attribute, size 0 and the version flag the call only returns a number.
    let v = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<RulesetAttr>(), 0, CREATE_RULESET_VERSION)
    };
    if v < 0 {
        Err(Errno::last())
    } else {
        Ok(v as i32)
    }
}

/// Restricts the calling (single-threaded) process to [`rules`]. no_new_privs must be set
/// (demote does). A path that does not exist gets no rule (what needs it then fails as it would
/// have anyway); a path that cannot be opened otherwise is an error.
pub fn restrict(statedir: &Path) -> Result<Restricted, LandlockError> {
    restrict_with(statedir, &[])
}

/// [`restrict`], also letting files be read in `reread` (see [`reread_paths`]).
pub fn restrict_with(statedir: &Path, reread: &[PathBuf]) -> Result<Restricted, LandlockError> {
    restrict_with_files(statedir, reread, &[])
}

/// [`restrict_with`], also letting guest-file-open open files beneath `files`' directories.
pub fn restrict_with_files(
    statedir: &Path,
    reread: &[PathBuf],
    files: &[(PathBuf, qga_policy::rules::Access)],
) -> Result<Restricted, LandlockError> {
    let abi = match abi_version() {
        Ok(v) => v,
        // ENOSYS: a kernel built without it; EOPNOTSUPP: built but not enabled at boot; EPERM: an
        // outer seccomp filter (a service manager's SystemCallFilter=) forbids it. In each case
        // the helper cannot narrow itself, and refusing to start would only take the agent away.
        Err(e @ (Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EPERM)) => return Ok(Restricted::Unavailable(e)),
        Err(errno) => return Err(LandlockError { step: "probing the ABI", errno }),
    };
    let handled = handled_rights(abi);
    let attr = RulesetAttr { handled_access_fs: handled };
    // SAFETY: `attr` is a live, correctly laid out ruleset attribute of the size passed.
    let fd = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, std::mem::size_of_val(&attr), 0)
    };
    if fd < 0 {
        return Err(LandlockError { step: "creating the ruleset", errno: Errno::last() });
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    let ruleset = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    for (path, rights, _why) in rules(statedir, reread, files) {
        let parent = match open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(errno) => return Err(LandlockError { step: "opening a path for its rule", errno }),
        };
        // A rule on a file may only carry file rights.
        let file_rights = WRITE_FILE | READ_FILE | EXECUTE | TRUNCATE | IOCTL_DEV;
        let is_dir = nix::sys::stat::fstat(&parent)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(|errno| LandlockError { step: "fstat of a path for its rule", errno })?;
        let allowed = rights & handled & if is_dir { u64::MAX } else { file_rights };
        let rule = PathBeneathAttr { allowed_access: allowed, parent_fd: parent.as_raw_fd() };
        // SAFETY: `rule` is a live path-beneath attribute; both descriptors are open.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0,
            )
        };
        if r < 0 {
            return Err(LandlockError { step: "adding a rule", errno: Errno::last() });
        }
    }
    // SAFETY: plain system call on an open ruleset descriptor.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) } < 0 {
        return Err(LandlockError { step: "enforcing the ruleset", errno: Errno::last() });
    }
    Ok(Restricted::Enforced(abi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_holding_a_file_not_everyone_may_read_is_not_one_of_its_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("qga-landlock-dedicated-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("policy"), "default deny\n").unwrap();
        std::fs::set_permissions(dir.join("policy"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(not_dedicated(&dir), None);
        // A secret deeper down counts too: a rule on the directory covers its tree.
        std::fs::write(dir.join("sub/secret"), "x").unwrap();
        std::fs::set_permissions(dir.join("sub/secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let why = not_dedicated(&dir).expect("a secret beneath it");
        assert!(why.contains("sub/secret"), "{why}");
        let sources = qga_policy::reload::Sources { policy: Some(dir.join("policy")), ..Default::default() };
        let reread = reread_paths(&sources);
        assert_eq!(reread.paths, [dir.join("policy")]);
        assert_eq!(reread.files_only.len(), 1);
        assert!(not_dedicated(Path::new("/etc")).is_some(), "/etc holds shadow");
        assert!(not_dedicated(Path::new("/")).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rights_grow_with_the_abi_and_never_drop() {
        assert_eq!(handled_rights(1), ABI_1);
        assert_eq!(handled_rights(2), ABI_1 | REFER);
        assert_eq!(handled_rights(4), ABI_1 | REFER | TRUNCATE);
        assert_eq!(handled_rights(7), ABI_1 | REFER | TRUNCATE | IOCTL_DEV);
    }

    #[test]
    fn only_the_state_directory_may_be_written_to_as_a_directory() {
        let reread = [PathBuf::from("/etc/qemu-ga-rs")];
        let rules = rules(Path::new("/var/lib/qemu-ga-rs"), &reread, &[]);
        for (path, rights, why) in &rules {
            assert!(why.len() > 8, "{} has no reason", path.display());
            if rights & (MAKE_REG | REMOVE_FILE) != 0 {
                assert_eq!(*path, Path::new("/var/lib/qemu-ga-rs"));
            }
            assert_eq!(rights & EXECUTE, 0, "{} must not be executable", path.display());
        }
        // The whole tree is only ever opened as directories.
        assert_eq!(rules[0], (Path::new("/"), READ_DIR, rules[0].2));
    }

    #[test]
    fn file_open_rules_get_exactly_their_rights_and_never_execute_or_remove() {
        use qga_policy::rules::Access;
        let files = [
            (PathBuf::from("/srv/drop"), Access { write: true, create: true, ..Access::default() }),
            (PathBuf::from("/srv/read"), Access { read: true, ..Access::default() }),
        ];
        let rules = rules(Path::new("/run"), &[], &files);
        let of = |p: &str| rules.iter().find(|r| r.0 == Path::new(p)).map(|r| r.1);
        assert_eq!(of("/srv/drop"), Some(WRITE_FILE | MAKE_REG | TRUNCATE));
        assert_eq!(of("/srv/read"), Some(READ_FILE));
        let append = file_open_rights(Access { append: true, ..Access::default() });
        assert_eq!(append, WRITE_FILE, "appending never truncates");
        for (path, rights, _) in rules.iter().filter(|r| r.0.starts_with("/srv")) {
            assert_eq!(rights & (EXECUTE | REMOVE_FILE | REFER), 0, "{}", path.display());
        }
    }

    #[test]
    fn a_reload_reads_in_the_policy_and_config_directories_only() {
        let sources = qga_policy::reload::Sources {
            policy: Some(PathBuf::from("/nonexistent/qemu-ga-rs/policy")),
            config: Some(qga_policy::reload::ConfigFile {
                path: PathBuf::from("/nonexistent/qemu/qemu-ga.conf"),
                required: false,
            }),
            ..Default::default()
        };
        let dirs = reread_paths(&sources).paths;
        assert!(dirs.contains(&PathBuf::from("/nonexistent/qemu-ga-rs")), "{dirs:?}");
        assert!(dirs.contains(&PathBuf::from("/nonexistent/qemu")), "{dirs:?}");
        for (path, rights, _) in rules(Path::new("/run"), &dirs, &[]) {
            if dirs.iter().any(|d| d == path) {
                assert_eq!(rights, READ_FILE, "{}", path.display());
            }
        }
    }
}
