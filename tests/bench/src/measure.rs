//! Measurements of one agent in one round.

use crate::*;
use base64::Engine as _;

#[derive(Default)]
pub(crate) struct Round {
    /// Exec to first ping answered, seconds: STARTS_PER_ROUND samples.
    pub(crate) startup: Vec<f64>,
    /// Latency samples in seconds, by name.
    pub(crate) lat: HashMap<&'static str, Vec<f64>>,
    /// Requests per second with one outstanding, by name.
    pub(crate) rate: HashMap<&'static str, f64>,
    pub(crate) pipelined: f64,
    /// MB/s by (direction, size).
    pub(crate) file: HashMap<(&'static str, usize), f64>,
    pub(crate) cpu_10k_pings: f64,
    /// CPU seconds per request of each host query (agent processes only), by name.
    pub(crate) cpu_per_query: HashMap<&'static str, f64>,
    /// CPU per 64 MiB read at 1 MiB (agent tree), by the read figure's key.
    pub(crate) cpu_read_64m: HashMap<&'static str, f64>,
    /// The guest-exec round trips (not measured for a baseline build).
    pub(crate) exec: Option<ExecTrips>,
    pub(crate) idle_rss: f64,
    pub(crate) peak_rss: f64,
    pub(crate) rss_after_files: f64,
    pub(crate) client_share: Vec<f64>,
}

/// The read-only queries 7.2 added that both agents answer: (name, request, a reply marker).
/// qemu-ga-rs answers the last two (the storage queries) from its helper.
pub(crate) const HOST_QUERIES: [(&str, &[u8], &[u8]); 8] = [
    ("guest-get-host-name", b"{\"execute\":\"guest-get-host-name\"}\n", b"host-name"),
    ("guest-get-users", b"{\"execute\":\"guest-get-users\"}\n", b"\"return\""),
    ("guest-get-timezone", b"{\"execute\":\"guest-get-timezone\"}\n", b"offset"),
    ("guest-get-osinfo", b"{\"execute\":\"guest-get-osinfo\"}\n", b"kernel-release"),
    ("guest-get-diskstats", b"{\"execute\":\"guest-get-diskstats\"}\n", b"\"return\""),
    ("guest-get-cpustats", b"{\"execute\":\"guest-get-cpustats\"}\n", b"\"return\""),
    ("guest-get-fsinfo", b"{\"execute\":\"guest-get-fsinfo\"}\n", b"\"return\""),
    ("guest-get-disks", b"{\"execute\":\"guest-get-disks\"}\n", b"\"return\""),
];

pub(crate) fn timed_loop(conn: &mut Conn, req: &[u8], n: usize, check: &[u8]) -> (Vec<f64>, f64) {
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
pub(crate) const STARTS_PER_ROUND: usize = 5;

/// `n` times a ping then `req` (whose reply must start with `expect`); the latencies of both.
pub(crate) fn alternate_with_pings(
    conn: &mut Conn,
    ping: &[u8],
    req: &[u8],
    expect: &[u8],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
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

/// Where the file tests read and write.
pub(crate) struct Files {
    /// Mode 1777: any process may create files there.
    pub(crate) scratch: PathBuf,
    /// The file read in `scratch`.
    pub(crate) read_file: PathBuf,
    /// Root-owned, mode 0700: only root (qemu-ga, qemu-ga-rs's helper) may open files there.
    pub(crate) private: PathBuf,
    /// The same content as `read_file`, in `private`.
    pub(crate) private_read: PathBuf,
}

pub(crate) fn measure(cfg: &Config, kind: Kind, dir: &Path, files: &Files) -> Round {
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

    // The host queries of qemu-ga 7.2 (read-only), each with its latency and CPU per request.
    for (name, req, check) in HOST_QUERIES {
        let c0 = cpu_of(&pids);
        let (lat, rate) = timed_loop(&mut conn, req, cfg.samples, check);
        r.cpu_per_query.insert(name, (cpu_of(&pids) - c0) / cfg.samples as f64);
        r.lat.insert(name, lat);
        r.rate.insert(name, rate);
    }

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

    // File throughput: in the mode-1777 scratch directory, then (the agents under test only)
    // in a root-owned 0700 directory that qemu-ga-rs's unprivileged front cannot enter, so
    // only the helper can open the file there and every read and write goes through the
    // descriptor it passed. Then the exec round trip (also not for a baseline build, which
    // may predate guest-exec).
    let out = files.scratch.join(format!("{}.out", kind.name()));
    file_tests(cfg, &mut r, &mut conn, pid, &files.read_file, &out, ("read", "write"));
    if kind != Kind::Base {
        let out = files.private.join(format!("{}.out", kind.name()));
        file_tests(cfg, &mut r, &mut conn, pid, &files.private_read, &out, (PRIVATE_READ, PRIVATE_WRITE));
        let trips = exec_round_trips(&mut conn, &tree(pid), cfg.execs);
        r.lat.insert(EXEC, trips.lat.clone());
        r.exec = Some(trips);
    }
    std::thread::sleep(Duration::from_millis(100));
    let pids = tree(pid);
    r.peak_rss = status_kb(&pids, "VmHWM");
    r.rss_after_files = status_kb(&pids, "VmRSS");
    drop(conn);
    stop(agent);
    r
}

/// The file keys of the throughput figures through a file only the helper can open.
pub(crate) const PRIVATE_READ: &str = "read (root-only directory)";
pub(crate) const PRIVATE_WRITE: &str = "write (root-only directory)";

/// guest-file-read of `read_file` and guest-file-write to `out` at each size, `cfg.payload`
/// bytes each; figures under the given (read, write) keys.
fn file_tests(
    cfg: &Config,
    r: &mut Round,
    conn: &mut Conn,
    pid: u32,
    read_file: &Path,
    out: &Path,
    (read_tag, write_tag): (&'static str, &'static str),
) {
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
            r.cpu_read_64m.insert(read_tag, (cpu_of(&pids) - c0) * (64 * MIB) as f64 / total as f64);
        }
        r.file.insert((read_tag, size), total as f64 / 1e6 / wall);
        r.client_share.push((self_cpu() - s0) / wall);
        conn.shrink();
    }
    for &size in &sizes {
        let size = if size == 0 { MAX_WRITE.min(cfg.payload) } else { size };
        let _ = std::fs::remove_file(out);
        // The request text is made before the clock starts: the client only sends it.
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
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
        r.file.insert((write_tag, size), total as f64 / 1e6 / wall);
        r.client_share.push((self_cpu() - s0) / wall);
        let len = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        assert_eq!(len as usize, total, "written file size");
    }
    let _ = std::fs::remove_file(out);
}
