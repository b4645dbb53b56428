//! guest-set-memory-blocks with qemu-ga 7.2's semantics: every block of the list gets a response
//! of its own (the command itself never fails), in order, and `state` is written only when the
//! block's state differs. The response and its error code follow 7.2 step by step, quirks
//! included, because hosts read them:
//!
//! - no memory directory in sysfs: `operation-not-supported` (another error leaves `success`),
//!   with the errno as error code;
//! - no `memoryN` directory: `not-found`, any other error opening it `operation-failed`;
//! - no `state` file (old kernels): offlining is `operation-not-supported`, onlining is
//!   `success`, both with error code ENOENT; reading it failing otherwise is `operation-failed`
//!   (an empty file with error code 0);
//! - the write failing is `operation-failed` with its errno; success has no error code.
//!
//! The block is only ever a number: the path is built from it (as 7.2 prints it, a signed
//! 64-bit integer), so nothing the host sends names a path, and opening the directory is the
//! check that the block exists. Only "online" or "offline" is ever written.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use nix::sys::uio::{pread, pwrite};

use crate::protocol::{MemoryBlockResponse as Response, MemoryBlockResult, MemoryBlockState};

pub const SYSFS_MEMORY: &str = "/sys/devices/system/memory";
const STATE: &str = "state";
/// 7.2 reads at most this much of `state` ("online", "offline", "going-offline").
const STATE_READ: usize = 10;

/// The directory of one block, as 7.2 names it (`memory%PRId64`).
pub fn block_dir(base: &Path, phys_index: u64) -> String {
    format!("{}/memory{}/", base.display(), phys_index as i64)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

fn result(block: MemoryBlockState, response: Response, errno: Option<Errno>) -> MemoryBlockResult {
    MemoryBlockResult { phys_index: block.phys_index, response, error_code: errno.map(|e| e as i64) }
}

/// Brings one block to the requested state and says how that went.
pub fn set_one(base: &Path, block: MemoryBlockState) -> MemoryBlockResult {
    let fail = |response, errno| result(block, response, Some(errno));
    // 7.2 first checks that the memory directory exists at all.
    if let Err(e) = open(base, dir_flags(), Mode::empty()) {
        let response = if e == Errno::ENOENT { Response::OperationNotSupported } else { Response::Success };
        return fail(response, e);
    }
    let dirfd: OwnedFd = match open(block_dir(base, block.phys_index).as_str(), dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return fail(Response::NotFound, Errno::ENOENT),
        Err(e) => return fail(Response::OperationFailed, e),
    };
    let is_online = match read_state(&dirfd) {
        Ok(state) => state.starts_with(b"online"),
        Err(Errno::ENOENT) if block.online => return fail(Response::Success, Errno::ENOENT),
        Err(Errno::ENOENT) => return fail(Response::OperationNotSupported, Errno::ENOENT),
        Err(e) => return fail(Response::OperationFailed, e),
    };
    if is_online != block.online {
        let want: &[u8] = if block.online { b"online" } else { b"offline" };
        if let Err(e) = write_state(&dirfd, want) {
            return fail(Response::OperationFailed, e);
        }
    }
    result(block, Response::Success, None)
}

/// The block's `state`; an empty file is an error with errno 0, as 7.2's "unexpected EOF".
fn read_state(dirfd: &OwnedFd) -> Result<Vec<u8>, Errno> {
    let fd = openat(dirfd, STATE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut buf = [0u8; STATE_READ];
    match pread(&fd, &mut buf, 0)? {
        0 => Err(Errno::from_raw(0)),
        n => Ok(buf[..n].to_vec()),
    }
}

fn write_state(dirfd: &OwnedFd, state: &[u8]) -> Result<(), Errno> {
    let fd = openat(dirfd, STATE, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    pwrite(&fd, state, 0).map(drop)
}

/// Processes the list in order: one result per block.
pub fn set_memory_blocks(base: &Path, blocks: &[MemoryBlockState]) -> Vec<MemoryBlockResult> {
    blocks.iter().map(|b| set_one(base, *b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fake sysfs: memory0 online, memory1 offline, memory2 without `state` (an old kernel),
    /// memory3 with an empty `state`, memory4 a file rather than a directory.
    struct FakeSysfs(PathBuf);

    impl FakeSysfs {
        fn new(tag: &str) -> FakeSysfs {
            let base = std::env::temp_dir().join(format!("qga-helper-memory-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            for n in 0..4 {
                std::fs::create_dir_all(base.join(format!("memory{n}"))).unwrap();
            }
            std::fs::write(base.join("memory0/state"), "online\n").unwrap();
            std::fs::write(base.join("memory1/state"), "offline\n").unwrap();
            std::fs::write(base.join("memory3/state"), "").unwrap();
            std::fs::write(base.join("memory4"), "").unwrap();
            FakeSysfs(base)
        }
        fn state(&self, n: u32) -> String {
            std::fs::read_to_string(self.0.join(format!("memory{n}/state"))).unwrap()
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn b(phys_index: u64, online: bool) -> MemoryBlockState {
        MemoryBlockState { phys_index, online }
    }

    fn r(phys_index: u64, response: Response, error_code: Option<i64>) -> MemoryBlockResult {
        MemoryBlockResult { phys_index, response, error_code }
    }

    #[test]
    fn state_is_written_only_when_it_differs_and_success_has_no_error_code() {
        let s = FakeSysfs::new("diff");
        let out = set_memory_blocks(&s.0, &[b(0, true), b(1, false)]);
        assert_eq!(out, [r(0, Response::Success, None), r(1, Response::Success, None)]);
        // Untouched: still the fake's own text with its newline.
        assert_eq!(s.state(0), "online\n");
        assert_eq!(s.state(1), "offline\n");
        let out = set_memory_blocks(&s.0, &[b(0, false), b(1, true)]);
        assert_eq!(out, [r(0, Response::Success, None), r(1, Response::Success, None)]);
        assert!(s.state(0).starts_with("offline"));
        assert!(s.state(1).starts_with("online"));
    }

    #[test]
    fn a_block_that_does_not_exist_is_not_found_with_enoent_and_the_rest_go_on() {
        let s = FakeSysfs::new("missing");
        let out = set_memory_blocks(&s.0, &[b(99, true), b(u64::MAX, false), b(1, true)]);
        assert_eq!(
            out,
            [
                r(99, Response::NotFound, Some(2)),
                r(u64::MAX, Response::NotFound, Some(2)),
                r(1, Response::Success, None)
            ]
        );
    }

    #[test]
    fn without_a_state_file_offlining_is_not_supported_and_onlining_succeeds_both_with_enoent() {
        let s = FakeSysfs::new("nostate");
        let out = set_memory_blocks(&s.0, &[b(2, false), b(2, true)]);
        assert_eq!(out, [r(2, Response::OperationNotSupported, Some(2)), r(2, Response::Success, Some(2))]);
    }

    #[test]
    fn an_empty_state_file_fails_with_error_code_zero_and_a_file_fails_with_enotdir() {
        let s = FakeSysfs::new("odd");
        let out = set_memory_blocks(&s.0, &[b(3, true), b(4, true)]);
        assert_eq!(out, [r(3, Response::OperationFailed, Some(0)), r(4, Response::OperationFailed, Some(20))]);
    }

    #[test]
    fn without_a_memory_directory_every_block_is_not_supported() {
        let s = FakeSysfs::new("nodir");
        let gone = s.0.join("absent");
        assert_eq!(set_memory_blocks(&gone, &[b(0, true)]), [r(0, Response::OperationNotSupported, Some(2))]);
    }

    #[test]
    fn the_directory_is_named_as_72_prints_the_index() {
        let base = Path::new(SYSFS_MEMORY);
        assert_eq!(block_dir(base, 32), "/sys/devices/system/memory/memory32/");
        assert_eq!(block_dir(base, u64::MAX), "/sys/devices/system/memory/memory-1/");
    }

    #[test]
    fn an_empty_list_gives_no_results() {
        assert!(set_memory_blocks(Path::new(SYSFS_MEMORY), &[]).is_empty());
    }
}
