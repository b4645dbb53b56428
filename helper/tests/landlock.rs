//! Finding 9: the helper is root for the filesystem. Its Landlock ruleset is applied, as the
//! helper applies it, in a forked child that is full root (every capability, so only Landlock
//! stands in the way), which then attempts what a compromised helper would: read /etc/shadow,
//! create, write and delete root-owned files. Each must fail with EACCES, while what the
//! operations need still works. One test in this file, so the fork happens with no other test
//! thread running.
//!
//! This kernel has Landlock: the test fails loudly if it is unavailable rather than pass.

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::libc;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use qga_helper::landlock::{abi_version, restrict, Restricted};

/// One attempt made under the ruleset: its name and whether it must succeed.
type Attempt = (&'static str, bool, fn(&Path) -> std::io::Result<()>);

const ATTEMPTS: &[Attempt] = &[
    // The attack.
    ("read /etc/shadow", false, |_| fs::File::open("/etc/shadow").map(drop)),
    ("create a file in a root-owned directory", false, |d| fs::write(d.join("outside/new"), b"x")),
    ("write a root-owned file", false, |d| fs::OpenOptions::new().write(true).open(d.join("outside/victim")).map(drop)),
    ("delete a root-owned file", false, |d| fs::remove_file(d.join("outside/victim"))),
    ("rename a root-owned file", false, |d| fs::rename(d.join("outside/victim"), d.join("state/moved"))),
    ("create a directory", false, |d| fs::create_dir(d.join("state/sub"))),
    ("read a file in /etc", false, |_| fs::read("/etc/hostname").map(drop)),
    // What the operations need.
    ("read /proc/self/mountinfo", true, |_| fs::read("/proc/self/mountinfo").map(drop)),
    ("open / as a directory", true, |_| {
        fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open("/").map(drop)
    }),
    ("open the state directory's parent as a directory", true, |d| {
        fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(d).map(drop)
    }),
    ("create the freeze marker", true, |d| {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(d.join("state/qga.state.isfrozen"))
            .map(drop)
    }),
    ("remove the freeze marker", true, |d| fs::remove_file(d.join("state/qga.state.isfrozen"))),
    ("read /sys/power/state", true, |_| {
        let mut s = String::new();
        fs::File::open("/sys/power/state")?.read_to_string(&mut s).map(drop)
    }),
    ("read cpu0's sysfs directory files", true, |_| fs::read("/sys/devices/system/cpu/online").map(drop)),
];

#[test]
fn finding_9_the_helper_cannot_read_shadow_nor_create_write_or_delete_root_owned_files() {
    assert!(nix::unistd::geteuid().is_root(), "this test shows what root is kept from: run it as root (CI does)");
    let abi = abi_version().unwrap_or_else(|e| panic!("Landlock is not available on this kernel: {e}"));
    assert!(abi >= 1);

    let dir = std::env::temp_dir().join(format!("qga-helper-landlock-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("state")).unwrap();
    fs::create_dir_all(dir.join("outside")).unwrap();
    fs::write(dir.join("outside/victim"), b"root's").unwrap();

    // SAFETY: this file holds one test, so no other test thread runs; glibc's fork leaves the
    // allocator usable in the child, which exits with _exit after its attempts.
    let outcome = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match restrict(&dir.join("state")) {
                Ok(Restricted::Enforced(_)) => {
                    let mut code = 0;
                    for (i, (_, must_succeed, attempt)) in ATTEMPTS.iter().enumerate() {
                        let ok = match attempt(&dir) {
                            Ok(()) => true,
                            Err(e) if e.kind() == ErrorKind::PermissionDenied => false,
                            // Any other error is neither the allowed outcome nor Landlock's refusal.
                            Err(_) => {
                                code = 100 + i as i32;
                                break;
                            }
                        };
                        if ok != *must_succeed {
                            code = 1 + i as i32;
                            break;
                        }
                    }
                    code
                }
                Ok(Restricted::Unavailable(_)) => 98,
                Err(_) => 99,
            };
            // SAFETY: _exit ends the child without running the test harness's exit code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    };
    let victim = fs::read(dir.join("outside/victim"));
    let _ = fs::remove_dir_all(&dir);
    match outcome {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Exited(_, 98) => panic!("restrict() found no Landlock though the ABI probe did"),
        WaitStatus::Exited(_, 99) => panic!("restrict() failed"),
        WaitStatus::Exited(_, code @ 1..=97) => {
            let (name, must, _) = ATTEMPTS[code as usize - 1];
            panic!("'{name}' {}", if must { "was refused but the helper needs it" } else { "was allowed" });
        }
        WaitStatus::Exited(_, code) => {
            panic!("'{}' failed with an error other than EACCES", ATTEMPTS[code as usize - 100].0)
        }
        other => panic!("child ended with {other:?}"),
    }
    assert_eq!(victim.unwrap(), b"root's", "the root-owned file is untouched");
}
