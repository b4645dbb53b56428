//! guest-get-fsinfo and guest-get-disks over a real socket, each answer compared with qemu-ga
//! 7.2's on the same machine: disks byte for byte; fsinfo byte for byte except `used-bytes`,
//! which moves while other programs write (total-bytes, blocks less the reserve, does not).
//! The agent runs with the shipped default policy, so the front's empty filesystem view and
//! both seccomp filters (and the probes' own) are on: the answers prove they need no more.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

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
    let dir = TempDir::new();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    nix::mount::mount(Some(&src), &dst, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).expect("bind mount");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(dst.clone());
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
