//! `--startup-only`: start-up time and idle memory alone, many start-ups per agent, the agents
//! interleaved (qemu-ga-rs, qemu-ga, qemu-ga-rs, …) so that machine drift cancels. Each start is
//! measured from exec to the first answered guest-ping, then the agent idles for 200 ms and its
//! process tree's memory is read per process (VmRSS from status, Pss from smaps_rollup), then
//! it is stopped. Prints the medians and each process's share, with the CPU time each process
//! used from its start to then (schedstat, in nanoseconds: a figure the machine's load
//! disturbs far less than the wall-clock start-up).

use crate::*;

/// Memory of one process of an agent's tree after start-up, in KiB.
#[derive(Clone)]
pub(crate) struct ProcMem {
    pub(crate) name: String,
    pub(crate) rss: u64,
    pub(crate) pss: u64,
    /// CPU time the process has used since it started, in ms (schedstat: nanoseconds).
    pub(crate) cpu_ms: f64,
}

/// One start-up: its time and the idle memory of every process of the tree.
struct Sample {
    startup: f64,
    procs: Vec<ProcMem>,
}

/// A `kB` field of /proc/PID/FILE (status or smaps_rollup).
fn kb_field(pid: u32, file: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn proc_mem(pid: u32) -> ProcMem {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
    let schedstat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let cpu_ns: f64 = schedstat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    ProcMem {
        name,
        rss: kb_field(pid, "status", "VmRSS"),
        pss: kb_field(pid, "smaps_rollup", "Pss"),
        cpu_ms: cpu_ns / 1e6,
    }
}

fn one_start(cfg: &Config, kind: Kind, dir: &Path) -> Sample {
    let (agent, conn, startup) = start(cfg, kind, dir);
    std::thread::sleep(Duration::from_millis(200));
    // The front first, then its descendants in pid order (the order they were started in).
    let mut pids = tree(agent.child.id());
    pids[1..].sort_unstable();
    let procs = pids.into_iter().map(proc_mem).collect();
    stop(agent);
    drop(conn);
    Sample { startup: startup.as_secs_f64(), procs }
}

/// Runs `starts` start-ups per agent, interleaved, and prints the medians.
pub(crate) fn startup_only(cfg: &Config, kinds: &[Kind], dir: &Path, starts: usize) {
    let mut samples: HashMap<Kind, Vec<Sample>> = HashMap::new();
    for i in 0..starts {
        for &k in kinds {
            samples.entry(k).or_default().push(one_start(cfg, k, dir));
        }
        eprintln!("  start-up {}/{starts}", i + 1);
    }
    println!("| figure | unit | {} |", kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" | "));
    println!("| --- | --- |{}", " ---: |".repeat(kinds.len()));
    let med = |k: Kind, f: &dyn Fn(&Sample) -> f64| -> f64 {
        let mut v: Vec<f64> = samples[&k].iter().map(f).collect();
        median(&mut v)
    };
    let row = |name: &str, unit: &str, f: &dyn Fn(&Sample) -> f64| {
        let cells: Vec<String> = kinds.iter().map(|&k| format!("{:.2}", med(k, f))).collect();
        println!("| {name} | {unit} | {} |", cells.join(" | "));
    };
    row("startup median (exec to first ping answered)", "ms", &|s| s.startup * 1e3);
    row("RSS idle, all processes (median)", "MiB", &|s| s.procs.iter().map(|p| p.rss).sum::<u64>() as f64 / 1024.0);
    row("Pss idle, all processes (median)", "MiB", &|s| s.procs.iter().map(|p| p.pss).sum::<u64>() as f64 / 1024.0);
    row("CPU of all processes, exec to idle (median)", "ms", &|s| s.procs.iter().map(|p| p.cpu_ms).sum::<f64>());
    row("processes", "", &|s| s.procs.len() as f64);
    if kinds.len() == 2 {
        let ratio = |f: &dyn Fn(&Sample) -> f64| med(kinds[0], f) / med(kinds[1], f);
        println!(
            "ratios {} / {}: startup {:.2}, RSS {:.2}, Pss {:.2}",
            kinds[0].name(),
            kinds[1].name(),
            ratio(&|s| s.startup),
            ratio(&|s| s.procs.iter().map(|p| p.rss).sum::<u64>() as f64),
            ratio(&|s| s.procs.iter().map(|p| p.pss).sum::<u64>() as f64),
        );
    }
    for &k in kinds {
        let mut all: Vec<f64> = samples[&k].iter().map(|s| s.startup * 1e3).collect();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let shown: Vec<String> = all.iter().map(|v| format!("{v:.2}")).collect();
        println!("{} start-ups (ms, sorted): {}", k.name(), shown.join(" "));
        // Per process, by position in the tree (front, then its descendants in pid order).
        let n = samples[&k].iter().map(|s| s.procs.len()).max().unwrap_or(0);
        for i in 0..n {
            let name = samples[&k].iter().find_map(|s| s.procs.get(i).map(|p| p.name.clone())).unwrap_or_default();
            let mut rss: Vec<f64> = samples[&k].iter().filter_map(|s| s.procs.get(i).map(|p| p.rss as f64)).collect();
            let mut pss: Vec<f64> = samples[&k].iter().filter_map(|s| s.procs.get(i).map(|p| p.pss as f64)).collect();
            let mut cpu: Vec<f64> = samples[&k].iter().filter_map(|s| s.procs.get(i).map(|p| p.cpu_ms)).collect();
            println!(
                "  {} process {i} ({name}): RSS {:.0} KiB, Pss {:.0} KiB, CPU {:.2} ms (medians)",
                k.name(),
                median(&mut rss),
                median(&mut pss),
                median(&mut cpu)
            );
        }
    }
}
