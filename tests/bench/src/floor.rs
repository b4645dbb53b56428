//! The machine's floor: a bare echo process answering like guest-ping, in a hidden mode of the bench.

use crate::*;

/// The hidden mode in which the bench is its own floor: a process that answers every line
/// with guest-ping's reply and does nothing else.
pub(crate) const ECHO_FLAG: &str = "--echo-floor";

pub(crate) fn echo_server(sock: &Path, work: FloorWork) {
    let listener = std::os::unix::net::UnixListener::bind(sock).expect("bind echo socket");
    let (mut s, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * KIB];
    let held = match work {
        FloorWork::Read(path) => Some(std::fs::File::open(path).expect("open the floor's file")),
        FloorWork::Nothing | FloorWork::Uname => None,
    };
    let mut text = vec![0u8; 64 * KIB];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
            match (work, &held) {
                (FloorWork::Uname, _) => {
                    std::hint::black_box(nix::sys::utsname::uname().expect("uname"));
                }
                (FloorWork::Read(_), Some(file)) => {
                    use std::os::unix::fs::FileExt;
                    std::hint::black_box(file.read_at(&mut text, 0).expect("read the floor's file"));
                }
                _ => {}
            }
            if s.write_all(b"{\"return\": {}}\n").is_err() {
                return;
            }
        }
    }
}

/// The kernel work a fresh answer cannot do without, which the echo process does before each
/// reply when it stands for one query: the node name for guest-get-host-name, one read of the
/// counters' text for the statistics. The queries that read ordinary files need none: an agent
/// can learn of their changes without asking per request.
#[derive(Clone, Copy)]
pub(crate) enum FloorWork {
    Nothing,
    Uname,
    Read(&'static str),
}

impl FloorWork {
    fn arg(self) -> &'static str {
        match self {
            FloorWork::Nothing => "nothing",
            FloorWork::Uname => "uname",
            FloorWork::Read(path) => path,
        }
    }

    pub(crate) fn from_arg(arg: Option<&str>) -> FloorWork {
        match arg {
            None | Some("nothing") => FloorWork::Nothing,
            Some("uname") => FloorWork::Uname,
            Some(path) => FloorWork::Read(
                QUERY_FLOORS
                    .iter()
                    .find_map(|&(_, w)| match w {
                        FloorWork::Read(p) if p == path => Some(p),
                        _ => None,
                    })
                    .expect("a floor file the bench knows"),
            ),
        }
    }
}

/// The host queries whose floor includes kernel work of their own (see [`FloorWork`]).
pub(crate) const QUERY_FLOORS: [(&str, FloorWork); 3] = [
    ("guest-get-host-name", FloorWork::Uname),
    ("guest-get-cpustats", FloorWork::Read("/proc/stat")),
    ("guest-get-diskstats", FloorWork::Read("/proc/diskstats")),
];

/// guest-ping-shaped exchanges with a bare echo process: what the machine's wake-ups and
/// socket cost before any agent does any work.
pub(crate) fn measure_floor(cfg: &Config, dir: &Path, work: FloorWork) -> Floor {
    let sock = dir.join("floor.sock");
    let _ = std::fs::remove_file(&sock);
    let exe = std::env::current_exe().expect("own path");
    let child = Command::new(exe)
        .arg(ECHO_FLAG)
        .arg(&sock)
        .arg(work.arg())
        .stdin(Stdio::null())
        .spawn()
        .expect("start echo process");
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
pub(crate) struct Floor {
    pub(crate) lat: Vec<f64>,
    pub(crate) cpu_10k: f64,
}
