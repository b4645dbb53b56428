//! The one gate: whether a command may run now. Dispatch, guest-info and the helper's re-check
//! all call [`decide`]; nothing else decides.

use crate::catalog::{Command, COUNT};

/// The effective policy: for each command, enabled or not, after merging the policy file, the
/// config keys and the command line (see [`mod@crate::merge`]). A command unavailable on Linux
/// ([`crate::catalog::UNAVAILABLE_ON_LINUX`]) is never enabled, whatever is asked, as in 7.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    enabled: [bool; COUNT],
}

impl Policy {
    /// Every command enabled: qemu-ga's own behaviour.
    pub fn allow_all() -> Policy {
        Policy::only(Command::all())
    }

    /// Exactly the given commands enabled.
    pub fn only(commands: impl IntoIterator<Item = Command>) -> Policy {
        let mut enabled = [false; COUNT];
        for c in commands {
            enabled[c.index()] = c.available();
        }
        Policy { enabled }
    }

    pub fn is_enabled(&self, cmd: Command) -> bool {
        self.enabled[cmd.index()]
    }

    pub fn set(&mut self, cmd: Command, enabled: bool) {
        self.enabled[cmd.index()] = enabled && cmd.available();
    }

    /// The enabled commands, in schema order.
    pub fn enabled_commands(&self) -> impl Iterator<Item = Command> + '_ {
        Command::all().filter(|c| self.is_enabled(*c))
    }
}

/// What the gate says about one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Enabled,
    /// Disabled by the policy (file, config or command line).
    Disabled,
    /// Enabled by the policy but not allowed while filesystems are frozen.
    Frozen,
}

/// The gate. Order: the policy (allowlist restricts, a block always wins, both already merged
/// into `policy`), then the frozen state overrides: only the freeze allowlist runs while frozen.
pub fn decide(policy: &Policy, cmd: Command, frozen: bool) -> Decision {
    if frozen && !cmd.spec().allowed_while_frozen {
        Decision::Frozen
    } else if !policy.is_enabled(cmd) {
        Decision::Disabled
    } else {
        Decision::Enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_unavailable_on_linux_is_never_enabled() {
        let mut p = Policy::only([Command::GetDevices, Command::Ping]);
        assert_eq!(decide(&p, Command::GetDevices, false), Decision::Disabled);
        p.set(Command::GetDevices, true);
        assert!(!p.is_enabled(Command::GetDevices));
        assert!(!Policy::allow_all().is_enabled(Command::GetDevices));
        assert!(Policy::allow_all().is_enabled(Command::GetCpustats));
    }

    #[test]
    fn frozen_overrides_an_enabled_command() {
        let p = Policy::allow_all();
        assert_eq!(decide(&p, Command::FileOpen, true), Decision::Frozen);
        assert_eq!(decide(&p, Command::FileOpen, false), Decision::Enabled);
    }

    #[test]
    fn frozen_also_overrides_a_disabled_command_with_its_own_reason() {
        let p = Policy::only([Command::Ping]);
        assert_eq!(decide(&p, Command::FileOpen, true), Decision::Frozen);
    }

    #[test]
    fn a_disabled_allowlisted_command_stays_disabled_while_frozen() {
        let p = Policy::only([Command::Sync]);
        assert_eq!(decide(&p, Command::Ping, true), Decision::Disabled);
        assert_eq!(decide(&p, Command::Sync, true), Decision::Enabled);
    }
}
