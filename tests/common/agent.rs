//! Running the real `qemu-ga-rs`: to completion, or as a serving agent on a unix socket in a
//! fresh directory, killed with everything it started on drop.

use super::*;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `qemu-ga-rs ARGS` to completion (with a deadline) with no config file; returns its
/// output. For invocations that are expected to exit by themselves (bad options, refused
/// start-up, --check-policy).
pub fn run_to_exit(args: &[&str]) -> Output {
    ensure_helper_built();
    let dir = TempDir::new();
    let mut child = Command::new(FRONT)
        .args(args)
        .env("QGA_CONF", dir.path().join("no-such.conf"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qemu-ga-rs");
    let status = wait_child(&mut child, TIMEOUT);
    if status.is_none() {
        let pid = child.id();
        for c in children_of(pid) {
            kill(c, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("qemu-ga-rs {args:?} did not exit within {TIMEOUT:?}");
    }
    child.wait_with_output().expect("collect output")
}

/// Starts an agent on `DIR/qga.sock` with statedir `DIR` and `extra` options, run to
/// completion: for a start-up that must be refused.
pub fn start_to_exit(dir: &Path, extra: &[&str]) -> Output {
    let sock = dir.join("qga.sock");
    let mut args = vec!["-m", "unix-listen", "-p", sock.to_str().unwrap(), "-t", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_to_exit(&args)
}

// ---- a running agent ----

/// A running agent on `DIR/qga.sock` with statedir `DIR`.
pub struct Agent {
    pub dir: TempDir,
    pub child: Option<Child>,
    pub front_pid: u32,
    pub helper_pid: u32,
    extra: Vec<String>,
    nofile: Option<u64>,
    env: Vec<(String, String)>,
}

impl Agent {
    /// Starts an agent in a fresh directory with `-m unix-listen -p DIR/qga.sock -t DIR EXTRA`.
    pub fn start(extra: &[&str]) -> Agent {
        Agent::start_in(TempDir::new(), extra)
    }

    /// Starts an agent in an existing directory (e.g. one holding a state file or a marker).
    pub fn start_in(dir: TempDir, extra: &[&str]) -> Agent {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, front_pid, helper_pid) = launch(dir.path(), &extra);
        Agent { dir, child: Some(child), front_pid, helper_pid, extra, nofile: None, env: Vec::new() }
    }

    /// Starts an agent in a fresh directory with these variables added to its environment.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let dir = TempDir::new();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, front_pid, helper_pid) = launch_with(dir.path(), &extra, None, &env);
        Agent { dir, child: Some(child), front_pid, helper_pid, extra, nofile: None, env }
    }

    /// Starts an agent whose soft RLIMIT_NOFILE is `soft` at start-up (systemd's default
    /// soft limit is 1024), the hard limit left as it is.
    pub fn start_with_nofile(extra: &[&str], soft: u64) -> Agent {
        let dir = TempDir::new();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, front_pid, helper_pid) = launch_with(dir.path(), &extra, Some(soft), &[]);
        Agent { dir, child: Some(child), front_pid, helper_pid, extra, nofile: Some(soft), env: Vec::new() }
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the agent wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.sock())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        kill(self.front_pid, nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(TIMEOUT).unwrap_or_else(|| panic!("the agent did not exit within {TIMEOUT:?} of SIGTERM"))
    }

    /// Waits for the front to exit; None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_child(self.child.as_mut().expect("agent running"), timeout)?;
        self.child = None;
        Some(status)
    }

    /// Stops the agent with SIGTERM and starts a new one in the same directory with the same
    /// options.
    pub fn restart(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "agent exited with {status} on SIGTERM; stderr:\n{}", self.stderr());
        let (child, front_pid, helper_pid) = launch_with(self.dir.path(), &self.extra, self.nofile, &self.env);
        self.child = Some(child);
        self.front_pid = front_pid;
        self.helper_pid = helper_pid;
    }

    /// SIGKILL to the helper (and whatever it started) first, then the front: no process gets
    /// a chance to act on the other's death (a frozen helper would thaw).
    pub fn kill_all(&mut self) {
        // The helper's children first (its launcher would otherwise see the helper die and
        // thaw a frozen agent, which is its job), then the helper.
        let mut helpers = descendants(self.helper_pid);
        helpers.reverse();
        helpers.push(self.helper_pid);
        for pid in &helpers {
            kill(*pid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let rest = descendants(self.front_pid);
            let _ = child.kill();
            let _ = child.wait();
            for pid in rest {
                kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every process `pid` started, and those they started, parents before children.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// `cargo test --test NAME` builds this package's binaries but not the helper's (another
/// package): build it once per test binary, into the same target directory and profile, so
/// the front never starts a missing or stale helper.
pub fn ensure_helper_built() {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let front = Path::new(FRONT);
        let profile_dir = front.parent().ok_or("front has no directory")?;
        let target_dir = profile_dir.parent().ok_or("front has no target directory")?;
        let mut cmd = Command::new(env!("CARGO"));
        // The whole workspace's binaries, as a plain `cargo build` makes them (same features, so
        // nothing is rebuilt when they are current).
        cmd.args(["build", "--quiet", "--workspace", "--bins", "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .stdin(Stdio::null());
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => return Err("unexpected target layout".into()),
        }
        let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!("building {HELPER_NAME} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(Path::new(FRONT).with_file_name(HELPER_NAME).is_file(), "{HELPER_NAME} is not beside {FRONT}");
}

/// Starts the front, waits for its socket to accept and for its helper to appear.
fn launch(dir: &Path, extra: &[String]) -> (Child, u32, u32) {
    launch_with(dir, extra, None, &[])
}

/// `launch`, optionally with a soft RLIMIT_NOFILE for the front.
/// The front answers before its helper has finished starting (the helper starts in the
/// background, see the front's spawn): waits until the helper is under its seccomp filter, its
/// last start-up step, so tests that look at the helper's descriptors, children or privileges
/// see it as it serves. Without a sandbox there is no such step to wait for; a helper that
/// exits meanwhile ends the wait.
fn wait_helper_started(extra: &[String], helper: u32, deadline: Instant) {
    if extra.iter().any(|a| a == "--no-sandbox") {
        return;
    }
    while let Some(status) = proc_status(helper) {
        if status.get("Seccomp").is_some_and(|v| v == "2") {
            return;
        }
        assert!(Instant::now() < deadline, "the helper did not finish starting: {status:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn launch_with(dir: &Path, extra: &[String], nofile: Option<u64>, env: &[(String, String)]) -> (Child, u32, u32) {
    ensure_helper_built();
    let sock = dir.join("qga.sock");
    let _ = fs::remove_file(&sock);
    let stderr = File::options().create(true).append(true).open(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(FRONT);
    cmd.args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir)
        .args(extra)
        .env("QGA_CONF", dir.join("no-such.conf"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    if let Some(soft) = nofile {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        use std::os::unix::process::CommandExt;
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn qemu-ga-rs");
    let pid = child.id();
    let deadline = Instant::now() + TIMEOUT;
    // The socket accepts as soon as it listens; the helper is started right after.
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "qemu-ga-rs exited during start-up with {status}; stderr:\n{}",
                fs::read_to_string(dir.join("stderr")).unwrap_or_default()
            );
        }
        let helper = children_of(pid).into_iter().find(|c| exe_of(*c).is_some_and(|e| e.ends_with(HELPER_NAME)));
        if let (true, Some(helper)) = (sock.exists(), helper) {
            // Serving starts after demotion: a reply proves the loop runs (an error reply
            // too, for a policy that disables guest-sync).
            let mut c = Client::connect(&sock);
            let r = c.cmd(r#"{"execute":"guest-sync","arguments":{"id":4242}}"#);
            assert!(r["return"] == 4242 || r["error"]["class"] == "CommandNotFound", "start-up sync failed: {r}");
            drop(c);
            wait_helper_started(extra, helper, deadline);
            return (child, pid, helper);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qemu-ga-rs did not come up within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
