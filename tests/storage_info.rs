//! guest-get-fsinfo and guest-get-disks over a real socket, each answer compared with qemu-ga
//! 7.2's on the same machine: disks byte for byte; fsinfo byte for byte except `used-bytes`,
//! which moves while other programs write (total-bytes, blocks less the reserve, does not).
//! The agent runs with the shipped default policy, so the front's empty filesystem view and
//! both seccomp filters (and the probes' own) are on: the answers prove they need no more.
//!
//! The helper keeps device descriptions between requests (dropped on every kernel or udev
//! device event; the mount table re-read when the kernel flags a change): the tests that add
//! a loop device, a partition and mounts between two requests prove that no answer is stale.
//! Tests that change or compare the machine's mounts and block devices hold [`machine`], so
//! one test's loop device never shows up between another's two compared requests.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held while a test changes the mount table or block devices or compares answers about them.
fn machine() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn default_agent() -> Agent {
    Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()])
}

fn raw(c: &mut Client, request: &str) -> String {
    c.send(request);
    String::from_utf8(c.read_raw_line()).expect("a reply is UTF-8")
}

/// The reply with every `used-bytes` value replaced.
fn without_used_bytes(line: &str) -> String {
    let key = "\"used-bytes\": ";
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at + key.len()]);
        out.push('N');
        rest = rest[at + key.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn disks_are_byte_for_byte_7_2s() {
    let _machine = machine();
    let agent = default_agent();
    let reference = Reference::start();
    let request = r#"{"execute":"guest-get-disks","id":"d"}"#;
    let ours = raw(&mut agent.connect(), request);
    assert_eq!(ours, raw(&mut reference.connect(), request));
    let disks = parse(&ours)["return"].as_array().cloned().expect("a list");
    assert!(!disks.is_empty(), "this machine has a disk: {ours}");
}

#[test]
fn fsinfo_is_7_2s_but_for_the_moving_used_bytes() {
    let _machine = machine();
    let agent = default_agent();
    let reference = Reference::start();
    let request = r#"{"execute":"guest-get-fsinfo","id":"f"}"#;
    let (mut a, mut b) = (agent.connect(), reference.connect());
    let ours = raw(&mut a, request);
    let theirs = raw(&mut b, request);
    assert_eq!(without_used_bytes(&ours), without_used_bytes(&theirs));
    let list = parse(&ours)["return"].as_array().cloned().expect("a list");
    let root = list.iter().find(|f| f["mountpoint"] == "/").unwrap_or_else(|| panic!("/ is listed: {ours}"));
    assert!(root["used-bytes"].as_u64().unwrap() <= root["total-bytes"].as_u64().unwrap(), "{root}");
    let st = nix::sys::statvfs::statvfs("/").unwrap();
    let total = (st.blocks() - st.blocks_free() + st.blocks_available()) * st.fragment_size();
    assert_eq!(root["total-bytes"].as_u64(), Some(total), "total of / as statvfs gives it");
}

#[test]
fn a_bind_mount_is_listed_as_7_2_lists_it() {
    // A bind mount of a directory of the root filesystem: the same device a second time.
    let _machine = machine();
    let dir = TempDir::new();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let _guard = Unmount::bind(&src, &dst);
    let agent = default_agent();
    let reference = Reference::start();
    let request = r#"{"execute":"guest-get-fsinfo"}"#;
    let ours = raw(&mut agent.connect(), request);
    assert_eq!(without_used_bytes(&ours), without_used_bytes(&raw(&mut reference.connect(), request)));
    let list = parse(&ours)["return"].as_array().cloned().unwrap();
    let bind = list.iter().find(|f| f["mountpoint"] == dst.to_str().unwrap()).unwrap_or_else(|| panic!("{ours}"));
    let root = list.iter().find(|f| f["mountpoint"] == "/").unwrap();
    assert_eq!((&bind["name"], &bind["disk"]), (&root["name"], &root["disk"]));
    assert_eq!(list.first(), Some(bind), "the latest mount comes first, as 7.2 prepends");
}

#[test]
fn both_are_refused_where_the_policy_disables_them() {
    let agent = Agent::start(&["--policy", shipped_policy("backup-only").to_str().unwrap()]);
    let mut c = agent.connect();
    for name in ["guest-get-fsinfo", "guest-get-disks"] {
        let r = c.cmd(&format!(r#"{{"execute":"{name}"}}"#));
        assert_error(&r, "CommandNotFound", &format!("Command {name} has been disabled"));
    }
}

#[test]
fn requests_behind_fsinfo_are_answered_at_once() {
    let agent = default_agent();
    let mut c = agent.connect();
    let t = Instant::now();
    c.send(r#"{"execute":"guest-get-fsinfo"}{"execute":"guest-get-disks"}{"execute":"guest-ping","id":1}"#);
    assert!(c.read_reply()["return"].is_array());
    assert!(c.read_reply()["return"].is_array());
    assert_eq!(c.read_reply(), serde_json::json!({"return": {}, "id": 1}));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A mount, unmounted when dropped (also when the test fails).
struct Unmount(PathBuf);

impl Unmount {
    fn bind(src: &Path, dst: &Path) -> Unmount {
        nix::mount::mount(Some(src), dst, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .expect("bind mount");
        Unmount(dst.to_owned())
    }

    fn unmount(self) {
        nix::mount::umount2(&self.0, nix::mount::MntFlags::empty()).expect("unmount");
        std::mem::forget(self);
    }
}

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A loop device over an image file, detached when dropped.
struct Loop(String);

impl Loop {
    /// An ext4 image of 32 MiB, attached with partitions allowed (`-P`).
    fn attach(dir: &Path) -> Loop {
        let image = dir.join("disk.img");
        std::fs::write(&image, vec![0u8; 32 << 20]).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let out = Command::new("losetup").args(["-f", "--show", "-P"]).arg(&image).output().expect("losetup runs");
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    fn detach(self) {
        run("losetup", &["-d", &self.0]);
        std::mem::forget(self);
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Both requests' answers from qemu-ga-rs, each checked against 7.2's of the same moment.
fn disks_and_fsinfo(ours: &mut Client, theirs: &mut Client) -> (String, String) {
    let disks = r#"{"execute":"guest-get-disks"}"#;
    let fsinfo = r#"{"execute":"guest-get-fsinfo"}"#;
    let d = raw(ours, disks);
    assert_eq!(d, raw(theirs, disks), "guest-get-disks as 7.2's");
    let f = raw(ours, fsinfo);
    assert_eq!(without_used_bytes(&f), without_used_bytes(&raw(theirs, fsinfo)), "guest-get-fsinfo as 7.2's");
    (d, f)
}

fn names(disks: &str) -> Vec<String> {
    let list = parse(disks)["return"].as_array().cloned().unwrap_or_else(|| panic!("a list: {disks}"));
    list.iter().map(|d| d["name"].as_str().unwrap().to_owned()).collect()
}

fn mountpoints(fsinfo: &str) -> Vec<String> {
    let list = parse(fsinfo)["return"].as_array().cloned().unwrap_or_else(|| panic!("a list: {fsinfo}"));
    list.iter().map(|f| f["mountpoint"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_loop_disk_its_partition_and_its_mount_appear_and_go_between_two_requests() {
    let _machine = machine();
    let dir = TempDir::new();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let agent = default_agent();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    // The first answers fill the helper's cache.
    let (disks, fsinfo) = disks_and_fsinfo(&mut ours, &mut theirs);

    let dev = Loop::attach(dir.path());
    let part = format!("{}p1", dev.0);
    let (with_disk, _) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert!(names(&with_disk).contains(&dev.0), "the new disk is listed: {with_disk}");
    assert!(!names(&with_disk).contains(&part), "{with_disk}");
    // A partition added by the kernel's BLKPG call (addpart), as partitioning tools do; it
    // needs no partition table parser in the kernel. Sectors 2048-4095, unused by the test.
    run("addpart", &[&dev.0, "1", "2048", "2048"]);
    let mount = {
        nix::mount::mount(Some(dev.0.as_str()), &mnt, Some("ext4"), nix::mount::MsFlags::empty(), None::<&str>)
            .expect("mount the loop device");
        Unmount(mnt.clone())
    };
    let (with_disks, with_fsinfo) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert!(!names(&disks).contains(&dev.0), "{} was not there before: {disks}", dev.0);
    assert!(names(&with_disks).contains(&dev.0), "the new disk is listed: {with_disks}");
    assert!(names(&with_disks).contains(&part), "its partition is listed: {with_disks}");
    let at = mnt.to_str().unwrap().to_owned();
    assert!(!mountpoints(&fsinfo).contains(&at));
    let entry =
        parse(&with_fsinfo)["return"].as_array().unwrap().iter().find(|f| f["mountpoint"] == at.as_str()).cloned();
    let entry = entry.unwrap_or_else(|| panic!("the new mount is listed: {with_fsinfo}"));
    assert_eq!(entry["name"], dev.0.trim_start_matches("/dev/"), "{entry}");
    assert_eq!(entry["type"], "ext4", "{entry}");

    mount.unmount();
    let gone = dev.0.clone();
    dev.detach();
    let (after_disks, after_fsinfo) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert!(!names(&after_disks).iter().any(|n| n.starts_with(&gone)), "disk and partition are gone: {after_disks}");
    assert_eq!(names(&after_disks), names(&disks), "back to the first answer");
    assert!(!mountpoints(&after_fsinfo).contains(&at), "the mount is gone: {after_fsinfo}");
}

#[test]
fn a_bind_mount_made_between_two_requests_is_in_the_second_and_gone_after_unmounting() {
    // A mount of a device already described: no device event, only the mount table changes.
    let _machine = machine();
    let dir = TempDir::new();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let agent = default_agent();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    let at = dst.to_str().unwrap().to_owned();
    let (_, before) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert!(!mountpoints(&before).contains(&at));
    let bind = Unmount::bind(&src, &dst);
    let (_, during) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert_eq!(mountpoints(&during).first(), Some(&at), "the new mount, latest first: {during}");
    bind.unmount();
    let (_, after) = disks_and_fsinfo(&mut ours, &mut theirs);
    assert_eq!(mountpoints(&after), mountpoints(&before), "{after}");
}
