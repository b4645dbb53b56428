//! guest-shutdown and guest-suspend-*: checked here, carried out by the helper. Both are
//! silent on success.

use super::Agent;
use crate::json::Value;
use crate::privsep::link::expect;
use crate::qmp::args::Args;
use crate::qmp::AgentError;
use qga_helper::protocol::{Reply, Request, ShutdownMode, SuspendMode};
use qga_policy::Command;

/// 7.2's mode names; the missing closing parenthesis of its error text is deliberate.
pub fn parse_shutdown_mode(mode: Option<&[u8]>) -> Result<ShutdownMode, AgentError> {
    match mode {
        None | Some(b"powerdown") => Ok(ShutdownMode::Powerdown),
        Some(b"halt") => Ok(ShutdownMode::Halt),
        Some(b"reboot") => Ok(ShutdownMode::Reboot),
        Some(_) => Err(AgentError::command("mode is invalid (valid values are: halt|powerdown|reboot")),
    }
}

pub fn shutdown(agent: &mut Agent, args: &Args) -> Result<Value, AgentError> {
    let mode_text = args.opt_str("mode");
    // Logged once checked: only one of the three mode names (or none) reaches the log.
    let mode = parse_shutdown_mode(mode_text).inspect_err(|_| crate::slog!("guest-shutdown called, invalid mode"))?;
    crate::slog!("guest-shutdown called, mode: {}", mode_text.map(String::from_utf8_lossy).unwrap_or("(null)".into()));
    let reply = agent.helper.call(&Request::Shutdown { mode })?;
    expect(reply, |r| matches!(r, Reply::Done).then(Value::empty_dict))
}

pub fn suspend(agent: &mut Agent, command: Command) -> Result<Value, AgentError> {
    let mode = match command {
        Command::SuspendDisk => SuspendMode::Disk,
        Command::SuspendRam => SuspendMode::Ram,
        _ => SuspendMode::Hybrid,
    };
    crate::slog!("{} called", command.name());
    let reply = agent.helper.call(&Request::Suspend { mode })?;
    expect(reply, |r| matches!(r, Reply::Done).then(Value::empty_dict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_modes_map_like_qemu_ga() {
        assert_eq!(parse_shutdown_mode(None).ok(), Some(ShutdownMode::Powerdown));
        assert_eq!(parse_shutdown_mode(Some(b"halt")).ok(), Some(ShutdownMode::Halt));
        assert_eq!(parse_shutdown_mode(Some(b"reboot")).ok(), Some(ShutdownMode::Reboot));
        let e = parse_shutdown_mode(Some(b"off")).unwrap_err();
        assert_eq!(e.desc(), b"mode is invalid (valid values are: halt|powerdown|reboot");
    }
}
