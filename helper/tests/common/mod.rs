//! Starting the real helper binary the way the front does, for the integration tests.
//!
//! These tests run the binary on the machine that runs the tests, possibly as root, so they
//! only ever send requests that must be refused before acting (malformed frames, commands the
//! policy disables, out-of-state requests to an unprivileged helper) or that have no effect
//! (FreezeStatus, Quit, EOF). Never send Freeze, Thaw, Trim, Shutdown, Suspend, SetVcpus or
//! SetTime with valid arguments to an enabled, privileged helper here.

// Each test crate uses part of the harness.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

// The one /proc reader of the Rust tests, shared with the front's integration tests.
#[path = "../../../tests/common/procfs.rs"]
mod procfs;
// Each test crate uses part of the harness (as for dead code above).
#[allow(unused_imports)]
pub use procfs::*;
use qga_helper::protocol::{read_frame, write_frame, Reply, Request};

pub const HELPER: &str = env!("CARGO_BIN_EXE_qemu-ga-rs-helper");
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The uid and gid an unprivileged helper runs as (nobody).
pub const NOBODY: u32 = 65534;

pub struct Helper {
    pub child: Child,
    pub chan: UnixStream,
    pub statedir: PathBuf,
}

/// How to start the helper beyond the defaults.
#[derive(Default)]
pub struct Opts<'a> {
    /// More arguments after `--statedir DIR --enabled LIST`.
    pub extra: &'a [&'a str],
    /// Start it as nobody (when the tests run as root): no capability at all, so an operation
    /// it is tricked into could not act on this machine.
    pub as_nobody: bool,
    /// Leave the freeze marker in the state directory, so it starts frozen (as after a crash).
    pub start_frozen: bool,
}

pub fn statedir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qga-helper-frames-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the helper the way the front does: empty environment, stdin/stdout on /dev/null,
/// stderr piped, and the helper's end of a socketpair on fd 3.
pub fn spawn(tag: &str, enabled: &str) -> Helper {
    spawn_opts(tag, enabled, Opts::default())
}

pub fn spawn_opts(tag: &str, enabled: &str, opts: Opts<'_>) -> Helper {
    let dir = statedir(tag);
    if opts.as_nobody {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    if opts.start_frozen {
        std::fs::write(qga_helper::freeze::marker_path(&dir), b"").unwrap();
    }
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).expect("socketpair");
    let mut args = vec!["--statedir", dir.to_str().unwrap(), "--enabled", enabled];
    args.extend_from_slice(opts.extra);
    let as_nobody = opts.as_nobody && nix::unistd::geteuid().is_root();
    let child = spawn_fd3_as(&theirs, &args, as_nobody);
    drop(theirs);
    let chan = UnixStream::from(ours);
    chan.set_read_timeout(Some(DEADLINE)).unwrap();
    Helper { child, chan, statedir: dir }
}

pub fn spawn_with_fd3(fd3: &OwnedFd, args: &[&str]) -> Child {
    spawn_fd3_as(fd3, args, false)
}

fn spawn_fd3_as(fd3: &OwnedFd, args: &[&str], as_nobody: bool) -> Child {
    let raw = fd3.as_raw_fd();
    let mut cmd = Command::new(HELPER);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls async-signal-safe dup2/fcntl and
    // setgroups/setgid/setuid on descriptors and ids this process owns; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                if nix::libc::fcntl(3, nix::libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if nix::libc::dup2(raw, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if as_nobody
                && (nix::libc::setgroups(0, std::ptr::null()) == -1
                    || nix::libc::setgid(NOBODY) == -1
                    || nix::libc::setuid(NOBODY) == -1)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn helper")
}

pub fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("helper did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Helper {
    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The helper may already have gone after a refusal; a failed write is fine then.
        let _ = self.chan.write_all(bytes);
    }

    pub fn send(&mut self, req: &Request) {
        write_frame(&mut self.chan, &req.encode()).unwrap();
    }

    pub fn reply(&mut self) -> Reply {
        Reply::decode(&read_frame(&mut self.chan).expect("a reply frame")).expect("a valid reply")
    }

    /// Waits for the exit and checks that not one reply byte was written.
    pub fn exits_silently(mut self) -> (ExitStatus, String) {
        let status = wait(&mut self.child);
        let mut rest = vec![];
        let _ = self.chan.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the helper answered: {rest:?}");
        (status, self.stderr())
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.statedir);
    }
}

pub fn assert_refused(status: ExitStatus, log: &str) {
    assert!(!status.success(), "exit status {status:?}, log:\n{log}");
    assert!(log.contains("refusing request"), "log:\n{log}");
}
