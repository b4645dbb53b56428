//! guest-file-open with root's reach: the helper opens the file and the front gets the
//! descriptor. Which directory an open may resolve beneath is decided here, purely, from the
//! policy rule that allows the path ([`target`]); [`open`] then opens it with `openat2` beneath
//! that directory: no symbolic link (`RESOLVE_NO_SYMLINKS`, the last component included), no
//! magic link, and nothing outside it (`RESOLVE_BENEATH`), so the kernel's resolution of the
//! path is what the rule is checked against. Device nodes, FIFOs and sockets are refused unless
//! the rule says `special=yes`: checked on an `O_PATH` descriptor before anything is opened (no
//! device sees an open it was not meant to) and again on the opened file before it is handed
//! over (the name may have changed in between).
//!
//! Without rules for guest-file-open (allow-all, or `allow guest-file-open` alone) the command
//! means what it means in 7.2: any path, resolved as the kernel resolves it, any file type.
//!
//! New files are created exclusively and then given mode 0644 whatever the umask (7.2 does the
//! same two steps); they belong to the helper's user, root, as with 7.2.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::libc;
use nix::sys::stat::{fchmod, fstat, Mode};
use qga_policy::rules::{Conditions, PathPattern};
use qga_policy::{permit_among, Command, Invocation, Policy};

use crate::protocol::OpenMode;

/// The mode of a file guest-file-open creates.
pub const NEW_FILE_MODE: u32 = 0o644;

/// Where an open resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No rules: the path as given, as 7.2 opens it.
    Anywhere(Vec<u8>),
    /// `rest` (relative, no `.` or `..`) beneath the directory `anchor`, which the rule names.
    Beneath { anchor: Vec<u8>, rest: Vec<u8>, special: bool },
}

/// Why an open did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The open failed as 7.2's would: the front words it with the errno.
    Errno(Errno),
    /// The policy refused what the path resolved to; the text says what.
    Refused(String),
}

fn refusal(path: &[u8], why: &str) -> OpenError {
    let shown: String = String::from_utf8_lossy(&path[..path.len().min(256)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    OpenError::Refused(format!("the policy does not allow guest-file-open '{shown}' ({why})"))
}

/// The directory the rule allowing `path` in `mode` lets it resolve beneath, or the gate's
/// refusal. Pure: the same [`permit_among`] the front ran, one rule at a time, so the first
/// rule that allows the request is the one whose directory is used.
pub fn target(policy: &Policy, path: &[u8], mode: OpenMode) -> Result<Target, String> {
    let inv = Invocation::FileOpen { path, access: mode.access() };
    let rules: Vec<&Conditions> = policy.conditions_of(Command::FileOpen).collect();
    if rules.is_empty() {
        return Ok(Target::Anywhere(path.to_vec()));
    }
    let name = Command::FileOpen.name();
    for rule in &rules {
        let Conditions::FileOpen(r) = rule else { continue };
        if permit_among(name, std::iter::once(*rule), &inv).is_ok() {
            let anchor_len = match &r.path {
                PathPattern::Tree(dir) => dir.len() - 1,
                PathPattern::Exact(p) => p.rfind('/').unwrap_or(0),
                PathPattern::Glob(g) => g[..g.find('*').unwrap_or(g.len())].rfind('/').unwrap_or(0),
            };
            // The path matched the rule, so its first `anchor_len` bytes are the rule's own.
            let anchor = if anchor_len == 0 { b"/".to_vec() } else { path[..anchor_len].to_vec() };
            return Ok(Target::Beneath { anchor, rest: path[anchor_len + 1..].to_vec(), special: r.special });
        }
    }
    // None allows it: the gate's own text, from all the rules.
    Err(permit_among(name, rules.into_iter(), &inv).err().map(|r| r.0).unwrap_or_default())
}

/// Device nodes, FIFOs and sockets; regular files, directories (7.2 opens one in mode r, and
/// reading it fails) and everything else are ordinary.
fn is_special(fd: &OwnedFd) -> Result<bool, Errno> {
    let kind = fstat(fd)?.st_mode & libc::S_IFMT;
    Ok(matches!(kind, libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK))
}

/// Opens `target` in `mode` (non-blocking, as 7.2 sets it, so a FIFO cannot hang the agent).
pub fn open(target: &Target, mode: OpenMode) -> Result<OwnedFd, OpenError> {
    let flags = mode.flags() | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match target {
        Target::Anywhere(path) => {
            let path = std::ffi::OsStr::from_bytes_path(path);
            create_or_open(AT_FDCWD, path, flags, ResolveFlag::empty()).map_err(OpenError::Errno)
        }
        Target::Beneath { anchor, rest, special } => {
            let full = [&anchor[..], if anchor.ends_with(b"/") { b"" } else { b"/" }, rest].concat();
            let dir = nix::fcntl::open(
                std::ffi::OsStr::from_bytes_path(anchor),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(OpenError::Errno)?;
            let resolve =
                ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS;
            let rest = std::ffi::OsStr::from_bytes_path(rest);
            let escaped = |e: Errno| match e {
                // ELOOP: a symbolic link on the way; EXDEV: a way out of the directory.
                Errno::ELOOP | Errno::EXDEV => refusal(&full, "a symbolic link or a way out of its directory"),
                other => OpenError::Errno(other),
            };
            if !special {
                // Look before opening: a device must not see an open the policy refuses.
                match openat2(
                    dir.as_fd(),
                    rest,
                    OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(resolve),
                ) {
                    Ok(fd) if is_special(&fd).map_err(OpenError::Errno)? => {
                        return Err(refusal(&full, "a device node, FIFO or socket"))
                    }
                    Ok(_) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(escaped(e)),
                }
            }
            let fd = create_or_open(dir.as_fd(), rest, flags, resolve).map_err(escaped)?;
            // And after: what is handed over is what was checked.
            if !special && is_special(&fd).map_err(OpenError::Errno)? {
                return Err(refusal(&full, "a device node, FIFO or socket"));
            }
            Ok(fd)
        }
    }
}

/// 7.2's two steps: a mode that may create first creates exclusively (and only then sets the
/// file's mode, so an existing file keeps its own); if the file exists it is opened as it is.
fn create_or_open<Fd: AsFd>(
    dir: Fd,
    path: &std::ffi::OsStr,
    flags: OFlag,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let dir = dir.as_fd();
    let plain = OpenHow::new().resolve(resolve);
    if !flags.contains(OFlag::O_CREAT) {
        return openat2(dir, path, plain.flags(flags));
    }
    let exclusive = plain.flags(flags | OFlag::O_EXCL).mode(Mode::from_bits_truncate(NEW_FILE_MODE));
    match openat2(dir, path, exclusive) {
        Ok(fd) => {
            fchmod(&fd, Mode::from_bits_truncate(NEW_FILE_MODE))?;
            Ok(fd)
        }
        Err(Errno::EEXIST) => openat2(dir, path, plain.flags(flags - OFlag::O_CREAT)),
        Err(e) => Err(e),
    }
}

/// Byte paths as the kernel takes them (they need not be UTF-8).
trait FromBytesPath {
    fn from_bytes_path(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesPath for std::ffi::OsStr {
    fn from_bytes_path(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// The rights the helper's Landlock ruleset needs for the file commands: per rule, its
/// directory with the rule's rights; without rules, everything beneath `/`. Empty when
/// guest-file-open is not enabled. The same reach a reload is checked against
/// ([`qga_policy::reload::reach_needs_restart`]).
pub fn landlock_paths(policy: &Policy) -> Vec<(std::path::PathBuf, qga_policy::rules::Access)> {
    qga_policy::reload::file_open_reach(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command enabled, with the `allow guest-file-open KEY=VALUE...` lines' rules.
    fn policy(text: &str) -> Policy {
        let rules = text
            .lines()
            .filter_map(|line| {
                let words: Vec<String> = line.split_whitespace().skip(2).map(str::to_string).collect();
                (!words.is_empty()).then(|| qga_policy::Narrowing::parse(Command::FileOpen, words).unwrap())
            })
            .collect();
        Policy::allow_all().with_conditions(rules)
    }

    #[test]
    fn the_rule_that_allows_a_path_gives_the_directory_it_resolves_beneath() {
        let p = policy(
            "allow guest-file-open path=/var/backup/ access=read,write,create\n\
             allow guest-file-open path=/var/log/*/app.log\n\
             allow guest-file-open path=/etc/motd\n",
        );
        let beneath = |anchor: &str, rest: &str| Target::Beneath {
            anchor: anchor.as_bytes().to_vec(),
            rest: rest.as_bytes().to_vec(),
            special: false,
        };
        assert_eq!(target(&p, b"/var/backup/a/b", OpenMode::Write), Ok(beneath("/var/backup", "a/b")));
        assert_eq!(target(&p, b"/var/log/x/app.log", OpenMode::Read), Ok(beneath("/var/log", "x/app.log")));
        assert_eq!(target(&p, b"/etc/motd", OpenMode::Read), Ok(beneath("/etc", "motd")));
        assert_eq!(
            target(&p, b"/etc/motd", OpenMode::Write),
            Err("the policy does not allow guest-file-open '/etc/motd' in this mode".into())
        );
        assert!(target(&p, b"/var/backup/../../etc/shadow", OpenMode::Read).unwrap_err().contains("'..'"));
        assert_eq!(
            target(&p, b"/etc/shadow", OpenMode::Read),
            Err("the policy does not allow guest-file-open '/etc/shadow'".into())
        );
        let all = policy("allow guest-file-open\n");
        assert_eq!(target(&all, b"rel/x", OpenMode::Read), Ok(Target::Anywhere(b"rel/x".to_vec())));
    }

    #[test]
    fn landlock_gets_each_rules_directory_or_everything_without_rules() {
        let p =
            policy("allow guest-file-open path=/srv/drop/ access=write,create\nallow guest-file-open path=/etc/motd\n");
        let dirs: Vec<_> = landlock_paths(&p).into_iter().map(|(d, _)| d).collect();
        assert_eq!(dirs, [std::path::PathBuf::from("/srv/drop"), std::path::PathBuf::from("/etc")]);
        let all = landlock_paths(&policy("allow guest-file-open\n"));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, std::path::PathBuf::from("/"));
        assert!(landlock_paths(&Policy::only([Command::Ping])).is_empty());
    }
}
