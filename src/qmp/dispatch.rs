//! From one parsed message to one reply line, in qemu-ga 7.2's order: the input must be an
//! object; its members are checked (in QDict order, so the first bad member reported is the
//! one 7.2 reports); the command is looked up; the gate decides; the arguments are checked
//! against the table; only then does the handler run.

use super::args;
use super::error::AgentError;
use crate::commands::{self, Agent};
use crate::json::writer;
use crate::json::{qdict_order, Dict, Message, Value};
use qga_policy::{decide, Command, Decision};

/// The bytes to send for one message: nothing (a silent success), or one reply line, prefixed
/// by 0xFF for guest-sync-delimited.
pub fn handle(agent: &mut Agent, message: Message) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    handle_into(agent, message, &mut line).then_some(line)
}

/// [`handle`], appending the reply line (if any) to `out` without a copy; true if it did.
pub fn handle_into(agent: &mut Agent, message: Message, out: &mut Vec<u8>) -> bool {
    let (id, result) = match message {
        Err(text) => (None, Err(AgentError::Json(text))),
        Ok(Value::Dict(request)) => {
            let id = request.get("id").cloned();
            (id, execute(agent, &request))
        }
        Ok(_) => (None, Err(AgentError::InputNotObject)),
    };
    let (reply, delimit) = match result {
        Ok(Outcome::Silent) => return false,
        Ok(Outcome::Return { value, delimit }) => (Dict::new().with("return", value), delimit),
        Err(e) => {
            let error = Dict::new().with("class", Value::str(e.class().name())).with("desc", Value::Str(e.desc()));
            (Dict::new().with("error", error.into()), false)
        }
    };
    let reply = match id {
        Some(id) => reply.with("id", id),
        None => reply,
    };
    if delimit {
        out.push(0xFF);
    }
    writer::write(&Value::Dict(reply), out);
    out.push(b'\n');
    true
}

/// A successful command's result.
pub enum Outcome {
    /// `success-response: no` commands send nothing on success.
    Silent,
    Return {
        value: Value,
        delimit: bool,
    },
}

fn execute(agent: &mut Agent, request: &Dict) -> Result<Outcome, AgentError> {
    let (name, arguments) = check_members(request)?;
    let command = std::str::from_utf8(name)
        .ok()
        .and_then(Command::from_name)
        .ok_or_else(|| AgentError::CommandNotFound(name.to_vec()))?;
    match decide(&agent.policy, command, agent.frozen) {
        Decision::Enabled => {}
        Decision::Disabled => return Err(AgentError::CommandDisabled(command.name())),
        Decision::Frozen => return Err(AgentError::CommandFrozen(command.name())),
    }
    let spec = command.spec();
    let args = args::check(spec.args, arguments)?;
    let value = commands::run(agent, command, &args)?;
    Ok(if spec.success_response {
        Outcome::Return { value, delimit: command == Command::SyncDelimited }
    } else {
        Outcome::Silent
    })
}

/// The top-level members: `execute` (a string), `arguments` (an object), `id` (anything).
fn check_members(request: &Dict) -> Result<(&[u8], Option<&Dict>), AgentError> {
    let mut execute = None;
    let mut arguments = None;
    for (key, value) in qdict_order(request) {
        match (key, value) {
            (b"execute", Value::Str(s)) => execute = Some(s.as_slice()),
            (b"execute", _) => return Err(AgentError::ExecuteNotString),
            (b"arguments", Value::Dict(d)) => arguments = Some(d),
            (b"arguments", _) => return Err(AgentError::ArgumentsNotObject),
            (b"id", _) => {}
            (other, _) => return Err(AgentError::UnexpectedMember(other.to_vec())),
        }
    }
    execute.map(|e| (e, arguments)).ok_or(AgentError::LacksExecute)
}
