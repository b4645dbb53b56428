//! guest-get-vcpus (front, from sysfs) and guest-set-vcpus (helper).

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::args::Vcpu;
use crate::qmp::AgentError;
use qga_policy::Command;
use qga_protocol::{ask, MAX_VCPUS};
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

pub fn set(agent: &mut Agent, vcpus: Vec<Vcpu>) -> Result<Value, AgentError> {
    // The helper's own bound: a longer list would be a malformed request to it, and it would
    // exit (taking the agent with it) instead of answering.
    if vcpus.len() > MAX_VCPUS {
        return Err(AgentError::command(format!(
            "guest-set-vcpus takes at most {MAX_VCPUS} processors; {} were given",
            vcpus.len()
        )));
    }
    crate::slog!("guest-set-vcpus called");
    // A negative id is in no range (u64::MAX), so a narrowed policy refuses it.
    let ids: Vec<u64> = vcpus.iter().map(|v| u64::try_from(v.logical_id).unwrap_or(u64::MAX)).collect();
    agent.permit(Command::SetVcpus, &qga_policy::Invocation::SetVcpus { cpus: &ids })?;
    Ok(Value::Int(agent.helper.ask(ask::set_vcpus(vcpus))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::file::Handles;
    use crate::privsep::link::HelperLink;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    fn vcpus_args(count: usize) -> Vec<Vcpu> {
        vec![Vcpu { logical_id: 1, online: true }; count]
    }

    #[test]
    fn a_list_longer_than_the_helper_accepts_is_refused_by_the_front_without_asking_it() {
        let (front, mut helper) = UnixStream::pair().unwrap();
        helper.set_nonblocking(true).unwrap();
        let mut agent = Agent {
            policy: qga_policy::Policy::allow_all(),
            frozen: false,
            files: Handles::new(None),
            helper: HelperLink::new(front),
            pidfile_on_thaw: None,
            file_access: true,
        };
        // One over the bound, and far over the frame size (the front's own write failed there).
        for count in [MAX_VCPUS + 1, 120_000] {
            let e = set(&mut agent, vcpus_args(count)).unwrap_err();
            let expected = format!("guest-set-vcpus takes at most {MAX_VCPUS} processors; {count} were given");
            assert_eq!(e.desc(), expected.as_bytes());
        }
        assert!(agent.helper.lost().is_none(), "the link was given up");
        let mut byte = [0u8; 1];
        assert!(helper.read(&mut byte).is_err(), "a request reached the helper");
    }

    #[test]
    fn only_cpu_followed_by_digits_is_a_processor() {
        assert_eq!(cpu_id("cpu0"), Some(0));
        assert_eq!(cpu_id("cpu17"), Some(17));
        assert_eq!(cpu_id("cpufreq"), None);
        assert_eq!(cpu_id("cpuidle"), None);
        assert_eq!(cpu_id("online"), None);
    }
}
