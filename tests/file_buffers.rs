//! The front's request and reply buffers across file transfers of different sizes: after one
//! transfer near the 48 MiB maximum, pieces of 1 MiB (the size clients commonly read and write
//! in) must reuse the front's buffers again instead of faulting fresh pages in for every
//! request. Before this was fixed, a buffer that had once been grown past the allocator's mmap
//! threshold stayed a mapping of its own when shrunk, and every later 1 MiB request or reply
//! faulted in its whole 1.4 MB again (325 minor faults per request, about a fifth of the
//! throughput).

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

const MIB: usize = 1 << 20;
/// Page faults a 1 MiB request may cost the front after the large transfer: measured 21 per
/// read and 62 per write once its buffers are reused, 325 each when every request faults its
/// whole buffer in afresh; the bound sits halfway.
const WARM_FAULTS_PER_REQUEST: u64 = 160;
const PIECES: usize = 16;

struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn call(&mut self, request: &[u8]) -> Value {
        self.stream.write_all(request).expect("write to the agent");
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read from the agent");
        serde_json::from_slice(&line).expect("a JSON reply")
    }

    fn cmd(&mut self, name: &str, arguments: Value) -> Value {
        let reply = self.call(format!("{}\n", json!({"execute": name, "arguments": arguments})).as_bytes());
        reply.get("return").cloned().unwrap_or_else(|| panic!("{name} failed: {reply}"))
    }
}

/// Minor page faults of `pid` so far (field 10 of /proc/PID/stat).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_name = &stat[stat.rfind(')').expect("comm ends with )") + 2..];
    after_name.split(' ').nth(7).expect("minflt field").parse().expect("minflt is a number")
}

fn read_pieces(c: &mut Conn, handle: &Value, count: usize, pieces: usize) {
    for _ in 0..pieces {
        let r = c.cmd("guest-file-read", json!({"handle": handle, "count": count}));
        assert_eq!(r["count"], count, "short read");
    }
}

/// What a write of at least `len` bytes in whole base64 groups of zeros decodes to.
fn decoded(len: usize) -> usize {
    len.div_ceil(3) * 3
}

fn write_request(handle: &Value, len: usize) -> Vec<u8> {
    let b64 = "A".repeat(len.div_ceil(3) * 4);
    format!("{}\n", json!({"execute": "guest-file-write", "arguments": {"handle": handle, "buf-b64": b64}}))
        .into_bytes()
}

#[test]
fn pieces_of_1_mib_reuse_the_fronts_buffers_after_a_48_mib_transfer() {
    let agent = Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let scratch = agent.dir.scratch();
    let source = scratch.join("source");
    std::fs::write(&source, vec![0x5a_u8; (2 + 48 + PIECES) * MIB]).unwrap();
    let stream = agent.connect().stream;
    let mut c = Conn { reader: BufReader::new(stream.try_clone().unwrap()), stream };
    let front = agent.front_pid;

    // Reads: warm the buffers with 1 MiB pieces, one maximum read, then 1 MiB pieces again.
    let h = c.cmd("guest-file-open", json!({"path": source, "mode": "r"}));
    read_pieces(&mut c, &h, MIB, 2);
    read_pieces(&mut c, &h, 48 * MIB, 1);
    let before = minor_faults(front);
    read_pieces(&mut c, &h, MIB, PIECES);
    let read_faults = (minor_faults(front) - before) / PIECES as u64;
    c.cmd("guest-file-close", json!({"handle": h}));

    // Writes: the same with a write just under the 64 MiB message limit in between.
    let h = c.cmd("guest-file-open", json!({"path": scratch.join("sink"), "mode": "w"}));
    let piece = write_request(&h, MIB);
    for _ in 0..2 {
        assert_eq!(c.call(&piece)["return"]["count"], decoded(MIB));
    }
    let big = 47 * MIB;
    assert_eq!(c.call(&write_request(&h, big))["return"]["count"], decoded(big));
    let before = minor_faults(front);
    for _ in 0..PIECES {
        assert_eq!(c.call(&piece)["return"]["count"], decoded(MIB));
    }
    let write_faults = (minor_faults(front) - before) / PIECES as u64;
    c.cmd("guest-file-close", json!({"handle": h}));

    assert!(
        read_faults < WARM_FAULTS_PER_REQUEST && write_faults < WARM_FAULTS_PER_REQUEST,
        "the front faults in fresh pages for every 1 MiB piece after a large transfer: \
         {read_faults} per read, {write_faults} per write (at most {WARM_FAULTS_PER_REQUEST} when its buffers are reused)"
    );
}
