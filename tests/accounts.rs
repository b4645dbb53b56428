//! guest-set-user-password and guest-ssh-get/add/remove-authorized-keys over a real socket,
//! against the reference qemu-ga 7.2 run side by side, for every case that is safe on this
//! machine: argument errors, bad base64, forbidden characters, keys 7.2 refuses, and users that
//! do not exist (chpasswd is run for one, and fails as it does for 7.2). Nothing here names an
//! account that exists: the real-guest suite (tests/vm, checks_accounts.py) changes real ones.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A user name no machine running these tests has; checked, so the tests never touch a real
/// account.
const NO_SUCH_USER: &str = "qga-rs-no-such-user";

fn assert_user_absent() {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    assert!(
        !passwd.lines().any(|l| l.split(':').next() == Some(NO_SUCH_USER)),
        "{NO_SUCH_USER} exists on this machine: these tests would act on a real account"
    );
}

fn allow_all() -> Agent {
    Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()])
}

fn write_policy(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("test.policy");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// The requests both agents get: every one fails before anything changes (or names a user that
/// does not exist).
fn safe_requests() -> Vec<String> {
    let u = NO_SUCH_USER;
    let mut r: Vec<String> = [
        // Schema errors, in 7.2's order.
        r#"{"execute":"guest-set-user-password"}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ=="}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ==","crypted":"true"}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":1,"password":"YQ==","crypted":true}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ==","crypted":true,"x":1}}"#,
        // 7.2's own checks: base64, then the password, then the user name.
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"!!!","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U:x","password":"!!!","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQo=","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U:x","password":"YQo=","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U:x","password":"YQ==","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U\nx","password":"YQ==","crypted":true}}"#,
        // A user that does not exist: chpasswd runs and fails (a password with ':' is fine, a
        // NUL ends it, unpadded base64 decodes).
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ==","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ==","crypted":true}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YWI6Yw==","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"AAo=","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"YQ","crypted":false}}"#,
        r#"{"execute":"guest-set-user-password","arguments":{"username":"U","password":"","crypted":false}}"#,
        // The key commands.
        r#"{"execute":"guest-ssh-get-authorized-keys"}"#,
        r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"U"}}"#,
        r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":""}}"#,
        r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"U","x":1}}"#,
        r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"\u00e9\u0000"}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U"}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"keys":[]}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":"k"}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":["k",1]}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":["k"],"reset":1}}"#,
        r##"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":["#x"]}}"##,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":["ssh-rsa A","a\nb"]}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":["ssh-rsa AAAA x"]}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":[],"reset":true}}"#,
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"U","keys":[""],"reset":false}}"#,
        r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"U","keys":["ssh-rsa AAA"]}}"#,
        r##"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"U","keys":["#x"]}}"##,
        r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"U","keys":[]}}"#,
        r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"U","keys":[],"reset":true}}"#,
        r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"U"}}"#,
    ]
    .iter()
    .map(|s| s.replace("\"U", &format!("\"{u}")))
    .collect();
    r.push(r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"","keys":["k"]}}"#.into());
    r
}

/// The same bytes to both agents, the same bytes back.
#[test]
fn answers_match_the_reference_qemu_ga_7_2() {
    assert_user_absent();
    let reference = Reference::start_with_env(&[Reference::SYSTEMD_PATH]);
    let agent = allow_all();
    let mut ours = agent.connect();
    let mut theirs = reference.connect();
    for req in safe_requests() {
        ours.send(&req);
        theirs.send(&req);
        let (a, b) = (ours.read_raw_line(), theirs.read_raw_line());
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "{req}");
    }
}

#[test]
fn a_user_that_does_not_exist_gets_72s_texts() {
    assert_user_absent();
    let agent = allow_all();
    let mut c = agent.connect();
    let u = NO_SUCH_USER;
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-ssh-remove-authorized-keys","arguments":{{"username":"{u}","keys":["ssh-rsa AAA"]}}}}"#
    ));
    assert_error(&r, "GenericError", &format!("failed to lookup user '{u}': Success"));
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-set-user-password","arguments":{{"username":"{u}","password":"YQ==","crypted":false}}}}"#
    ));
    assert_error(&r, "GenericError", "child process has failed to set user password");
}

#[test]
fn the_default_policy_disables_the_account_commands() {
    let agent = Agent::start(&[]);
    let mut c = agent.connect();
    let enabled = enabled_map(&mut c);
    for name in [
        "guest-set-user-password",
        "guest-ssh-get-authorized-keys",
        "guest-ssh-add-authorized-keys",
        "guest-ssh-remove-authorized-keys",
    ] {
        assert_eq!(enabled.get(name), Some(&false), "{name} in guest-info");
        let r = c.cmd(&format!(r#"{{"execute":"{name}","arguments":{{"username":"{NO_SUCH_USER}"}}}}"#));
        assert_error(&r, "CommandNotFound", &format!("Command {name} has been disabled"));
    }
}

/// A policy that names the users: anyone else is refused before anything runs, with a text that
/// says so; 7.2's own argument errors still come first.
#[test]
fn a_policy_refuses_users_it_does_not_name_and_plain_passwords_when_crypted_only() {
    assert_user_absent();
    let dir = TempDir::new();
    let policy = write_policy(
        &dir,
        &format!(
            "default deny\nallow guest-ping\nallow guest-info\n\
             allow guest-set-user-password user={NO_SUCH_USER} crypted=only\n\
             allow guest-ssh-get-authorized-keys user={NO_SUCH_USER}\n\
             allow guest-ssh-add-authorized-keys user={NO_SUCH_USER}\n\
             allow guest-ssh-remove-authorized-keys user={NO_SUCH_USER}\n"
        ),
    );
    let agent = Agent::start(&["--policy", policy.to_str().unwrap()]);
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"root"}}"#);
    assert_error(&r, "GenericError", "the policy does not allow guest-ssh-get-authorized-keys for user 'root'");
    let r = c.cmd(r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":["k"]}}"#);
    assert_error(&r, "GenericError", "the policy does not allow guest-ssh-add-authorized-keys for user 'root'");
    let r = c.cmd(r##"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":["#k"]}}"##);
    assert_error(&r, "GenericError", "invalid OpenSSH public key: '#k'");
    let r = c.cmd(r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"root","keys":[]}}"#);
    assert_error(&r, "GenericError", "the policy does not allow guest-ssh-remove-authorized-keys for user 'root'");
    let r = c.cmd(
        r#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"YQ==","crypted":true}}"#,
    );
    assert_error(&r, "GenericError", "the policy does not allow guest-set-user-password for user 'root'");
    let plain = format!(
        r#"{{"execute":"guest-set-user-password","arguments":{{"username":"{NO_SUCH_USER}","password":"YQ==","crypted":false}}}}"#
    );
    assert_error(
        &c.cmd(&plain),
        "GenericError",
        "the policy does not allow guest-set-user-password with a plain-text password (crypted only)",
    );
    // The named user passes the gate and reaches the helper, which finds no such account.
    let r =
        c.cmd(&format!(r#"{{"execute":"guest-ssh-get-authorized-keys","arguments":{{"username":"{NO_SUCH_USER}"}}}}"#));
    assert_error(&r, "GenericError", &format!("failed to lookup user '{NO_SUCH_USER}': Success"));
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#)["return"], serde_json::json!({}));
}

/// The front's bounds, past 7.2's own checks: the helper's frame would refuse more.
#[test]
fn more_keys_or_longer_keys_than_the_bounds_are_refused_by_the_front() {
    assert_user_absent();
    let agent = allow_all();
    let mut c = agent.connect();
    let many: Vec<String> = (0..101).map(|i| format!("\"k{i}\"")).collect();
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-ssh-add-authorized-keys","arguments":{{"username":"{NO_SUCH_USER}","keys":[{}]}}}}"#,
        many.join(",")
    ));
    assert_error(&r, "GenericError", "too many keys: 101 (at most 100)");
    let long = "k".repeat(8193);
    let r = c.cmd(&format!(
        r#"{{"execute":"guest-ssh-remove-authorized-keys","arguments":{{"username":"{NO_SUCH_USER}","keys":["{long}"]}}}}"#
    ));
    assert_error(&r, "GenericError", "a key is longer than 8192 bytes");
    // The agent (front and helper) is still there.
    assert_eq!(c.cmd(r#"{"execute":"guest-ping"}"#)["return"], serde_json::json!({}));
}
