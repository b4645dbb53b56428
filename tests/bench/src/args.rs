//! Command line of the bench.

use crate::*;

pub(crate) struct Config {
    pub(crate) rounds: usize,
    pub(crate) quick: bool,
    pub(crate) agent: PathBuf,
    pub(crate) reference: Option<PathBuf>,
    pub(crate) policy: PathBuf,
    /// Another qemu-ga-rs front (`--baseline`, the helper beside it) measured in the same
    /// rounds; its figures are compared with `agent`'s.
    pub(crate) baseline: Option<PathBuf>,
    /// The CPU the bench, its client and every agent it starts are pinned to (`--cpu`).
    pub(crate) cpu: Option<usize>,
    /// Further options for qemu-ga-rs (`--agent-arg`, repeatable), e.g. its audit scope.
    pub(crate) agent_args: Vec<String>,
    pub(crate) callgrind: bool,
    /// Only the callgrind figure (for profiling work).
    pub(crate) callgrind_only: bool,
    /// Samples per latency figure.
    pub(crate) samples: usize,
    /// Pings for the CPU figure (also the guest-ping latency samples).
    pub(crate) cpu_pings: usize,
    pub(crate) pipelined: usize,
    pub(crate) payload: usize,
    pub(crate) thaws: usize,
    /// guest-exec round trips per round.
    pub(crate) execs: usize,
    /// `--startup-only N`: only start-up time and idle memory, N start-ups per agent.
    pub(crate) startup_only: Option<usize>,
}

pub(crate) fn usage() -> ! {
    eprintln!(
        "usage: qga-bench [--rounds N] [--reference PATH|--no-reference] [--agent PATH] [--baseline PATH] [--cpu N] [--policy FILE] [--agent-arg ARG]... [--quick] [--no-callgrind] [--callgrind-only] [--startup-only N]"
    );
    std::process::exit(2)
}

pub(crate) fn parse_args() -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let mut rounds = None;
    let mut quick = false;
    let mut agent = root.join("target/release/qemu-ga-rs");
    let mut reference = Some(PathBuf::from("/usr/sbin/qemu-ga"));
    let mut policy = root.join("policy/allow-all.policy");
    let mut callgrind = true;
    let mut callgrind_only = false;
    let mut agent_args = Vec::new();
    let mut baseline = None;
    let mut cpu = None;
    let mut startup_only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = Some(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())),
            "--reference" => reference = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--no-reference" => reference = None,
            "--agent" => agent = args.next().unwrap_or_else(|| usage()).into(),
            "--baseline" => baseline = Some(args.next().unwrap_or_else(|| usage()).into()),
            "--cpu" => cpu = Some(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())),
            "--policy" => policy = args.next().unwrap_or_else(|| usage()).into(),
            "--agent-arg" => agent_args.push(args.next().unwrap_or_else(|| usage())),
            "--quick" => quick = true,
            "--no-callgrind" => callgrind = false,
            "--callgrind-only" => callgrind_only = true,
            "--startup-only" => {
                startup_only =
                    Some(args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| usage()))
            }
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
        baseline,
        cpu,
        agent_args,
        callgrind,
        callgrind_only,
        samples: if quick { 500 } else { 2000 },
        cpu_pings: 10_000,
        pipelined: if quick { 20_000 } else { 50_000 },
        payload: if quick { 16 * MIB } else { 64 * MIB },
        thaws: if quick { 300 } else { 1000 },
        execs: if quick { 100 } else { 300 },
        startup_only,
    }
}
