//! Request decoding and dispatch to replies: the input is a byte stream from the host; every
//! message goes through `qmp::dispatch::handle` with an agent whose helper is a fake.
//!
//! The agent's policy disables every guest-file-* command (nothing touches files) and
//! guest-network-get-interfaces and guest-get-vcpus (they only read the machine and would slow
//! every run down with system calls). Its helper link is one end of a socketpair served by a
//! thread that decodes each frame strictly (a malformed frame from the front is a crash) and
//! answers a canned reply: the right one, a failure with non-ASCII text, or one of the wrong
//! kind, chosen from a hash of the input so that every run is reproducible.
//!
//! Invariants for every reply line: ASCII; ends in `\n` with no other newline; a single leading
//! 0xFF exactly for guest-sync-delimited's success; the rest parses as JSON (unless the request
//! carried a number beyond f64, which QEMU writes as `inf`); `id` is echoed exactly when the
//! request object had one; the helper link is never lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qemu_ga_rs::commands::{file::Handles, Agent};
use qemu_ga_rs::json::{Message, MessageParser, Value};
use qemu_ga_rs::privsep::link::HelperLink;
use qemu_ga_rs::qmp::dispatch;
use qga_policy::{Command, Policy};
use qga_protocol::storage::{BusType, DiskAddress, DiskInfo, FsInfo, PciAddress};
use qga_protocol::{
    read_frame, write_frame, FrameError, MemoryBlockResponse, MemoryBlockResult, Reply, Request, TrimResult,
};
use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};

/// Two bits per helper call pick the fake helper's answer.
static SELECTOR: AtomicU64 = AtomicU64::new(0);

fn next_choice() -> u64 {
    let s = SELECTOR.load(Ordering::SeqCst);
    SELECTOR.store(s.rotate_right(2), Ordering::SeqCst);
    s & 3
}

fn right_reply(request: &Request) -> Reply {
    match request {
        Request::FreezeStatus => Reply::FreezeState { frozen: SELECTOR.load(Ordering::SeqCst) & 4 != 0 },
        Request::Freeze => Reply::FreezeCount { count: 2, frozen: true },
        Request::Thaw => Reply::FreezeCount { count: 2, frozen: false },
        Request::Trim { minimum } => Reply::Trimmed {
            paths: vec![
                TrimResult::Trimmed { path: "/".into(), minimum: *minimum, trimmed: i64::MAX },
                TrimResult::Failed {
                    path: "/mnt/\u{e9}\"\\\u{1}\u{10348}".into(),
                    error: "Input/output error \u{2603}".into(),
                },
            ],
        },
        Request::SetVcpus { vcpus } => Reply::VcpusSet { count: vcpus.len() as i64 },
        Request::Shutdown { .. } | Request::Suspend { .. } | Request::SetTime { .. } | Request::Quit => Reply::Done,
        Request::Reload => Reply::ReloadRefused { restart: false, reason: "fuzzing".into() },
        Request::FreezeList { mountpoints } => {
            Reply::FreezeCount { count: mountpoints.as_ref().map_or(2, |m| m.len() as i64), frozen: true }
        }
        Request::SetMemoryBlocks { blocks } => Reply::MemoryBlocksSet {
            results: blocks
                .iter()
                .map(|b| MemoryBlockResult {
                    phys_index: b.phys_index,
                    response: MemoryBlockResponse::OperationFailed,
                    error_code: Some(22),
                })
                .collect(),
        },
        Request::GetFsinfo => Reply::Fsinfo {
            filesystems: vec![FsInfo {
                name: "vd\u{e9}1".into(),
                mountpoint: "/mnt/\u{1}\"".into(),
                fstype: "ext4".into(),
                sizes: Some((u64::MAX, 1)),
                disks: vec![address()],
            }],
        },
        Request::SetUserPassword { .. } | Request::SshAddKeys { .. } | Request::SshRemoveKeys { .. } => Reply::Done,
        Request::SshGetKeys { .. } => Reply::Keys { keys: vec![b"ssh-ed25519 AAAA \xc3\xa9".to_vec(), vec![]] },
        // The policy keeps guest-file-* off (see above), so this is never asked; a descriptor
        // cannot travel in these canned frames anyway.
        Request::FileOpen { .. } => Reply::FileOpenFailed { errno: 2 },
        Request::Exec(_) => Reply::ExecStarted { pid: 42 },
        Request::ExecStatus { .. } => Reply::ExecStatus(qga_protocol::ExecStatus::default()),
        Request::GetDisks => Reply::Disks {
            disks: vec![DiskInfo {
                name: "/dev/vda".into(),
                partition: false,
                dependencies: Some(vec!["/dev/\u{10348}".into()]),
                address: Some(address()),
                alias: Some("vg-lv".into()),
            }],
        },
    }
}

fn address() -> DiskAddress {
    DiskAddress {
        pci: PciAddress { domain: -1, bus: 0, slot: 5, function: 0 },
        bus_type: BusType::Virtio,
        bus: 0,
        target: 0,
        unit: 0,
        serial: Some("S\u{2603}".into()),
        dev: None,
    }
}

fn fake_helper(mut socket: UnixStream) {
    loop {
        let payload = match read_frame(&mut socket) {
            Ok(p) => p,
            Err(FrameError::Closed) => return,
            Err(e) => panic!("the front sent a malformed frame: {e}"),
        };
        let request = match Request::decode(&payload) {
            Ok(r) => r,
            Err(e) => panic!("the front sent an undecodable request {payload:?}: {e}"),
        };
        let reply = match next_choice() {
            0 | 1 => right_reply(&request),
            2 => Reply::Failed { desc: "fake failure: \u{fc}\u{7f}\"\n\u{10348}".into() },
            _ => match request {
                Request::SetVcpus { .. } => Reply::Done,
                _ => Reply::VcpusSet { count: -1 },
            },
        };
        write_frame(&mut socket, &reply.encode()).expect("reply to the front");
    }
}

fn new_agent() -> Agent {
    // Keep the agent's log out of the fuzzer's output.
    qemu_ga_rs::log::init(std::fs::File::create("/dev/null").ok(), false, false);
    let (front, helper) = UnixStream::pair().expect("socketpair");
    std::thread::spawn(move || fake_helper(helper));
    Agent {
        policy: policy(),
        frozen: false,
        files: Handles::new(None),
        helper: HelperLink::new(front),
        pidfile_on_thaw: None,
        file_access: true,
    }
}

fn policy() -> Policy {
    let mut policy = Policy::allow_all();
    for c in [
        Command::FileOpen,
        Command::FileClose,
        Command::FileRead,
        Command::FileWrite,
        Command::FileSeek,
        Command::FileFlush,
        Command::NetworkGetInterfaces,
        Command::GetVcpus,
    ] {
        policy.set(c, false);
    }
    policy
}

thread_local! {
    static AGENT: RefCell<Agent> = RefCell::new(new_agent());
}

fn has_non_finite(v: &Value) -> bool {
    match v {
        Value::Float(f) => !f.is_finite(),
        Value::List(l) => l.iter().any(has_non_finite),
        Value::Dict(d) => d.iter().any(|(_, v)| has_non_finite(v)),
        _ => false,
    }
}

/// serde_json without its recursion limit: a reply may echo an id nested 1024 deep.
fn parse_json(text: &[u8]) -> serde_json::Result<serde_json::Value> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(text);
    de.disable_recursion_limit();
    let v = serde_json::Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

fn check(agent: &mut Agent, message: Message) {
    let (request_has_id, is_sync_delimited, non_finite) = match &message {
        Ok(Value::Dict(d)) => (
            d.contains_key(b"id"),
            matches!(d.get("execute"), Some(Value::Str(s)) if s == b"guest-sync-delimited"),
            has_non_finite(&Value::Dict(d.clone())),
        ),
        _ => (false, false, false),
    };
    let Some(line) = dispatch::handle(agent, message) else { return };
    assert!(
        line.is_ascii() || line[0] == 0xFF && line[1..].is_ascii(),
        "non-ASCII reply {:?}",
        String::from_utf8_lossy(&line)
    );
    assert_eq!(line.last(), Some(&b'\n'), "reply without its newline");
    let delimited = line[0] == 0xFF;
    let body = &line[delimited as usize..line.len() - 1];
    assert!(!body.contains(&b'\n'), "newline inside a reply");
    assert!(!body.contains(&0xFF), "0xFF inside a reply");
    assert!(body.starts_with(b"{") && body.ends_with(b"}"), "reply is not an object");
    let json = match parse_json(body) {
        Ok(v) => v,
        Err(_) if non_finite => return,
        Err(e) => panic!("reply is not JSON ({e}): {:?}", String::from_utf8_lossy(body)),
    };
    let object = json.as_object().expect("reply is an object");
    let succeeded = object.contains_key("return");
    assert!(succeeded ^ object.contains_key("error"), "reply has neither or both of return and error");
    assert_eq!(delimited, succeeded && is_sync_delimited, "0xFF prefix on the wrong reply");
    assert_eq!(object.contains_key("id"), request_has_id, "id not echoed exactly when given");
}

fuzz_target!(|input: &[u8]| {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    SELECTOR.store(hash, Ordering::SeqCst);
    AGENT.with(|agent| {
        let mut agent = agent.borrow_mut();
        agent.policy = policy();
        agent.set_frozen(false);
        let mut messages = Vec::new();
        MessageParser::new().feed(input, &mut |m| messages.push(m));
        for m in messages {
            check(&mut agent, m);
            assert!(agent.helper.lost().is_none(), "helper link lost: {:?}", agent.helper.lost());
        }
    });
});
