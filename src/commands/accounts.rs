//! guest-set-user-password and guest-ssh-get/add/remove-authorized-keys: 7.2's argument checks
//! and error texts here, in 7.2's order, then the policy's user rule, then one request to the
//! helper, which checks it all again and has the work done by its launcher (chpasswd for the
//! password; a child running as the user for the keys).

use super::Agent;
use crate::commands::file::decode_base64;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_policy::{Command, Invocation};
use qga_protocol::accounts::{check_key, check_key_bounds, check_password, check_password_user, Secret};
use qga_protocol::ask::{self, NoSuchUser};

/// `password` is the base64 text as sent.
pub fn set_user_password(
    agent: &mut Agent,
    user: &[u8],
    password: &Secret,
    crypted: bool,
) -> Result<Value, AgentError> {
    let decoded = Secret(decode_base64(&password.0)?);
    let raw = check_password(&decoded.0).map_err(AgentError::command)?;
    check_password_user(user).map_err(AgentError::command)?;
    agent.permit(Command::SetUserPassword, &Invocation::SetUserPassword { user, crypted })?;
    let password = Secret(raw.to_vec());
    if password.0.len() > qga_protocol::accounts::MAX_PASSWORD {
        return Err(AgentError::command("the password is too long"));
    }
    agent.helper.ask(ask::set_user_password(user.to_vec(), password, crypted))?;
    Ok(Value::empty_dict())
}

pub fn ssh_get(agent: &mut Agent, user: &[u8]) -> Result<Value, AgentError> {
    check_user(agent, Command::SshGetAuthorizedKeys, user)?;
    let keys = agent.helper.ask(ask::ssh_get_keys(user.to_vec()))?.map_err(|NoSuchUser| lookup_failed(user))?;
    let list = keys.into_iter().map(Value::Str).collect();
    Ok(Dict::new().with("keys", Value::List(list)).into())
}

pub fn ssh_add(agent: &mut Agent, user: &[u8], keys: &[Vec<u8>], reset: bool) -> Result<Value, AgentError> {
    check_keys(keys)?;
    check_user(agent, Command::SshAddAuthorizedKeys, user)?;
    agent
        .helper
        .ask(ask::ssh_add_keys(user.to_vec(), keys.to_vec(), reset))?
        .map_err(|NoSuchUser| lookup_failed(user))?;
    Ok(Value::empty_dict())
}

pub fn ssh_remove(agent: &mut Agent, user: &[u8], keys: &[Vec<u8>]) -> Result<Value, AgentError> {
    check_keys(keys)?;
    check_user(agent, Command::SshRemoveAuthorizedKeys, user)?;
    agent.helper.ask(ask::ssh_remove_keys(user.to_vec(), keys.to_vec()))?.map_err(|NoSuchUser| lookup_failed(user))?;
    Ok(Value::empty_dict())
}

/// 7.2 checks the keys before it looks the user up; the bounds come after its own checks.
fn check_keys(keys: &[Vec<u8>]) -> Result<(), AgentError> {
    for k in keys {
        check_key(k).map_err(AgentError::Command)?;
    }
    check_key_bounds(keys).map_err(AgentError::command)
}

/// The policy's user rule, and the name's length (a longer one is in no passwd file; the
/// helper's frame would refuse it).
fn check_user(agent: &Agent, command: Command, user: &[u8]) -> Result<(), AgentError> {
    agent.permit(command, &Invocation::SshKeys { user })?;
    if user.len() > qga_protocol::accounts::MAX_USERNAME {
        return Err(lookup_failed(user));
    }
    Ok(())
}

/// 7.2's text for a user that is not there: GLib reports the lookup's errno, 0, as "Success".
fn lookup_failed(user: &[u8]) -> AgentError {
    let mut t = b"failed to lookup user '".to_vec();
    t.extend_from_slice(user);
    t.extend_from_slice(b"': Success");
    AgentError::Command(t)
}
