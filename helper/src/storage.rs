//! guest-get-fsinfo and guest-get-disks, gathered in the helper: the real mount table (the
//! helper's `/proc/self/mountinfo`, never the front's empty view), sysfs ([`crate::blockdev`])
//! and, through the statfs probes ([`crate::statfs_probe`]), the sizes. Replies are bounded
//! ([`MAX_MOUNTS`], [`MAX_DISKS`], [`MAX_PER_ENTRY`], [`MAX_NAME`], the frame size): beyond a
//! bound the command fails with a text that says which.
//!
//! [`Cache`] keeps between requests what only changes with the devices: each mounted device's
//! name and disk addresses, the whole guest-get-disks answer, and the parsed mount table. It is
//! dropped whenever the kernel or udevd has announced anything ([`crate::uevents`]); the mount
//! table is parsed again whenever the kernel flags a change of it (POLLPRI on the kept
//! mountinfo descriptor); the sizes are asked from the probes on every request. The one thing
//! guest-get-disks reads that can change without a device event is whether a disk is empty
//! (the kernel announces no size change from or to 0: a zram device given its size, a medium
//! found where nothing polls for it), so those `size` attributes are read on every request
//! ([`DiskSizes`]) and any difference drops the kept answer.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::blockdev::{self, DeviceInfo, Root};
use crate::mounts::{block_device_numbers, errno_of, parse_mountinfo_keeping, read_all_mounts, Mount, MOUNTINFO};
use crate::protocol::storage::{DiskAddress, DiskInfo, FsInfo, MAX_DISKS, MAX_MOUNTS, MAX_NAME, MAX_PER_ENTRY};
use crate::statfs_probe::Probes;
use crate::uevents::Uevents;

fn check_name(s: &str) -> Result<(), String> {
    if s.len() > MAX_NAME {
        return Err(format!("a name of {} bytes is longer than the {MAX_NAME} bytes a reply may carry", s.len()));
    }
    Ok(())
}

fn check_address(a: &DiskAddress) -> Result<(), String> {
    a.serial.as_deref().map_or(Ok(()), check_name)?;
    a.dev.as_deref().map_or(Ok(()), check_name)
}

/// 7.2's `qmp_guest_get_fsinfo`: every mount of a block device, latest first.
pub fn fsinfo(root: &Root, probes: &mut Probes) -> Result<Vec<FsInfo>, String> {
    let mounts = read_all_mounts().map_err(|e| e.to_string())?;
    fsinfo_of(&mounts, |m| device_of(root, m), probes)
}

/// The name and disks of a mount's device.
fn device_of(root: &Root, m: &Mount) -> Result<DeviceInfo, String> {
    let mut info = DeviceInfo::default();
    blockdev::device_info(root, &format!("/sys/dev/block/{}:{}", m.major, m.minor), &mut info, 0)?;
    Ok(info)
}

/// [`fsinfo`] of a mount table, each device described by `device`.
fn fsinfo_of(
    mounts: &[Mount],
    mut device: impl FnMut(&Mount) -> Result<DeviceInfo, String>,
    probes: &mut Probes,
) -> Result<Vec<FsInfo>, String> {
    if mounts.len() > MAX_MOUNTS {
        return Err(format!("too many mounted filesystems ({}; at most {MAX_MOUNTS} are reported)", mounts.len()));
    }
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        let info = device(m)?;
        if info.disks.len() > MAX_PER_ENTRY {
            return Err(format!("too many disks under {} (at most {MAX_PER_ENTRY} are reported)", m.display()));
        }
        let fs = FsInfo {
            name: info.name.unwrap_or_default(),
            mountpoint: m.display(),
            fstype: m.fstype.clone(),
            sizes: None,
            disks: info.disks,
        };
        for s in [&fs.name, &fs.mountpoint, &fs.fstype] {
            check_name(s)?;
        }
        fs.disks.iter().try_for_each(check_address)?;
        out.push(fs);
    }
    let paths: Vec<String> = out.iter().map(|f| f.mountpoint.clone()).collect();
    for (fs, sizes) in out.iter_mut().zip(probes.sizes(&paths)) {
        fs.sizes = sizes;
    }
    out.reverse();
    Ok(out)
}

/// 7.2's `qmp_guest_get_disks`, bounded.
pub fn disks(root: &Root) -> Result<Vec<DiskInfo>, String> {
    let list = blockdev::disks(root)?;
    if list.len() > MAX_DISKS {
        return Err(format!("too many block devices ({}; at most {MAX_DISKS} are reported)", list.len()));
    }
    for d in &list {
        check_name(&d.name)?;
        d.alias.as_deref().map_or(Ok(()), check_name)?;
        d.address.as_ref().map_or(Ok(()), check_address)?;
        if let Some(deps) = &d.dependencies {
            if deps.len() > MAX_PER_ENTRY {
                return Err(format!("too many dependencies of {} (at most {MAX_PER_ENTRY})", d.name));
            }
            deps.iter().try_for_each(|s| check_name(s))?;
        }
    }
    Ok(list)
}

/// What guest-get-fsinfo and guest-get-disks keep between requests (see the module text).
pub struct Cache {
    /// None: the kernel's events do not reach the helper, nothing is kept.
    uevents: Option<Uevents>,
    mounts: Option<MountTable>,
    /// Each mounted device's description, by its device numbers.
    devices: Vec<((u64, u64), DeviceInfo)>,
    /// The disks answer, the descriptors of the sizes it depended on and what they said.
    disks: Option<(Vec<DiskInfo>, DiskSizes, Vec<Option<bool>>)>,
}

impl Cache {
    pub fn new(uevents: Option<Uevents>) -> Cache {
        Cache { uevents, mounts: None, devices: Vec::new(), disks: None }
    }

    /// Drops everything if a device may have changed since the last request.
    fn revalidate(&mut self) -> bool {
        let Some(u) = &self.uevents else { return false };
        if u.changed() {
            self.devices.clear();
            self.disks = None;
            // btrfs mounts name their device through a device node (stat'ed while parsing).
            if let Some(t) = &mut self.mounts {
                t.parsed = None;
            }
        }
        true
    }

    /// guest-get-fsinfo: the mount table as it is now, the devices from the cache, the sizes
    /// fresh from the probes.
    pub fn fsinfo(&mut self, root: &Root, probes: &mut Probes) -> Result<Vec<FsInfo>, String> {
        if !self.revalidate() {
            return fsinfo(root, probes);
        }
        if self.mounts.is_none() {
            match File::open(MOUNTINFO) {
                Ok(file) => self.mounts = Some(MountTable { file, parsed: None }),
                Err(_) => return fsinfo(root, probes),
            }
        }
        let Some(table) = &mut self.mounts else { return fsinfo(root, probes) };
        let mounts = table.current()?;
        let devices = &mut self.devices;
        fsinfo_of(
            mounts,
            |m| {
                let key = (m.major, m.minor);
                if let Some((_, d)) = devices.iter().find(|(k, _)| *k == key) {
                    return Ok(d.clone());
                }
                let d = device_of(root, m)?;
                // Bounded like the mount table it comes from.
                if devices.len() < MAX_MOUNTS {
                    devices.push((key, d.clone()));
                }
                Ok(d)
            },
            probes,
        )
    }

    /// guest-get-disks: the last answer while no device event has come.
    pub fn disks(&mut self, root: &Root) -> Result<Vec<DiskInfo>, String> {
        if !self.revalidate() {
            return disks(root);
        }
        if let Some((d, sizes, seen)) = &self.disks {
            if sizes.empty() == *seen {
                return Ok(d.clone());
            }
        }
        self.disks = None;
        // Read before the walk: a change in between differs at the next request.
        let sizes = DiskSizes::open(root);
        let seen = sizes.empty();
        let d = disks(root)?;
        self.disks = Some((d.clone(), sizes, seen));
        Ok(d)
    }
}

/// Most `size` attributes kept open; the rest are opened on every request.
const HELD_SIZES: usize = 64;

/// Whether each disk is empty, read afresh: sysfs generates an attribute again for every read
/// at offset 0, so a held descriptor costs one `pread` per disk.
struct DiskSizes {
    held: Vec<File>,
    rest: Vec<std::path::PathBuf>,
}

impl DiskSizes {
    fn open(root: &Root) -> DiskSizes {
        let mut held = Vec::new();
        let mut rest = Vec::new();
        for p in blockdev::size_paths(root) {
            match (held.len() < HELD_SIZES).then(|| File::open(&p)) {
                Some(Ok(f)) => held.push(f),
                _ => rest.push(p),
            }
        }
        DiskSizes { held, rest }
    }

    /// Per disk: empty (`0`), not, or unreadable (None), as [`blockdev::disks`] tells them apart.
    fn empty(&self) -> Vec<Option<bool>> {
        let is_empty = |f: &File| {
            let mut buf = [0u8; 32];
            f.read_at(&mut buf, 0).ok().map(|n| &buf[..n] == b"0\n")
        };
        let held = self.held.iter().map(is_empty);
        held.chain(self.rest.iter().map(|p| File::open(p).ok().as_ref().and_then(is_empty))).collect()
    }
}

/// The helper's mountinfo, kept open: the kernel marks it POLLPRI when the mount table changes
/// (any mount, unmount or move in the helper's namespace), so it is parsed again only then.
struct MountTable {
    file: File,
    parsed: Option<Vec<Mount>>,
}

impl MountTable {
    fn current(&mut self) -> Result<&[Mount], String> {
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLPRI)];
        // Asked before reading, so a change during the read is seen by the next request.
        let changed = match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_none_or(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)),
            Err(_) => true,
        };
        if changed || self.parsed.is_none() {
            self.parsed = None;
            let text = self.read().map_err(|e| format!("failed to read {MOUNTINFO}: {}", errno_of(&e).desc()))?;
            self.parsed = Some(parse_mountinfo_keeping(&text, block_device_numbers, true));
        }
        Ok(self.parsed.as_deref().unwrap_or_default())
    }

    /// The table from its start: procfs generates it afresh for a read at offset 0.
    fn read(&self) -> std::io::Result<Vec<u8>> {
        let mut text = vec![0u8; 16 << 10];
        let mut len = 0;
        loop {
            if len == text.len() {
                text.resize(text.len() * 2, 0);
            }
            match self.file.read_at(&mut text[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        text.truncate(len);
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    /// A zram-like virtual disk in a fixture sysfs, with the given size.
    fn zram(dir: &std::path::Path, size: &str) {
        let dev = dir.join("sys/devices/virtual/block/zram0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("uevent"), "MAJOR=252\nMINOR=0\nDEVNAME=zram0\nDEVTYPE=disk\n").unwrap();
        std::fs::write(dev.join("dev"), "252:0\n").unwrap();
        std::fs::write(dev.join("size"), format!("{size}\n")).unwrap();
        let link = dir.join("sys/block/zram0");
        if !link.exists() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("../devices/virtual/block/zram0", link).unwrap();
        }
    }

    #[test]
    fn a_disk_given_a_size_without_a_device_event_is_listed_at_the_next_request() {
        let dir = std::env::temp_dir().join(format!("qga-storage-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root(dir.clone());
        zram(&dir, "0");
        // A uevent socket on which nothing ever arrives.
        let (quiet, _peer) =
            socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_NONBLOCK).unwrap();
        let mut cache = Cache::new(Some(Uevents::from_fd(quiet)));
        assert_eq!(cache.disks(&root).unwrap(), vec![], "an empty disk is not listed");
        zram(&dir, "2097152");
        let listed = cache.disks(&root).unwrap();
        assert_eq!(listed.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["/dev/zram0"]);
        assert_eq!(cache.disks(&root).unwrap(), listed, "kept while nothing changes");
        zram(&dir, "0");
        assert_eq!(cache.disks(&root).unwrap(), vec![], "reset to empty: gone again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
