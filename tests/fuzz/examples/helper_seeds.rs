//! Writes the helper_frames seed corpus: one framed encoding of every request and reply
//! variant, made by the protocol's own encoder, plus one file holding all of them in a row.
//!
//! Usage: cargo run --manifest-path tests/fuzz/Cargo.toml --example helper_seeds -- DIR

use qga_protocol::{
    write_frame, MemoryBlockResponse, MemoryBlockResult, MemoryBlockState, Reply, Request, ShutdownMode, SuspendMode,
    TrimResult, VcpuState,
};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: helper_seeds DIR");
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let requests = [
        ("req-freeze-status", Request::FreezeStatus),
        ("req-freeze", Request::Freeze),
        ("req-thaw", Request::Thaw),
        ("req-trim", Request::Trim { minimum: 4096 }),
        ("req-shutdown-powerdown", Request::Shutdown { mode: ShutdownMode::Powerdown }),
        ("req-shutdown-halt", Request::Shutdown { mode: ShutdownMode::Halt }),
        ("req-shutdown-reboot", Request::Shutdown { mode: ShutdownMode::Reboot }),
        ("req-suspend-disk", Request::Suspend { mode: SuspendMode::Disk }),
        ("req-suspend-ram", Request::Suspend { mode: SuspendMode::Ram }),
        ("req-suspend-hybrid", Request::Suspend { mode: SuspendMode::Hybrid }),
        (
            "req-set-vcpus",
            Request::SetVcpus {
                vcpus: vec![VcpuState { logical_id: 0, online: true }, VcpuState { logical_id: -1, online: false }],
            },
        ),
        ("req-set-time", Request::SetTime { time_ns: Some(1_700_000_000_000_000_000) }),
        ("req-set-time-rtc", Request::SetTime { time_ns: None }),
        ("req-quit", Request::Quit),
        ("req-freeze-list-all", Request::FreezeList { mountpoints: None }),
        ("req-freeze-list", Request::FreezeList { mountpoints: Some(vec![b"/".to_vec(), b"/mnt/\xc0\x80".to_vec()]) }),
        (
            "req-set-memory-blocks",
            Request::SetMemoryBlocks {
                blocks: vec![
                    MemoryBlockState { phys_index: 32, online: false },
                    MemoryBlockState { phys_index: u64::MAX, online: true },
                ],
            },
        ),
        ("req-get-fsinfo", Request::GetFsinfo),
        ("req-get-disks", Request::GetDisks),
    ];
    let replies = [
        ("rep-freeze-state", Reply::FreezeState { frozen: true }),
        ("rep-freeze-count", Reply::FreezeCount { count: 3, frozen: false }),
        (
            "rep-trimmed",
            Reply::Trimmed {
                paths: vec![
                    TrimResult::Trimmed { path: "/".into(), minimum: 0, trimmed: 1 << 30 },
                    TrimResult::Failed { path: "/boot/\u{e9}".into(), error: "Input/output error".into() },
                ],
            },
        ),
        ("rep-vcpus-set", Reply::VcpusSet { count: 2 }),
        ("rep-done", Reply::Done),
        ("rep-failed", Reply::Failed { desc: "Operation not permitted".into() }),
        (
            "rep-memory-blocks-set",
            Reply::MemoryBlocksSet {
                results: vec![
                    MemoryBlockResult { phys_index: 32, response: MemoryBlockResponse::Success, error_code: None },
                    MemoryBlockResult {
                        phys_index: 0,
                        response: MemoryBlockResponse::OperationFailed,
                        error_code: Some(22),
                    },
                ],
            },
        ),
    ];
    let payloads: Vec<(&str, Vec<u8>)> =
        requests.iter().map(|(n, r)| (*n, r.encode())).chain(replies.iter().map(|(n, r)| (*n, r.encode()))).collect();
    let mut all = vec![0u8]; // mode byte: whole reads
    for (name, payload) in &payloads {
        // Mode byte 0x00: each read returns all it can.
        let mut seed = vec![0u8];
        write_frame(&mut seed, payload).unwrap();
        std::fs::write(format!("{dir}/{name}"), &seed).unwrap();
        write_frame(&mut all, payload).unwrap();
    }
    // The whole conversation, read three bytes at a time with interruptions.
    all[0] = 0x83;
    std::fs::write(format!("{dir}/all-trickled"), &all).unwrap();
    println!("{} helper_frames seeds written to {dir}", payloads.len() + 1);
}
