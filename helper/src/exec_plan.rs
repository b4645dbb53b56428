//! What the helper makes of a guest-exec request once its own policy check granted it: the plan
//! the launcher runs. Pure, so the mapping from grant to user, environment and limits is tested
//! without running anything.

use qga_policy::gate::Grant;
use qga_policy::rules::ExecRule;

use crate::launcher::SCRIPT_ENV;
use crate::protocol::{ExecPlan, ExecRequest, MAX_EXEC_OUTPUT};

/// The plan for a granted request. `Unrestricted` (no exec rule in the policy) is 7.2's
/// meaning: root, the request's path, arguments and environment (without one, only a PATH:
/// the helper has no environment of its own to pass on), no time limit, 7.2's 16 MiB of output.
/// An exec rule gives its user, its environment (plus the variables it lets the request set),
/// its time limit and its output limit.
pub fn plan(req: &ExecRequest, grant: &Grant<'_>) -> ExecPlan {
    let argv: Vec<Vec<u8>> = std::iter::once(req.path.clone()).chain(req.args.iter().cloned()).collect();
    let (env, user, timeout, output_limit) = match grant {
        Grant::Exec(rule) => (
            rule_env(rule, req.env.as_deref().unwrap_or(&[])),
            Some(rule.user.clone()),
            Some(rule.timeout),
            rule.output_limit,
        ),
        Grant::Unrestricted | Grant::Allowed => {
            let env = req.env.clone().unwrap_or_else(|| vec![SCRIPT_ENV.as_bytes().to_vec()]);
            (env, None, None, MAX_EXEC_OUTPUT as u64)
        }
    };
    ExecPlan {
        program: req.path.clone(),
        argv,
        env,
        user,
        input: req.input.clone(),
        capture: req.capture,
        timeout,
        output_limit: output_limit.min(MAX_EXEC_OUTPUT as u64),
    }
}

/// The rule's `env=` variables in rule order, each replaced by the request's value when the
/// rule's `pass-env=` names it, then the request's other passed variables in request order.
/// The gate already refused a request setting a name `pass-env` does not list; the filter here
/// keeps that true whatever the caller.
fn rule_env(rule: &ExecRule, requested: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let name_of = |e: &[u8]| e.split(|&b| b == b'=').next().unwrap_or(&[]).to_vec();
    let passed: Vec<&Vec<u8>> =
        requested.iter().filter(|e| rule.pass_env.iter().any(|n| n.as_bytes() == name_of(e))).collect();
    let from_request = |name: &[u8]| passed.iter().rev().find(|e| name_of(e) == name).map(|e| (*e).clone());
    let mut env: Vec<Vec<u8>> = Vec::new();
    for (name, value) in &rule.env {
        env.push(from_request(name.as_bytes()).unwrap_or_else(|| format!("{name}={value}").into_bytes()));
    }
    for e in &passed {
        let name = name_of(e);
        if !env.iter().any(|have| name_of(have) == name) {
            env.push(from_request(&name).unwrap_or_else(|| (*e).clone()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(words: &[&str]) -> ExecRule {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        match qga_policy::rules::parse("guest-exec", &words).unwrap() {
            qga_policy::rules::Conditions::Exec(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn request(env: Option<&[&str]>) -> ExecRequest {
        ExecRequest {
            path: b"/bin/sh".to_vec(),
            args: vec![b"-c".to_vec(), b"exit 3".to_vec()],
            env: env.map(|e| e.iter().map(|s| s.as_bytes().to_vec()).collect()),
            input: None,
            capture: true,
        }
    }

    #[test]
    fn without_a_rule_it_runs_as_root_with_the_requests_environment_and_no_time_limit() {
        let p = plan(&request(Some(&["A=1"])), &Grant::Unrestricted);
        assert_eq!(p.argv, [b"/bin/sh".to_vec(), b"-c".to_vec(), b"exit 3".to_vec()]);
        assert_eq!((p.user, p.timeout, p.output_limit), (None, None, MAX_EXEC_OUTPUT as u64));
        assert_eq!(p.env, [b"A=1".to_vec()]);
        assert_eq!(plan(&request(None), &Grant::Unrestricted).env, [SCRIPT_ENV.as_bytes().to_vec()]);
    }

    #[test]
    fn a_rule_gives_its_user_limits_and_environment_and_passes_only_what_it_names() {
        let r = rule(&[
            "program=/bin/sh",
            "user=nobody",
            "args=any",
            "env=PATH=/bin",
            "env=TZ=UTC",
            "pass-env=TZ,LANG",
            "timeout=5",
            "output-limit=1K",
        ]);
        let p = plan(&request(Some(&["LANG=C", "TZ=CET", "LD_PRELOAD=/x"])), &Grant::Exec(&r));
        assert_eq!((p.user.as_deref(), p.timeout, p.output_limit), (Some("nobody"), Some(5), 1024));
        let env: Vec<String> = p.env.iter().map(|e| String::from_utf8_lossy(e).into_owned()).collect();
        assert_eq!(env, ["PATH=/bin", "TZ=CET", "LANG=C"]);
        let p = plan(&request(None), &Grant::Exec(&r));
        let env: Vec<String> = p.env.iter().map(|e| String::from_utf8_lossy(e).into_owned()).collect();
        assert_eq!(env, ["PATH=/bin", "TZ=UTC"]);
    }
}
