//! What the tests read about processes from /proc: status fields, memory, descriptors,
//! liveness, children and executables. The one /proc reader of the Rust tests: the helper's
//! tests include this file too (`#[path]` in `helper/tests/common/mod.rs`), so it uses the
//! standard library only.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The fields of /proc/PID/status, or None if the process is gone.
pub fn proc_status(pid: u32) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// One field of /proc/PID/status; panics if the process is gone or has no such field.
pub fn status_field(pid: u32, name: &str) -> String {
    let mut status = proc_status(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    status.remove(name).unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

/// A size field of /proc/PID/status in KiB (VmRSS, VmHWM, ...); panics if the process is gone.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = proc_status(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    let value = status.get(field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    value.trim_end_matches("kB").trim().parse().unwrap_or_else(|_| panic!("{field}: {value}"))
}

/// How many descriptors a process has open (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}")).count()
}

/// (state, ppid) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process exists and has not exited (a zombie counts as exited).
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if matches!(proc_stat(child), Some((_, ppid)) if ppid == pid) {
                out.push(child);
            }
        }
    }
    out
}

/// The executable of a process.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Waits until `pid` has exited (or is a zombie); false on timeout.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !is_alive(pid)
}
