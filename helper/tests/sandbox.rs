//! The running helper's sandbox, read from `/proc/PID/status`: the serving helper is under its
//! seccomp filter (`Seccomp: 2`) with exactly the documented capabilities, while the launcher
//! forked before the filter, and the programs it runs, are not (`Seccomp: 0`). Also the two
//! documented switches, `--seccomp=log` and `--no-sandbox`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use qga_helper::protocol::{Reply, Request};

/// CapEff/CapPrm/CapBnd of the serving helper: CAP_DAC_READ_SEARCH (2), CAP_SYS_ADMIN (21) and
/// CAP_SYS_TIME (25), the set `demote::KEEP` documents.
const HELPER_CAPS: &str = "0000000002200004";

/// Starts the helper, waits until it serves (one FreezeStatus answered) and returns it with
/// its launcher's pid.
fn serving(tag: &str, extra: &'static [&'static str]) -> (Helper, u32) {
    let mut h = spawn_opts(tag, "", Opts { extra, ..Opts::default() });
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: false });
    // Its children: the launcher (full capabilities) and two statfs probes (only
    // CAP_DAC_READ_SEARCH, 0x4). Each probe drops its capabilities itself once forked, which
    // may still be under way when the helper already serves: give them a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (children, launchers) = loop {
        let children = children_of(h.child.id());
        let launchers: Vec<u32> =
            children.iter().copied().filter(|&pid| status_field(pid, "CapEff") != "0000000000000004").collect();
        if (launchers.len() == 1 && children.len() == 3) || std::time::Instant::now() > deadline {
            break (children, launchers);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(launchers.len(), 1, "the helper has exactly one launcher: {children:?}");
    assert_eq!(children.len(), 3, "and two statfs probes: {children:?}");
    (h, launchers[0])
}

fn quit(mut h: Helper) -> String {
    h.send(&Request::Quit);
    assert_eq!(h.reply(), Reply::Done);
    assert_eq!(wait(&mut h.child).code(), Some(0));
    h.stderr()
}

#[test]
fn the_serving_helper_is_under_seccomp_and_its_launcher_is_not() {
    let (h, launcher) = serving("status", &[]);
    let helper = h.child.id();
    assert_eq!(status_field(helper, "Seccomp"), "2", "the helper runs under a seccomp filter");
    assert_eq!(status_field(helper, "NoNewPrivs"), "1");
    assert_eq!(status_field(launcher, "Seccomp"), "0", "the launcher was forked before the filter");
    if nix::unistd::geteuid().is_root() {
        for field in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(status_field(helper, field), HELPER_CAPS, "helper {field}");
        }
        assert_eq!(status_field(helper, "CapInh"), "0000000000000000");
        assert_eq!(status_field(helper, "CapAmb"), "0000000000000000");
        // The launcher keeps full root for the programs it runs.
        assert_eq!(status_field(launcher, "NoNewPrivs"), "0");
        assert_ne!(status_field(launcher, "CapEff"), HELPER_CAPS);
    }
    let log = quit(h);
    assert!(log.contains("seccomp filter applied"), "log:\n{log}");
    // This kernel has Landlock (the landlock test checks the ABI): the helper must use it.
    assert!(log.contains("landlock enforced (ABI "), "log:\n{log}");
}

#[test]
fn seccomp_log_switch_keeps_a_filter_in_log_mode() {
    let (h, launcher) = serving("log", &["--seccomp=log"]);
    assert_eq!(status_field(h.child.id(), "Seccomp"), "2");
    assert_eq!(status_field(launcher, "Seccomp"), "0");
    let log = quit(h);
    assert!(log.contains("log mode (--seccomp=log)"), "log:\n{log}");
}

#[test]
fn no_sandbox_switch_leaves_the_helper_without_a_filter() {
    let (h, _) = serving("nosandbox", &["--no-sandbox"]);
    assert_eq!(status_field(h.child.id(), "Seccomp"), "0");
    let log = quit(h);
    assert!(log.contains("no seccomp filter (--no-sandbox)"), "log:\n{log}");
}

/// Starts an unprivileged (nobody) helper frozen, with a hook that records its argument, its
/// sandbox state, its working directory and its umask, and makes the helper thaw and exit (a
/// refused request does that); returns what the hook recorded. FITHAW cannot act without
/// CAP_SYS_ADMIN, so nothing on the machine is thawed.
fn what_the_hook_saw(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("qga-helper-sandbox-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Sticky, so that nobody (the hook) can write its record while the hook itself, which root
    // would run, stays out of reach of other users (a plain 0777 directory is refused).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let hook = dir.join("hook");
    let out = dir.join("seen");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n{{ echo \"arg=$1\"; grep -E '^(Seccomp|NoNewPrivs):' /proc/$$/status; echo \"cwd=$(pwd)\"; \
             echo \"umask=$(umask)\"; }} > {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook_arg = hook.to_str().unwrap().to_owned();
    let extra: Vec<&str> = vec!["--fsfreeze-hook", &hook_arg];
    let opts = Opts { extra: &extra, as_nobody: true, start_frozen: true };
    let mut h = spawn_opts(tag, "guest-fsfreeze-thaw", opts);
    h.send(&Request::FreezeStatus);
    assert_eq!(h.reply(), Reply::FreezeState { frozen: true });
    assert_eq!(status_field(h.child.id(), "Seccomp"), "2");
    // Out of protocol: refused, thawed (hook included), exit.
    h.send_raw(&[1, 0, 0, 0, 200]);
    let (status, log) = h.exits_silently();
    assert_eq!(status.code(), Some(3), "log:\n{log}");
    let seen = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("the hook did not run ({e}); log:\n{log}"));
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

#[test]
fn the_hook_run_for_a_filtered_helper_runs_without_its_filter() {
    let seen = what_the_hook_saw("hook");
    assert!(seen.contains("arg=thaw"), "{seen}");
    assert!(seen.contains("Seccomp:\t0"), "the hook ran under a seccomp filter:\n{seen}");
}

#[test]
fn finding_11_programs_the_launcher_runs_start_in_root_with_a_fixed_umask() {
    // The helper's tests run from the crate directory with the test runner's umask; neither may
    // reach the programs run.
    assert_ne!(std::env::current_dir().unwrap(), std::path::Path::new("/"));
    let seen = what_the_hook_saw("cwd");
    assert!(seen.contains("cwd=/\n"), "{seen}");
    assert!(seen.contains("umask=0077\n"), "{seen}");
}
