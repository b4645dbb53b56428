//! Instructions per 10,000 pings under callgrind.

use crate::*;

/// Instructions (Ir) per 10,000 guest-pings under callgrind: two runs of the agent, one with
/// start-up, 100 pings and exit, one with 10,000 pings more; the difference of their totals.
/// (callgrind_control cannot be used: it waits for the agent to run, and the agent sleeps.)
pub(crate) fn callgrind(cfg: &Config, kind: Kind, dir: &Path) -> Result<f64, String> {
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

pub(crate) fn supports_no_sandbox(cfg: &Config) -> bool {
    Command::new(&cfg.agent)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--no-sandbox"))
        .unwrap_or(false)
}
