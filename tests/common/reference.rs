//! The reference: qemu-ga 7.2 (Debian's qemu-guest-agent) serving on a unix socket in a fresh
//! directory, started as its systemd unit starts it (an empty environment, so no TZ), and
//! killed on drop. Differential tests send it and qemu-ga-rs the same request.

use super::*;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Where Debian's package installs qemu-ga 7.2.
pub const REFERENCE: &str = "/usr/sbin/qemu-ga";

pub struct Reference {
    pub dir: TempDir,
    child: Child,
}

impl Reference {
    /// Starts the reference; fails loudly when it is not installed (the test dependencies
    /// install it) or does not serve within the deadline.
    pub fn start() -> Reference {
        Reference::start_with_env(&[])
    }

    /// The PATH systemd gives every service (the unit sets none itself): commands that look
    /// programs up on PATH (guest-set-user-password's chpasswd) need it to find them.
    pub const SYSTEMD_PATH: (&'static str, &'static str) =
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

    /// As [`Reference::start`], with these variables in its environment.
    pub fn start_with_env(env: &[(&str, &str)]) -> Reference {
        assert!(
            Path::new(REFERENCE).exists(),
            "{REFERENCE} (qemu-ga 7.2, package qemu-guest-agent) is not installed: a differential test cannot run"
        );
        let dir = TempDir::new();
        let sock = dir.path().join("ref.sock");
        let child = Command::new(REFERENCE)
            .env_clear()
            .envs(env.iter().copied())
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the reference qemu-ga");
        // Until it accepts a connection, not until the socket file exists: qemu-ga binds before
        // it listens, and a connect in between is refused.
        let deadline = Instant::now() + TIMEOUT;
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "the reference qemu-ga did not listen on {} in time", sock.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Reference { dir, child }
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.dir.path().join("ref.sock"))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
