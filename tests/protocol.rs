//! The wire protocol of the real agent over unix-listen: framing, the sync handshake, `id`
//! echo, qemu-ga 7.2's error classes and texts, JSON limits, per-connection parser reset,
//! survival of misbehaving clients, the guest-file-* family and guest-info.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

fn allow_all() -> Agent {
    Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()])
}

#[test]
fn handshake_0xff_then_sync_delimited_gives_parse_error_then_delimited_reply() {
    let agent = allow_all();
    let mut c = agent.connect();
    c.send(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":123456}}");
    let first = c.read_reply();
    assert_error(&first, "GenericError", "JSON parse error, stray '\u{FFFD}'");
    assert_eq!(c.read_raw_line(), b"\xff{\"return\": 123456}\n".to_vec());
    // Only the delimited reply carries 0xFF: a plain sync right after does not.
    c.send(r#"{"execute":"guest-sync","arguments":{"id":7}}"#);
    assert_eq!(c.read_raw_line(), b"{\"return\": 7}\n".to_vec());
}

#[test]
fn id_is_echoed_verbatim_on_success_command_errors_and_dispatch_errors() {
    let agent = allow_all();
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-ping","id":{"a":[1,"x"]}}"#);
    assert_eq!(r, json!({"return": {}, "id": {"a": [1, "x"]}}));
    let r = c.cmd(r#"{"execute":"guest-nonexist","id":"abc"}"#);
    assert_eq!(r["id"], "abc");
    assert_error(&r, "CommandNotFound", "The command guest-nonexist has not been found");
    let r = c.cmd(r#"{"execute":"guest-ping","foo":1,"id":9}"#);
    assert_eq!(r["id"], 9);
    assert_error(&r, "GenericError", "QMP input member 'foo' is unexpected");
    let r = c.cmd(r#"{"execute":"guest-sync","arguments":{"id":5},"id":null}"#);
    assert_eq!(r, json!({"return": 5, "id": null}));
}

#[test]
fn dispatch_and_argument_errors_have_7_2_classes_and_texts() {
    let agent = allow_all();
    let mut c = agent.connect();
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"execute":"guest-nonexist"}"#, "CommandNotFound", "The command guest-nonexist has not been found"),
        (r#"{"execute":"guest-sync"}"#, "GenericError", "Parameter 'id' is missing"),
        (r#"{"execute":"guest-sync","arguments":{}}"#, "GenericError", "Parameter 'id' is missing"),
        (r#"{"execute":"guest-ping","arguments":{"foo":1}}"#, "GenericError", "Parameter 'foo' is unexpected"),
        (
            r#"{"execute":"guest-sync","arguments":{"id":"x"}}"#,
            "GenericError",
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":1.5}}"#,
            "GenericError",
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":true}}"#,
            "GenericError",
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":null}}"#,
            "GenericError",
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-file-open","arguments":{"path":1}}"#,
            "GenericError",
            "Invalid parameter type for 'path', expected: string",
        ),
        (
            r#"{"execute":"guest-ping","arguments":[]}"#,
            "GenericError",
            "QMP input member 'arguments' must be an object",
        ),
        (
            r#"{"execute":"guest-ping","arguments":null}"#,
            "GenericError",
            "QMP input member 'arguments' must be an object",
        ),
        (r#"{"execute":1}"#, "GenericError", "QMP input member 'execute' must be a string"),
        (r#"[{"execute":"guest-ping"}]"#, "GenericError", "QMP input must be a JSON object"),
        (r#""guest-ping""#, "GenericError", "QMP input must be a JSON object"),
        (r#"{}"#, "GenericError", "QMP input lacks member 'execute'"),
        (r#"{"execute":"guest-ping","execute":"guest-ping"}"#, "GenericError", "JSON parse error, duplicate key"),
    ];
    for (request, class, desc) in cases {
        let r = c.cmd(request);
        assert_eq!(r["error"]["class"], *class, "class for {request}: {r}");
        assert_eq!(r["error"]["desc"], *desc, "desc for {request}: {r}");
    }
    // Nothing was left over: the next request is answered on its own.
    assert!(c.sync(31).is_empty());
}

#[test]
fn nesting_depth_1024_parses_and_1025_is_the_nesting_error_with_7_2s_cascade() {
    let agent = allow_all();
    let mut c = agent.connect();
    // 1024 levels parse: the reply is about the value, not the depth.
    c.send(format!("{}{}", "[".repeat(1024), "]".repeat(1024)));
    assert_error(&c.read_reply(), "GenericError", "QMP input must be a JSON object");
    assert!(c.sync(1).is_empty(), "one reply for a depth-1024 message");

    c.send(format!("{}{}", "[".repeat(1025), "]".repeat(1025)));
    let before = c.sync(2);
    assert_eq!(before[0]["error"]["desc"], "JSON nesting depth limit exceeded", "first reply: {}", before[0]);
    // 7.2 lexes the rest of the message as new input: 1026 error lines in all.
    assert_eq!(before.len(), 1026);
    assert!(before.iter().all(|r| r["error"]["class"] == "GenericError"));
}

#[test]
fn a_request_split_byte_by_byte_gets_exactly_one_reply() {
    let agent = allow_all();
    let mut c = agent.connect();
    for b in br#"{"execute":"guest-sync","arguments":{"id":77}}"# {
        c.send([*b]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.read_reply(), json!({"return": 77}));
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn several_requests_in_one_write_get_replies_in_order() {
    let agent = allow_all();
    let mut c = agent.connect();
    c.send(concat!(
        r#"{"execute":"guest-ping"}"#,
        r#"{"execute":"guest-sync","arguments":{"id":5}}"#,
        " \n\t ",
        r#"{'execute':'guest-sync','arguments':{'id':6}}"#
    ));
    assert_eq!(c.read_reply(), json!({"return": {}}));
    assert_eq!(c.read_reply(), json!({"return": 5}));
    assert_eq!(c.read_reply(), json!({"return": 6}));
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn a_0xff_byte_mid_request_flushes_it_with_an_error_and_the_next_request_works() {
    let agent = allow_all();
    let mut c = agent.connect();
    c.send(b"{\"execute\":\"gue\xff");
    assert_error(&c.read_reply(), "GenericError", "JSON parse error, stray '\"gue\u{FFFD}'");
    assert_eq!(c.cmd(r#"{"execute":"guest-sync","arguments":{"id":8}}"#), json!({"return": 8}));
}

#[test]
fn shutdown_with_an_invalid_mode_is_refused_with_7_2s_text_before_anything_runs() {
    // Only the invalid form is sent: a valid guest-shutdown would be silent and real.
    let agent = allow_all();
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-shutdown","arguments":{"mode":"bogus"},"id":3}"#);
    assert_eq!(r["id"], 3);
    assert_error(&r, "GenericError", "mode is invalid (valid values are: halt|powerdown|reboot");
    let r = c.cmd(r#"{"execute":"guest-shutdown","arguments":{"mode":1}}"#);
    assert_error(&r, "GenericError", "Invalid parameter type for 'mode', expected: string");
    // Still up and answering.
    assert!(c.sync(9).is_empty());
}

#[test]
fn a_new_connection_starts_with_a_clean_parser() {
    let agent = allow_all();
    // A partial request, then disconnect.
    let mut a = agent.connect();
    a.send(r#"{"execute":"guest-pi"#);
    std::thread::sleep(Duration::from_millis(100));
    drop(a);
    let mut b = agent.connect();
    assert_eq!(b.cmd(r#"{"execute":"guest-sync","arguments":{"id":11}}"#), json!({"return": 11}));
    b.expect_silence(Duration::from_millis(200));
    drop(b);
    // A pending bare scalar is not carried over either (7.2 answers it to the next client).
    let mut a = agent.connect();
    a.send("42");
    std::thread::sleep(Duration::from_millis(100));
    drop(a);
    let mut b = agent.connect();
    assert_eq!(b.cmd(r#"{"execute":"guest-sync","arguments":{"id":12}}"#), json!({"return": 12}));
    b.expect_silence(Duration::from_millis(200));
}

#[test]
fn the_agent_survives_a_client_that_disconnects_mid_reply() {
    let agent = allow_all();
    let mut a = agent.connect();
    // Far more reply data than a socket buffer holds, none of it read.
    a.send(r#"{"execute":"guest-info"}"#.repeat(1000));
    let _ = a.read_raw_line(); // the agent is writing
    drop(a);
    // And a client that resets with requests still unread by the agent.
    let mut a = agent.connect();
    a.send(r#"{"execute":"guest-ping"}"#.repeat(50));
    drop(a);
    std::thread::sleep(Duration::from_millis(100));
    assert!(is_alive(agent.front_pid), "the front died; stderr:\n{}", agent.stderr());
    let mut c = agent.connect();
    assert!(c.sync(21).is_empty(), "stale replies leaked into a new connection");
}

fn b64(s: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.chunks(3) {
        let v =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn file_round_trip_handles_start_at_1000_persist_across_restart_and_new_files_are_0644() {
    let mut agent = allow_all();
    let scratch = agent.dir.scratch();
    let path = scratch.join("round-trip.txt");
    let p = path.to_str().unwrap();
    let mut c = agent.connect();

    let h = c.cmd(&json!({"execute": "guest-file-open", "arguments": {"path": p, "mode": "w+"}}).to_string());
    assert_eq!(h["return"], 1000, "first handle: {h}");
    let r = c.cmd(
        &json!({"execute": "guest-file-write", "arguments": {"handle": 1000, "buf-b64": b64(b"hello world")}})
            .to_string(),
    );
    assert_eq!(r["return"], json!({"count": 11, "eof": false}));
    let r = c.cmd(r#"{"execute":"guest-file-flush","arguments":{"handle":1000}}"#);
    assert_eq!(r, json!({"return": {}}));
    let r = c.cmd(r#"{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}}"#);
    assert_eq!(r["return"], json!({"position": 0, "eof": false}));
    let r = c.cmd(r#"{"execute":"guest-file-read","arguments":{"handle":1000}}"#);
    assert_eq!(r["return"], json!({"count": 11, "buf-b64": b64(b"hello world"), "eof": true}));
    let r = c.cmd(r#"{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":6,"whence":0}}"#);
    assert_eq!(r["return"]["position"], 6);
    let r = c.cmd(r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":3}}"#);
    assert_eq!(r["return"], json!({"count": 3, "buf-b64": b64(b"wor"), "eof": false}));
    let r = c.cmd(r#"{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":3}}"#);
    assert_error(&r, "GenericError", "invalid whence code 3");
    let r = c.cmd(r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":-1}}"#);
    assert_error(&r, "GenericError", "value '-1' is invalid for argument count");
    let r = c.cmd(r#"{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"!!"}}"#);
    assert_error(&r, "GenericError", "Base64 data contains invalid characters");
    assert_eq!(c.cmd(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#), json!({"return": {}}));
    let r = c.cmd(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#);
    assert_error(&r, "GenericError", "handle '1000' has not been found");

    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644, "a new file's mode");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "the helper creates the file as root, as 7.2 does");

    // Opening again (existing file, read-only) takes the next handle; a read-only handle
    // refuses writes with 7.2's text.
    let r = c.cmd(&json!({"execute": "guest-file-open", "arguments": {"path": p}}).to_string());
    assert_eq!(r["return"], 1001);
    let r =
        c.cmd(&json!({"execute": "guest-file-write", "arguments": {"handle": 1001, "buf-b64": "aGk="}}).to_string());
    assert_error(&r, "GenericError", "failed to write to file: Bad file descriptor");
    let r = c.cmd(&json!({"execute": "guest-file-open", "arguments": {"path": p, "mode": "rw"}}).to_string());
    assert_error(&r, "GenericError", "invalid file open mode 'rw'");
    let missing = scratch.join("missing/x");
    let r = c.cmd(&json!({"execute": "guest-file-open", "arguments": {"path": missing.to_str().unwrap()}}).to_string());
    assert_error(
        &r,
        "GenericError",
        &format!("failed to open file '{}' (mode: 'r'): No such file or directory", missing.display()),
    );
    drop(c);

    let state = std::fs::read_to_string(agent.path("qga.state")).unwrap();
    assert!(state.contains("[global]") && state.contains("fd_counter=1002"), "qga.state:\n{state}");

    // A restart continues the counter: handles are never reused.
    agent.restart();
    let mut c = agent.connect();
    let r = c.cmd(&json!({"execute": "guest-file-open", "arguments": {"path": p}}).to_string());
    assert_eq!(r["return"], 1002, "first handle after restart: {r}");
    // Handles of the previous instance are gone.
    let r = c.cmd(r#"{"execute":"guest-file-close","arguments":{"handle":1001}}"#);
    assert_error(&r, "GenericError", "handle '1001' has not been found");
}

#[test]
fn guest_info_lists_every_command_in_reverse_schema_order() {
    let agent = allow_all();
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-info"}"#);
    assert_eq!(r["return"]["version"], env!("CARGO_PKG_VERSION"));
    let list = info_commands(&mut c);
    let names: Vec<&str> = list.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut expected = schema_order();
    assert_eq!(expected.len(), qga_policy::COUNT, "a command of the table is not one of 7.2's");
    expected.reverse();
    assert_eq!(names, expected);
    for (name, enabled, success_response) in &list {
        // As 7.2: everything enabled but what it disables on Linux whatever its options say.
        assert_eq!(*enabled, !UNAVAILABLE_ON_LINUX.contains(&name.as_str()), "{name} under allow-all");
        let silent = matches!(
            name.as_str(),
            "guest-shutdown" | "guest-suspend-disk" | "guest-suspend-ram" | "guest-suspend-hybrid"
        );
        assert_eq!(*success_response, !silent, "success-response of {name}");
    }
}

#[test]
fn read_only_commands_answer_with_their_documented_shapes() {
    let agent = allow_all();
    let mut c = agent.connect();
    let t = c.cmd(r#"{"execute":"guest-get-time"}"#)["return"].as_i64().expect("time is an integer");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    assert!((now - t).abs() < 60_000_000_000, "guest-get-time {t} vs now {now}");
    assert_eq!(t % 1000, 0, "microsecond resolution, as 7.2");
    assert_eq!(c.cmd(r#"{"execute":"guest-fsfreeze-status"}"#), json!({"return": "thawed"}));
    let v = c.cmd(r#"{"execute":"guest-get-vcpus"}"#);
    let cpus = v["return"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(!cpus.is_empty());
    assert!(cpus.iter().all(|c| c["logical-id"].is_i64() && c["online"].is_boolean() && c["can-offline"].is_boolean()));
    // An empty list changes nothing and returns 0 (7.2).
    assert_eq!(c.cmd(r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[]}}"#), json!({"return": 0}));
    let n = c.cmd(r#"{"execute":"guest-network-get-interfaces"}"#);
    let ifaces = n["return"].as_array().unwrap_or_else(|| panic!("{n}"));
    assert!(ifaces.iter().any(|i| i["name"] == "lo"), "lo is listed: {n}");
    // Invalid forms of privileged commands are refused before the helper is asked.
    let r = c.cmd(r#"{"execute":"guest-set-time","arguments":{"time":-1000000000}}"#);
    assert_error(&r, "GenericError", "Invalid time");
    let r = c.cmd(r#"{"execute":"guest-fstrim","arguments":{"minimum":"x"}}"#);
    assert_error(&r, "GenericError", "Invalid parameter type for 'minimum', expected: integer");
    let _: Value = c.cmd(r#"{"execute":"guest-ping"}"#);
}
