//! guest-fsfreeze-status (the front answers, with the helper's state),
//! guest-fsfreeze-freeze/-freeze-list/-thaw and guest-fstrim (helper).
//! The front's frozen flag mirrors the helper's state after every reply; it drives the gate
//! and keeps the log away from frozen filesystems.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_policy::Command;
use qga_protocol::ask::{self, Asking, FreezeCount};
use qga_protocol::{TrimResult, MAX_MOUNTPOINTS, MAX_MOUNTPOINT_LEN};
use std::io::Write;

/// The freeze state is the helper's: it froze the filesystems and alone can thaw them. The
/// front asks it rather than trusting its own mirror, and the mirror follows the answer.
pub fn status(agent: &mut Agent) -> Result<Value, AgentError> {
    let frozen = agent.helper.ask(ask::freeze_status())?;
    if agent.frozen && !frozen {
        // Thawed without a thaw request: the helper's freeze time limit expired. The record
        // follows the ring's records, which are older.
        crate::warning!("the helper thawed on its own (fsfreeze-timeout expired)");
        let record = crate::audit::event_record(std::time::SystemTime::now(), "fsfreeze-timeout", "the helper thawed");
        agent.set_frozen(false);
        crate::audit::write(record);
    } else {
        agent.set_frozen(frozen);
    }
    Ok(Value::str(if frozen { "frozen" } else { "thawed" }))
}

pub fn freeze(agent: &mut Agent) -> Result<Value, AgentError> {
    freeze_with(agent, ask::freeze())
}

/// guest-fsfreeze-freeze-list: without mount points it is guest-fsfreeze-freeze (7.2 runs the
/// same code); with them, the helper freezes only its own mounts of those names.
pub fn freeze_list(agent: &mut Agent, mountpoints: Option<Vec<Vec<u8>>>) -> Result<Value, AgentError> {
    if let Some(list) = &mountpoints {
        // The helper's own bounds: a request over them would be malformed to it, and it would
        // exit (taking the agent with it) instead of answering.
        if list.len() > MAX_MOUNTPOINTS {
            return Err(AgentError::command(format!(
                "guest-fsfreeze-freeze-list takes at most {MAX_MOUNTPOINTS} mount points; {} were given",
                list.len()
            )));
        }
        if let Some(long) = list.iter().find(|m| m.len() > MAX_MOUNTPOINT_LEN) {
            return Err(AgentError::command(format!(
                "guest-fsfreeze-freeze-list takes mount points of at most {MAX_MOUNTPOINT_LEN} bytes; one of {} was given",
                long.len()
            )));
        }
    }
    freeze_with(agent, ask::freeze_list(mountpoints))
}

/// Both freezes: the log held first, the frozen state following the helper's answer.
fn freeze_with(agent: &mut Agent, request: Asking<ask::Freeze>) -> Result<Value, AgentError> {
    crate::slog!("guest-fsfreeze called");
    // Hold log records before anything is frozen: nothing may write to a frozen filesystem.
    crate::log::set_frozen(true);
    let (count, frozen) = match agent.helper.ask(request) {
        Ok(FreezeCount { count, frozen }) => (Ok(count), frozen),
        Err(e) => (Err(e), false),
    };
    if frozen {
        agent.set_frozen(true);
    } else {
        // Nothing froze: release the held records again.
        crate::log::set_frozen(agent.frozen);
    }
    count.map(Value::Int)
}

pub fn thaw(agent: &mut Agent) -> Result<Value, AgentError> {
    let count = agent.helper.ask(ask::thaw()).map(|t| t.count);
    if count.is_err() {
        // A failed thaw hook still leaves the filesystems thawed: follow the helper's state
        // (status updates the mirror; its answer itself is not needed here).
        let _ = status(agent);
    }
    let count = count?;
    agent.set_frozen(false);
    if let Some(mut pidfile) = agent.pidfile_on_thaw.take() {
        let _ = pidfile.set_len(0);
        let _ = pidfile.write_all(format!("{}\n", std::process::id()).as_bytes());
    }
    crate::slog!("guest-fsfreeze-thaw called, {count} filesystem(s) thawed");
    Ok(Value::Int(count))
}

pub fn trim(agent: &mut Agent, minimum: Option<i64>) -> Result<Value, AgentError> {
    let minimum = minimum.unwrap_or(0);
    crate::slog!("guest-fstrim called");
    // 7.2 takes minimum as a uint64: a negative number is its two's complement.
    agent.permit(Command::Fstrim, &qga_policy::Invocation::Fstrim { minimum: minimum as u64 })?;
    let paths = agent.helper.ask(ask::trim(minimum))?;
    let paths = paths
        .into_iter()
        .map(|p| match p {
            TrimResult::Trimmed { path, minimum, trimmed } => Dict::new()
                .with("path", Value::str(path))
                .with("trimmed", Value::Int(trimmed))
                .with("minimum", Value::Int(minimum))
                .into(),
            TrimResult::Failed { path, error } => {
                Dict::new().with("path", Value::str(path)).with("error", Value::str(error)).into()
            }
        })
        .collect();
    Ok(Dict::new().with("paths", Value::List(paths)).into())
}
