//! Disk addresses, disks and partitions from sysfs, as qemu-ga 7.2 builds them for
//! guest-get-fsinfo and guest-get-disks (its `build_guest_fsinfo_for_*`, `get_disk_*` in
//! qga/commands-posix.c): the PCI controller from the device's sysfs path, the bus type from
//! the PCI driver (ata_piix, sym53c8xx, virtio-pci, ahci, nvme), bus/target/unit from the SCSI
//! `target`/`host`/`ata` path components, device-mapper (and other virtual) devices through
//! their `slaves`, partitions as `<disk><n>` or `<disk>p<n>` subdirectories. What 7.2 asks
//! libudev for is read where libudev reads it: the device node from the device's `uevent`
//! (`DEVNAME`), `ID_SERIAL` and `DM_NAME` from udev's database (`/run/udev/data/b<maj>:<min>`).
//!
//! Lists are built in 7.2's order: it prepends each entry it finds, so its replies list
//! directory entries in reverse `readdir` order; so do these.
//!
//! Every path goes through [`Root`], so the unit tests run against fixture trees.

use std::path::PathBuf;

use crate::protocol::storage::{BusType, DiskAddress, DiskInfo, PciAddress};

/// Where `/` is: the real one, or a fixture tree.
#[derive(Clone, Debug)]
pub struct Root(pub PathBuf);

impl Root {
    pub fn real() -> Root {
        Root(PathBuf::from("/"))
    }

    fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    /// realpath(3) of a guest path, as a guest path. Errors are the errno.
    pub fn realpath(&self, path: &str) -> Result<String, std::io::Error> {
        let real = std::fs::canonicalize(self.at(path))?;
        let rel = real.strip_prefix(std::fs::canonicalize(&self.0)?).unwrap_or(&real);
        Ok(format!("/{}", rel.to_string_lossy()))
    }

    /// A sysfs attribute or a udev database record. Both come whole in one read (sysfs shows an
    /// attribute in one page; the record is a small regular file), so a short read ends it:
    /// open, read, close, where `std::fs::read` adds a statx and a read of end of file, per
    /// file, many times per guest-get-disks.
    fn read(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let mut file = std::fs::File::open(self.at(path)).ok()?;
        let mut buf = vec![0; 4096];
        let mut len = 0;
        loop {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if len < buf.len() {
                        break;
                    }
                    buf.resize(buf.len() * 2, 0);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        buf.truncate(len);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    fn readlink_basename(&self, path: &str) -> Option<String> {
        let target = std::fs::read_link(self.at(path)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The entries of a directory in `readdir` order: name and whether it is a directory /
    /// a symbolic link (d_type, never following links).
    fn entries(&self, path: &str) -> std::io::Result<Vec<(String, bool, bool)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.at(path))? {
            let e = e?;
            let ft = e.file_type()?;
            out.push((e.file_name().to_string_lossy().into_owned(), ft.is_dir(), ft.is_symlink()));
        }
        Ok(out)
    }
}

/// What libudev would say about a device, read from its `uevent` and udev's database.
struct Udev {
    devnode: Option<String>,
    serial: Option<String>,
    dm_name: Option<String>,
}

fn udev_device(root: &Root, syspath: &str) -> Option<Udev> {
    udev_device_at(root, &root.realpath(syspath).ok()?)
}

/// [`udev_device`] of a syspath that is already a realpath (libudev's own realpath of it would
/// give it back unchanged; skipping it saves a readlink per path component per disk).
fn udev_device_at(root: &Root, real: &str) -> Option<Udev> {
    // libudev refuses a syspath whose device has no uevent file.
    let uevent = root.read(&format!("{real}/uevent"))?;
    let devnode = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")).map(|n| format!("/dev/{n}"));
    let db = root
        .read(&format!("{real}/dev"))
        .and_then(|dev| root.read(&format!("/run/udev/data/b{}", dev.trim())))
        .unwrap_or_default();
    let prop = |key: &str| db.lines().find_map(|l| l.strip_prefix("E:")?.strip_prefix(key)).map(str::to_owned);
    Some(Udev { devnode, serial: prop("ID_SERIAL="), dm_name: prop("DM_NAME=") })
}

/// Parses C's `%x` (hex digits) at the start of `s`; returns the value and the rest.
fn hex(s: &str) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    Some((u32::from_str_radix(&s[..n], 16).ok()?, &s[n..]))
}

/// Parses C's `%u` at the start of `s`.
fn dec(s: &str) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// `X:X:X.X` (a PCI function); returns the four numbers and the rest.
fn pci_function(s: &str) -> Option<([u32; 4], &str)> {
    let (a, s) = hex(s)?;
    let (b, s) = hex(s.strip_prefix(':')?)?;
    let (c, s) = hex(s.strip_prefix(':')?)?;
    let (d, s) = hex(s.strip_prefix('.')?)?;
    Some(([a, b, c, d], s))
}

/// 7.2's `sscanf(p + 7, "%*u:%*u:%*u/%*u:%u:%u:%u")` after `/target`: channel, target, LUN.
fn scsi_target(syspath: &str) -> Option<[u32; 3]> {
    let p = &syspath[syspath.find("/target")? + 7..];
    let (_, p) = dec(p)?;
    let (_, p) = dec(p.strip_prefix(':')?)?;
    let (_, p) = dec(p.strip_prefix(':')?)?;
    let (_, p) = dec(p.strip_prefix('/')?)?;
    let (a, p) = dec(p.strip_prefix(':')?)?;
    let (b, p) = dec(p.strip_prefix(':')?)?;
    let (c, _) = dec(p.strip_prefix(':')?)?;
    Some([a, b, c])
}

/// 7.2's `build_hosts`: the sorted `ata<N>` or `host<N>` numbers in the directory holding
/// the host component (at most 8).
fn hosts(root: &Root, dir: &str, ata: bool) -> Result<Vec<u32>, String> {
    let entries = root.entries(dir).map_err(|e| format!("opendir(\"{dir}\"): {}", errtext(&e)))?;
    let prefix = if ata { "ata" } else { "host" };
    let mut out: Vec<u32> = entries
        .iter()
        .filter_map(|(n, _, _)| {
            let rest = n.strip_prefix(prefix)?;
            // sscanf's %d takes an optional sign.
            let digits = rest.strip_prefix('+').unwrap_or(rest);
            dec(digits).map(|(v, _)| v)
        })
        .take(8)
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn errtext(e: &std::io::Error) -> String {
    crate::mounts::errno_of(e).desc().to_owned()
}

/// 7.2's `build_guest_fsinfo_for_pci_dev`: fills `disk` and says whether it could.
fn pci_dev(root: &Root, syspath: &str, disk: &mut DiskAddress) -> Result<bool, String> {
    let Some(start) = syspath.find("/devices/pci") else { return Ok(false) };
    let after = &syspath[start + 12..];
    // "%*x:%*x/%x:%x:%x.%x"
    let Some((_, r)) = hex(after) else { return Ok(false) };
    let Some((_, r)) = r.strip_prefix(':').and_then(hex) else { return Ok(false) };
    let Some((mut pci, mut rest)) = r.strip_prefix('/').and_then(pci_function) else { return Ok(false) };
    let driver = loop {
        let upto = &syspath[..syspath.len() - rest.len()];
        let driver = root.readlink_basename(&format!("{upto}/driver"));
        if let Some(d) =
            driver.filter(|d| ["ata_piix", "sym53c8xx", "virtio-pci", "ahci", "nvme"].contains(&d.as_str()))
        {
            break d;
        }
        match rest.strip_prefix('/').and_then(pci_function) {
            Some((next, r)) => {
                pci = next;
                rest = r;
            }
            None => return Ok(false),
        }
    };
    let tgt = scsi_target(syspath);
    let (host_at, ata) = match syspath.find("/ata") {
        Some(p) => (Some((p, p + 4)), true),
        None => (syspath.find("/host").map(|p| (p, p + 5)), false),
    };
    let mut host = None;
    let mut host_list = Vec::new();
    if let Some((p, q)) = host_at {
        if let Some((h, _)) = dec(&syspath[q..]) {
            host = Some(h);
            host_list = hosts(root, &syspath[..p], ata)?;
        }
    }
    disk.pci = PciAddress { domain: pci[0].into(), bus: pci[1].into(), slot: pci[2].into(), function: pci[3].into() };
    match driver.as_str() {
        "ata_piix" => {
            let (Some(h), Some(t)) = (host, tgt) else { return Ok(false) };
            let Some(i) = host_list.iter().position(|&x| x == h) else { return Ok(false) };
            disk.bus_type = BusType::Ide;
            disk.bus = i as i64;
            disk.unit = t[1].into();
        }
        "sym53c8xx" => {
            let Some(t) = tgt else { return Ok(false) };
            disk.bus_type = BusType::Scsi;
            disk.unit = t[1].into();
        }
        "virtio-pci" => match tgt {
            Some(t) => {
                disk.bus_type = BusType::Scsi;
                disk.unit = t[2].into();
            }
            None => disk.bus_type = BusType::Virtio,
        },
        "ahci" => {
            let (Some(h), Some(_)) = (host, tgt) else { return Ok(false) };
            let Some(i) = host_list.iter().position(|&x| x == h) else { return Ok(false) };
            disk.unit = i as i64;
            disk.bus_type = BusType::Sata;
        }
        _ => disk.bus_type = BusType::Nvme,
    }
    Ok(true)
}

/// 7.2's `build_guest_fsinfo_for_nonpci_virtio`.
fn nonpci_virtio(syspath: &str, disk: &mut DiskAddress) -> bool {
    if !syspath.contains("/virtio") || !syspath.contains("/block") {
        return false;
    }
    match scsi_target(syspath) {
        Some(t) => {
            disk.bus_type = BusType::Scsi;
            disk.bus = t[0].into();
            disk.target = t[1].into();
            disk.unit = t[2].into();
        }
        None => disk.bus_type = BusType::Virtio,
    }
    true
}

/// 7.2's `build_guest_fsinfo_for_real_device`: the address, if there is anything to say.
fn real_device(root: &Root, syspath: &str) -> Result<Option<DiskAddress>, String> {
    let mut disk = DiskAddress {
        pci: PciAddress { domain: -1, bus: -1, slot: -1, function: -1 },
        bus_type: BusType::Unknown,
        bus: 0,
        target: 0,
        unit: 0,
        serial: None,
        dev: None,
    };
    // `syspath` is device_info's realpath.
    if let Some(u) = udev_device_at(root, syspath) {
        disk.dev = u.devnode;
        disk.serial = u.serial.filter(|s| !s.is_empty());
    }
    let known = if syspath.contains("/devices/pci") {
        pci_dev(root, syspath, &mut disk)?
    } else if syspath.contains("/devices/css") {
        // s390x channel devices: not on the architectures qemu-ga-rs is built for.
        false
    } else if syspath.contains("/virtio") {
        nonpci_virtio(syspath, &mut disk)
    } else {
        false
    };
    Ok((known || disk.dev.is_some() || disk.serial.is_some()).then_some(disk))
}

/// A filesystem's name and disks, as 7.2's `build_guest_fsinfo_for_device` fills them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: Option<String>,
    /// In 7.2's (prepended) order.
    pub disks: Vec<DiskAddress>,
}

fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_owned()
}

/// 7.2's `build_guest_fsinfo_for_device`, with its error texts.
pub fn device_info(root: &Root, devpath: &str, info: &mut DeviceInfo, depth: u32) -> Result<(), String> {
    let syspath = match root.realpath(devpath) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            info.name.get_or_insert_with(|| basename(devpath));
            return Ok(());
        }
        Err(e) => return Err(format!("realpath(\"{devpath}\"): {}", errtext(&e))),
    };
    info.name.get_or_insert_with(|| basename(&syspath));
    if syspath.contains("/devices/virtual/block/") {
        // Device-mapper, md, loop: the devices under it. Sysfs has no cycles, the bound is
        // only a guard against a corrupt tree.
        let dir = format!("{syspath}/slaves");
        let entries = match root.entries(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("opendir(\"{dir}\"): {}", errtext(&e))),
        };
        if depth >= 16 {
            return Ok(());
        }
        for (name, _, is_link) in entries {
            if is_link {
                device_info(root, &format!("{syspath}/slaves/{name}"), info, depth + 1)?;
            }
        }
    } else if let Some(disk) = real_device(root, &syspath)? {
        info.disks.insert(0, disk);
    }
    Ok(())
}

/// 7.2's `get_disk_address`: the first disk of a device, errors ignored.
fn disk_address(root: &Root, syspath: &str) -> Option<DiskAddress> {
    let mut info = DeviceInfo::default();
    device_info(root, syspath, &mut info, 0).ok()?;
    info.disks.into_iter().next()
}

fn devnode(root: &Root, syspath: &str) -> Option<String> {
    udev_device(root, syspath)?.devnode
}

/// The `size` attribute of every entry [`disks`] looks at (each link in `/sys/block`).
pub fn size_paths(root: &Root) -> Vec<PathBuf> {
    let entries = root.entries("/sys/block").unwrap_or_default();
    entries.into_iter().filter(|(_, _, link)| *link).map(|(n, _, _)| root.at(&format!("/sys/block/{n}/size"))).collect()
}

/// 7.2's `qmp_guest_get_disks`.
pub fn disks(root: &Root) -> Result<Vec<DiskInfo>, String> {
    let entries =
        root.entries("/sys/block").map_err(|e| format!("Can't open directory \"/sys/block\": {}", errtext(&e)))?;
    let mut out: Vec<DiskInfo> = Vec::new();
    for (name, _, is_link) in entries {
        if !is_link {
            continue;
        }
        match root.read(&format!("/sys/block/{name}/size")) {
            Some(size) if size != "0\n" => {}
            _ => continue,
        }
        let disk_dir = format!("/sys/block/{name}");
        let Some(dev_name) = devnode(root, &disk_dir) else { continue };
        let alias = udev_device(root, &disk_dir).and_then(|u| u.dm_name).filter(|a| !a.is_empty());
        let is_virtual = match root.realpath(&disk_dir) {
            Ok(p) => p.contains("/devices/virtual/block/"),
            Err(_) => true,
        };
        let address = if is_virtual { None } else { disk_address(root, &disk_dir) };
        // Dependencies (`slaves`), present whenever the directory can be listed.
        let dependencies = root.entries(&format!("{disk_dir}/slaves")).ok().map(|deps| {
            let mut list: Vec<String> = Vec::new();
            for (dep, _, _) in deps {
                if let Some(d) = devnode(root, &format!("{disk_dir}/slaves/{dep}")) {
                    list.insert(0, d);
                }
            }
            list
        });
        out.insert(0, DiskInfo { name: dev_name.clone(), partition: false, dependencies, address, alias });
        // Partitions: "<disk><digit>..." or "<disk>p<digit>..." subdirectories.
        let parts = root.entries(&disk_dir).unwrap_or_default();
        for (part, is_dir, _) in parts {
            let Some(rest) = part.strip_prefix(name.as_str()) else { continue };
            let rest = rest.strip_prefix('p').filter(|r| r.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(rest);
            if !is_dir || !rest.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let Some(part_dev) = devnode(root, &format!("{disk_dir}/{part}")) else { continue };
            out.insert(
                0,
                DiskInfo {
                    name: part_dev,
                    partition: true,
                    dependencies: Some(vec![dev_name.clone()]),
                    address: None,
                    alias: None,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
