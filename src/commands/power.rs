//! guest-shutdown and guest-suspend-*: checked here, carried out by the helper. Both are
//! silent on success.

use super::Agent;
use crate::json::Value;
use crate::qmp::AgentError;
use qga_policy::{Command, Invocation};
use qga_protocol::{ask, ShutdownMode, SuspendMode};

/// 7.2's mode names; the missing closing parenthesis of its error text is deliberate.
pub fn parse_shutdown_mode(mode: Option<&[u8]>) -> Result<ShutdownMode, AgentError> {
    match mode {
        None | Some(b"powerdown") => Ok(ShutdownMode::Powerdown),
        Some(b"halt") => Ok(ShutdownMode::Halt),
        Some(b"reboot") => Ok(ShutdownMode::Reboot),
        Some(_) => Err(AgentError::command("mode is invalid (valid values are: halt|powerdown|reboot")),
    }
}

pub fn shutdown(agent: &mut Agent, mode_text: Option<&[u8]>) -> Result<Value, AgentError> {
    // Logged once checked: only one of the three mode names (or none) reaches the log.
    let mode = parse_shutdown_mode(mode_text).inspect_err(|_| crate::slog!("guest-shutdown called, invalid mode"))?;
    crate::slog!("guest-shutdown called, mode: {}", mode_text.map(String::from_utf8_lossy).unwrap_or("(null)".into()));
    agent.permit(Command::Shutdown, &Invocation::Shutdown { mode: mode.into() })?;
    agent.helper.ask(ask::shutdown(mode))?;
    Ok(Value::empty_dict())
}

pub fn suspend(agent: &mut Agent, command: Command) -> Result<Value, AgentError> {
    let mode = match command {
        Command::SuspendDisk => SuspendMode::Disk,
        Command::SuspendRam => SuspendMode::Ram,
        _ => SuspendMode::Hybrid,
    };
    crate::slog!("{} called", command.name());
    agent.helper.ask(ask::suspend(mode))?;
    Ok(Value::empty_dict())
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

    /// No helper runs here: an invalid mode never reaches one, and the link's far end only
    /// shows that nothing was sent.
    #[test]
    fn an_invalid_shutdown_mode_is_checked_before_it_is_logged() {
        use crate::commands::file::Handles;
        use crate::json::{Dict, Value as V};
        use crate::privsep::link::HelperLink;
        use std::io::Read;

        let path = std::env::temp_dir().join(format!("qga-shutdown-log-{}", std::process::id()));
        let log = std::fs::File::create(&path).unwrap();
        crate::log::init(Some(log), false, true);
        let (front, mut far_end) = std::os::unix::net::UnixStream::pair().unwrap();
        far_end.set_nonblocking(true).unwrap();
        let mut agent = Agent {
            policy: qga_policy::Policy::allow_all(),
            frozen: false,
            files: Handles::new(None),
            helper: HelperLink::new(front),
            pidfile_on_thaw: None,
            file_access: true,
        };
        let arguments = Dict::new().with("mode", V::Str(b"x\n1700000000.000000: error: FORGED".to_vec()));
        let args = crate::qmp::args::check(Command::Shutdown.spec().args, Some(&arguments)).unwrap();
        let crate::qmp::call::Call::Shutdown { mode } = crate::qmp::call::Call::build(Command::Shutdown, args).unwrap()
        else {
            unreachable!("guest-shutdown builds its own call")
        };
        assert!(shutdown(&mut agent, mode.as_deref()).is_err());
        crate::log::init(None, false, false);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(text.contains("guest-shutdown called, invalid mode"), "log:\n{text}");
        assert!(!text.contains("FORGED"), "the unchecked mode reached the log:\n{text}");
        assert!(far_end.read(&mut [0u8; 1]).is_err(), "a request reached the helper link");
    }
}
