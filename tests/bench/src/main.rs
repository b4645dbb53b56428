//! qga-bench: qemu-ga-rs against the reference qemu-ga, on unix sockets, in interleaved rounds
//! (A B A B ...) so that machine drift cancels. Run as root from the workspace:
//!
//!     cargo run --release -p qga-bench -- [--rounds N] [--reference /usr/sbin/qemu-ga] [--quick]
//!
//! See tests/bench/README.md for what is measured and how.

mod agents;
mod args;
mod callgrind;
mod conn;
mod floor;
mod helper_trip;
mod measure;
mod procfs;
mod report;
mod scan;

use agents::*;
use args::*;
use callgrind::*;
use conn::*;
use floor::*;
use helper_trip::*;
use measure::*;
use procfs::*;
use report::*;
use scan::*;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

extern "C" {
    pub(crate) fn kill(pid: i32, sig: i32) -> i32;
    pub(crate) fn sysconf(name: i32) -> i64;
}
pub(crate) const SIGTERM: i32 = 15;
pub(crate) const SC_CLK_TCK: i32 = 2;

pub(crate) const KIB: usize = 1024;
pub(crate) const MIB: usize = 1024 * 1024;
/// guest-file-read's largest count (both agents): 48 MiB.
pub(crate) const MAX_READ: usize = 48 * MIB;
/// The largest guest-file-write payload whose request fits the 64 MiB JSON message limit.
pub(crate) const MAX_WRITE: usize = 48 * MIB - 4 * KIB;

fn main() {
    if let Some(pos) = std::env::args().position(|a| a == ECHO_FLAG) {
        let sock = std::env::args().nth(pos + 1).unwrap_or_else(|| usage());
        echo_server(Path::new(&sock));
        return;
    }
    let cfg = parse_args();
    assert!(cfg.agent.exists(), "{} not built (cargo build --release --workspace)", cfg.agent.display());
    let dir = std::env::temp_dir().join(format!("qga-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    let read_file = scratch.join("input.bin");
    {
        let data: Vec<u8> = (0..cfg.payload).map(|i| (i * 31 + i / 65536) as u8).collect();
        std::fs::write(&read_file, data).expect("read file");
        std::fs::set_permissions(&read_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let mut kinds = vec![Kind::Rs];
    if cfg.reference.is_some() {
        kinds.push(Kind::Ref);
    }
    eprintln!(
        "qga-bench: {} round(s), payload {} MiB per file test{}",
        cfg.rounds,
        cfg.payload / MIB,
        if cfg.quick { " (quick)" } else { "" }
    );
    let mut rounds: HashMap<Kind, Vec<Round>> = HashMap::new();
    let mut floor: Vec<Floor> = Vec::new();
    let t0 = Instant::now();
    for round in 0..if cfg.callgrind_only { 0 } else { cfg.rounds } {
        for &k in &kinds {
            let t = Instant::now();
            let r = measure(&cfg, k, &dir, &scratch, &read_file);
            eprintln!("  round {} {:<10} {:.1}s", round + 1, k.name(), t.elapsed().as_secs_f64());
            rounds.entry(k).or_default().push(r);
        }
        floor.push(measure_floor(&cfg, &dir));
    }
    let direct = if cfg.callgrind_only {
        None
    } else {
        match direct_helper_round_trip(&cfg, &dir) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("  direct helper round trip: {e}");
                None
            }
        }
    };
    let mut ir = HashMap::new();
    if cfg.callgrind {
        for &k in &kinds {
            let t = Instant::now();
            match callgrind(&cfg, k, &dir) {
                Ok(v) => {
                    eprintln!("  callgrind {:<10} {:.1}s", k.name(), t.elapsed().as_secs_f64());
                    ir.insert(k, v);
                }
                Err(e) => eprintln!("  callgrind {}: {e}", k.name()),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("qga-bench: done in {:.0}s", t0.elapsed().as_secs_f64());
    if cfg.callgrind_only {
        for (k, v) in &ir {
            println!("{}: {:.2} M Ir per 10,000 pings", k.name(), v / 1e6);
        }
        return;
    }
    report(&cfg, &kinds, &rounds, &ir, &floor, direct);
}
