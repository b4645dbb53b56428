//! Keeps the front and the helper on one CPU.
//!
//! The two processes work in strict alternation: the front sends a request and blocks until
//! the helper answers. On one CPU each hand-over is a direct switch from the process that
//! blocks to the one it woke. On two, every hand-over wakes the other CPU, which in a virtual
//! machine means an inter-processor interrupt and usually a halted vCPU brought back by the
//! hypervisor; measured on a 2-vCPU guest, that made a helper round trip several times
//! slower. The CPU is the one the front was started on, so any affinity the service manager
//! set is respected. If that CPU goes offline the kernel widens both processes' affinity
//! again. The helper's launcher is forked before the helper pins itself, so the programs it
//! runs (shutdown, the freeze hook) keep the agent's original affinity.

use nix::sched::{sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    sched_getcpu().ok()
}

/// Whether `cpu` can name a CPU in an affinity mask at all.
pub fn is_valid_cpu(cpu: usize) -> bool {
    cpu < CpuSet::count()
}

/// Restricts the calling process (single-threaded: its only thread) to `cpu`.
pub fn pin_to(cpu: usize) -> nix::Result<()> {
    pin_process_to(Pid::from_raw(0), cpu)
}

/// Restricts the single-threaded process `pid` (a child just forked) to `cpu`.
pub fn pin_process_to(pid: Pid, cpu: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(pid, &set)
}
