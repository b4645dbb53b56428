//! qga-bench: qemu-ga-rs against the reference qemu-ga, on unix sockets, in interleaved rounds
//! (A B A B ...) so that machine drift cancels. Run as root from the workspace:
//!
//!     cargo run --release -p qga-bench -- [--rounds N] [--reference /usr/sbin/qemu-ga] [--quick]
//!
//! See tests/bench/README.md for what is measured and how.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn sysconf(name: i32) -> i64;
}
const SIGTERM: i32 = 15;
const SC_CLK_TCK: i32 = 2;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// guest-file-read's largest count (both agents): 48 MiB.
const MAX_READ: usize = 48 * MIB;
/// The largest guest-file-write payload whose request fits the 64 MiB JSON message limit.
const MAX_WRITE: usize = 48 * MIB - 4 * KIB;

// ---------------------------------------------------------------------------------------------
// Configuration

struct Config {
    rounds: usize,
    quick: bool,
    agent: PathBuf,
    reference: Option<PathBuf>,
    policy: PathBuf,
    callgrind: bool,
    /// Only the callgrind figure (for profiling work).
    callgrind_only: bool,
    /// Samples per latency figure.
    samples: usize,
    /// Pings for the CPU figure (also the guest-ping latency samples).
    cpu_pings: usize,
    pipelined: usize,
    payload: usize,
    thaws: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: qga-bench [--rounds N] [--reference PATH|--no-reference] [--agent PATH] [--policy FILE] [--quick] [--no-callgrind] [--callgrind-only]"
    );
    std::process::exit(2)
}

fn parse_args() -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let mut rounds = None;
    let mut quick = false;
    let mut agent = root.join("target/release/qemu-ga-rs");
    let mut reference = Some(PathBuf::from("/usr/sbin/qemu-ga"));
    let mut policy = root.join("policy/allow-all.policy");
    let mut callgrind = true;
    let mut callgrind_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = Some(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())),
            "--reference" => reference = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--no-reference" => reference = None,
            "--agent" => agent = args.next().unwrap_or_else(|| usage()).into(),
            "--policy" => policy = args.next().unwrap_or_else(|| usage()).into(),
            "--quick" => quick = true,
            "--no-callgrind" => callgrind = false,
            "--callgrind-only" => callgrind_only = true,
            _ => usage(),
        }
    }
    if let Some(r) = &reference {
        if !r.exists() {
            eprintln!("qga-bench: reference {} not installed; measuring qemu-ga-rs alone", r.display());
            reference = None;
        }
    }
    Config {
        rounds: rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
        quick,
        agent,
        reference,
        policy,
        callgrind,
        callgrind_only,
        samples: if quick { 500 } else { 2000 },
        cpu_pings: 10_000,
        pipelined: if quick { 20_000 } else { 50_000 },
        payload: if quick { 16 * MIB } else { 64 * MIB },
        thaws: if quick { 300 } else { 1000 },
    }
}

// ---------------------------------------------------------------------------------------------
// The agents

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Rs,
    Ref,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rs => "qemu-ga-rs",
            Kind::Ref => "qemu-ga",
        }
    }
}

struct Agent {
    kind: Kind,
    child: Child,
    sock: PathBuf,
}

fn agent_command(cfg: &Config, kind: Kind, dir: &Path, wrapper: &[String], extra: &[&str]) -> (Command, PathBuf) {
    let tag = kind.name();
    let sock = dir.join(format!("{tag}.sock"));
    let state = dir.join(format!("{tag}-state"));
    let _ = std::fs::create_dir_all(&state);
    let _ = std::fs::remove_file(&sock);
    let bin = match kind {
        Kind::Rs => cfg.agent.clone(),
        Kind::Ref => cfg.reference.clone().expect("reference"),
    };
    let mut cmd = if wrapper.is_empty() {
        Command::new(&bin)
    } else {
        let mut c = Command::new(&wrapper[0]);
        c.args(&wrapper[1..]).arg(&bin);
        c
    };
    cmd.arg("-m").arg("unix-listen").arg("-p").arg(&sock).arg("-t").arg(&state);
    cmd.arg("-f").arg(dir.join(format!("{tag}.pid")));
    if kind == Kind::Rs {
        cmd.arg("--policy").arg(&cfg.policy);
    }
    cmd.args(extra);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    (cmd, sock)
}

/// Starts an agent and returns it with the time from exec to its first answered guest-ping.
fn start(cfg: &Config, kind: Kind, dir: &Path) -> (Agent, Conn, Duration) {
    let (mut cmd, sock) = agent_command(cfg, kind, dir, &[], &[]);
    let t0 = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
    let mut agent = Agent { kind, child, sock };
    let mut conn = connect_when_ready(&mut agent, Duration::from_secs(20));
    conn.call(b"{\"execute\":\"guest-ping\"}\n");
    let startup = t0.elapsed();
    (agent, conn, startup)
}

/// The helper round trip without a client: the front's own spawn and link code starts the
/// helper beside the agent binary exactly as the front does (joined on this process's CPU,
/// sandboxed), and times FreezeStatus calls. Returns the p50 in seconds.
fn direct_helper_round_trip(cfg: &Config, dir: &Path) -> Result<f64, String> {
    use qemu_ga_rs::privsep::{link::HelperLink, spawn};
    use qga_helper::{placement, protocol::Request};
    let helper = cfg.agent.with_file_name(qga_helper::HELPER_BINARY);
    let state = dir.join("direct-state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let cpu = placement::current_cpu().ok_or("no current CPU")?;
    let args: Vec<std::ffi::OsString> =
        vec!["--statedir".into(), state.into(), "--enabled".into(), "".into(), "--cpu".into(), cpu.to_string().into()];
    // Pinned in a child thread only, so the bench's own placement is left alone.
    std::thread::scope(|s| {
        s.spawn(|| {
            placement::pin_to(cpu).map_err(|e| e.to_string())?;
            let h = spawn::spawn(&helper, &args).map_err(|e| e.to_string())?;
            let mut child = h.child;
            let mut link = HelperLink::new(h.socket);
            let mut lat = Vec::with_capacity(10_000);
            for i in 0..11_000 {
                let t = Instant::now();
                link.call(&Request::FreezeStatus).map_err(|_| "helper call failed".to_string())?;
                if i >= 1_000 {
                    lat.push(t.elapsed().as_secs_f64());
                }
            }
            let _ = link.call(&Request::Quit);
            let _ = child.wait();
            Ok(pct(&lat, 0.5))
        })
        .join()
        .map_err(|_| "round-trip thread panicked".to_string())?
    })
}

/// The hidden mode in which the bench is its own floor: a process that answers every line
/// with guest-ping's reply and does nothing else.
const ECHO_FLAG: &str = "--echo-floor";

fn echo_server(sock: &Path) {
    let listener = std::os::unix::net::UnixListener::bind(sock).expect("bind echo socket");
    let (mut s, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * KIB];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
            if s.write_all(b"{\"return\": {}}\n").is_err() {
                return;
            }
        }
    }
}

/// guest-ping-shaped exchanges with a bare echo process: what the machine's wake-ups and
/// socket cost before any agent does any work.
fn measure_floor(cfg: &Config, dir: &Path) -> Floor {
    let sock = dir.join("floor.sock");
    let _ = std::fs::remove_file(&sock);
    let exe = std::env::current_exe().expect("own path");
    let child = Command::new(exe).arg(ECHO_FLAG).arg(&sock).stdin(Stdio::null()).spawn().expect("start echo process");
    let mut agent = Agent { kind: Kind::Rs, child, sock };
    let mut conn = connect_when_ready(&mut agent, Duration::from_secs(10));
    let ping = b"{\"execute\":\"guest-ping\"}\n";
    timed_loop(&mut conn, ping, 200, b"\"return\"");
    let pid = agent.child.id();
    let c0 = cpu_of(&[pid]);
    let (lat, _) = timed_loop(&mut conn, ping, cfg.cpu_pings, b"\"return\"");
    let cpu_10k = (cpu_of(&[pid]) - c0) * 10_000.0 / cfg.cpu_pings as f64;
    drop(conn);
    let _ = agent.child.wait();
    Floor { lat, cpu_10k }
}

/// The bare echo process's figures in one round.
struct Floor {
    lat: Vec<f64>,
    cpu_10k: f64,
}

fn connect_when_ready(agent: &mut Agent, limit: Duration) -> Conn {
    let t0 = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(&agent.sock) {
            return Conn::new(s);
        }
        if let Ok(Some(status)) = agent.child.try_wait() {
            panic!("{} exited during start-up: {status}", agent.kind.name());
        }
        if t0.elapsed() > limit {
            panic!("{} did not listen within {limit:?}", agent.kind.name());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn stop(mut agent: Agent) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { kill(agent.child.id() as i32, SIGTERM) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = agent.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = agent.child.kill();
    let _ = agent.child.wait();
}

// ---------------------------------------------------------------------------------------------
// /proc

/// The process and all its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Some(f) = stat_fields(p) {
                if let Ok(pp) = f[1].parse::<u32>() {
                    parent.insert(p, pp);
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    out
}

/// The fields of /proc/PID/stat after the command name (state is [0], ppid [1]).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime+stime of the processes, in seconds.
fn cpu_of(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { sysconf(SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|&p| stat_fields(p))
        .map(|f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
        .sum::<u64>() as f64
        / hz
}

fn self_cpu() -> f64 {
    cpu_of(&[std::process::id()])
}

/// Sum of a /proc/PID/status field (kB) over the processes, in MiB.
fn status_kb(pids: &[u32], field: &str) -> f64 {
    let mut kb = 0u64;
    for p in pids {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            for line in s.lines() {
                if let Some(v) = line.strip_prefix(field) {
                    kb += v.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    kb as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The client connection

struct Conn {
    s: UnixStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn new(s: UnixStream) -> Conn {
        Conn { s, buf: vec![0; 256 * KIB], start: 0, end: 0 }
    }

    fn send(&mut self, req: &[u8]) {
        self.s.write_all(req).expect("write to agent");
    }

    /// The next reply line (without the newline).
    fn line(&mut self) -> &[u8] {
        let mut scan = self.start;
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[scan..self.end]) {
                let (a, b) = (self.start, scan + i);
                self.start = b + 1;
                return &self.buf[a..b];
            }
            scan = self.end;
            if self.start > 0 && self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                scan -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let n = self.s.read(&mut self.buf[self.end..]).expect("read from agent");
            assert!(n > 0, "agent closed the connection");
            self.end += n;
        }
    }

    fn call(&mut self, req: &[u8]) -> &[u8] {
        self.send(req);
        let line = self.line();
        assert!(find(line, b"\"return\"").is_some(), "error reply to {}: {}", show(req), show(line));
        line
    }

    fn call_json(&mut self, req: &str) -> serde_json::Value {
        let line = self.call(req.as_bytes()).to_vec();
        let v: serde_json::Value = serde_json::from_slice(&line).expect("reply is JSON");
        v["return"].clone()
    }

    /// Releases the large buffer after a file test.
    fn shrink(&mut self) {
        if self.buf.len() > 256 * KIB && self.end - self.start <= 256 * KIB {
            let mut b = vec![0; 256 * KIB];
            b[..self.end - self.start].copy_from_slice(&self.buf[self.start..self.end]);
            self.end -= self.start;
            self.start = 0;
            self.buf = b;
        }
    }
}

/// The first `c` in `s`, eight bytes at a time: a file-read reply is over a megabyte long, and
/// a byte-by-byte scan made the client a large share of the read test's time.
fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * c as u64;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == c).map(|i| at + i)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).trim_end().to_string()
}

/// The integer after `"key": ` in a reply (replies are written `"key": value`).
fn int_after(line: &[u8], key: &[u8]) -> Option<i64> {
    // A file-read reply is mostly base64: look only at its ends.
    let tail = line.len().saturating_sub(100);
    let at = match find(&line[..line.len().min(100)], key) {
        Some(i) => i,
        None => tail + find(&line[tail..], key)?,
    } + key.len();
    let digits: Vec<u8> = line[at..]
        .iter()
        .skip_while(|&&b| b == b':' || b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Measurements of one agent in one round

#[derive(Default)]
struct Round {
    /// Exec to first ping answered, seconds: STARTS_PER_ROUND samples.
    startup: Vec<f64>,
    /// Latency samples in seconds, by name.
    lat: HashMap<&'static str, Vec<f64>>,
    /// Requests per second with one outstanding, by name.
    rate: HashMap<&'static str, f64>,
    pipelined: f64,
    /// MB/s by (direction, size).
    file: HashMap<(&'static str, usize), f64>,
    cpu_10k_pings: f64,
    cpu_read_64m: f64,
    idle_rss: f64,
    peak_rss: f64,
    rss_after_files: f64,
    client_share: Vec<f64>,
}

fn timed_loop(conn: &mut Conn, req: &[u8], n: usize, check: &[u8]) -> (Vec<f64>, f64) {
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        conn.send(req);
        let line = conn.line();
        lat.push(t.elapsed().as_secs_f64());
        if find(line, check).is_none() {
            panic!("unexpected reply to {}: {}", show(req), show(line));
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    (lat, rate)
}

/// Start-up samples per agent per round.
const STARTS_PER_ROUND: usize = 5;

/// `n` times a ping then `req` (whose reply must start with `expect`); the latencies of both.
fn alternate_with_pings(conn: &mut Conn, ping: &[u8], req: &[u8], expect: &[u8], n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut pings, mut reqs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        conn.call(ping);
        pings.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let line = conn.call(req);
        assert!(line.starts_with(expect), "{}: {}", show(req), show(line));
        reqs.push(t.elapsed().as_secs_f64());
    }
    (pings, reqs)
}

fn measure(cfg: &Config, kind: Kind, dir: &Path, scratch: &Path, read_file: &Path) -> Round {
    let mut r = Round::default();
    // Start-up alone, a few times (one sample per round was at the mercy of one slow exec);
    // each agent is stopped with its client still connected (qemu-ga 7.2 can lose a SIGTERM
    // that arrives while it handles a disconnect).
    for _ in 1..STARTS_PER_ROUND {
        let (agent, conn, startup) = start(cfg, kind, dir);
        r.startup.push(startup.as_secs_f64());
        stop(agent);
        drop(conn);
    }
    let (agent, mut conn, startup) = start(cfg, kind, dir);
    r.startup.push(startup.as_secs_f64());
    let pid = agent.child.id();

    // Idle memory: after start-up and one ping, settled.
    std::thread::sleep(Duration::from_millis(200));
    r.idle_rss = status_kb(&tree(pid), "VmRSS");

    let ping = b"{\"execute\":\"guest-ping\"}\n";
    // Warm-up.
    timed_loop(&mut conn, ping, 200, b"\"return\"");

    // guest-ping latency and the CPU of exactly cfg.cpu_pings pings.
    let pids = tree(pid);
    let c0 = cpu_of(&pids);
    let (lat, rate) = timed_loop(&mut conn, ping, cfg.cpu_pings, b"\"return\"");
    r.cpu_10k_pings = (cpu_of(&pids) - c0) * 10_000.0 / cfg.cpu_pings as f64;
    r.lat.insert("guest-ping", lat);
    r.rate.insert("guest-ping", rate);

    let sync = b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":123456}}\n";
    let (lat, rate) = timed_loop(&mut conn, sync, cfg.samples, b"123456");
    r.lat.insert("guest-sync", lat);
    r.rate.insert("guest-sync", rate);

    let info = b"{\"execute\":\"guest-info\"}\n";
    let (lat, rate) = timed_loop(&mut conn, info, cfg.samples, b"supported_commands");
    r.lat.insert("guest-info", lat);
    r.rate.insert("guest-info", rate);

    // Pipelined guest-ping, 64 outstanding.
    let window = 64;
    let batch: Vec<u8> = ping.repeat(window);
    let (w0, s0) = (Instant::now(), self_cpu());
    let mut sent = 0;
    let mut got = 0;
    conn.send(&batch);
    sent += window;
    while got < cfg.pipelined {
        let line = conn.line();
        assert!(line.starts_with(b"{\"return\""), "pipelined reply: {}", show(line));
        got += 1;
        // Refill in groups of 16 to keep the window between 48 and 64.
        if sent - got == window - 16 && sent < cfg.pipelined {
            let k = 16.min(cfg.pipelined - sent);
            conn.send(&batch[..k * ping.len()]);
            sent += k;
        }
    }
    let wall = w0.elapsed().as_secs_f64();
    r.pipelined = cfg.pipelined as f64 / wall;
    r.client_share.push((self_cpu() - s0) / wall);

    // Privileged round trip, interleaved with pings. guest-fsfreeze-status is qemu-ga-rs's
    // side-effect-free trip through the helper (the front asks the helper, which holds the
    // freeze state); thaw with nothing frozen also does the FITHAW work. Thaw is sent only
    // when nothing is frozen.
    let status = conn.call_json("{\"execute\":\"guest-fsfreeze-status\"}\n");
    assert_eq!(status, "thawed", "{} reports filesystems frozen; not sending thaw", kind.name());
    let status_req = b"{\"execute\":\"guest-fsfreeze-status\"}\n";
    let thaw = b"{\"execute\":\"guest-fsfreeze-thaw\"}\n";
    // Two separate alternations, so that the thaw's own work (FITHAW on every mount, its log
    // line) does not spill into the samples of the side-effect-free round trip.
    let (pings_s, statuses) = alternate_with_pings(&mut conn, ping, status_req, b"{\"return\": \"thawed\"}", cfg.thaws);
    let (pings, thaws) = alternate_with_pings(&mut conn, ping, thaw, b"{\"return\": 0", cfg.thaws);
    r.lat.insert("ping (beside status)", pings_s);
    r.lat.insert("ping (beside thaw)", pings);
    r.lat.insert("guest-fsfreeze-status", statuses);
    r.lat.insert("guest-fsfreeze-thaw", thaws);

    // File throughput.
    let sizes = [4 * KIB, 64 * KIB, MIB, 0];
    for &size in &sizes {
        let size = if size == 0 { MAX_READ.min(cfg.payload) } else { size };
        let (w0, s0) = (Instant::now(), self_cpu());
        let pids = tree(pid);
        let c0 = cpu_of(&pids);
        let h = conn.call_json(&format!(
            "{{\"execute\":\"guest-file-open\",\"arguments\":{{\"path\":\"{}\",\"mode\":\"r\"}}}}\n",
            read_file.display()
        ));
        let h = h.as_i64().expect("handle");
        let mut total = 0usize;
        while total < cfg.payload {
            let count = size.min(cfg.payload - total);
            let req =
                format!("{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{h},\"count\":{count}}}}}\n");
            let line = conn.call(req.as_bytes());
            let n = int_after(line, b"\"count\"").expect("count in read reply") as usize;
            assert_eq!(n, count, "short read");
            total += n;
        }
        conn.call_json(&format!("{{\"execute\":\"guest-file-close\",\"arguments\":{{\"handle\":{h}}}}}\n"));
        let wall = w0.elapsed().as_secs_f64();
        if size == MIB {
            r.cpu_read_64m = (cpu_of(&pids) - c0) * (64 * MIB) as f64 / total as f64;
        }
        r.file.insert(("read", size), total as f64 / 1e6 / wall);
        r.client_share.push((self_cpu() - s0) / wall);
        conn.shrink();
    }
    let out = scratch.join(format!("{}.out", kind.name()));
    for &size in &sizes {
        let size = if size == 0 { MAX_WRITE.min(cfg.payload) } else { size };
        let _ = std::fs::remove_file(&out);
        // The request text is made before the clock starts: the client only sends it.
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let b64 = base64(&data);
        drop(data);
        let h = conn.call_json(&format!(
            "{{\"execute\":\"guest-file-open\",\"arguments\":{{\"path\":\"{}\",\"mode\":\"w\"}}}}\n",
            out.display()
        ));
        let h = h.as_i64().expect("handle");
        let mut req =
            format!("{{\"execute\":\"guest-file-write\",\"arguments\":{{\"handle\":{h},\"buf-b64\":\"").into_bytes();
        req.extend_from_slice(&b64);
        req.extend_from_slice(b"\"}}\n");
        drop(b64);
        let (w0, s0) = (Instant::now(), self_cpu());
        let mut total = 0usize;
        while total < cfg.payload {
            let line = conn.call(&req);
            let n = int_after(line, b"\"count\"").expect("count in write reply") as usize;
            assert_eq!(n, size, "short write");
            total += n;
        }
        let wall = w0.elapsed().as_secs_f64();
        conn.call_json(&format!("{{\"execute\":\"guest-file-close\",\"arguments\":{{\"handle\":{h}}}}}\n"));
        r.file.insert(("write", size), total as f64 / 1e6 / wall);
        r.client_share.push((self_cpu() - s0) / wall);
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        assert_eq!(len as usize, total, "written file size");
    }
    let _ = std::fs::remove_file(&out);
    std::thread::sleep(Duration::from_millis(100));
    let pids = tree(pid);
    r.peak_rss = status_kb(&pids, "VmHWM");
    r.rss_after_files = status_kb(&pids, "VmRSS");
    drop(conn);
    stop(agent);
    r
}

fn base64(data: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(A[(v >> 18) as usize & 63]);
        out.push(A[(v >> 12) as usize & 63]);
        out.push(if c.len() > 1 { A[(v >> 6) as usize & 63] } else { b'=' });
        out.push(if c.len() > 2 { A[v as usize & 63] } else { b'=' });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// callgrind

/// Instructions (Ir) per 10,000 guest-pings under callgrind: two runs of the agent, one with
/// start-up, 100 pings and exit, one with 10,000 pings more; the difference of their totals.
/// (callgrind_control cannot be used: it waits for the agent to run, and the agent sleeps.)
fn callgrind(cfg: &Config, kind: Kind, dir: &Path) -> Result<f64, String> {
    let n = 10_000;
    let mut totals = Vec::new();
    for (i, pings) in [0, n].into_iter().enumerate() {
        let out = dir.join(format!("callgrind.{}.{i}", kind.name()));
        // qemu-ga-rs's front writes the profile at exit as its unprivileged user: the file
        // must exist and be writable for it.
        std::fs::write(&out, b"").map_err(|e| e.to_string())?;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o666)).map_err(|e| e.to_string())?;
        let wrapper = vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            "--quiet".into(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        let mut extra = vec![];
        if kind == Kind::Rs && supports_no_sandbox(cfg) {
            extra.push("--no-sandbox");
        }
        let (mut cmd, sock) = agent_command(cfg, kind, dir, &wrapper, &extra);
        let child = cmd.spawn().map_err(|e| format!("valgrind: {e}"))?;
        let mut agent = Agent { kind, child, sock };
        let mut conn = connect_when_ready(&mut agent, Duration::from_secs(120));
        let ping = b"{\"execute\":\"guest-ping\"}\n";
        timed_loop(&mut conn, ping, 100 + pings, b"\"return\"");
        drop(conn);
        // qemu-ga under valgrind loses a SIGTERM that arrives while it handles the client's
        // disconnect (it then never exits, is killed and writes no profile): let it settle.
        std::thread::sleep(Duration::from_secs(1));
        stop(agent);
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let ir = text
            .lines()
            .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or_else(|| format!("no totals in {} ({} bytes; run {i})", out.display(), text.len()))?;
        totals.push(ir);
    }
    Ok((totals[1] - totals[0]) * 10_000.0 / n as f64)
}

fn supports_no_sandbox(cfg: &Config) -> bool {
    Command::new(&cfg.agent)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--no-sandbox"))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Report

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() as f64 * p) as usize).min(s.len() - 1)]
}

struct Row {
    name: String,
    rs: f64,
    r#ref: Option<f64>,
    unit: &'static str,
    /// (want ratio <= x) or (>= x)
    target: Option<(bool, f64)>,
}

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

fn report(
    cfg: &Config,
    kinds: &[Kind],
    rounds: &HashMap<Kind, Vec<Round>>,
    ir: &HashMap<Kind, f64>,
    floor: &[Floor],
    direct: Option<f64>,
) {
    let agg = |k: Kind, f: &dyn Fn(&Round) -> f64| -> f64 {
        let mut v: Vec<f64> = rounds[&k].iter().map(f).collect();
        median(&mut v)
    };
    let pooled =
        |k: Kind, name: &str| -> Vec<f64> { rounds[&k].iter().flat_map(|r| r.lat[name].iter().copied()).collect() };
    let has_ref = kinds.contains(&Kind::Ref);
    let both = |f: &dyn Fn(Kind) -> f64| -> (f64, Option<f64>) { (f(Kind::Rs), has_ref.then(|| f(Kind::Ref))) };
    let mut rows = Vec::new();
    let mut add =
        |name: String, (rs, r#ref): (f64, Option<f64>), unit, target| rows.push(Row { name, rs, r#ref, unit, target });

    let startups = |k: Kind| -> f64 {
        let mut v: Vec<f64> = rounds[&k].iter().flat_map(|r| r.startup.iter().copied()).collect();
        median(&mut v)
    };
    add("startup (exec to first ping answered)".into(), both(&|k| startups(k) * 1e3), "ms", Some((true, 1.0)));
    for name in ["guest-ping", "guest-sync", "guest-info"] {
        let target = match name {
            "guest-ping" => Some((true, 0.5)),
            "guest-info" => Some((true, 0.25)),
            _ => None,
        };
        add(format!("{name} p50"), both(&|k| pct(&pooled(k, name), 0.5) * 1e6), "µs", target);
        add(format!("{name} p99"), both(&|k| pct(&pooled(k, name), 0.99) * 1e6), "µs", None);
        add(format!("{name} req/s (1 outstanding)"), both(&|k| agg(k, &|r| r.rate[name])), "req/s", None);
    }
    add("guest-ping pipelined (window 64)".into(), both(&|k| agg(k, &|r| r.pipelined)), "req/s", Some((false, 4.0)));
    for dirn in ["read", "write"] {
        let max = if dirn == "read" { MAX_READ } else { MAX_WRITE }.min(cfg.payload);
        for size in [4 * KIB, 64 * KIB, MIB, max] {
            let label = match size {
                s if s == max => format!("max ({:.2} MiB)", s as f64 / MIB as f64),
                s if s >= MIB => format!("{} MiB", s / MIB),
                s => format!("{} KiB", s / KIB),
            };
            let target = (size == MIB).then_some((false, 5.0));
            add(format!("file {dirn} {label}"), both(&|k| agg(k, &|r| r.file[&(dirn, size)])), "MB/s", target);
        }
    }
    add(
        "CPU per 10,000 pings (agent tree)".into(),
        both(&|k| agg(k, &|r| r.cpu_10k_pings) * 1e3),
        "ms",
        Some((true, 0.3)),
    );
    add("CPU per 64 MiB read at 1 MiB (agent tree)".into(), both(&|k| agg(k, &|r| r.cpu_read_64m) * 1e3), "ms", None);
    add("RSS idle (all agent processes)".into(), both(&|k| agg(k, &|r| r.idle_rss)), "MiB", Some((true, 1.0)));
    add("RSS peak (VmHWM) after file tests".into(), both(&|k| agg(k, &|r| r.peak_rss)), "MiB", None);
    add("RSS after file tests".into(), both(&|k| agg(k, &|r| r.rss_after_files)), "MiB", None);
    let over_ping =
        |k: Kind, name: &str, beside: &str| (pct(&pooled(k, name), 0.5) - pct(&pooled(k, beside), 0.5)) * 1e6;
    add("guest-fsfreeze-status p50".into(), both(&|k| pct(&pooled(k, "guest-fsfreeze-status"), 0.5) * 1e6), "µs", None);
    add(
        "privileged round trip: status p50 − ping p50 (qemu-ga: in-process)".into(),
        both(&|k| over_ping(k, "guest-fsfreeze-status", "ping (beside status)")),
        "µs",
        None,
    );
    add(
        "guest-fsfreeze-thaw p50 (nothing frozen)".into(),
        both(&|k| pct(&pooled(k, "guest-fsfreeze-thaw"), 0.5) * 1e6),
        "µs",
        None,
    );
    add(
        "thaw p50 − ping p50 (FITHAW work included)".into(),
        both(&|k| over_ping(k, "guest-fsfreeze-thaw", "ping (beside thaw)")),
        "µs",
        None,
    );
    if !ir.is_empty() {
        let ir_rs = ir.get(&Kind::Rs).copied().unwrap_or(f64::NAN);
        let ir_ref = has_ref.then(|| ir.get(&Kind::Ref).copied().unwrap_or(f64::NAN));
        add(
            "callgrind Ir per 10,000 pings (front only / qemu-ga)".into(),
            (ir_rs / 1e6, ir_ref.map(|v| v / 1e6)),
            "M Ir",
            None,
        );
    }

    let mut out = String::new();
    let _ = writeln!(out, "\n| figure | unit | qemu-ga-rs | qemu-ga | ratio | target | met |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- | --- |");
    let fmt = |v: f64| -> String {
        if !v.is_finite() {
            "n/a".into()
        } else if v.abs() >= 1000.0 {
            format!("{v:.0}")
        } else if v.abs() >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    for r in &rows {
        let ratio = r.r#ref.map(|b| r.rs / b);
        let (target, met) = match (r.target, ratio) {
            (Some((le, x)), Some(q)) => {
                let ok = if le { q <= x } else { q >= x };
                (format!("{} {x}", if le { "≤" } else { "≥" }), if ok { "yes" } else { "NO" }.to_string())
            }
            (Some((le, x)), None) => (format!("{} {x}", if le { "≤" } else { "≥" }), "-".into()),
            _ => (String::new(), String::new()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            fmt(r.rs),
            r.r#ref.map(fmt).unwrap_or_else(|| "-".into()),
            ratio.map(|q| format!("{q:.2}")).unwrap_or_else(|| "-".into()),
            target,
            met
        );
    }
    // The one absolute target.
    let added =
        pct(&pooled(Kind::Rs, "guest-fsfreeze-status"), 0.5) - pct(&pooled(Kind::Rs, "ping (beside status)"), 0.5);
    let _ = writeln!(
        out,
        "\nprivileged round trip (guest-fsfreeze-status through the helper) adds {:.1} µs at p50 over guest-ping (target < 20 µs): {}",
        added * 1e6,
        if added < 20e-6 { "met" } else { "NOT met" }
    );
    if let Some(d) = direct {
        let _ = writeln!(
            out,
            "helper round trip measured directly (the front's link calling FreezeStatus 10,000 times, no client): p50 {:.1} µs",
            d * 1e6
        );
    }
    if !floor.is_empty() {
        let lat: Vec<f64> = floor.iter().flat_map(|f| f.lat.iter().copied()).collect();
        let mut cpu: Vec<f64> = floor.iter().map(|f| f.cpu_10k).collect();
        let (f50, fcpu) = (pct(&lat, 0.5), median(&mut cpu));
        let _ = writeln!(
            out,
            "machine floor (a bare echo process answering guest-ping's reply on the same kind of socket): p50 {:.1} µs, CPU per 10,000 pings {:.0} ms",
            f50 * 1e6,
            fcpu * 1e3
        );
        if has_ref {
            let ping_ref = pct(&pooled(Kind::Ref, "guest-ping"), 0.5);
            let info_ref = pct(&pooled(Kind::Ref, "guest-info"), 0.5);
            let cpu_ref = agg(Kind::Ref, &|r| r.cpu_10k_pings);
            let _ = writeln!(
                out,
                "lowest ratios an agent that sleeps between requests could show here (floor / qemu-ga): guest-ping p50 {:.2}, guest-info p50 {:.2}, CPU per 10,000 pings {:.2}",
                f50 / ping_ref,
                f50 / info_ref,
                fcpu / cpu_ref
            );
        }
    }
    let share: Vec<f64> =
        kinds.iter().flat_map(|&k| rounds[&k].iter().flat_map(|r| r.client_share.iter().copied())).collect();
    let max_share = share.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(out, "client CPU share during throughput tests: max {:.0}% of one core", max_share * 100.0);
    print!("{out}");
}
