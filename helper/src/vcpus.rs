//! guest-set-vcpus with qemu-ga 7.2's semantics: the nodes in order, `online` written only when
//! the state differs, a missing `online` file means the processor cannot be offlined (and
//! onlining it is a success), the first node's error is the command's error and a later error
//! ends the list with the count so far. The ids are checked against sysfs by opening their
//! directory; no other check can be trusted.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use nix::sys::uio::{pread, pwrite};

use crate::protocol::VcpuState;

pub const SYSFS_CPU: &str = "/sys/devices/system/cpu";
const ONLINE: &str = "online";

/// The directory of one processor, with 7.2's trailing slash (its error texts show it).
pub fn cpu_dir(base: &Path, id: i64) -> String {
    format!("{}/cpu{id}/", base.display())
}

#[derive(Debug, PartialEq, Eq)]
pub enum VcpuError {
    OpenDir { dir: String, errno: Errno },
    OpenOnline { dir: String, errno: Errno },
    CannotOffline { id: i64 },
    Read { dir: String, errno: Errno },
    ReadEof { dir: String },
    Write { dir: String, errno: Errno },
}

impl std::fmt::Display for VcpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VcpuError::OpenDir { dir, errno } => write!(f, "open(\"{dir}\"): {}", errno.desc()),
            VcpuError::OpenOnline { dir, errno } => write!(f, "open(\"{dir}/{ONLINE}\"): {}", errno.desc()),
            VcpuError::CannotOffline { id } => write!(f, "logical processor #{id} can't be offlined"),
            VcpuError::Read { dir, errno } => write!(f, "pread(\"{dir}/{ONLINE}\"): {}", errno.desc()),
            VcpuError::ReadEof { dir } => write!(f, "pread(\"{dir}/{ONLINE}\"): unexpected EOF"),
            VcpuError::Write { dir, errno } => write!(f, "pwrite(\"{dir}/{ONLINE}\"): {}", errno.desc()),
        }
    }
}

impl std::error::Error for VcpuError {}

/// Brings one processor to the requested state.
pub fn set_one(base: &Path, v: VcpuState) -> Result<(), VcpuError> {
    let dir = cpu_dir(base, v.logical_id);
    let dirfd: OwnedFd = open(dir.as_str(), OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|errno| VcpuError::OpenDir { dir: dir.clone(), errno })?;
    let fd = match openat(&dirfd, ONLINE, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if v.online => return Ok(()), // cannot be offlined, so it is online
        Err(Errno::ENOENT) => return Err(VcpuError::CannotOffline { id: v.logical_id }),
        Err(errno) => return Err(VcpuError::OpenOnline { dir, errno }),
    };
    let mut status = [0u8; 1];
    match pread(&fd, &mut status, 0) {
        Err(errno) => return Err(VcpuError::Read { dir, errno }),
        Ok(0) => return Err(VcpuError::ReadEof { dir }),
        Ok(_) => {}
    }
    let is_online = status[0] != b'0';
    if is_online != v.online {
        let want = if v.online { b"1" } else { b"0" };
        pwrite(&fd, want, 0).map_err(|errno| VcpuError::Write { dir, errno })?;
    }
    Ok(())
}

/// Processes the list; returns the count done, or the first node's error.
pub fn set_vcpus(base: &Path, vcpus: &[VcpuState]) -> Result<i64, VcpuError> {
    let mut done = 0i64;
    for v in vcpus {
        match set_one(base, *v) {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fake sysfs: cpu0 without `online` (like x86's boot cpu), cpu1 online, cpu2 offline.
    struct FakeSysfs(PathBuf);

    impl FakeSysfs {
        fn new(tag: &str) -> FakeSysfs {
            let base = std::env::temp_dir().join(format!("qga-helper-vcpus-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            std::fs::create_dir_all(base.join("cpu0")).unwrap();
            std::fs::create_dir_all(base.join("cpu1")).unwrap();
            std::fs::create_dir_all(base.join("cpu2")).unwrap();
            std::fs::write(base.join("cpu1/online"), "1\n").unwrap();
            std::fs::write(base.join("cpu2/online"), "0\n").unwrap();
            FakeSysfs(base)
        }
        fn online(&self, n: u32) -> String {
            std::fs::read_to_string(self.0.join(format!("cpu{n}/online"))).unwrap()
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn v(id: i64, online: bool) -> VcpuState {
        VcpuState { logical_id: id, online }
    }

    #[test]
    fn the_real_path_of_a_nonexistent_cpu_gives_72s_exact_text() {
        let e = set_vcpus(Path::new(SYSFS_CPU), &[v(-1, true)]).unwrap_err();
        assert_eq!(e.to_string(), "open(\"/sys/devices/system/cpu/cpu-1/\"): No such file or directory");
    }

    #[test]
    fn an_empty_list_processes_nothing() {
        assert_eq!(set_vcpus(Path::new(SYSFS_CPU), &[]), Ok(0));
    }

    #[test]
    fn offlining_a_cpu_without_online_file_is_refused() {
        let s = FakeSysfs::new("nooff");
        let e = set_vcpus(&s.0, &[v(0, false)]).unwrap_err();
        assert_eq!(e.to_string(), "logical processor #0 can't be offlined");
    }

    #[test]
    fn onlining_a_cpu_without_online_file_succeeds() {
        let s = FakeSysfs::new("noon");
        assert_eq!(set_vcpus(&s.0, &[v(0, true)]), Ok(1));
    }

    #[test]
    fn online_is_written_only_when_the_state_differs() {
        let s = FakeSysfs::new("diff");
        assert_eq!(set_vcpus(&s.0, &[v(1, true), v(2, false)]), Ok(2));
        // Untouched: the file still holds the kernel's "1\n" / "0\n", not a bare digit.
        assert_eq!(s.online(1), "1\n");
        assert_eq!(s.online(2), "0\n");
        assert_eq!(set_vcpus(&s.0, &[v(1, false), v(2, true)]), Ok(2));
        assert_eq!(&s.online(1)[..1], "0");
        assert_eq!(&s.online(2)[..1], "1");
    }

    #[test]
    fn a_later_error_returns_the_count_so_far() {
        let s = FakeSysfs::new("later");
        assert_eq!(set_vcpus(&s.0, &[v(1, true), v(0, false), v(2, true)]), Ok(1));
        // The node after the error was not processed.
        assert_eq!(s.online(2), "0\n");
    }

    #[test]
    fn the_first_nodes_error_is_returned() {
        let s = FakeSysfs::new("first");
        let e = set_vcpus(&s.0, &[v(7, true), v(1, true)]).unwrap_err();
        assert_eq!(e, VcpuError::OpenDir { dir: cpu_dir(&s.0, 7), errno: Errno::ENOENT });
    }

    #[test]
    fn error_texts_follow_72s_format() {
        let dir = cpu_dir(Path::new(SYSFS_CPU), 3);
        assert_eq!(dir, "/sys/devices/system/cpu/cpu3/");
        assert_eq!(
            VcpuError::OpenOnline { dir: dir.clone(), errno: Errno::EACCES }.to_string(),
            "open(\"/sys/devices/system/cpu/cpu3//online\"): Permission denied"
        );
        assert_eq!(
            VcpuError::Write { dir: dir.clone(), errno: Errno::EBUSY }.to_string(),
            "pwrite(\"/sys/devices/system/cpu/cpu3//online\"): Device or resource busy"
        );
        assert_eq!(
            VcpuError::ReadEof { dir }.to_string(),
            "pread(\"/sys/devices/system/cpu/cpu3//online\"): unexpected EOF"
        );
        assert_eq!(cpu_dir(Path::new(SYSFS_CPU), i64::MIN), "/sys/devices/system/cpu/cpu-9223372036854775808/");
    }
}
