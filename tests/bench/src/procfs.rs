//! CPU and memory of a process tree, from /proc.

use crate::*;

/// The process and all its descendants.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
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
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime+stime of the processes, in seconds.
pub(crate) fn cpu_of(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { sysconf(SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|&p| stat_fields(p))
        .map(|f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
        .sum::<u64>() as f64
        / hz
}

/// utime+stime of the processes and of the children they reaped (cutime+cstime), in seconds.
pub(crate) fn cpu_with_children(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { sysconf(SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|&p| stat_fields(p))
        .map(|f| f[11..15].iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum::<u64>())
        .sum::<u64>() as f64
        / hz
}

pub(crate) fn self_cpu() -> f64 {
    cpu_of(&[std::process::id()])
}

/// Sum of a /proc/PID/status field (kB) over the processes, in MiB.
pub(crate) fn status_kb(pids: &[u32], field: &str) -> f64 {
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
