//! The helper's start-up in the background of the front's.
//!
//! The front starts the helper under SCHED_IDLE (`--background-start`, see the front's
//! `privsep::spawn`): its start-up then takes only CPU time the front leaves, and the host's
//! first answer, which needs nothing from the helper, waits for none of it. Every process of the
//! helper returns to SCHED_OTHER before it handles anything: the launcher right after its fork,
//! each statfs probe and the helper itself as the last step before their seccomp filters (so no
//! filter has to allow the call). Left under SCHED_IDLE, they would starve on a busy guest.
//!
//! Leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE that allows the process's nice value,
//! and the helper and the probes have given up CAP_SYS_NICE by then. So [`enter`] (while still
//! root) raises RLIMIT_NICE just enough, and [`leave`] puts the limit back as it was: no process
//! keeps the raised limit past its start-up, and nothing it runs inherits it. Where root may
//! not raise a limit (no CAP_SYS_RESOURCE, as in some containers), the helper and the probes
//! leave the background earlier instead, while they still hold CAP_SYS_NICE
//! ([`leave_while_privileged`], called right before they drop it): only their demotion, Landlock
//! and filter set-up then share the front's CPU.

use nix::errno::Errno;
use nix::libc;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::sync::OnceLock;

/// How the start-up runs; set once by [`enter`], inherited by the forked processes.
static MODE: OnceLock<Mode> = OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Not started in the background: nothing to leave.
    Foreground,
    /// RLIMIT_NICE raised from (soft, hard): leave as late as [`leave`] is called.
    Late(u64, u64),
    /// RLIMIT_NICE could not be raised: leave while CAP_SYS_NICE is held.
    Early,
}

/// The RLIMIT_NICE value that lets a process at `nice` return to it (setpriority(2): the
/// ceiling is 20 - limit).
pub fn limit_for_nice(nice: i32) -> u64 {
    (20 - nice.clamp(-20, 19)) as u64
}

/// Whether the calling process runs under SCHED_IDLE.
fn is_idle() -> bool {
    // SAFETY: sched_getscheduler only reads the calling thread's policy.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

/// At start, while root: `started_idle` (the front said `--background-start`) and the process
/// is under SCHED_IDLE: raise RLIMIT_NICE so that [`leave`] can return to SCHED_OTHER later
/// without privileges. Returns how the start-up runs.
pub fn enter(started_idle: bool) -> Result<Mode, Errno> {
    let mode = if started_idle && is_idle() { raise_limit()? } else { Mode::Foreground };
    let _ = MODE.set(mode);
    Ok(mode)
}

fn raise_limit() -> Result<Mode, Errno> {
    Errno::clear();
    // SAFETY: getpriority only reads the calling process's nice value; -1 is a valid value,
    // told from an error by errno, cleared above.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && Errno::last_raw() != 0 {
        return Err(Errno::last());
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NICE)?;
    let need = limit_for_nice(nice);
    if soft < need {
        match setrlimit(Resource::RLIMIT_NICE, need, hard.max(need)) {
            Ok(()) => {}
            Err(Errno::EPERM) => return Ok(Mode::Early),
            Err(e) => return Err(e),
        }
    }
    Ok(Mode::Late(soft, hard))
}

fn to_sched_other() -> Result<(), Errno> {
    if is_idle() {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler changes only the calling thread's policy, with a
        // parameter that lives on the stack for the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Back to SCHED_OTHER, and RLIMIT_NICE back to what it was; nothing to do unless [`enter`]
/// put the start-up in the background (or [`leave_while_privileged`] already left it). The
/// process must be single-threaded.
pub fn leave() -> Result<(), Errno> {
    match MODE.get() {
        Some(&Mode::Late(soft, hard)) => {
            to_sched_other()?;
            // Lowering a limit needs no privilege; root (the launcher) may also lower the hard one.
            setrlimit(Resource::RLIMIT_NICE, soft, hard)
        }
        Some(Mode::Early) => to_sched_other(),
        Some(Mode::Foreground) | None => Ok(()),
    }
}

/// Called right before a process drops CAP_SYS_NICE: leaves the background now if [`leave`]
/// could not do it later without that capability.
pub fn leave_while_privileged() -> Result<(), Errno> {
    match MODE.get() {
        Some(Mode::Early) => to_sched_other(),
        Some(Mode::Late(..)) | Some(Mode::Foreground) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nice_limit_allows_exactly_the_nice_value() {
        assert_eq!(limit_for_nice(0), 20);
        assert_eq!(limit_for_nice(19), 1);
        assert_eq!(limit_for_nice(-20), 40);
        assert_eq!(limit_for_nice(25), 1);
    }

    #[test]
    fn without_the_flag_nothing_changes() {
        assert_eq!(enter(false), Ok(Mode::Foreground));
        assert_eq!(leave_while_privileged(), Ok(()));
        assert_eq!(leave(), Ok(()));
    }
}
