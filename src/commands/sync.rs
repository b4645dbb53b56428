//! guest-sync, guest-sync-delimited, guest-ping and guest-info: the handshake and the
//! self-description, answered by the front alone.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_policy::{decide, Command, Decision};
use std::cell::RefCell;
use std::rc::Rc;

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
/// reverse schema order as qemu-ga lists them. The answer is written once and kept: it
/// depends only on the version and each command's enabled flag, so it is written again
/// whenever one of those flags differs from the ones the kept text lists (a policy reload,
/// a freeze or thaw).
pub fn info(agent: &Agent) -> Value {
    INFO.with_borrow_mut(|kept| {
        let current = |c: Command| decide(&agent.policy, c, agent.frozen) == Decision::Enabled;
        match kept {
            Some(k) if k.enabled.iter().copied().eq(listed().map(current)) => {}
            _ => {
                let enabled: Vec<bool> = listed().map(current).collect();
                let mut text = Vec::new();
                crate::json::writer::write(&info_object(&enabled), &mut text);
                *kept = Some(KeptInfo { enabled, text: text.into() });
            }
        }
        Value::WrittenObject(kept.as_ref().expect("kept above").text.clone())
    })
}

/// guest-info's answer as last written, with the enabled flags it lists (in [`listed`] order).
struct KeptInfo {
    enabled: Vec<bool>,
    text: Rc<[u8]>,
}

thread_local! {
    static INFO: RefCell<Option<KeptInfo>> = const { RefCell::new(None) };
}

/// The commands in the order guest-info lists them.
fn listed() -> impl Iterator<Item = Command> {
    Command::all().rev()
}

/// guest-info's object for the given enabled flags (in [`listed`] order).
fn info_object(enabled: &[bool]) -> Value {
    let commands = listed()
        .zip(enabled)
        .map(|(c, &enabled)| {
            Dict::new()
                .with("name", Value::str(c.name()))
                .with("enabled", Value::Bool(enabled))
                .with("success-response", Value::Bool(c.spec().success_response))
                .into()
        })
        .collect::<Vec<Value>>();
    Dict::new()
        .with("version", Value::str(env!("CARGO_PKG_VERSION")))
        .with("supported_commands", Value::List(commands))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::file::Handles;
    use crate::privsep::link::HelperLink;

    fn agent(policy: qga_policy::Policy) -> Agent {
        let (front, _far_end) = std::os::unix::net::UnixStream::pair().unwrap();
        Agent {
            policy,
            frozen: false,
            files: Handles::new(None),
            helper: HelperLink::new(front),
            pidfile_on_thaw: None,
            file_access: true,
        }
    }

    fn written(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        crate::json::writer::write(v, &mut out);
        out
    }

    /// What guest-info answers, built afresh from the gate.
    fn fresh(agent: &Agent) -> Vec<u8> {
        let enabled: Vec<bool> =
            listed().map(|c| decide(&agent.policy, c, agent.frozen) == Decision::Enabled).collect();
        written(&info_object(&enabled))
    }

    #[test]
    fn the_kept_answer_follows_every_change_of_an_enabled_flag() {
        let mut agent = agent(qga_policy::Policy::allow_all());
        let first = written(&info(&agent));
        assert_eq!(first, fresh(&agent));
        assert_eq!(written(&info(&agent)), first, "unchanged flags, the same answer");
        // A reload that disables one command.
        agent.policy.set(Command::GetUsers, false);
        let reloaded = written(&info(&agent));
        assert_ne!(reloaded, first);
        assert_eq!(reloaded, fresh(&agent));
        // A freeze: most commands are refused while frozen.
        agent.frozen = true;
        let frozen = written(&info(&agent));
        assert_ne!(frozen, reloaded);
        assert_eq!(frozen, fresh(&agent));
        agent.frozen = false;
        agent.policy.set(Command::GetUsers, true);
        assert_eq!(written(&info(&agent)), first);
        let text = String::from_utf8(first).unwrap();
        assert!(text.starts_with("{\"version\": \""), "{text}");
        assert!(
            text.contains("{\"enabled\": true, \"name\": \"guest-get-users\", \"success-response\": true}"),
            "{text}"
        );
    }
}
