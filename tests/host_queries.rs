//! The host queries (guest-get-host-name, -users, -timezone, -osinfo, -devices, -diskstats,
//! -cpustats) over a real socket,
//! each answer compared with qemu-ga 7.2's on the same machine: byte for byte where it does
//! not depend on time, else the same shape and member order and counters that only grow.
//! The agent runs with the shipped default policy: the front's empty filesystem view and its
//! seccomp filter are on, so these answers prove they need no more.

mod common;
use common::*;
use serde_json::Value;

fn default_agent() -> Agent {
    Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()])
}

fn raw(c: &mut Client, request: &str) -> String {
    c.send(request);
    String::from_utf8(c.read_raw_line()).expect("a reply is UTF-8")
}

/// The reply with every number replaced: what must match 7.2 when the counters move.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    let mut in_string = false;
    for ch in line.chars() {
        if ch == '"' {
            in_string = !in_string;
        }
        if !in_string && ch.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
            continue;
        }
        in_number = false;
        out.push(ch);
    }
    out
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn host_name_is_the_kernels_node_name_byte_for_byte_as_7_2() {
    let agent = default_agent();
    let reference = Reference::start();
    let request = r#"{"execute":"guest-get-host-name","id":"h"}"#;
    let ours = raw(&mut agent.connect(), request);
    assert_eq!(ours, raw(&mut reference.connect(), request));
    let node = nix::sys::utsname::uname().unwrap().nodename().to_str().unwrap().to_string();
    assert_eq!(parse(&ours), serde_json::json!({"return": {"host-name": node}, "id": "h"}));
}

#[test]
fn guest_get_devices_is_listed_disabled_and_refused_as_7_2_does() {
    // Even allow-all cannot enable it: 7.2 has no Linux implementation and disables it.
    let agent = Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    for request in [r#"{"execute":"guest-get-devices"}"#, r#"{"execute":"guest-get-devices","arguments":{"x":1}}"#] {
        let line = raw(&mut ours, request);
        assert_eq!(line, raw(&mut theirs, request), "{request}");
        assert_error(&parse(&line), "CommandNotFound", "Command guest-get-devices has been disabled");
    }
    let flag = |c: &mut Client| enabled_map(c)["guest-get-devices"];
    assert!(!flag(&mut ours));
    assert!(!flag(&mut theirs));
}

#[test]
fn argument_errors_match_7_2() {
    let agent = default_agent();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    for name in [
        "guest-get-host-name",
        "guest-get-users",
        "guest-get-timezone",
        "guest-get-osinfo",
        "guest-get-cpustats",
        "guest-get-diskstats",
    ] {
        for arguments in [r#"{"x":1}"#, "[]", r#""s""#, "{}"] {
            let request = format!(r#"{{"execute":"{name}","arguments":{arguments},"id":7}}"#);
            let line = raw(&mut ours, &request);
            if arguments == "{}" {
                assert!(parse(&line).get("return").is_some(), "{request}: {line}");
            } else {
                assert_eq!(line, raw(&mut theirs, &request), "{request}");
            }
        }
    }
}

/// Every numeric member of every entry, keyed by entry name and member.
fn counters(reply: &Value, key: &str, inner: Option<&str>) -> Vec<((String, String), u64)> {
    let mut out = Vec::new();
    for entry in reply["return"].as_array().unwrap_or_else(|| panic!("not a list: {reply}")) {
        let id = entry[key].to_string();
        let members = match inner {
            Some(m) => entry[m].as_object().unwrap(),
            None => entry.as_object().unwrap(),
        };
        for (k, v) in members {
            if let Some(n) = v.as_u64() {
                out.push(((id.clone(), k.clone()), n));
            }
        }
    }
    out.sort();
    out
}

/// Ours before, 7.2 in between, ours after: same shape, and each counter of 7.2's answer lies
/// between ours (monotonic counters read by both from the same kernel).
fn sandwich(request: &str, key: &str, inner: Option<&str>, not_monotonic: &[&str]) {
    let agent = default_agent();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    let before = raw(&mut ours, request);
    let middle = raw(&mut theirs, request);
    let after = raw(&mut ours, request);
    assert_eq!(shape(&before), shape(&middle), "shape and member order differ from 7.2");
    assert_eq!(shape(&after), shape(&middle));
    let (b, m, a) = (
        counters(&parse(&before), key, inner),
        counters(&parse(&middle), key, inner),
        counters(&parse(&after), key, inner),
    );
    assert!(!m.is_empty(), "no counters at all: {middle}");
    for ((bk, bv), ((mk, mv), (ak, av))) in b.iter().zip(m.iter().zip(a.iter())) {
        assert!(bk == mk && mk == ak);
        if key == "cpu" && bk.1 == "cpu" || not_monotonic.contains(&bk.1.as_str()) {
            continue;
        }
        assert!(bv <= mv && mv <= av, "{bk:?}: ours {bv}, 7.2 {mv}, ours again {av}");
    }
}

#[test]
fn cpustats_have_7_2s_shape_and_counters_between_two_of_ours() {
    sandwich(r#"{"execute":"guest-get-cpustats"}"#, "cpu", None, &[]);
}

#[test]
fn cpustats_list_every_processor_line_of_proc_stat() {
    let agent = default_agent();
    let reply = agent.connect().cmd(r#"{"execute":"guest-get-cpustats"}"#);
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus: Vec<i64> =
        stat.lines().filter_map(|l| l.split_whitespace().next()?.strip_prefix("cpu")?.parse().ok()).collect();
    let listed: Vec<i64> = reply["return"].as_array().unwrap().iter().map(|e| e["cpu"].as_i64().unwrap()).collect();
    assert_eq!(listed, cpus);
    assert!(!cpus.is_empty());
}

#[test]
fn diskstats_have_7_2s_shape_and_counters_between_two_of_ours() {
    // In-flight requests go up and down.
    sandwich(r#"{"execute":"guest-get-diskstats"}"#, "name", Some("stats"), &["ios-pgr"]);
}

#[test]
fn diskstats_list_every_device_of_proc_diskstats() {
    let agent = default_agent();
    let reply = agent.connect().cmd(r#"{"execute":"guest-get-diskstats"}"#);
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    let devices: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(String::from).collect();
    let listed: Vec<String> =
        reply["return"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, devices);
}

#[test]
fn osinfo_timezone_and_users_are_byte_for_byte_7_2s() {
    // The same kernel, os-release, /etc/localtime and utmp for both; 7.2 started as its unit
    // starts it (no TZ), the front in its empty view with the files bound in.
    let agent = default_agent();
    let reference = Reference::start();
    let (mut ours, mut theirs) = (agent.connect(), reference.connect());
    for request in [
        r#"{"execute":"guest-get-osinfo","id":1}"#,
        r#"{"execute":"guest-get-timezone","id":2}"#,
        r#"{"execute":"guest-get-users","id":3}"#,
    ] {
        assert_eq!(raw(&mut ours, request), raw(&mut theirs, request), "{request}");
    }
}

#[test]
fn osinfo_reports_the_kernel_and_os_release_of_the_machine() {
    let agent = default_agent();
    let reply = agent.connect().cmd(r#"{"execute":"guest-get-osinfo"}"#);
    let uts = nix::sys::utsname::uname().unwrap();
    let info = &reply["return"];
    assert_eq!(info["kernel-release"], uts.release().to_str().unwrap());
    assert_eq!(info["kernel-version"], uts.version().to_str().unwrap());
    assert_eq!(info["machine"], uts.machine().to_str().unwrap());
    let text = std::fs::read_to_string("/etc/os-release").or_else(|_| std::fs::read_to_string("/usr/lib/os-release"));
    let text = text.expect("this machine has an os-release");
    let id = text.lines().find_map(|l| l.strip_prefix("ID=")).expect("os-release has an ID");
    assert_eq!(info["id"], id.trim_matches('"'));
}

#[test]
fn timezone_offset_and_abbreviation_are_the_c_librarys_for_etc_localtime() {
    let agent = default_agent();
    let reply = agent.connect().cmd(r#"{"execute":"guest-get-timezone"}"#);
    // date(1) with no TZ reads /etc/localtime as the agent does.
    let out = std::process::Command::new("date").env_remove("TZ").arg("+%z %Z").output().expect("date");
    let text = String::from_utf8(out.stdout).unwrap();
    let (z, name) = text.trim().split_once(' ').unwrap();
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let offset = sign * (z[1..3].parse::<i64>().unwrap() * 3600 + z[3..5].parse::<i64>().unwrap() * 60);
    assert_eq!(reply, serde_json::json!({"return": {"zone": name, "offset": offset}}));
}
