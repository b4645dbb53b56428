//! A reload re-reads the policy file under the helper's Landlock ruleset, and that read access
//! must not reach the files beside it. A policy kept next to a secret (as a policy directly in
//! /etc would be, next to /etc/shadow) gets a rule on itself only: the helper, full root here
//! (so only Landlock stands in the way), reads the policy and not the secret. A policy in a
//! directory of its own is read whole, so a file an editor replaced is read too. One test in
//! this file, so the forks happen with no other test thread running.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::libc;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use qga_helper::landlock::{abi_version, reread_paths, restrict_with, Restricted};
use qga_policy::reload::Sources;

/// One attempt made under the ruleset: its name, whether it must succeed, and the attempt.
type Attempt<'a> = (&'a str, bool, &'a dyn Fn() -> std::io::Result<()>);

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `attempts` in a forked child under the ruleset the helper would apply for `policy`;
/// each must succeed (true) or be refused with EACCES (false). Returns the first that did not.
fn under_ruleset(state: &Path, policy: &Path, attempts: &[Attempt<'_>]) {
    let reread = reread_paths(&Sources { policy: Some(policy.to_path_buf()), ..Default::default() });
    // SAFETY: this file holds one test, so no other test thread runs; the child exits with
    // _exit after its attempts.
    let outcome = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match restrict_with(state, &reread.paths) {
                Ok(Restricted::Enforced(_)) => attempts
                    .iter()
                    .position(|(_, must, attempt)| match attempt() {
                        Ok(()) => !must,
                        Err(e) if e.kind() == ErrorKind::PermissionDenied => *must,
                        Err(_) => true,
                    })
                    .map_or(0, |i| i as i32 + 1),
                Ok(Restricted::Unavailable(_)) => 98,
                Err(_) => 99,
            };
            // SAFETY: _exit ends the child without running the test harness's exit code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    };
    match outcome {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Exited(_, 98) => panic!("restrict_with() found no Landlock though the ABI probe did"),
        WaitStatus::Exited(_, 99) => panic!("restrict_with() failed"),
        WaitStatus::Exited(_, code) => {
            let (name, must, _) = attempts[code as usize - 1];
            panic!("'{name}' {} (rules: {reread:?})", if must { "failed" } else { "was allowed" });
        }
        other => panic!("child ended with {other:?}"),
    }
}

#[test]
fn a_reload_reads_the_policy_but_never_a_secret_beside_it() {
    assert!(nix::unistd::geteuid().is_root(), "this test shows what root is kept from: run it as root (CI does)");
    abi_version().unwrap_or_else(|e| panic!("Landlock is not available on this kernel: {e}"));
    let base = std::env::temp_dir().join(format!("qga-helper-landlock-reload-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let state = base.join("state");
    let shared = base.join("shared");
    let own = base.join("own");
    for d in [&base, &state, &shared, &own] {
        fs::create_dir_all(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // Beside a secret: the policy reads, the secret does not, and neither does another file
    // there (which is what a policy an editor replaced by renaming is: a new file, the rule
    // was on the old one).
    let policy = shared.join("policy");
    let secret = shared.join("shadow");
    let other = shared.join("policy.new");
    write(&policy, "default deny\n", 0o644);
    write(&secret, "root:$6$secret\n", 0o600);
    write(&other, "default allow\n", 0o644);
    let attempts: [Attempt<'_>; 3] = [
        ("read the policy", true, &|| fs::read(&policy).map(drop)),
        ("read the secret beside it", false, &|| fs::read(&secret).map(drop)),
        ("read another file beside it", false, &|| fs::read(&other).map(drop)),
    ];
    under_ruleset(&state, &policy, &attempts);

    // In a directory of its own: the policy is read, and so is any other file there (a policy
    // that replaced it).
    let policy = own.join("policy");
    let other = own.join("policy.new");
    write(&policy, "default deny\n", 0o644);
    write(&other, "default allow\n", 0o644);
    let attempts: [Attempt<'_>; 3] = [
        ("read the policy", true, &|| fs::read(&policy).map(drop)),
        ("read another file in its directory", true, &|| fs::read(&other).map(drop)),
        ("read the secret in the other directory", false, &|| fs::read(&secret).map(drop)),
    ];
    under_ruleset(&state, &policy, &attempts);
    let _ = fs::remove_dir_all(&base);
}
