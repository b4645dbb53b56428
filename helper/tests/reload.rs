//! A compromised front cannot enable a command through a reload: the reload request carries
//! nothing, so a forged policy riding on it (or a reload answer sent as a request) ends the
//! helper without an answer, and a genuine reload applies only what the helper read itself.
//! Only requests that must be refused, or that act on nothing (Reload, FreezeStatus, Quit), are
//! sent; see `common`.

mod common;

use common::*;
use qga_helper::protocol::{MemoryBlockState, Reply, Request, ShutdownMode};
use qga_policy::{Command, Policy};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A root-owned 0644 policy file with `text`, in a directory of its own (root-owned, 0755).
fn policy_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qga-helper-reload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("policy");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn index(c: Command) -> [u8; 4] {
    (c.index() as u32).to_le_bytes()
}

#[test]
fn a_reload_request_carrying_a_forged_policy_ends_the_helper_without_an_answer() {
    let policy = policy_file("forged-request", "default deny\nallow guest-ping\n");
    let extra = ["--policy", policy.to_str().unwrap()];
    let mut h = spawn_opts("reload-forged-request", "", Opts { extra: &extra, as_nobody: true, ..Opts::default() });
    // Tag 60 (Reload) followed by "one command: guest-shutdown", as if the front could say it.
    let mut payload = vec![60, 1, 0, 0, 0];
    payload.extend_from_slice(&index(Command::Shutdown));
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&payload);
    h.send_raw(&frame);
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("trailing bytes"), "log:\n{log}");
}

#[test]
fn a_reload_answer_sent_to_the_helper_as_a_request_ends_it_without_an_answer() {
    for (tag, reply) in [
        ("reloaded", Reply::Reloaded { policy: Policy::allow_all() }),
        ("refused", Reply::ReloadRefused { restart: false, reason: "x".into() }),
    ] {
        let mut h = spawn_opts(&format!("reload-forged-{tag}"), "", Opts { as_nobody: true, ..Opts::default() });
        let payload = reply.encode();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&payload);
        h.send_raw(&frame);
        let (status, log) = h.exits_silently();
        assert_refused(status, &log);
    }
}

#[test]
fn a_genuine_reload_applies_what_the_helper_read_and_the_helper_refuses_what_it_disabled() {
    // Started with guest-shutdown enabled (as the front said at start-up); the file on disk
    // now disables it.
    let policy = policy_file("genuine", "default allow\ndeny guest-file-*\ndeny guest-shutdown\n");
    let extra = ["--policy", policy.to_str().unwrap()];
    let mut h =
        spawn_opts("reload-genuine", "guest-shutdown", Opts { extra: &extra, as_nobody: true, ..Opts::default() });
    h.send(&Request::Reload);
    let Reply::Reloaded { policy: reloaded } = h.reply() else { panic!("log:\n{}", h.stderr()) };
    assert!(!reloaded.is_enabled(Command::Shutdown));
    assert!(reloaded.is_enabled(Command::Ping) && !reloaded.is_enabled(Command::FileOpen));
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: false }, "a reload leaves the frozen state alone");
    // Whatever the front now believes, the helper refuses the command the reload disabled.
    h.send(&Request::Shutdown { mode: ShutdownMode::Powerdown });
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
    assert!(log.contains("guest-shutdown is not enabled"), "log:\n{log}");
}

#[test]
fn a_reload_that_needs_file_commands_is_refused_unless_the_front_started_with_them() {
    let policy = policy_file("files", "default allow\n");
    let path = policy.to_str().unwrap();
    let mut h = spawn_opts("reload-files", "", Opts { extra: &["--policy", path], as_nobody: true, ..Opts::default() });
    h.send(&Request::Reload);
    match h.reply() {
        Reply::ReloadRefused { restart: true, reason } => assert!(reason.contains("needs a restart"), "{reason}"),
        other => panic!("{other:?}"),
    }
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);

    // The front's sandbox has the file commands, but guest-file-open was off at start: the
    // helper's Landlock ruleset gives it no file, so enabling it by reload needs a restart too.
    let mut h = spawn_opts(
        "reload-files-front",
        "",
        Opts { extra: &["--policy", path, "--front-files"], as_nobody: true, ..Opts::default() },
    );
    h.send(&Request::Reload);
    let reply = h.reply();
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
    if h.stderr().contains("landlock is unavailable") {
        // Nothing narrowed the helper, so nothing is beyond its reach.
        assert_eq!(reply, Reply::Reloaded { policy: Policy::allow_all() });
    } else {
        match reply {
            Reply::ReloadRefused { restart: true, reason } => {
                assert!(reason.contains("guest-file-open") && reason.contains("needs a restart"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    // With guest-file-open on at start (no rules: any path), everything is within its reach.
    let mut h = spawn_opts(
        "reload-files-open",
        "guest-file-open",
        Opts { extra: &["--policy", path, "--front-files"], as_nobody: true, ..Opts::default() },
    );
    h.send(&Request::Reload);
    assert_eq!(h.reply(), Reply::Reloaded { policy: Policy::allow_all() });
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
}

#[test]
fn an_invalid_file_is_refused_with_its_line_and_changes_nothing() {
    let policy = policy_file("invalid", "default allow\nallow guest-pnig\n");
    let extra = ["--policy", policy.to_str().unwrap()];
    let mut h = spawn_opts("reload-invalid", "", Opts { extra: &extra, as_nobody: true, ..Opts::default() });
    h.send(&Request::Reload);
    match h.reply() {
        Reply::ReloadRefused { restart: false, reason } => {
            assert!(reason.contains(&format!("{}:2: unknown command 'guest-pnig'", policy.display())), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Still nothing enabled: a shutdown is refused.
    h.send(&Request::Shutdown { mode: ShutdownMode::Halt });
    let (status, log) = h.exits_silently();
    assert_refused(status, &log);
}

#[test]
fn a_reload_brings_argument_conditions_into_the_helpers_own_copy_and_it_checks_them() {
    // Started unrestricted for guest-set-memory-blocks; the file now narrows it to blocks 0-1.
    let policy =
        policy_file("conditions", "default allow\ndeny guest-file-*\nallow guest-set-memory-blocks blocks=0-1\n");
    let extra = ["--policy", policy.to_str().unwrap()];
    let mut h = spawn_opts(
        "reload-conditions",
        "guest-set-memory-blocks",
        Opts { extra: &extra, as_nobody: true, ..Opts::default() },
    );
    h.send(&Request::Reload);
    let Reply::Reloaded { policy: reloaded } = h.reply() else { panic!("log:\n{}", h.stderr()) };
    let lines: Vec<String> = reloaded.conditions().iter().map(|n| n.to_line()).collect();
    assert_eq!(lines, ["guest-set-memory-blocks \"blocks=0-1\""]);
    // Whatever the front does with that answer, the helper checks its own copy: a block
    // outside the range is refused (a block that does not exist, so nothing could change).
    h.send(&Request::SetMemoryBlocks { blocks: vec![MemoryBlockState { phys_index: 999_999_999, online: true }] });
    assert_eq!(
        h.reply(),
        Reply::Failed { desc: "the policy does not allow guest-set-memory-blocks phys-index 999999999".into() }
    );
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
}

#[test]
fn a_forged_reload_answer_without_the_conditions_cannot_widen_the_helper() {
    // The helper started narrowed; a front that sends it an answer as if the conditions were
    // gone ends it without an answer (a reply is no request), and nothing changed before that.
    let n = qga_policy::Narrowing::parse(Command::SetMemoryBlocks, vec!["blocks=0-1".into()]).unwrap();
    let narrowed = Reply::Reloaded { policy: Policy::allow_all().with_conditions(vec![n]) };
    let widened = Reply::Reloaded { policy: Policy::allow_all() };
    for (tag, reply) in [("narrowed", narrowed), ("widened", widened)] {
        let extra = ["--conditions", "guest-set-memory-blocks \"blocks=0-1\""];
        let mut h = spawn_opts(
            &format!("reload-forged-conditions-{tag}"),
            "guest-set-memory-blocks",
            Opts { extra: &extra, as_nobody: true, ..Opts::default() },
        );
        let payload = reply.encode();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&payload);
        h.send_raw(&frame);
        let (status, log) = h.exits_silently();
        assert_refused(status, &log);
    }
}
