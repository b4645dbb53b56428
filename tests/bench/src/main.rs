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
mod exec_trip;
mod floor;
mod helper_trip;
mod measure;
mod procfs;
mod report;
mod scan;
mod startup;

use agents::*;
use args::*;
use callgrind::*;
use conn::*;
use exec_trip::*;
use floor::*;
use helper_trip::*;
use measure::*;
use procfs::*;
use report::*;
use scan::*;
use startup::*;

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
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
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
        let work = FloorWork::from_arg(std::env::args().nth(pos + 2).as_deref());
        echo_server(Path::new(&sock), work);
        return;
    }
    let cfg = parse_args();
    if let Some(cpu) = cfg.cpu {
        pin_to(cpu);
    }
    assert!(cfg.agent.exists(), "{} not built (cargo build --release --workspace)", cfg.agent.display());
    let dir = std::env::temp_dir().join(format!("qga-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut kinds = vec![Kind::Rs];
    if cfg.reference.is_some() {
        kinds.push(Kind::Ref);
    }
    if cfg.baseline.is_some() {
        kinds.push(Kind::Base);
    }
    if let Some(starts) = cfg.startup_only {
        eprintln!("qga-bench: start-up and idle memory only, {starts} start-ups per agent");
        startup_only(&cfg, &kinds, &dir, starts);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    // Root-owned and 0700: qemu-ga-rs's front cannot enter it, only its helper opens files there.
    let private = dir.join("private");
    std::fs::create_dir_all(&private).expect("private dir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let files =
        Files { read_file: scratch.join("input.bin"), private_read: private.join("input.bin"), scratch, private };
    {
        let data: Vec<u8> = (0..cfg.payload).map(|i| (i * 31 + i / 65536) as u8).collect();
        for f in [&files.read_file, &files.private_read] {
            std::fs::write(f, &data).expect("read file");
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    eprintln!(
        "qga-bench: {} round(s), payload {} MiB per file test{}",
        cfg.rounds,
        cfg.payload / MIB,
        if cfg.quick { " (quick)" } else { "" }
    );
    let mut rounds: HashMap<Kind, Vec<Round>> = HashMap::new();
    let mut floor: Vec<Floor> = Vec::new();
    let mut query_floors: HashMap<&'static str, Vec<Floor>> = HashMap::new();
    let t0 = Instant::now();
    for round in 0..if cfg.callgrind_only { 0 } else { cfg.rounds } {
        for &k in &kinds {
            let t = Instant::now();
            let r = measure(&cfg, k, &dir, &files);
            eprintln!("  round {} {:<10} {:.1}s", round + 1, k.name(), t.elapsed().as_secs_f64());
            rounds.entry(k).or_default().push(r);
        }
        floor.push(measure_floor(&cfg, &dir, FloorWork::Nothing));
        for (query, work) in QUERY_FLOORS {
            query_floors.entry(query).or_default().push(measure_floor(&cfg, &dir, work));
        }
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
        for &k in kinds.iter().filter(|&&k| k != Kind::Base) {
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
    report(&cfg, &kinds, &rounds, &ir, &floor, &query_floors, direct);
}

/// Restricts the bench (and so its client and every process it starts) to one CPU, as
/// `taskset -c CPU` would: with client and agent on one CPU each exchange is a direct switch,
/// so the figures show the agent's own cost rather than the wake-up of another CPU.
fn pin_to(cpu: usize) {
    let mut mask = [0u64; 16];
    assert!(cpu < mask.len() * 64, "--cpu {cpu}: too large");
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: the mask is a live array of the size passed; pid 0 is this thread, which is the
    // only one at this point.
    let rc = unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) };
    assert_eq!(rc, 0, "cannot pin the bench to CPU {cpu}: {}", std::io::Error::last_os_error());
}
