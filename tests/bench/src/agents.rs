//! Starting, connecting to and stopping the agents under test.

use crate::*;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Kind {
    Rs,
    Ref,
    /// Another qemu-ga-rs build (`--baseline`), measured in the same rounds, to compare two
    /// builds of the project with each other.
    Base,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Rs => "qemu-ga-rs",
            Kind::Ref => "qemu-ga",
            Kind::Base => "baseline",
        }
    }
}

pub(crate) struct Agent {
    pub(crate) kind: Kind,
    pub(crate) child: Child,
    pub(crate) sock: PathBuf,
}

pub(crate) fn agent_command(
    cfg: &Config,
    kind: Kind,
    dir: &Path,
    wrapper: &[String],
    extra: &[&str],
) -> (Command, PathBuf) {
    let tag = kind.name();
    let sock = dir.join(format!("{tag}.sock"));
    let state = dir.join(format!("{tag}-state"));
    let _ = std::fs::create_dir_all(&state);
    let _ = std::fs::remove_file(&sock);
    let bin = match kind {
        Kind::Rs => cfg.agent.clone(),
        Kind::Ref => cfg.reference.clone().expect("reference"),
        Kind::Base => cfg.baseline.clone().expect("baseline"),
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
    if kind != Kind::Ref {
        cmd.arg("--policy").arg(&cfg.policy);
        cmd.args(&cfg.agent_args);
    }
    cmd.args(extra);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    (cmd, sock)
}

/// Starts an agent and returns it with the time from exec to its first answered guest-ping.
pub(crate) fn start(cfg: &Config, kind: Kind, dir: &Path) -> (Agent, Conn, Duration) {
    let (mut cmd, sock) = agent_command(cfg, kind, dir, &[], &[]);
    let t0 = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
    let mut agent = Agent { kind, child, sock };
    let mut conn = connect_when_ready(&mut agent, Duration::from_secs(20));
    conn.call(b"{\"execute\":\"guest-ping\"}\n");
    let startup = t0.elapsed();
    (agent, conn, startup)
}

pub(crate) fn connect_when_ready(agent: &mut Agent, limit: Duration) -> Conn {
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

/// Stops an agent and waits until every process of it is gone: qemu-ga-rs's helper, launcher
/// and probes exit a moment after the front, and a start-up measured meanwhile would share the
/// CPU with their exit.
pub(crate) fn stop(mut agent: Agent) {
    let processes = tree(agent.child.id());
    // SAFETY: plain kill(2) on our own child.
    unsafe { kill(agent.child.id() as i32, SIGTERM) };
    let t0 = Instant::now();
    let limit = Duration::from_secs(10);
    while t0.elapsed() < limit {
        if let Ok(Some(_)) = agent.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if t0.elapsed() >= limit {
        let _ = agent.child.kill();
        let _ = agent.child.wait();
    }
    while t0.elapsed() < limit && processes[1..].iter().any(|&p| running(p)) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether a process exists and is not a zombie waiting to be reaped.
fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}
