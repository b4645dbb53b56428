//! The real launcher process running a harmless hook script: argv, environment, session,
//! stdio, exit status, timeout and access check. One test function only, so the test binary
//! has no other thread doing work when the launcher is forked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use qga_helper::hook::HookPhase;
use qga_helper::launcher::{Config, Job, LaunchError, Launcher, Outcome, Run};

fn write_script(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_launcher_runs_the_hook_cleanly_and_reports_how_it_ended() {
    let dir = std::env::temp_dir().join(format!("qga-helper-launcher-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("hook");
    let out = dir.join("out");

    // Records what the hook sees, then exits 3.
    write_script(
        &hook,
        &format!(
            "{{ echo \"args=$*\"; env | sort; echo \"sid=$(ps -o sid= -p $$ | tr -d ' ')\"; echo \"pid=$$\"; \
             readlink /proc/$$/fd/0; readlink /proc/$$/fd/2; }} > {out} 2>/dev/null; exit 3",
            out = out.display()
        ),
        0o700,
    );
    let mut l =
        Launcher::start(Config { hook: Some(hook.clone()), hook_timeout: Duration::from_secs(2), thaw_marker: None })
            .unwrap();
    assert_eq!(l.run(Job::Hook(HookPhase::Freeze)).unwrap(), Outcome::Exited(3));
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(seen.contains("args=freeze\n"), "{seen}");
    let env: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains('=') && !l.starts_with("args=") && !l.starts_with("sid=") && !l.starts_with("pid="))
        .collect();
    // Only the fixed PATH (plus what the shell itself sets: PWD, SHLVL, _).
    assert!(env.contains(&"PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "{seen}");
    for var in &env {
        let name = var.split('=').next().unwrap();
        assert!(["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name), "unexpected variable {var}");
    }
    let field = |k: &str| seen.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
    if let (Some(sid), Some(pid)) = (field("sid="), field("pid=")) {
        if !sid.is_empty() {
            assert_eq!(sid, pid, "the hook leads its own session");
        }
    }
    assert_eq!(seen.matches("/dev/null").count(), 2, "stdin and stderr on /dev/null: {seen}");

    // Thaw phase, success.
    write_script(&hook, "[ \"$1\" = thaw ] && exit 0; exit 9", 0o700);
    assert_eq!(l.run(Job::Hook(HookPhase::Thaw)).unwrap(), Outcome::Exited(0));

    // Killed at the timeout, together with what it started.
    write_script(&hook, "sleep 30 & sleep 30", 0o700);
    let start = Instant::now();
    assert_eq!(l.run(Job::Hook(HookPhase::Freeze)).unwrap(), Outcome::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(10));

    // Not executable: the access check answers before any exec.
    write_script(&hook, "exit 0", 0o600);
    assert_eq!(l.run(Job::Hook(HookPhase::Freeze)).unwrap(), Outcome::NotAccessible(Errno::EACCES));
    std::fs::remove_file(&hook).unwrap();
    assert_eq!(l.run(Job::Hook(HookPhase::Freeze)).unwrap(), Outcome::NotAccessible(Errno::ENOENT));

    // Killed by a signal.
    write_script(&hook, "kill -9 $$", 0o700);
    assert_eq!(l.run(Job::Hook(HookPhase::Thaw)).unwrap(), Outcome::Signaled(9));

    // A launcher without a hook refuses hook jobs on the helper's side.
    let mut none =
        Launcher::start(Config { hook: None, hook_timeout: Duration::from_secs(1), thaw_marker: None }).unwrap();
    assert!(matches!(none.run(Job::Hook(HookPhase::Freeze)), Err(LaunchError::NoHook)));

    let _ = std::fs::remove_dir_all(&dir);
}
