//! FITRIM over the mount list, reported per filesystem in 7.2's shape and texts: the results
//! come out in reverse mount order (7.2 prepends each one) and no filesystem's failure fails
//! the whole command.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use crate::mounts::{open_mount_point, Mount};
use crate::protocol::TrimResult;

/// `struct fstrim_range` of <linux/fs.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FstrimRange {
    pub start: u64,
    pub len: u64,
    pub minlen: u64,
}

/// FITRIM of <linux/fs.h>: `_IOWR('X', 121, struct fstrim_range)`; the seccomp filter allows
/// exactly this request number.
pub const FITRIM: u64 = nix::request_code_readwrite!(b'X', 121, std::mem::size_of::<FstrimRange>()) as u64;

nix::ioctl_readwrite_bad!(fitrim, FITRIM, FstrimRange);

/// The range for one FITRIM: the whole filesystem, with the caller's minimum extent length
/// (a negative minimum is passed through as 7.2 does; the kernel rejects it).
pub fn range_for(minimum: i64) -> FstrimRange {
    FstrimRange { start: 0, len: u64::MAX, minlen: minimum as u64 }
}

/// The result for one filesystem from the ioctl's outcome.
pub fn result_for(path: String, outcome: Result<FstrimRange, Errno>) -> TrimResult {
    match outcome {
        Ok(r) => TrimResult::Trimmed { path, minimum: r.minlen as i64, trimmed: r.len as i64 },
        Err(Errno::ENOTTY | Errno::EOPNOTSUPP) => TrimResult::Failed { path, error: "trim not supported".to_owned() },
        Err(e) => TrimResult::Failed { path, error: format!("failed to trim: {}", e.desc()) },
    }
}

fn trim_one(m: &Mount, minimum: i64) -> TrimResult {
    let path = m.display();
    let fd = match open_mount_point(m) {
        Ok(fd) => fd,
        Err(e) => return TrimResult::Failed { path, error: format!("failed to open: {}", e.desc()) },
    };
    let mut range = range_for(minimum);
    // SAFETY: `fd` is open for this scope and `range` is a live, correctly laid out
    // fstrim_range that the kernel reads and writes back.
    let outcome = unsafe { fitrim(fd.as_raw_fd(), &mut range) }.map(|_| range);
    result_for(path, outcome)
}

/// Trims every filesystem; results in reverse mount order.
pub fn trim_mounts(mounts: &[Mount], minimum: i64) -> Vec<TrimResult> {
    mounts.iter().map(|m| trim_one(m, minimum)).rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_number_is_the_kernel_headers() {
        assert_eq!(FITRIM, 0xC018_5879);
    }

    #[test]
    fn the_range_covers_the_whole_filesystem() {
        let r = range_for(4096);
        assert_eq!((r.start, r.len, r.minlen), (0, u64::MAX, 4096));
        assert_eq!(range_for(-1).minlen, u64::MAX);
    }

    #[test]
    fn results_use_72s_texts() {
        let ok = result_for("/".into(), Ok(FstrimRange { start: 0, len: 1234, minlen: 512 }));
        assert_eq!(ok, TrimResult::Trimmed { path: "/".into(), minimum: 512, trimmed: 1234 });
        for e in [Errno::ENOTTY, Errno::EOPNOTSUPP] {
            assert_eq!(
                result_for("/boot".into(), Err(e)),
                TrimResult::Failed { path: "/boot".into(), error: "trim not supported".into() }
            );
        }
        assert_eq!(
            result_for("/x".into(), Err(Errno::EINVAL)),
            TrimResult::Failed { path: "/x".into(), error: "failed to trim: Invalid argument".into() }
        );
    }

    #[test]
    fn results_come_in_reverse_mount_order_and_never_fail_as_a_whole() {
        let m =
            |d: &str| Mount { dir: d.into(), fstype: "ext4".into(), major: 8, minor: 1, mount_id: 30, sb_dev: (8, 1) };
        // Paths that do not exist: each fails to open, without touching any filesystem.
        let ms = [m("/nonexistent-qga-a"), m("/nonexistent-qga-b")];
        let r = trim_mounts(&ms, 0);
        assert_eq!(
            r,
            [
                TrimResult::Failed {
                    path: "/nonexistent-qga-b".into(),
                    error: "failed to open: No such file or directory".into()
                },
                TrimResult::Failed {
                    path: "/nonexistent-qga-a".into(),
                    error: "failed to open: No such file or directory".into()
                },
            ]
        );
    }
}
