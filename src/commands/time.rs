//! guest-get-time (front) and guest-set-time (helper).

use super::Agent;
use crate::json::Value;
use crate::qmp::AgentError;
use qga_policy::{Command, Invocation};
use qga_protocol::ask;
use qga_protocol::set_time::{now_ns, step_seconds};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch at microsecond resolution, as 7.2 (`g_get_real_time() * 1000`).
pub fn get_time() -> Result<Value, AgentError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| AgentError::command("Failed to get time"))?;
    Ok(Value::Int(now.as_micros() as i64 * 1000))
}

pub fn set_time(agent: &mut Agent, time_ns: Option<i64>) -> Result<Value, AgentError> {
    crate::slog!("guest-set-time called");
    if let Some(ns) = time_ns {
        // 7.2's range check, here to answer early; the helper checks again.
        if !qga_protocol::set_time::time_in_range(ns) {
            return Err(AgentError::command("Invalid time"));
        }
    }
    agent.permit(Command::SetTime, &Invocation::SetTime { step: time_ns.map(|ns| step_seconds(ns, now_ns())) })?;
    agent.helper.ask(ask::set_time(time_ns))?;
    Ok(Value::empty_dict())
}
