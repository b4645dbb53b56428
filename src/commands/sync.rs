//! guest-sync, guest-sync-delimited, guest-ping and guest-info: the handshake and the
//! self-description, answered by the front alone.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_policy::{decide, Command, Decision};

/// guest-sync and guest-sync-delimited return their id unchanged (the dispatcher adds the
/// 0xFF before the delimited reply).
pub fn sync(id: i64) -> Value {
    Value::Int(id)
}

pub fn ping() -> Result<Value, AgentError> {
    crate::slog!("guest-ping called");
    Ok(Value::empty_dict())
}

/// guest-info: the version and every command with its enabled flag from the one gate, in
/// reverse schema order as qemu-ga lists them.
pub fn info(agent: &Agent) -> Value {
    let commands = Command::all()
        .rev()
        .map(|c| {
            Dict::new()
                .with("name", Value::str(c.name()))
                .with("enabled", Value::Bool(decide(&agent.policy, c, agent.frozen) == Decision::Enabled))
                .with("success-response", Value::Bool(c.spec().success_response))
                .into()
        })
        .collect::<Vec<Value>>();
    Dict::new()
        .with("version", Value::str(env!("CARGO_PKG_VERSION")))
        .with("supported_commands", Value::List(commands))
        .into()
}
