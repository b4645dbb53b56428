//! guest-get-fsinfo and guest-get-disks, gathered in the helper: the real mount table (the
//! helper's `/proc/self/mountinfo`, never the front's empty view), sysfs ([`crate::blockdev`])
//! and, through the statfs probes ([`crate::statfs_probe`]), the sizes. Replies are bounded
//! ([`MAX_MOUNTS`], [`MAX_DISKS`], [`MAX_PER_ENTRY`], [`MAX_NAME`], the frame size): beyond a
//! bound the command fails with a text that says which.

use crate::blockdev::{self, DeviceInfo, Root};
use crate::mounts::read_all_mounts;
use crate::protocol::storage::{DiskAddress, DiskInfo, FsInfo, MAX_DISKS, MAX_MOUNTS, MAX_NAME, MAX_PER_ENTRY};
use crate::statfs_probe::Probes;

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
    if mounts.len() > MAX_MOUNTS {
        return Err(format!("too many mounted filesystems ({}; at most {MAX_MOUNTS} are reported)", mounts.len()));
    }
    let mut out = Vec::with_capacity(mounts.len());
    for m in &mounts {
        let mut info = DeviceInfo::default();
        blockdev::device_info(root, &format!("/sys/dev/block/{}:{}", m.major, m.minor), &mut info, 0)?;
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
