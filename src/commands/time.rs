//! guest-get-time (front) and guest-set-time (helper).

use super::Agent;
use crate::json::Value;
use crate::privsep::link::expect;
use crate::qmp::args::Args;
use crate::qmp::AgentError;
use qga_protocol::{Reply, Request};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch at microsecond resolution, as 7.2 (`g_get_real_time() * 1000`).
pub fn get_time() -> Result<Value, AgentError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| AgentError::command("Failed to get time"))?;
    Ok(Value::Int(now.as_micros() as i64 * 1000))
}

/// First year 7.2 refuses (it accepts 1970..2069).
const YEAR_LIMIT_SECS: i64 = 3_155_760_000; // 2070-01-01T00:00:00Z

/// 7.2's range check, done here to answer early and again in the helper, which trusts no one.
pub fn time_in_range(ns: i64) -> bool {
    let secs = ns / 1_000_000_000;
    (0..YEAR_LIMIT_SECS).contains(&secs)
}

pub fn set_time(agent: &mut Agent, args: &Args) -> Result<Value, AgentError> {
    let time_ns = args.opt_int("time");
    crate::slog!("guest-set-time called");
    if let Some(ns) = time_ns {
        if !time_in_range(ns) {
            return Err(AgentError::command("Invalid time"));
        }
    }
    let reply = agent.helper.call(&Request::SetTime { time_ns })?;
    expect(reply, |r| matches!(r, Reply::Done).then(Value::empty_dict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_1970_to_2069_are_in_range() {
        assert!(time_in_range(0));
        assert!(time_in_range(-1)); // -1 ns truncates to second 0, as 7.2 (settimeofday then fails)
        assert!(time_in_range((YEAR_LIMIT_SECS - 1) * 1_000_000_000));
        assert!(!time_in_range(YEAR_LIMIT_SECS * 1_000_000_000));
        assert!(!time_in_range(-1_000_000_000));
    }
}
