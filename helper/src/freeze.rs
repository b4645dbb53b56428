//! FIFREEZE / FITHAW over the mount list and the `qga.state.isfrozen` marker, with qemu-ga
//! 7.2's order and error rules. The hook and the frozen flag are the caller's (see
//! [`crate::system`]); this module only touches filesystems and the marker.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::log;
use crate::mounts::{open_mount_point, Mount};

pub use qga_protocol::frozen::{marker_exists, marker_path, MARKER_NAME};

/// Nested freezes need as many thaws; this bounds the loop should a filesystem keep
/// answering success.
const MAX_THAWS_PER_FS: usize = 1024;

/// FIFREEZE of <linux/fs.h>: `_IOWR('X', 119, int)`, though it takes no argument. The seccomp
/// filter allows exactly this request number, so both use this one constant.
pub const FIFREEZE: u64 = nix::request_code_readwrite!(b'X', 119, std::mem::size_of::<nix::libc::c_int>()) as u64;
/// FITHAW of <linux/fs.h>: `_IOWR('X', 120, int)`, no argument.
pub const FITHAW: u64 = nix::request_code_readwrite!(b'X', 120, std::mem::size_of::<nix::libc::c_int>()) as u64;

nix::ioctl_write_int_bad!(fifreeze, FIFREEZE);
nix::ioctl_write_int_bad!(fithaw, FITHAW);

/// Creates the marker before anything is frozen, so a crash while frozen is noticed at the
/// next start. Like 7.2, a failure is logged and the freeze goes on.
pub fn create_marker(marker: &Path) {
    let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    if let Err(e) = open(marker, flags, Mode::from_bits_truncate(0o600)) {
        log!("unable to create {}, fsfreeze may not function properly: {}", marker.display(), e.desc());
    }
}

pub fn remove_marker(marker: &Path) {
    match std::fs::remove_file(marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log!("unable to remove {}: {e}", marker.display()),
    }
}

/// Opens a mount point for an ioctl, checked to be the listed mount's root.
fn open_mount(m: &Mount) -> Result<OwnedFd, Errno> {
    open_mount_point(m)
}

/// Why freezing stopped; the caller thaws everything and reports the text.
#[derive(Debug, PartialEq, Eq)]
pub enum FreezeError {
    Open { dir: String, errno: Errno },
    Freeze { dir: String, errno: Errno },
}

impl std::fmt::Display for FreezeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FreezeError::Open { dir, errno } => write!(f, "failed to open {dir}: {}", errno.desc()),
            FreezeError::Freeze { dir, errno } => write!(f, "failed to freeze {dir}: {}", errno.desc()),
        }
    }
}

impl std::error::Error for FreezeError {}

/// Whether a FIFREEZE error is tolerated: EOPNOTSUPP (the filesystem cannot freeze) and EBUSY
/// (already frozen, e.g. seen through another mount).
pub fn tolerated(e: Errno) -> bool {
    matches!(e, Errno::EOPNOTSUPP | Errno::EBUSY)
}

/// Freezes in reverse mount order (children before their parents) and returns how many froze.
/// On an error the filesystems frozen so far stay frozen: the caller thaws.
pub fn freeze_mounts(mounts: &[Mount]) -> Result<i64, FreezeError> {
    let mut frozen = 0;
    for m in mounts.iter().rev() {
        let fd = open_mount(m).map_err(|errno| FreezeError::Open { dir: m.display(), errno })?;
        // SAFETY: `fd` is an open descriptor owned by this scope; FIFREEZE reads no argument.
        match unsafe { fifreeze(fd.as_raw_fd(), 0) } {
            Ok(_) => frozen += 1,
            Err(e) if tolerated(e) => {}
            Err(errno) => return Err(FreezeError::Freeze { dir: m.display(), errno }),
        }
    }
    Ok(frozen)
}

/// Thaws in mount order, issuing FITHAW until it fails, and returns how many filesystems
/// thawed at least once. A mount point that cannot be opened is skipped (as 7.2).
pub fn thaw_mounts(mounts: &[Mount]) -> i64 {
    let mut thawed = 0;
    for m in mounts {
        let Ok(fd) = open_mount(m) else { continue };
        let mut rounds = 0;
        // SAFETY: `fd` is an open descriptor owned by this scope; FITHAW reads no argument.
        while rounds < MAX_THAWS_PER_FS && unsafe { fithaw(fd.as_raw_fd(), 0) }.is_ok() {
            rounds += 1;
        }
        if rounds > 0 {
            thawed += 1;
        }
    }
    thawed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_are_the_kernel_headers() {
        assert_eq!(FIFREEZE, 0xC004_5877);
        assert_eq!(FITHAW, 0xC004_5878);
    }

    #[test]
    fn freeze_error_texts_match_72() {
        let e = FreezeError::Freeze { dir: "/".into(), errno: Errno::EPERM };
        assert_eq!(e.to_string(), "failed to freeze /: Operation not permitted");
        let e = FreezeError::Open { dir: "/mnt".into(), errno: Errno::EACCES };
        assert_eq!(e.to_string(), "failed to open /mnt: Permission denied");
    }

    #[test]
    fn only_eopnotsupp_and_ebusy_are_tolerated() {
        assert!(tolerated(Errno::EOPNOTSUPP));
        assert!(tolerated(Errno::EBUSY));
        assert!(!tolerated(Errno::EPERM));
        assert!(!tolerated(Errno::EIO));
    }

    #[test]
    fn the_marker_is_created_0600_and_removed() {
        let dir = std::env::temp_dir().join(format!("qga-helper-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = marker_path(&dir);
        assert!(!marker_exists(&marker));
        create_marker(&marker);
        assert!(marker_exists(&marker));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(marker.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        remove_marker(&marker);
        assert!(!marker_exists(&marker));
        remove_marker(&marker); // removing twice is fine
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn an_empty_mount_list_freezes_and_thaws_nothing() {
        assert_eq!(freeze_mounts(&[]), Ok(0));
        assert_eq!(thaw_mounts(&[]), 0);
    }
}
