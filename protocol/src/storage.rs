//! What guest-get-fsinfo and guest-get-disks carry from the helper to the front: filesystems,
//! disks and disk addresses as 7.2's schema has them (`GuestFilesystemInfo`, `GuestDiskInfo`,
//! `GuestDiskAddress`), already in 7.2's reply order, with every list and string bounded.
//! The helper refuses to build a reply beyond the bounds (a clear error instead of a frame the
//! front would refuse); the decoder checks them again.

use crate::wire::{Dec, Enc, FrameError};

/// Most filesystems in one guest-get-fsinfo reply.
pub const MAX_MOUNTS: usize = 1024;
/// Most block devices (disks and partitions) in one guest-get-disks reply.
pub const MAX_DISKS: usize = 1024;
/// Most disk addresses of one filesystem, and most dependencies of one disk.
pub const MAX_PER_ENTRY: usize = 64;
/// Longest name, mount point, type, device path or serial (Linux's PATH_MAX).
pub const MAX_NAME: usize = 4096;

// The largest reply the bounds allow fits a frame only if entries stay small; the helper
// checks the encoded size as well (see `fits`).

crate::wire_codes! {
    /// `GuestDiskBusType` values Linux's 7.2 produces.
    pub enum BusType {
        Ide = 0,
        Scsi = 1,
        Virtio = 2,
        Sata = 3,
        Nvme = 4,
        Unknown = 5,
    }
}

impl BusType {
    /// The schema's name.
    pub fn name(self) -> &'static str {
        match self {
            BusType::Ide => "ide",
            BusType::Scsi => "scsi",
            BusType::Virtio => "virtio",
            BusType::Sata => "sata",
            BusType::Nvme => "nvme",
            BusType::Unknown => "unknown",
        }
    }
}

/// `GuestPCIAddress`: -1 in every field when the disk is not on PCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    pub domain: i64,
    pub bus: i64,
    pub slot: i64,
    pub function: i64,
}

/// `GuestDiskAddress` (without `ccw-address`, which only s390x produces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskAddress {
    pub pci: PciAddress,
    pub bus_type: BusType,
    pub bus: i64,
    pub target: i64,
    pub unit: i64,
    pub serial: Option<String>,
    pub dev: Option<String>,
}

/// `GuestFilesystemInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsInfo {
    pub name: String,
    pub mountpoint: String,
    pub fstype: String,
    /// (used-bytes, total-bytes); `None` when statfs failed or did not return in time.
    pub sizes: Option<(u64, u64)>,
    pub disks: Vec<DiskAddress>,
}

/// `GuestDiskInfo` (without `smart`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    pub name: String,
    pub partition: bool,
    pub dependencies: Option<Vec<String>>,
    pub address: Option<DiskAddress>,
    pub alias: Option<String>,
}

fn name(d: &mut Dec<'_>) -> Result<String, FrameError> {
    let s = d.str()?;
    if s.len() > MAX_NAME {
        return Err(FrameError::BadValue("name length"));
    }
    Ok(s)
}

fn opt_str(e: &mut Enc, s: &Option<String>) {
    e.opt(s.as_ref(), |e, s| e.str(s));
}

fn opt_name(d: &mut Dec<'_>) -> Result<Option<String>, FrameError> {
    match d.u8()? {
        0 => Ok(None),
        1 => Ok(Some(name(d)?)),
        _ => Err(FrameError::BadValue("optional string")),
    }
}

fn encode_address(e: &mut Enc, a: &DiskAddress) {
    for v in [a.pci.domain, a.pci.bus, a.pci.slot, a.pci.function] {
        e.i64(v);
    }
    e.u8(a.bus_type.code());
    e.i64(a.bus);
    e.i64(a.target);
    e.i64(a.unit);
    opt_str(e, &a.serial);
    opt_str(e, &a.dev);
}

fn decode_address(d: &mut Dec<'_>) -> Result<DiskAddress, FrameError> {
    let pci = PciAddress { domain: d.i64()?, bus: d.i64()?, slot: d.i64()?, function: d.i64()? };
    Ok(DiskAddress {
        pci,
        bus_type: BusType::from_code(d.u8()?).ok_or(FrameError::BadValue("bus type"))?,
        bus: d.i64()?,
        target: d.i64()?,
        unit: d.i64()?,
        serial: opt_name(d)?,
        dev: opt_name(d)?,
    })
}

pub(crate) fn encode_fsinfo(e: &mut Enc, list: &[FsInfo]) {
    e.u32(list.len() as u32);
    for fs in list {
        e.str(&fs.name);
        e.str(&fs.mountpoint);
        e.str(&fs.fstype);
        e.opt(fs.sizes, |e, (used, total)| {
            e.i64(used as i64);
            e.i64(total as i64);
        });
        e.u32(fs.disks.len() as u32);
        for a in &fs.disks {
            encode_address(e, a);
        }
    }
}

pub(crate) fn decode_fsinfo(d: &mut Dec<'_>) -> Result<Vec<FsInfo>, FrameError> {
    let n = d.count(MAX_MOUNTS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name_ = name(d)?;
        let mountpoint = name(d)?;
        let fstype = name(d)?;
        let sizes = match d.u8()? {
            0 => None,
            1 => Some((d.i64()? as u64, d.i64()? as u64)),
            _ => return Err(FrameError::BadValue("optional sizes")),
        };
        let k = d.count(MAX_PER_ENTRY)?;
        let mut disks = Vec::with_capacity(k);
        for _ in 0..k {
            disks.push(decode_address(d)?);
        }
        out.push(FsInfo { name: name_, mountpoint, fstype, sizes, disks });
    }
    Ok(out)
}

pub(crate) fn encode_disks(e: &mut Enc, list: &[DiskInfo]) {
    e.u32(list.len() as u32);
    for disk in list {
        e.str(&disk.name);
        e.bool(disk.partition);
        e.opt(disk.dependencies.as_ref(), |e, deps| {
            e.u32(deps.len() as u32);
            for dep in deps {
                e.str(dep);
            }
        });
        e.opt(disk.address.as_ref(), encode_address);
        opt_str(e, &disk.alias);
    }
}

pub(crate) fn decode_disks(d: &mut Dec<'_>) -> Result<Vec<DiskInfo>, FrameError> {
    let n = d.count(MAX_DISKS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name_ = name(d)?;
        let partition = d.bool()?;
        let dependencies = match d.u8()? {
            0 => None,
            1 => {
                let k = d.count(MAX_PER_ENTRY)?;
                let mut deps = Vec::with_capacity(k);
                for _ in 0..k {
                    deps.push(name(d)?);
                }
                Some(deps)
            }
            _ => return Err(FrameError::BadValue("optional dependencies")),
        };
        let address = match d.u8()? {
            0 => None,
            1 => Some(decode_address(d)?),
            _ => return Err(FrameError::BadValue("optional address")),
        };
        let alias = opt_name(d)?;
        out.push(DiskInfo { name: name_, partition, dependencies, address, alias });
    }
    Ok(out)
}
