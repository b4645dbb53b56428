//! guest-exec and guest-exec-status: checked here (schema, base64, the policy's exec rules),
//! carried out by the helper, whose launcher runs the program outside both filters and keeps
//! its status until guest-exec-status reports it exited.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_policy::{Command, Invocation};
use qga_protocol::{ask, Captured, ExecEnd, ExecRequest, ExecStatus};

pub fn exec(
    agent: &mut Agent,
    path: Vec<u8>,
    arg: Option<Vec<Vec<u8>>>,
    env: Option<Vec<Vec<u8>>>,
    input_data: Option<Vec<u8>>,
    capture_output: Option<bool>,
) -> Result<Value, AgentError> {
    let arg_list = arg.unwrap_or_default();
    crate::slog!("guest-exec called: \"{}\"", shown_command(&path, &arg_list));
    // 7.2 decodes input-data before anything else, so a bad one is its error whatever the rest.
    let input = input_data.as_deref().map(super::file::decode_base64).transpose()?;
    let req = ExecRequest { path, args: arg_list, env, input, capture: capture_output.unwrap_or(false) };
    agent.permit(
        Command::Exec,
        &Invocation::Exec {
            program: &req.path,
            args: &req.args,
            env: req.env.as_deref().unwrap_or(&[]),
            input: req.input.is_some(),
            capture: req.capture,
        },
    )?;
    if !req.within_bounds() {
        return Err(AgentError::command(
            "guest-exec: the arguments, environment or input-data exceed the agent's bounds \
             (2 MiB of path, arguments and environment; 16 MiB of input)",
        ));
    }
    let pid = agent.helper.ask(ask::exec(req))?;
    Ok(Dict::new().with("pid", Value::Int(pid)).into())
}

pub fn status(agent: &mut Agent, pid: i64) -> Result<Value, AgentError> {
    crate::slog!("guest-exec-status called, pid: {}", pid as u32);
    Ok(status_value(agent.helper.ask(ask::exec_status(pid))?))
}

/// 7.2's GuestExecStatus: `exited`; once exited, `exitcode` or `signal`, and for each stream
/// that captured anything its data and truncated flag (the writer orders the members as 7.2's
/// dictionary does).
fn status_value(s: ExecStatus) -> Value {
    let mut d = Dict::new().with("exited", Value::Bool(s.end.is_some()));
    match s.end {
        None => return d.into(),
        Some(ExecEnd::Exited(code)) => d.insert_name("exitcode", Value::Int(code as i64)),
        Some(ExecEnd::Signaled(sig)) => d.insert_name("signal", Value::Int(sig as i64)),
    }
    for (data, truncated, c) in [("out-data", "out-truncated", s.out), ("err-data", "err-truncated", s.err)] {
        let Captured { data: bytes, truncated: t } = c;
        if !bytes.is_empty() {
            d.insert_name(data, Value::Base64(bytes));
            d.insert_name(truncated, Value::Bool(t));
        }
    }
    d.into()
}

/// The command line as 7.2 logs it: the path and the arguments joined by spaces (bounded: the
/// log line is cut by the logger anyway).
fn shown_command(path: &[u8], args: &[Vec<u8>]) -> String {
    let mut words = vec![String::from_utf8_lossy(path).into_owned()];
    words.extend(args.iter().map(|a| String::from_utf8_lossy(a).into_owned()));
    let mut line = words.join(" ");
    if line.len() > 1024 {
        let mut cut = 1024;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_program_is_only_not_exited() {
        assert_eq!(status_value(ExecStatus::default()), Dict::new().with("exited", Value::Bool(false)).into());
    }

    #[test]
    fn an_exited_program_reports_its_code_and_only_the_streams_that_captured_something() {
        let s = ExecStatus {
            end: Some(ExecEnd::Exited(3)),
            out: Captured { data: b"out".to_vec(), truncated: false },
            err: Captured::default(),
        };
        let Value::Dict(d) = status_value(s) else { panic!() };
        let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"exited"[..], b"exitcode", b"out-data", b"out-truncated"]);
        let s = ExecStatus { end: Some(ExecEnd::Signaled(9)), ..Default::default() };
        let Value::Dict(d) = status_value(s) else { panic!() };
        assert_eq!(d.get("signal"), Some(&Value::Int(9)));
        assert_eq!(d.len(), 2);
    }
}
