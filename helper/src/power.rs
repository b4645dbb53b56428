//! guest-shutdown and guest-suspend-*, following qemu-ga 7.2's control flow and texts. The
//! external programs run in the launcher; the `/sys/power/state` fallback is written here.
//!
//! Suspend tries, in order: systemd (`systemctl status <unit>` exiting 1..3 means the unit
//! exists, then `systemctl <verb>`), pm-utils (`pm-is-supported` exiting 0, then `pm-*`), and
//! the kernel (`/sys/power/state` listing `disk`/`mem`; hybrid has no kernel fallback). A method
//! that is supported but fails to act falls through to the next one.
//!
//! Two deliberate differences from 7.2: a program killed by a signal counts as exit status
//! 128+signal (7.2's WEXITSTATUS reads 0, i.e. success), and when every supported method
//! failed the last failure is reported (7.2 reports success if the last method was not
//! supported).

use std::io::{Read, Write};

use nix::errno::Errno;

use crate::launcher::{pm_program, systemctl_verb, Job, LaunchError, Outcome, Run};
use crate::mounts::errno_of;
use crate::protocol::{ShutdownMode, SuspendMode};

pub const SYS_POWER_STATE: &str = "/sys/power/state";
pub const NOT_SUPPORTED: &str = "the requested suspend mode is not supported by the guest";

/// guest-shutdown: `/sbin/shutdown` through the launcher.
pub fn shutdown(run: &mut dyn Run, mode: ShutdownMode) -> Result<(), String> {
    match run.run(Job::Shutdown(mode)).map_err(|e| e.to_string())? {
        Outcome::Exited(0) => Ok(()),
        Outcome::Signaled(_) => Err("child process has terminated abnormally".to_owned()),
        Outcome::SpawnFailed(e) => Err(format!("failed to create child process: {}", e.desc())),
        Outcome::WaitFailed(e) => Err(format!("failed to wait for child: {}", e.desc())),
        // A missing /sbin/shutdown makes 7.2's child exit 1 after execle fails.
        Outcome::Exited(_) | Outcome::NotFound | Outcome::NotAccessible(_) | Outcome::TimedOut => {
            Err("child process has failed to shutdown".to_owned())
        }
    }
}

/// The kernel's suspend interface, behind a trait so the control flow is testable.
pub trait SysPower {
    /// The first bytes of `/sys/power/state` (7.2 reads 31), or `None` if unreadable.
    fn read_state(&mut self) -> Option<String>;
    fn write_state(&mut self, state: &str) -> Result<(), Errno>;
}

/// The real `/sys/power/state`.
pub struct SysfsPower;

impl SysPower for SysfsPower {
    fn read_state(&mut self) -> Option<String> {
        let mut buf = [0u8; 31];
        let n = std::fs::File::open(SYS_POWER_STATE).ok()?.read(&mut buf).ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn write_state(&mut self, state: &str) -> Result<(), Errno> {
        let mut f = std::fs::OpenOptions::new().write(true).open(SYS_POWER_STATE).map_err(|e| errno_of(&e))?;
        // The write returns after resume (or fails); one write of the whole word.
        f.write_all(state.as_bytes()).map_err(|e| errno_of(&e))
    }
}

/// What 7.2's `run_process_child` makes of a run: an exit status, "not found" (which is no
/// error), or an error text.
#[derive(Debug, PartialEq, Eq)]
enum Status {
    Code(i32),
    NotFound,
    Error(String),
}

fn status(run: Result<Outcome, LaunchError>) -> Status {
    match run {
        Ok(Outcome::Exited(c)) => Status::Code(c),
        Ok(Outcome::Signaled(s)) => Status::Code(128 + s),
        Ok(Outcome::NotFound) => Status::NotFound,
        Ok(Outcome::SpawnFailed(e) | Outcome::WaitFailed(e) | Outcome::NotAccessible(e)) => {
            Status::Error(format!("failed to create child process, error '{}'", e.desc()))
        }
        Ok(Outcome::TimedOut) => Status::Error("child process timed out".to_owned()),
        Err(e) => Status::Error(e.to_string()),
    }
}

fn systemd_supports(run: &mut dyn Run, mode: SuspendMode) -> bool {
    // `systemctl status` answers with LSB codes: 1..3 means the unit exists (3: not running),
    // 4 means no such unit.
    matches!(status(run.run(Job::SystemdProbe(mode))), Status::Code(1..=3))
}

fn systemd_suspend(run: &mut dyn Run, mode: SuspendMode) -> Result<(), String> {
    let verb = systemctl_verb(mode);
    match status(run.run(Job::SystemdSuspend(mode))) {
        Status::Code(0) => Ok(()),
        Status::NotFound => Err(format!("the helper program 'systemctl {verb}' was not found")),
        Status::Error(e) => Err(e),
        Status::Code(n) => {
            Err(format!("the helper program 'systemctl {verb}' returned an unexpected exit status code ({n})"))
        }
    }
}

fn pmutils_supports(run: &mut dyn Run, mode: SuspendMode) -> bool {
    // Anything but 0 means "not this way"; 7.2 builds an error text for codes other than 1 but
    // guest_suspend throws it away and tries the next method.
    status(run.run(Job::PmProbe(mode))) == Status::Code(0)
}

fn pmutils_suspend(run: &mut dyn Run, mode: SuspendMode) -> Result<(), String> {
    let prog = pm_program(mode);
    match status(run.run(Job::PmSuspend(mode))) {
        Status::Code(0) => Ok(()),
        Status::NotFound => Err(format!("the helper program '{prog}' was not found")),
        Status::Error(e) => Err(e),
        Status::Code(n) => Err(format!("the helper program '{prog}' returned an unexpected exit status code ({n})")),
    }
}

fn sys_state_word(mode: SuspendMode) -> Option<&'static str> {
    match mode {
        SuspendMode::Disk => Some("disk"),
        SuspendMode::Ram => Some("mem"),
        SuspendMode::Hybrid => None,
    }
}

fn sys_supports(sys: &mut dyn SysPower, mode: SuspendMode) -> bool {
    match sys_state_word(mode) {
        Some(word) => sys.read_state().is_some_and(|s| s.contains(word)),
        None => false,
    }
}

fn sys_suspend(sys: &mut dyn SysPower, mode: SuspendMode) -> Result<(), String> {
    let word = sys_state_word(mode).ok_or_else(|| NOT_SUPPORTED.to_owned())?;
    sys.write_state(word).map_err(|_| "child process has failed to suspend".to_owned())
}

/// guest-suspend-disk / -ram / -hybrid.
pub fn suspend(run: &mut dyn Run, sys: &mut dyn SysPower, mode: SuspendMode) -> Result<(), String> {
    let mut supported = false;
    let mut last_error: Option<String> = None;

    if systemd_supports(run, mode) {
        supported = true;
        match systemd_suspend(run, mode) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    if pmutils_supports(run, mode) {
        supported = true;
        match pmutils_suspend(run, mode) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    if sys_supports(sys, mode) {
        supported = true;
        match sys_suspend(sys, mode) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    if !supported {
        return Err(NOT_SUPPORTED.to_owned());
    }
    Err(last_error.unwrap_or_else(|| NOT_SUPPORTED.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Answers each job from a table (absent: not found) and records the jobs run.
    #[derive(Default)]
    struct FakeRun {
        answers: Vec<(Job, Outcome)>,
        ran: Vec<Job>,
    }

    impl FakeRun {
        fn with(answers: &[(Job, Outcome)]) -> FakeRun {
            FakeRun { answers: answers.to_vec(), ran: vec![] }
        }
    }

    impl Run for FakeRun {
        fn run(&mut self, job: Job) -> Result<Outcome, LaunchError> {
            self.ran.push(job);
            Ok(self.answers.iter().find(|(j, _)| *j == job).map_or(Outcome::NotFound, |(_, o)| *o))
        }
        fn account(&mut self, _: &crate::protocol::Request) -> Result<crate::protocol::Reply, LaunchError> {
            unreachable!("power never runs account jobs")
        }
        fn exec(&mut self, _: &crate::protocol::ExecPlan) -> Result<crate::supervisor::ExecAnswer, LaunchError> {
            unreachable!("power never runs guest-exec")
        }
        fn exec_status(&mut self, _: i64) -> Result<crate::supervisor::ExecAnswer, LaunchError> {
            unreachable!("power never runs guest-exec")
        }
    }

    struct FakeSys {
        state: Option<&'static str>,
        write: Result<(), Errno>,
        written: Vec<String>,
    }

    impl FakeSys {
        fn new(state: Option<&'static str>, write: Result<(), Errno>) -> FakeSys {
            FakeSys { state, write, written: vec![] }
        }
    }

    impl SysPower for FakeSys {
        fn read_state(&mut self) -> Option<String> {
            self.state.map(str::to_owned)
        }
        fn write_state(&mut self, state: &str) -> Result<(), Errno> {
            self.written.push(state.to_owned());
            self.write
        }
    }

    use SuspendMode::*;

    #[test]
    fn shutdown_texts_match_72() {
        let mode = ShutdownMode::Powerdown;
        let mut ok = FakeRun::with(&[(Job::Shutdown(mode), Outcome::Exited(0))]);
        assert_eq!(shutdown(&mut ok, mode), Ok(()));
        let mut fail = FakeRun::with(&[(Job::Shutdown(mode), Outcome::Exited(1))]);
        assert_eq!(shutdown(&mut fail, mode).unwrap_err(), "child process has failed to shutdown");
        let mut sig = FakeRun::with(&[(Job::Shutdown(mode), Outcome::Signaled(9))]);
        assert_eq!(shutdown(&mut sig, mode).unwrap_err(), "child process has terminated abnormally");
    }

    #[test]
    fn systemd_is_used_when_its_unit_exists() {
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Ram), Outcome::Exited(3)),
            (Job::SystemdSuspend(Ram), Outcome::Exited(0)),
        ]);
        let mut sys = FakeSys::new(Some("freeze mem disk"), Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Ram), Ok(()));
        assert_eq!(run.ran, [Job::SystemdProbe(Ram), Job::SystemdSuspend(Ram)]);
        assert!(sys.written.is_empty());
    }

    #[test]
    fn systemctl_status_4_means_no_unit_and_pm_utils_is_next() {
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Disk), Outcome::Exited(4)),
            (Job::PmProbe(Disk), Outcome::Exited(0)),
            (Job::PmSuspend(Disk), Outcome::Exited(0)),
        ]);
        let mut sys = FakeSys::new(None, Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Disk), Ok(()));
        assert_eq!(run.ran, [Job::SystemdProbe(Disk), Job::PmProbe(Disk), Job::PmSuspend(Disk)]);
    }

    #[test]
    fn sysfs_is_the_last_resort_and_writes_the_kernel_word() {
        let mut run = FakeRun::default();
        let mut sys = FakeSys::new(Some("freeze mem disk\n"), Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Disk), Ok(()));
        assert_eq!(sys.written, ["disk"]);
        let mut sys = FakeSys::new(Some("freeze mem disk\n"), Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Ram), Ok(()));
        assert_eq!(sys.written, ["mem"]);
    }

    #[test]
    fn hybrid_has_no_sysfs_fallback() {
        let mut run = FakeRun::default();
        let mut sys = FakeSys::new(Some("freeze mem disk"), Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Hybrid).unwrap_err(), NOT_SUPPORTED);
        assert!(sys.written.is_empty());
    }

    #[test]
    fn nothing_supported_gives_72s_text() {
        let mut run =
            FakeRun::with(&[(Job::SystemdProbe(Ram), Outcome::Exited(4)), (Job::PmProbe(Ram), Outcome::Exited(1))]);
        let mut sys = FakeSys::new(Some("freeze disk"), Ok(()));
        assert_eq!(
            suspend(&mut run, &mut sys, Ram).unwrap_err(),
            "the requested suspend mode is not supported by the guest"
        );
    }

    #[test]
    fn a_failing_method_falls_through_to_the_next() {
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Ram), Outcome::Exited(3)),
            (Job::SystemdSuspend(Ram), Outcome::Exited(1)),
        ]);
        let mut sys = FakeSys::new(Some("mem"), Ok(()));
        assert_eq!(suspend(&mut run, &mut sys, Ram), Ok(()));
        assert_eq!(sys.written, ["mem"]);
    }

    #[test]
    fn the_last_failure_is_reported() {
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Disk), Outcome::Exited(3)),
            (Job::SystemdSuspend(Disk), Outcome::Exited(1)),
            (Job::PmProbe(Disk), Outcome::Exited(0)),
            (Job::PmSuspend(Disk), Outcome::Exited(2)),
        ]);
        let mut sys = FakeSys::new(None, Ok(()));
        assert_eq!(
            suspend(&mut run, &mut sys, Disk).unwrap_err(),
            "the helper program 'pm-hibernate' returned an unexpected exit status code (2)"
        );
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Ram), Outcome::Exited(1)),
            (Job::SystemdSuspend(Ram), Outcome::Exited(5)),
        ]);
        assert_eq!(
            suspend(&mut run, &mut sys, Ram).unwrap_err(),
            "the helper program 'systemctl suspend' returned an unexpected exit status code (5)"
        );
        let mut sys = FakeSys::new(Some("mem"), Err(Errno::EBUSY));
        assert_eq!(suspend(&mut FakeRun::default(), &mut sys, Ram).unwrap_err(), "child process has failed to suspend");
    }

    #[test]
    fn a_signal_is_not_success() {
        let mut run = FakeRun::with(&[
            (Job::SystemdProbe(Ram), Outcome::Exited(3)),
            (Job::SystemdSuspend(Ram), Outcome::Signaled(9)),
        ]);
        let mut sys = FakeSys::new(None, Ok(()));
        assert_eq!(
            suspend(&mut run, &mut sys, Ram).unwrap_err(),
            "the helper program 'systemctl suspend' returned an unexpected exit status code (137)"
        );
        // A probe killed by a signal does not count as support either.
        let mut run = FakeRun::with(&[(Job::PmProbe(Ram), Outcome::Signaled(9))]);
        assert_eq!(suspend(&mut run, &mut sys, Ram).unwrap_err(), NOT_SUPPORTED);
    }
}
