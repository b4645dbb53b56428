//! guest-get-memory-blocks, guest-get-memory-block-info, guest-set-memory-blocks and
//! guest-fsfreeze-freeze-list over a real socket: the read-only answers against this machine's
//! sysfs, read here independently, and against the reference qemu-ga 7.2 run side by side;
//! argument errors byte for byte as 7.2's; the front's bounds. Nothing here changes a memory
//! block or freezes a filesystem: set-memory-blocks only names blocks that do not exist and
//! freeze-list only gets arguments refused before anything runs (the real-guest suite does the
//! rest, in a VM).

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const MEMORY: &str = "/sys/devices/system/memory";

fn allow_all() -> Agent {
    Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()])
}

/// What sysfs says of each block, in directory order, read as the schema describes it.
fn sysfs_blocks() -> Vec<Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(MEMORY).expect("list the memory directory") {
        let e = e.unwrap();
        let name = e.file_name();
        let Some(n) = name.as_bytes().strip_prefix(b"memory") else { continue };
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        let index: u64 = std::str::from_utf8(n).unwrap().parse().unwrap();
        let dir = e.path();
        let (online, can_offline) = match std::fs::read_to_string(dir.join("state")) {
            Ok(state) => {
                let removable = std::fs::read(dir.join("removable")).ok();
                (state.starts_with("online"), removable.is_some_and(|r| r.first() != Some(&b'0')))
            }
            Err(_) => (true, false),
        };
        out.push(json!({"phys-index": index, "online": online, "can-offline": can_offline}));
    }
    out
}

fn has_memory_blocks() -> bool {
    Path::new(MEMORY).join("block_size_bytes").exists()
}

#[test]
fn block_info_is_sysfs_block_size_bytes() {
    let agent = allow_all();
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-get-memory-block-info"}"#);
    match std::fs::read_to_string(Path::new(MEMORY).join("block_size_bytes")) {
        Ok(text) => {
            let size = u64::from_str_radix(text.trim(), 16).expect("hexadecimal block size");
            assert_eq!(r, json!({"return": {"size": size}}));
        }
        Err(_) => assert_error(&r, "GenericError", "open(\"/sys/devices/system/memory/\"): No such file or directory"),
    }
}

#[test]
fn memory_blocks_are_the_sysfs_directories_in_their_order() {
    let agent = allow_all();
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-get-memory-blocks"}"#);
    if has_memory_blocks() {
        let blocks = sysfs_blocks();
        assert!(!blocks.is_empty(), "this machine's sysfs lists no memory block");
        assert_eq!(r, json!({ "return": blocks }));
    } else {
        assert_eq!(r, json!({"return": []}), "no memory directory is an empty list, as 7.2");
    }
}

#[test]
fn set_memory_blocks_answers_each_block_in_order_and_an_empty_list_with_an_empty_list() {
    let agent = allow_all();
    let mut c = agent.connect();
    assert_eq!(c.cmd(r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}}"#), json!({"return": []}));
    // Blocks that cannot exist: far past the last one, and u64::MAX (7.2 names it memory-1).
    let far = sysfs_blocks().iter().filter_map(|b| b["phys-index"].as_u64()).max().unwrap_or(0) + 1_000_000;
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-set-memory-blocks","arguments":{{"mem-blks":[{{"phys-index":{far},"online":true}},{{"phys-index":-1,"online":false,"can-offline":true}}]}}}}"#
    ));
    let expected = if has_memory_blocks() {
        json!({"return": [
            {"phys-index": far, "response": "not-found", "error-code": 2},
            {"phys-index": u64::MAX, "response": "not-found", "error-code": 2},
        ]})
    } else {
        json!({"return": [
            {"phys-index": far, "response": "operation-not-supported", "error-code": 2},
            {"phys-index": u64::MAX, "response": "operation-not-supported", "error-code": 2},
        ]})
    };
    assert_eq!(r, expected);
}

#[test]
fn memory_block_argument_errors_name_the_element_and_member() {
    let agent = allow_all();
    let mut c = agent.connect();
    let cases = [
        (r#"{"mem-blks":[{"phys-index":5}]}"#, "Parameter 'mem-blks[0].online' is missing"),
        (r#"{"mem-blks":[{"online":true}]}"#, "Parameter 'mem-blks[0].phys-index' is missing"),
        (
            r#"{"mem-blks":[{"phys-index":1,"online":true},{"phys-index":1.5,"online":true}]}"#,
            "Parameter 'mem-blks[1].phys-index' expects uint64",
        ),
        (r#"{"mem-blks":[{"phys-index":"1","online":true}]}"#, "Parameter 'mem-blks[0].phys-index' expects uint64"),
        (
            r#"{"mem-blks":[{"phys-index":1,"online":1}]}"#,
            "Invalid parameter type for 'mem-blks[0].online', expected: boolean",
        ),
        (
            r#"{"mem-blks":[{"phys-index":1,"online":true,"can-offline":"no"}]}"#,
            "Invalid parameter type for 'mem-blks[0].can-offline', expected: boolean",
        ),
        (r#"{"mem-blks":[{"phys-index":1,"online":true,"x":1}]}"#, "Parameter 'mem-blks[0].x' is unexpected"),
        (r#"{"mem-blks":[1]}"#, "Invalid parameter type for 'mem-blks[0]', expected: object"),
        (r#"{"mem-blks":{}}"#, "Invalid parameter type for 'mem-blks', expected: array"),
        (r#"{}"#, "Parameter 'mem-blks' is missing"),
        (r#"{"mem-blks":[],"y":1}"#, "Parameter 'y' is unexpected"),
    ];
    for (arguments, desc) in cases {
        let r = c.cmd(&format!(r#"{{"execute":"guest-set-memory-blocks","arguments":{arguments}}}"#));
        assert_error(&r, "GenericError", desc);
    }
}

#[test]
fn freeze_list_argument_errors_are_72s_and_nothing_is_frozen() {
    let agent = allow_all();
    let mut c = agent.connect();
    let cases = [
        (r#"{"mountpoints":[1]}"#, "Invalid parameter type for 'mountpoints[0]', expected: string"),
        (r#"{"mountpoints":["/",null]}"#, "Invalid parameter type for 'mountpoints[1]', expected: string"),
        (r#"{"mountpoints":"/"}"#, "Invalid parameter type for 'mountpoints', expected: array"),
        (r#"{"mountpoints":["/"],"y":2}"#, "Parameter 'y' is unexpected"),
    ];
    for (arguments, desc) in cases {
        let r = c.cmd(&format!(r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{arguments}}}"#));
        assert_error(&r, "GenericError", desc);
    }
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), json!({"return": "thawed"}));
}

#[test]
fn lists_over_the_helpers_bounds_are_refused_by_the_front_and_the_agent_keeps_serving() {
    let agent = allow_all();
    let mut c = agent.connect();
    let points: Vec<String> = (0..129).map(|i| format!("\"/nonexistent/{i}\"")).collect();
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":[{}]}}}}"#,
        points.join(",")
    ));
    assert_error(&r, "GenericError", "guest-fsfreeze-freeze-list takes at most 128 mount points; 129 were given");
    let long = "x".repeat(4097);
    let r =
        c.cmd(&format!(r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":["/","/{long}"]}}}}"#));
    assert_error(
        &r,
        "GenericError",
        "guest-fsfreeze-freeze-list takes mount points of at most 4096 bytes; one of 4098 was given",
    );
    let blocks: Vec<&str> = (0..32769).map(|_| r#"{"phys-index":-2,"online":true}"#).collect();
    let r =
        c.cmd(&format!(r#"{{"execute":"guest-set-memory-blocks","arguments":{{"mem-blks":[{}]}}}}"#, blocks.join(",")));
    assert_error(&r, "GenericError", "guest-set-memory-blocks takes at most 32768 memory blocks; 32769 were given");
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), json!({"return": "thawed"}));
    assert!(is_alive(agent.helper_pid), "the helper was given a request it refuses");
}

#[test]
fn the_largest_memory_block_list_reaches_the_helper_and_is_answered_per_block() {
    let agent = allow_all();
    let mut c = agent.connect();
    // phys-index -2 is memory-2: no such block anywhere.
    let blocks: Vec<&str> = (0..32768).map(|_| r#"{"phys-index":-2,"online":true}"#).collect();
    let r =
        c.cmd(&format!(r#"{{"execute":"guest-set-memory-blocks","arguments":{{"mem-blks":[{}]}}}}"#, blocks.join(",")));
    let list = r["return"].as_array().unwrap_or_else(|| panic!("{}", &r.to_string()[..200]));
    assert_eq!(list.len(), 32768);
    let response = if has_memory_blocks() { "not-found" } else { "operation-not-supported" };
    assert!(list.iter().all(|b| *b == json!({"phys-index": u64::MAX - 1, "response": response, "error-code": 2})));
    assert!(is_alive(agent.helper_pid));
}

#[test]
fn policies_gate_the_four_commands_like_their_kin() {
    let cases = [
        ("default", [true, true, true, true]),
        ("monitoring-only", [true, false, true, false]),
        ("backup-only", [false, false, false, true]),
    ];
    for (policy, expected) in cases {
        let agent = Agent::start(&["--policy", shipped_policy(policy).to_str().unwrap()]);
        let mut c = agent.connect();
        let names = [
            "guest-get-memory-blocks",
            "guest-set-memory-blocks",
            "guest-get-memory-block-info",
            "guest-fsfreeze-freeze-list",
        ];
        for (name, on) in names.iter().zip(expected) {
            assert_eq!(probe_enabled(&mut c, name), on, "{name} under {policy}.policy");
        }
    }
}

/// The same bytes to both agents, the same answer: the read-only queries and argument errors.
#[test]
fn answers_match_the_reference_qemu_ga_7_2() {
    let reference = Reference::start();
    let agent = allow_all();
    let mut ours = agent.connect();
    let mut theirs = reference.connect();
    let requests = [
        r#"{"execute":"guest-get-memory-block-info"}"#,
        r#"{"execute":"guest-get-memory-blocks"}"#,
        r#"{"execute":"guest-get-memory-blocks","arguments":{"x":1}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":-1,"online":true},{"phys-index":18446744073709551614,"online":false}]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":5}]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":1.5,"online":true}]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":1,"online":true,"can-offline":1}]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":1,"online":true,"z":1}]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[null]}}"#,
        r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":"x"}}"#,
        r#"{"execute":"guest-set-memory-blocks"}"#,
        r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":[1]}}"#,
        r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":{}}}"#,
        r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":[],"q":1}}"#,
    ];
    for req in requests {
        // Raw bytes: member order and spacing are compared too.
        ours.send(req);
        theirs.send(req);
        let (a, b) = (ours.read_raw_line(), theirs.read_raw_line());
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "{req}");
    }
}
