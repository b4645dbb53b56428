//! From one parsed message to one reply line, in qemu-ga 7.2's order: the input must be an
//! object; its members are checked (in QDict order, so the first bad member reported is the
//! one 7.2 reports); the command is looked up; the gate decides; the arguments are checked
//! against the table; only then does the handler run.

use super::args;
use super::call::Call;
use super::error::AgentError;
use crate::audit::{self, Decision as Audited};
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
    let started = audit::enabled().then(|| (std::time::SystemTime::now(), std::time::Instant::now()));
    let mut seen = Seen::default();
    let (id, result) = match message {
        Err(text) => (None, Err(AgentError::Json(text))),
        Ok(Value::Dict(request)) => {
            let id = request.get("id").cloned();
            (id, execute(agent, &request, &mut seen))
        }
        Ok(_) => (None, Err(AgentError::InputNotObject)),
    };
    if let Some((time, start)) = started {
        record(seen, time, start.elapsed(), result.as_ref().err());
    }
    match result {
        Ok(Outcome::Silent) => return false,
        Ok(Outcome::Return { value, delimit }) => {
            if delimit {
                out.push(0xFF);
            }
            write_return(&value, id.as_ref(), out);
        }
        Err(e) => write_error(&e, id.as_ref(), out),
    }
    out.push(b'\n');
    true
}

/// `{"return": VALUE, "id": ID}`, written straight into the output: the members in QDict
/// order ("return" before "id"; `the_replies_written_directly_are_the_writers_objects` holds
/// this to the writer's order).
fn write_return(value: &Value, id: Option<&Value>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"return\": ");
    writer::write(value, out);
    if let Some(id) = id {
        out.extend_from_slice(b", \"id\": ");
        writer::write(id, out);
    }
    out.push(b'}');
}

/// `{"id": ID, "error": {"class": CLASS, "desc": DESC}}` in QDict order ("id" before
/// "error", "class" before "desc"), likewise without building the objects.
fn write_error(e: &AgentError, id: Option<&Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\": ");
        writer::write(id, out);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"\"error\": {\"class\": ");
    writer::write_str(e.class().name().as_bytes(), out);
    out.extend_from_slice(b", \"desc\": ");
    writer::write_str(&e.desc(), out);
    out.extend_from_slice(b"}}");
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

/// What the audit trail needs to know of a request, filled in as dispatch learns it.
struct Seen {
    command: Option<Command>,
    requested: Option<Vec<u8>>,
    decision: Audited,
    args: Vec<(&'static str, Value)>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen { command: None, requested: None, decision: Audited::RefusedInvalid, args: Vec::new() }
    }
}

/// Hands one request's record to the audit trail, if its scope wants it.
fn record(seen: Seen, time: std::time::SystemTime, duration: std::time::Duration, error: Option<&AgentError>) {
    // An argument condition refused it (the handler's `permit`, before anything was done or
    // sent): the decision is the condition's, and its text says which argument it refused.
    let (decision, reason) = match error {
        Some(AgentError::PolicyRefused(text)) => (Audited::RefusedCondition, Some(text.clone())),
        _ => (seen.decision, None),
    };
    if !audit::wanted(seen.command, decision) {
        return;
    }
    let r = audit::Record {
        time,
        channel: audit::channel(),
        command: seen.command.map(Command::name),
        requested: seen.requested.map(|n| String::from_utf8_lossy(&n).into_owned()),
        decision,
        reason,
        error: error.map(|e| e.class().name()),
        duration,
        args: seen.args,
    };
    audit::write(r.format());
}

fn execute(agent: &mut Agent, request: &Dict, seen: &mut Seen) -> Result<Outcome, AgentError> {
    let (name, arguments) = check_members(request)?;
    seen.decision = Audited::RefusedUnknown;
    seen.requested = Some(name.to_vec());
    let command = Command::from_name_bytes(name).ok_or_else(|| AgentError::CommandNotFound(name.to_vec()))?;
    seen.command = Some(command);
    if audit::enabled() {
        seen.args = audit::pick_arguments(command, arguments);
    }
    match decide(&agent.policy, command, agent.frozen) {
        Decision::Enabled => seen.decision = Audited::Allowed,
        Decision::Disabled => {
            seen.decision = Audited::RefusedPolicy;
            return Err(AgentError::CommandDisabled(command.name()));
        }
        Decision::Frozen => {
            seen.decision = Audited::RefusedFrozen;
            return Err(AgentError::CommandFrozen(command.name()));
        }
    }
    let spec = command.spec();
    let call = Call::build(command, args::check(spec.args, arguments)?)?;
    let value = commands::run(agent, call)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn written(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        writer::write(&v, &mut out);
        out
    }

    #[test]
    fn the_replies_written_directly_are_the_writers_objects() {
        let value = Value::Dict(Dict::new().with("host-name", Value::str("vm")));
        let error = AgentError::Command(b"failed \"here\"\n".to_vec());
        for id in [None, Some(Value::Int(-5)), Some(Value::str("x")), Some(Value::List(vec![Value::Null]))] {
            let mut direct = Vec::new();
            write_return(&value, id.as_ref(), &mut direct);
            let mut reply = Dict::new().with("return", value.clone());
            if let Some(id) = &id {
                reply.insert_name("id", id.clone());
            }
            assert_eq!(direct, written(reply.into()), "{id:?}");

            let mut direct = Vec::new();
            write_error(&error, id.as_ref(), &mut direct);
            let detail =
                Dict::new().with("class", Value::str(error.class().name())).with("desc", Value::Str(error.desc()));
            let mut reply = Dict::new().with("error", detail.into());
            if let Some(id) = &id {
                reply.insert_name("id", id.clone());
            }
            assert_eq!(direct, written(reply.into()), "{id:?}");
        }
    }
}
