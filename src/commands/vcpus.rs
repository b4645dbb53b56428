//! guest-get-vcpus (front, from sysfs) and guest-set-vcpus (helper).

use super::Agent;
use crate::json::{Dict, Value};
use crate::privsep::link::expect;
use crate::qmp::args::Args;
use crate::qmp::AgentError;
use qga_helper::protocol::{Reply, Request, VcpuState, MAX_VCPUS};
use std::io::ErrorKind;

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// The id in a `cpuN` directory name (`cpufreq`, `cpuidle` are not processors).
fn cpu_id(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("cpu")?;
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Every processor in directory order (7.2 does not sort); `can-offline` is always present.
pub fn get() -> Result<Value, AgentError> {
    let entries = std::fs::read_dir(CPU_DIR).map_err(|e| os_error(format!("failed to list entries: {CPU_DIR}"), &e))?;
    let mut list = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry.file_name().to_str().and_then(cpu_id) else { continue };
        let dir = format!("{CPU_DIR}/cpu{id}/");
        let (online, can_offline) = match std::fs::read(format!("{dir}online")) {
            Ok(b) => match b.first() {
                Some(c) => (*c != b'0', true),
                None => return Err(AgentError::command(format!("pread(\"{dir}/online\"): unexpected EOF"))),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => (true, false),
            Err(e) => return Err(os_error(format!("open(\"{dir}/online\")"), &e)),
        };
        list.push(
            Dict::new()
                .with("logical-id", Value::Int(id))
                .with("online", Value::Bool(online))
                .with("can-offline", Value::Bool(can_offline))
                .into(),
        );
    }
    Ok(Value::List(list))
}

fn os_error(what: String, e: &std::io::Error) -> AgentError {
    AgentError::os(what, nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

pub fn set(agent: &mut Agent, args: &Args) -> Result<Value, AgentError> {
    let given = args.vcpus("vcpus")?;
    // The helper's own bound: a longer list would be a malformed request to it, and it would
    // exit (taking the agent with it) instead of answering.
    if given.len() > MAX_VCPUS {
        return Err(AgentError::command(format!(
            "guest-set-vcpus takes at most {MAX_VCPUS} processors; {} were given",
            given.len()
        )));
    }
    let vcpus = given.iter().map(|v| VcpuState { logical_id: v.logical_id, online: v.online }).collect();
    crate::slog!("guest-set-vcpus called");
    let reply = agent.helper.call(&Request::SetVcpus { vcpus })?;
    expect(reply, |r| match r {
        Reply::VcpusSet { count } => Some(Value::Int(count)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cpu_followed_by_digits_is_a_processor() {
        assert_eq!(cpu_id("cpu0"), Some(0));
        assert_eq!(cpu_id("cpu17"), Some(17));
        assert_eq!(cpu_id("cpufreq"), None);
        assert_eq!(cpu_id("cpuidle"), None);
        assert_eq!(cpu_id("online"), None);
    }
}
