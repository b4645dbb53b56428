//! The guest-exec round trip: guest-exec of /bin/true with its output captured, then
//! guest-exec-status until it reports the program exited.

use crate::*;

/// The only program the bench runs through either agent: it does nothing.
const PROGRAM: &str = "/bin/true";

/// The latency figure's key.
pub(crate) const EXEC: &str = "guest-exec round trip";

/// One agent's exec round trips in one round.
#[derive(Default)]
pub(crate) struct ExecTrips {
    /// Seconds from sending guest-exec to the status that says exited, one per round trip.
    pub(crate) lat: Vec<f64>,
    /// CPU per round trip of the agent's processes and of the programs they ran and reaped.
    pub(crate) cpu: f64,
    /// guest-exec-status requests per round trip (the client asks again at once until exited).
    pub(crate) polls: f64,
}

/// `n` round trips, one after the other, after a few unmeasured ones. The CPU counts the
/// agent tree's own time and its reaped children's (`cutime`, `cstime`): qemu-ga runs the
/// program itself, qemu-ga-rs through its launcher and one supervisor per program, so only
/// with the children does the figure hold what each agent spends to run one program.
pub(crate) fn exec_round_trips(conn: &mut Conn, pids: &[u32], n: usize) -> ExecTrips {
    let req =
        format!("{{\"execute\":\"guest-exec\",\"arguments\":{{\"path\":\"{PROGRAM}\",\"capture-output\":true}}}}\n");
    let trip = |conn: &mut Conn, polls: &mut usize| -> f64 {
        let t = Instant::now();
        let line = conn.call(req.as_bytes());
        let pid = int_after(line, b"\"pid\"").unwrap_or_else(|| panic!("no pid in guest-exec's reply: {}", show(line)));
        let status = format!("{{\"execute\":\"guest-exec-status\",\"arguments\":{{\"pid\":{pid}}}}}\n");
        loop {
            *polls += 1;
            let line = conn.call(status.as_bytes());
            if find(line, b"\"exited\": true").is_some() {
                assert!(find(line, b"\"exitcode\": 0").is_some(), "{PROGRAM} did not exit 0: {}", show(line));
                return t.elapsed().as_secs_f64();
            }
        }
    };
    let mut warm = 0;
    for _ in 0..10 {
        trip(conn, &mut warm);
    }
    let mut polls = 0;
    let c0 = cpu_with_children(pids);
    let lat: Vec<f64> = (0..n).map(|_| trip(conn, &mut polls)).collect();
    let cpu = (cpu_with_children(pids) - c0) / n as f64;
    ExecTrips { lat, cpu, polls: polls as f64 / n as f64 }
}
