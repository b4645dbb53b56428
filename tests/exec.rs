//! guest-exec and guest-exec-status over a real socket, with the real helper and launcher:
//! every answer that is safe to ask on this machine compared byte for byte with qemu-ga 7.2's
//! (harmless programs only: /bin/true, /bin/echo, /bin/cat, /usr/bin/env, /bin/sh -c 'exit 3'),
//! then what 7.2 lacks: exec rules (the program, its user, environment, time limit with its
//! descendants, output limit), a refused program that never runs, a flood of output, and
//! thousands of requests against the bound on unreported programs.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn raw(c: &mut Client, request: &str) -> String {
    c.send(request);
    String::from_utf8(c.read_raw_line()).expect("a reply is UTF-8")
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn allow_all() -> Agent {
    Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()])
}

/// An agent whose policy is `text` (written root-owned, 0644, as the agent requires).
fn agent_with_policy(text: &str) -> Agent {
    let dir = TempDir::new();
    let policy = dir.path().join("exec.policy");
    std::fs::write(&policy, text).unwrap();
    let policy = policy.to_str().unwrap().to_string();
    Agent::start_in(dir, &["--policy", &policy])
}

fn exec(c: &mut Client, arguments: &str) -> i64 {
    let r = c.cmd(&format!(r#"{{"execute":"guest-exec","arguments":{arguments}}}"#));
    r["return"]["pid"].as_i64().unwrap_or_else(|| panic!("guest-exec {arguments}: {r}"))
}

/// guest-exec-status until it reports exited (raw line), within a deadline.
fn wait_exited(c: &mut Client, pid: i64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = raw(c, &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#));
        if parse(&line)["return"]["exited"] == true {
            return line;
        }
        assert_eq!(parse(&line), serde_json::json!({"return": {"exited": false}}), "pid {pid}");
        assert!(Instant::now() < deadline, "pid {pid} did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_raw(c: &mut Client, pid: i64) -> String {
    raw(c, &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#))
}

#[test]
fn argument_and_start_errors_match_7_2_byte_for_byte() {
    let agent = allow_all();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    for request in [
        r#"{"execute":"guest-exec"}"#,
        r#"{"execute":"guest-exec","arguments":{}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":1}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","arg":"a"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","arg":["a",1]}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","env":[true]}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","capture-output":"yes"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","input-data":5}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","input-data":"%%%"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/echo","bogus":1}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/nonexistent/program"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"no-such-program-anywhere"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":""}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/etc/passwd"}}"#,
        r#"{"execute":"guest-exec","arguments":{"path":"/"}}"#,
        r#"{"execute":"guest-exec-status"}"#,
        r#"{"execute":"guest-exec-status","arguments":{"pid":"1"}}"#,
        r#"{"execute":"guest-exec-status","arguments":{"pid":1}}"#,
        r#"{"execute":"guest-exec-status","arguments":{"pid":-5,"x":1}}"#,
    ] {
        let line = raw(&mut ours, request);
        assert_eq!(line, raw(&mut theirs, request), "{request}");
        assert!(parse(&line).get("error").is_some(), "{request}: {line}");
    }
}

#[test]
fn status_output_exit_codes_and_signals_match_7_2_and_are_reported_once() {
    let agent = allow_all();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    for arguments in [
        r#"{"path":"/bin/sh","arg":["-c","echo out; echo err >&2; exit 3"],"capture-output":true}"#,
        r#"{"path":"/bin/sh","arg":["-c","exit 3"]}"#,
        r#"{"path":"/bin/cat","input-data":"aGVsbG8sIHdvcmxkCg==","capture-output":true}"#,
        r#"{"path":"/bin/cat","input-data":"","capture-output":true}"#,
        r#"{"path":"/bin/echo","arg":["hi"]}"#,
        r#"{"path":"/bin/echo","arg":["hi"],"capture-output":false}"#,
        r#"{"path":"/bin/true","capture-output":true}"#,
        r#"{"path":"true","env":["PATH=/usr/bin:/bin"]}"#,
        r#"{"path":"/usr/bin/env","env":["A=1","B=two words"],"capture-output":true}"#,
        r#"{"path":"/bin/sh","arg":["-c","kill -TERM $$"],"capture-output":true}"#,
        r#"{"path":"/bin/sh","arg":["-c","printf '\\000\\377'; exit 255"],"capture-output":true}"#,
    ] {
        let (p1, p2) = (exec(&mut ours, arguments), exec(&mut theirs, arguments));
        let (a, b) = (wait_exited(&mut ours, p1), wait_exited(&mut theirs, p2));
        assert_eq!(a, b, "{arguments}");
        // Reported exited once: then forgotten, as 7.2 forgets it.
        assert_eq!(status_raw(&mut ours, p1), status_raw(&mut theirs, p2), "{arguments}, asked again");
        assert!(status_raw(&mut ours, p1).contains("Invalid parameter 'pid'"));
    }
    // A program still running is "not exited" in both.
    let arguments = r#"{"path":"/bin/sh","arg":["-c","read x"],"input-data":""}"#;
    let slow = r#"{"path":"/bin/sh","arg":["-c","exec sleep 2"]}"#;
    let (p1, p2) = (exec(&mut ours, slow), exec(&mut theirs, slow));
    assert_eq!(status_raw(&mut ours, p1), status_raw(&mut theirs, p2));
    assert_eq!(parse(&status_raw(&mut ours, p1)), serde_json::json!({"return": {"exited": false}}));
    assert_eq!(wait_exited(&mut ours, p1), wait_exited(&mut theirs, p2));
    let (p1, p2) = (exec(&mut ours, arguments), exec(&mut theirs, arguments));
    assert_eq!(wait_exited(&mut ours, p1), wait_exited(&mut theirs, p2), "{arguments}");
}

#[test]
fn without_env_the_program_gets_only_a_path_not_the_agents_environment() {
    let agent = allow_all();
    let mut c = agent.connect();
    let pid = exec(&mut c, r#"{"path":"/usr/bin/env","capture-output":true}"#);
    let r = parse(&wait_exited(&mut c, pid));
    let out = base64_decode(r["return"]["out-data"].as_str().unwrap());
    assert_eq!(out, b"PATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn output_beyond_16_mib_is_truncated_like_7_2_and_the_agent_keeps_serving() {
    let agent = allow_all();
    let mut c = agent.connect();
    let pid = exec(&mut c, r#"{"path":"/bin/sh","arg":["-c","head -c 40000000 /dev/zero"],"capture-output":true}"#);
    // The agent answers while the program floods its pipe.
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    let r = parse(&wait_exited(&mut c, pid));
    assert_eq!(r["return"]["exitcode"], 0);
    assert_eq!(r["return"]["out-truncated"], true);
    let out = base64_decode(r["return"]["out-data"].as_str().unwrap());
    assert_eq!(out.len(), 16 * 1024 * 1024);
    assert!(out.iter().all(|&b| b == 0));
    assert!(r["return"].get("err-data").is_none());
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    // The front did not keep the output: its resident memory is back near its idle size.
    let rss = vm_kib(agent.front_pid, "VmRSS");
    assert!(rss < 64 * 1024, "front resident memory after the flood: {rss} KiB");
}

#[test]
fn at_most_64_programs_wait_unreported_and_thousands_of_requests_are_served() {
    let agent = allow_all();
    let mut c = agent.connect();
    let mut total = 0;
    while total < 1000 {
        let mut pids = Vec::new();
        for _ in 0..64 {
            pids.push(exec(&mut c, r#"{"path":"/bin/true"}"#));
        }
        total += pids.len();
        let r = c.cmd(r#"{"execute":"guest-exec","arguments":{"path":"/bin/true"}}"#);
        let desc = r["error"]["desc"].as_str().unwrap_or_else(|| panic!("the 65th program started: {r}"));
        assert!(desc.contains("64 programs are running or have exited"), "{desc}");
        for pid in pids {
            assert_eq!(
                parse(&wait_exited(&mut c, pid)),
                serde_json::json!({"return": {"exitcode": 0, "exited": true}})
            );
        }
    }
    // Nothing is left behind: the launcher reaped every supervisor.
    let launcher = children_of(agent.helper_pid);
    for l in launcher {
        assert!(children_of(l).is_empty(), "launcher {l} still has children");
    }
}

const RULES: &str = "default allow
deny guest-file-*
allow guest-exec program=/bin/sh user=nobody arg=-c arg=exit* capture=yes
allow guest-exec program=/usr/bin/id user=nobody arg=-u capture=yes
allow guest-exec program=/usr/bin/env user=nobody capture=yes env=PATH=/bin env=LANG=C pass-env=TZ
allow guest-exec program=/bin/cat user=nobody input=yes capture=yes output-limit=4
allow guest-exec program=/bin/bash user=root args=any capture=yes timeout=1
allow guest-exec program=/usr/bin/id user=no-such-user-here arg=-g
";

#[test]
fn a_rule_runs_its_program_as_its_user_with_its_environment_and_output_limit() {
    let agent = agent_with_policy(RULES);
    let mut c = agent.connect();
    let out = |c: &mut Client, arguments: &str| {
        let pid = exec(c, arguments);
        let r = parse(&wait_exited(c, pid));
        (r["return"]["exitcode"].as_i64(), base64_decode(r["return"]["out-data"].as_str().unwrap_or("")))
    };
    let nobody = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("nobody:x:").map(|rest| rest.split(':').next().unwrap().to_string()))
        .expect("nobody in /etc/passwd");
    assert_eq!(
        out(&mut c, r#"{"path":"/usr/bin/id","arg":["-u"],"capture-output":true}"#),
        (Some(0), format!("{nobody}\n").into_bytes())
    );
    assert_eq!(
        out(&mut c, r#"{"path":"/usr/bin/env","env":["TZ=UTC"],"capture-output":true}"#),
        (Some(0), b"PATH=/bin\nLANG=C\nTZ=UTC\n".to_vec())
    );
    assert_eq!(out(&mut c, r#"{"path":"/bin/sh","arg":["-c","exit 7"],"capture-output":true}"#).0, Some(7));
    let pid = exec(&mut c, r#"{"path":"/bin/cat","input-data":"aGVsbG8sIHdvcmxk","capture-output":true}"#);
    let r = parse(&wait_exited(&mut c, pid));
    assert_eq!(base64_decode(r["return"]["out-data"].as_str().unwrap()), b"hell");
    assert_eq!(r["return"]["out-truncated"], true);
    let r = c.cmd(r#"{"execute":"guest-exec","arguments":{"path":"/usr/bin/id","arg":["-g"]}}"#);
    assert_error(
        &r,
        "GenericError",
        "guest-exec: the user 'no-such-user-here' the policy runs the program as does not exist",
    );
}

#[test]
fn a_request_no_rule_allows_is_refused_by_name_and_nothing_runs() {
    let agent = agent_with_policy(RULES);
    let mut c = agent.connect();
    let marker = agent.path("ran");
    let refused = [
        (format!(r#"{{"path":"/bin/touch","arg":["{}"]}}"#, marker.display()), "of '/bin/touch'"),
        (
            format!(r#"{{"path":"/bin/sh","arg":["-c","touch {}"]}}"#, marker.display()),
            "of '/bin/sh' with these arguments",
        ),
        (r#"{"path":"sh","arg":["-c","exit 1"]}"#.to_string(), "of 'sh'"),
        (r#"{"path":"/bin/sh","arg":["-c","exit 1"],"input-data":""}"#.to_string(), "with input-data"),
        (r#"{"path":"/usr/bin/id","arg":["-u"]}"#.to_string(), ""),
        (r#"{"path":"/usr/bin/env","env":["LD_PRELOAD=/x.so"]}"#.to_string(), "with environment variable 'LD_PRELOAD'"),
    ];
    for (arguments, what) in refused {
        let r = c.cmd(&format!(r#"{{"execute":"guest-exec","arguments":{arguments}}}"#));
        if what.is_empty() {
            // Allowed: id -u without capture (capture is allowed, not required).
            assert!(r["return"]["pid"].is_i64(), "{arguments}: {r}");
            continue;
        }
        let desc = r["error"]["desc"].as_str().unwrap_or_else(|| panic!("{arguments} was not refused: {r}"));
        assert_eq!(r["error"]["class"], "GenericError");
        assert!(desc.starts_with("the policy does not allow guest-exec ") && desc.contains(what), "{desc}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "a refused program ran");
}

#[test]
fn a_program_past_its_time_limit_is_killed_with_every_descendant() {
    let agent = agent_with_policy(RULES);
    let mut c = agent.connect();
    // A child in the program's session and a grandchild that left it (setsid): both print
    // their pids, then everyone sleeps past the one-second limit.
    let script = "sleep 60 & echo $!; setsid sleep 61 & echo $!; sleep 62";
    let started = Instant::now();
    let pid = exec(&mut c, &format!(r#"{{"path":"/bin/bash","arg":["-c","{script}"],"capture-output":true}}"#));
    let r = parse(&wait_exited(&mut c, pid));
    assert!(started.elapsed() < Duration::from_secs(10), "killed late: {:?}", started.elapsed());
    assert_eq!(r["return"]["signal"], 9, "{r}");
    let out = String::from_utf8(base64_decode(r["return"]["out-data"].as_str().unwrap())).unwrap();
    let pids: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{out}");
    for p in pids {
        assert!(wait_gone(p, Duration::from_secs(5)), "descendant {p} outlived the time limit");
    }
}
