//! sysfs fixture trees laid out as the kernel lays them out (relative links into
//! `/sys/devices`), checked against what 7.2's code derives from them.

use super::*;
use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tree {
    fn new() -> Tree {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir =
            std::env::temp_dir().join(format!("qga-sysfs-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).unwrap();
        Tree(dir)
    }
    fn root(&self) -> Root {
        Root(self.0.clone())
    }
    fn file(&self, path: &str, text: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn link(&self, path: &str, target: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }
    fn dir(&self, path: &str) {
        std::fs::create_dir_all(self.0.join(path)).unwrap();
    }
    /// A block device directory with its uevent, dev and size files.
    fn block(&self, dir: &str, name: &str, dev: &str, size: &str) {
        let (maj, min) = dev.split_once(':').unwrap();
        self.file(&format!("{dir}/uevent"), &format!("MAJOR={maj}\nMINOR={min}\nDEVNAME={name}\nDEVTYPE=disk\n"));
        self.file(&format!("{dir}/dev"), &format!("{dev}\n"));
        self.file(&format!("{dir}/size"), &format!("{size}\n"));
    }
}

const VDB: &str = "sys/devices/pci0000:00/0000:00:05.0/virtio3/block/vdb";
const SDA: &str = "sys/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sda";

/// A virtio-blk disk vdb (serial QGA-DISK-1) with a partition vdb1 under a device-mapper
/// volume dm-0, and an IDE disk sda on the second ata_piix channel.
fn guest() -> Tree {
    let t = Tree::new();
    t.link("sys/devices/pci0000:00/0000:00:05.0/driver", "../../../bus/pci/drivers/virtio-pci");
    t.block(VDB, "vdb", "254:16", "2048");
    t.dir(&format!("{VDB}/slaves"));
    t.block(&format!("{VDB}/vdb1"), "vdb1", "254:17", "1024");
    t.link("sys/block/vdb", "../devices/pci0000:00/0000:00:05.0/virtio3/block/vdb");
    t.link("sys/dev/block/254:16", "../../devices/pci0000:00/0000:00:05.0/virtio3/block/vdb");
    t.link("sys/dev/block/254:17", "../../devices/pci0000:00/0000:00:05.0/virtio3/block/vdb/vdb1");
    t.file("run/udev/data/b254:16", "S:disk/by-id/virtio-QGA-DISK-1\nE:ID_SERIAL=QGA-DISK-1\n");
    t.file("run/udev/data/b254:17", "E:ID_SERIAL=QGA-DISK-1\nE:PARTN=1\n");

    t.block("sys/devices/virtual/block/dm-0", "dm-0", "253:0", "1000");
    t.link("sys/devices/virtual/block/dm-0/slaves/vdb1", "../../../../pci0000:00/0000:00:05.0/virtio3/block/vdb/vdb1");
    t.link("sys/block/dm-0", "../devices/virtual/block/dm-0");
    t.link("sys/dev/block/253:0", "../../devices/virtual/block/dm-0");
    t.file("run/udev/data/b253:0", "E:DM_NAME=vg-lv\n");

    t.link("sys/devices/pci0000:00/0000:00:01.1/driver", "../../../bus/pci/drivers/ata_piix");
    t.dir("sys/devices/pci0000:00/0000:00:01.1/ata1");
    t.block(SDA, "sda", "8:0", "4096");
    t.link("sys/block/sda", "../devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sda");
    t.link("sys/dev/block/8:0", "../../devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sda");

    t.block("sys/devices/virtual/block/loop0", "loop0", "7:0", "0");
    t.link("sys/block/loop0", "../devices/virtual/block/loop0");
    t
}

fn virtio(slot: i64, dev: &str) -> DiskAddress {
    DiskAddress {
        pci: PciAddress { domain: 0, bus: 0, slot, function: 0 },
        bus_type: BusType::Virtio,
        bus: 0,
        target: 0,
        unit: 0,
        serial: Some("QGA-DISK-1".into()),
        dev: Some(dev.into()),
    }
}

#[test]
fn a_virtio_partition_has_its_pci_address_serial_and_node() {
    let t = guest();
    let mut info = DeviceInfo::default();
    device_info(&t.root(), "/sys/dev/block/254:17", &mut info, 0).unwrap();
    assert_eq!(info, DeviceInfo { name: Some("vdb1".into()), disks: vec![virtio(5, "/dev/vdb1")] });
}

#[test]
fn a_device_mapper_volume_lists_the_disks_under_it_by_its_own_name() {
    let t = guest();
    let mut info = DeviceInfo::default();
    device_info(&t.root(), "/sys/dev/block/253:0", &mut info, 0).unwrap();
    assert_eq!(info, DeviceInfo { name: Some("dm-0".into()), disks: vec![virtio(5, "/dev/vdb1")] });
}

#[test]
fn an_ide_disk_is_on_the_bus_of_its_ata_port_among_the_controllers_ports() {
    let t = guest();
    let mut info = DeviceInfo::default();
    device_info(&t.root(), "/sys/dev/block/8:0", &mut info, 0).unwrap();
    let a = &info.disks[0];
    assert_eq!(a.pci, PciAddress { domain: 0, bus: 0, slot: 1, function: 1 });
    assert_eq!((a.bus_type, a.bus, a.target, a.unit), (BusType::Ide, 1, 0, 0));
    assert_eq!((a.serial.as_deref(), a.dev.as_deref()), (None, Some("/dev/sda")));
}

#[test]
fn a_missing_device_is_named_after_its_numbers_with_no_disks() {
    let t = guest();
    let mut info = DeviceInfo::default();
    device_info(&t.root(), "/sys/dev/block/0:42", &mut info, 0).unwrap();
    assert_eq!(info, DeviceInfo { name: Some("0:42".into()), disks: vec![] });
}

#[test]
fn disks_have_partitions_dependencies_aliases_and_skip_empty_devices() {
    let t = guest();
    let list = disks(&t.root()).unwrap();
    let find = |n: &str| list.iter().find(|d| d.name == n).unwrap_or_else(|| panic!("{n} in {list:#?}"));
    assert_eq!(list.len(), 4, "{list:#?}");
    let vdb = find("/dev/vdb");
    assert_eq!((vdb.partition, vdb.dependencies.clone(), vdb.alias.clone()), (false, Some(vec![]), None));
    assert_eq!(vdb.address, Some(virtio(5, "/dev/vdb")));
    let vdb1 = find("/dev/vdb1");
    assert_eq!(
        (vdb1.partition, vdb1.dependencies.clone(), vdb1.address.clone()),
        (true, Some(vec!["/dev/vdb".into()]), None)
    );
    let dm = find("/dev/dm-0");
    assert_eq!(dm.dependencies, Some(vec!["/dev/vdb1".into()]));
    assert_eq!((dm.address.clone(), dm.alias.as_deref()), (None, Some("vg-lv")));
    let sda = find("/dev/sda");
    assert_eq!(sda.dependencies, None, "no slaves directory: no dependencies member");
    // 7.2 prepends: a disk's partitions come before it.
    let pos = |n: &str| list.iter().position(|d| d.name == n).unwrap();
    assert!(pos("/dev/vdb1") < pos("/dev/vdb"));
}

#[test]
fn path_scanners_follow_sscanf() {
    assert_eq!(scsi_target("/x/target2:0:1/2:0:1:3/block/sdb"), Some([0, 1, 3]));
    assert_eq!(scsi_target("/x/target2:0:1/block"), None);
    assert_eq!(pci_function("0000:00:1f.2/ata1"), Some(([0, 0, 0x1f, 2], "/ata1")));
}
