//! A raw-bytes client of a running agent, and helpers that read its replies.

use super::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A raw-bytes client: writes what it is given, reads reply lines with a deadline.
pub struct Client {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(sock: &Path) -> Client {
        let stream = UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write to the agent");
    }

    /// Reads into the buffer until `done(buf)` or the deadline; false on timeout or EOF.
    fn fill_until(&mut self, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 65536];
        while !done(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read from the agent: {e}"),
            }
        }
        true
    }

    /// The next reply line, with its `\n`, as raw bytes.
    pub fn read_raw_line(&mut self) -> Vec<u8> {
        let ok = self.fill_until(TIMEOUT, |b| b.contains(&b'\n'));
        assert!(ok, "no complete reply line within {TIMEOUT:?}; got so far: {:?}", String::from_utf8_lossy(&self.buf));
        let end = self.buf.iter().position(|&b| b == b'\n').unwrap();
        self.buf.drain(..=end).collect()
    }

    /// The next reply line, parsed (a leading 0xFF is refused: use read_raw_line for that).
    pub fn read_reply(&mut self) -> Value {
        let line = self.read_raw_line();
        serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", String::from_utf8_lossy(&line)))
    }

    /// Sends one request and returns its reply.
    pub fn cmd(&mut self, request: &str) -> Value {
        self.send(request);
        self.read_reply()
    }

    /// Asserts that nothing arrives for `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration) {
        let got = self.fill_until(quiet, |b| !b.is_empty());
        assert!(!got, "expected no reply, got {:?}", String::from_utf8_lossy(&self.buf));
    }

    /// Reads lines until the reply to a `guest-sync` with `id` arrives; returns the lines
    /// before it.
    pub fn sync(&mut self, id: i64) -> Vec<Value> {
        self.send(format!(r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#));
        let mut before = Vec::new();
        loop {
            let r = self.read_reply();
            if r.get("return") == Some(&Value::from(id)) {
                return before;
            }
            before.push(r);
        }
    }
}

// ---- reply helpers ----

/// Asserts a reply is the error `class`/`desc`.
#[track_caller]
pub fn assert_error(reply: &Value, class: &str, desc: &str) {
    assert_eq!(reply["error"]["class"], class, "class of {reply}");
    assert_eq!(reply["error"]["desc"], desc, "desc of {reply}");
    assert!(reply.get("return").is_none(), "an error reply has no return: {reply}");
}

/// guest-info's command list as (name, enabled, success-response), in the order given.
pub fn info_commands(client: &mut Client) -> Vec<(String, bool, bool)> {
    let r = client.cmd(r#"{"execute":"guest-info"}"#);
    let list = r["return"]["supported_commands"].as_array().unwrap_or_else(|| panic!("guest-info reply: {r}"));
    list.iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["enabled"].as_bool().expect("enabled"),
                c["success-response"].as_bool().expect("success-response"),
            )
        })
        .collect()
}

/// guest-info's enabled flag per command name.
pub fn enabled_map(client: &mut Client) -> HashMap<String, bool> {
    info_commands(client).into_iter().map(|(n, e, _)| (n, e)).collect()
}

/// Whether the gate lets `name` through, found out without running it: the request carries an
/// argument no command takes, so an enabled command is refused by the argument check (before
/// its handler: "missing" for its first required argument, else "unexpected") and a disabled
/// one by the gate. Safe for every command, shutdown and freeze included.
pub fn probe_enabled(client: &mut Client, name: &str) -> bool {
    let r = client.cmd(&format!(r#"{{"execute":"{name}","arguments":{{"qga-it-probe":1}}}}"#));
    let desc = r["error"]["desc"].as_str().unwrap_or_else(|| panic!("probe of {name} did not fail: {r}"));
    if desc == "Parameter 'qga-it-probe' is unexpected"
        || (desc.starts_with("Parameter '") && desc.ends_with("' is missing"))
    {
        assert_eq!(r["error"]["class"], "GenericError", "{r}");
        true
    } else {
        assert_eq!(r["error"]["class"], "CommandNotFound", "{r}");
        assert!(desc.starts_with(&format!("Command {name} has been disabled")), "probe of {name}: {r}");
        false
    }
}
