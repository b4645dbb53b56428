//! The fsfreeze hook: which phase it is run with and what its end means, in qemu-ga 7.2's
//! words. The launcher runs it (full root, clean environment, own session, stdio on
//! /dev/null, with the `--hook-timeout`).

use std::path::Path;
use std::time::Duration;

use crate::launcher::{LaunchError, Outcome};

// The phase is an argument of the launcher's hook job, so it is declared with the jobs; this
// module only interprets how a run ended (one direction of import, no cycle).
pub use crate::launcher::HookPhase;

/// The guest-visible result of one hook run.
pub fn result_text(hook: &Path, timeout: Duration, run: Result<Outcome, LaunchError>) -> Result<(), String> {
    let outcome = run.map_err(|e| e.to_string())?;
    match outcome {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(n) => Err(format!("fsfreeze hook has failed with status {n}")),
        Outcome::Signaled(_) => Err("fsfreeze hook has terminated abnormally".to_owned()),
        Outcome::NotAccessible(e) => Err(format!("can't access fsfreeze hook '{}': {}", hook.display(), e.desc())),
        Outcome::NotFound => {
            Err(format!("can't access fsfreeze hook '{}': {}", hook.display(), nix::errno::Errno::ENOENT.desc()))
        }
        Outcome::TimedOut => Err(format!("fsfreeze hook has timed out after {} seconds", timeout.as_secs())),
        Outcome::SpawnFailed(e) => Err(format!("failed to create child process: {}", e.desc())),
        Outcome::WaitFailed(e) => Err(format!("failed to wait for child: {}", e.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    fn text(o: Outcome) -> Result<(), String> {
        result_text(Path::new("/etc/qemu/fsfreeze-hook"), Duration::from_secs(60), Ok(o))
    }

    #[test]
    fn exit_zero_is_success() {
        assert_eq!(text(Outcome::Exited(0)), Ok(()));
    }

    #[test]
    fn failures_use_72s_texts() {
        assert_eq!(text(Outcome::Exited(2)).unwrap_err(), "fsfreeze hook has failed with status 2");
        assert_eq!(text(Outcome::Signaled(9)).unwrap_err(), "fsfreeze hook has terminated abnormally");
        assert_eq!(
            text(Outcome::NotAccessible(Errno::EACCES)).unwrap_err(),
            "can't access fsfreeze hook '/etc/qemu/fsfreeze-hook': Permission denied"
        );
        assert_eq!(
            text(Outcome::NotAccessible(Errno::ENOENT)).unwrap_err(),
            "can't access fsfreeze hook '/etc/qemu/fsfreeze-hook': No such file or directory"
        );
    }

    #[test]
    fn a_timeout_says_so() {
        assert_eq!(text(Outcome::TimedOut).unwrap_err(), "fsfreeze hook has timed out after 60 seconds");
    }

    #[test]
    fn phases_are_the_hooks_arguments() {
        assert_eq!(HookPhase::Freeze.arg(), "freeze");
        assert_eq!(HookPhase::Thaw.arg(), "thaw");
    }
}
