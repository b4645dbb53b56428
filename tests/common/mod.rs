//! Harness for the integration tests: starts the real `qemu-ga-rs` (which spawns the real
//! `qemu-ga-rs-helper` from its own directory) on a unix-listen socket in a fresh temporary
//! directory, talks raw bytes to it with timeouts, inspects both processes through /proc and
//! kills and cleans everything up on drop.
//!
//! Every wait has a deadline: a test fails, it never hangs.

#![allow(dead_code)]

pub mod canary;

use serde_json::Value;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const FRONT: &str = env!("CARGO_BIN_EXE_qemu-ga-rs");
pub const HELPER_NAME: &str = "qemu-ga-rs-helper";

/// How long a reply, a start-up or an exit may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The 23 commands of the 1.7 schema, in schema (registration) order.
pub const SCHEMA_ORDER: [&str; 23] = [
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-get-time",
    "guest-set-time",
    "guest-info",
    "guest-shutdown",
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-network-get-interfaces",
    "guest-get-vcpus",
    "guest-set-vcpus",
];

/// The freeze allowlist (the same in 1.7, 7.2 and 10.0).
pub const FROZEN_ALLOWLIST: [&str; 6] =
    ["guest-sync-delimited", "guest-sync", "guest-ping", "guest-info", "guest-fsfreeze-status", "guest-fsfreeze-thaw"];

/// A shipped policy file, by name ("default", "allow-all", ...).
pub fn shipped_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policy").join(format!("{name}.policy"))
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Fails the calling test loudly when not run as root: these tests observe what the agent
/// does when started as root (demotion, helper capabilities) and must never pass vacuously.
pub fn require_root() {
    assert!(
        is_root(),
        "this test must run as root (uid 0): it checks the privilege separation the agent sets up when \
         started as root; running it as uid {} would prove nothing",
        nix::unistd::Uid::effective()
    );
}

// ---- temporary directories ----

/// A fresh directory, mode 0755, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("qga-rs-it-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory with mode 1777 that the demoted front (its own uid) can create files in.
    pub fn scratch(&self) -> PathBuf {
        let p = self.path.join("scratch");
        if !p.exists() {
            fs::create_dir(&p).expect("create scratch dir");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o1777)).expect("chmod scratch dir");
        }
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---- /proc ----

/// The fields of /proc/PID/status, or None if the process is gone.
pub fn proc_status(pid: u32) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// A size field of /proc/PID/status in KiB (VmRSS, VmHWM, ...); panics if the process is gone.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = proc_status(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    let value = status.get(field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    value.trim_end_matches("kB").trim().parse().unwrap_or_else(|_| panic!("{field}: {value}"))
}

/// How many descriptors a process has open (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}")).count()
}

/// (state, ppid) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process exists and has not exited (a zombie counts as exited).
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if matches!(proc_stat(child), Some((_, ppid)) if ppid == pid) {
                out.push(child);
            }
        }
    }
    out
}

/// The executable of a process.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Waits until `pid` has exited (or is a zombie); false on timeout.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !is_alive(pid)
}

/// Waits for a child with a deadline; None on timeout.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

pub fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

// ---- running the binary to completion ----

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

// ---- a running agent ----

/// A running agent on `DIR/qga.sock` with statedir `DIR`.
pub struct Agent {
    pub dir: TempDir,
    pub child: Option<Child>,
    pub front_pid: u32,
    pub helper_pid: u32,
    extra: Vec<String>,
    nofile: Option<u64>,
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
        Agent { dir, child: Some(child), front_pid, helper_pid, extra, nofile: None }
    }

    /// Starts an agent whose soft RLIMIT_NOFILE is `soft` at start-up (systemd's default
    /// soft limit is 1024), the hard limit left as it is.
    pub fn start_with_nofile(extra: &[&str], soft: u64) -> Agent {
        let dir = TempDir::new();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, front_pid, helper_pid) = launch_with(dir.path(), &extra, Some(soft));
        Agent { dir, child: Some(child), front_pid, helper_pid, extra, nofile: Some(soft) }
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
        let (child, front_pid, helper_pid) = launch_with(self.dir.path(), &self.extra, self.nofile);
        self.child = Some(child);
        self.front_pid = front_pid;
        self.helper_pid = helper_pid;
    }

    /// SIGKILL to the helper (and whatever it started) first, then the front: no process gets
    /// a chance to act on the other's death (a frozen helper would thaw).
    pub fn kill_all(&mut self) {
        let mut helpers = descendants(self.helper_pid);
        helpers.insert(0, self.helper_pid);
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

fn descendants(pid: u32) -> Vec<u32> {
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
    launch_with(dir, extra, None)
}

/// `launch`, optionally with a soft RLIMIT_NOFILE for the front.
fn launch_with(dir: &Path, extra: &[String], nofile: Option<u64>) -> (Child, u32, u32) {
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

// ---- the client ----

/// A raw-bytes client: writes what it is given, reads reply lines with a deadline.
pub struct Client {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(sock: &Path) -> Client {
        let stream = UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write to the agent");
    }

    /// Reads into the buffer until `done(buf)` or the deadline; false on timeout or EOF.
    fn fill_until(&mut self, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 65536];
        while !done(&self.buf) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read from the agent: {e}"),
            }
        }
        true
    }

    /// The next reply line, with its `\n`, as raw bytes.
    pub fn read_raw_line(&mut self) -> Vec<u8> {
        let ok = self.fill_until(TIMEOUT, |b| b.contains(&b'\n'));
        assert!(ok, "no complete reply line within {TIMEOUT:?}; got so far: {:?}", String::from_utf8_lossy(&self.buf));
        let end = self.buf.iter().position(|&b| b == b'\n').unwrap();
        self.buf.drain(..=end).collect()
    }

    /// The next reply line, parsed (a leading 0xFF is refused: use read_raw_line for that).
    pub fn read_reply(&mut self) -> Value {
        let line = self.read_raw_line();
        serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", String::from_utf8_lossy(&line)))
    }

    /// Sends one request and returns its reply.
    pub fn cmd(&mut self, request: &str) -> Value {
        self.send(request);
        self.read_reply()
    }

    /// Asserts that nothing arrives for `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration) {
        let got = self.fill_until(quiet, |b| !b.is_empty());
        assert!(!got, "expected no reply, got {:?}", String::from_utf8_lossy(&self.buf));
    }

    /// Reads lines until the reply to a `guest-sync` with `id` arrives; returns the lines
    /// before it.
    pub fn sync(&mut self, id: i64) -> Vec<Value> {
        self.send(format!(r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#));
        let mut before = Vec::new();
        loop {
            let r = self.read_reply();
            if r.get("return") == Some(&Value::from(id)) {
                return before;
            }
            before.push(r);
        }
    }
}

// ---- reply helpers ----

/// Asserts a reply is the error `class`/`desc`.
#[track_caller]
pub fn assert_error(reply: &Value, class: &str, desc: &str) {
    assert_eq!(reply["error"]["class"], class, "class of {reply}");
    assert_eq!(reply["error"]["desc"], desc, "desc of {reply}");
    assert!(reply.get("return").is_none(), "an error reply has no return: {reply}");
}

/// guest-info's command list as (name, enabled, success-response), in the order given.
pub fn info_commands(client: &mut Client) -> Vec<(String, bool, bool)> {
    let r = client.cmd(r#"{"execute":"guest-info"}"#);
    let list = r["return"]["supported_commands"].as_array().unwrap_or_else(|| panic!("guest-info reply: {r}"));
    list.iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["enabled"].as_bool().expect("enabled"),
                c["success-response"].as_bool().expect("success-response"),
            )
        })
        .collect()
}

/// guest-info's enabled flag per command name.
pub fn enabled_map(client: &mut Client) -> HashMap<String, bool> {
    info_commands(client).into_iter().map(|(n, e, _)| (n, e)).collect()
}

/// Whether the gate lets `name` through, found out without running it: the request carries an
/// argument no command takes, so an enabled command is refused by the argument check (before
/// its handler: "missing" for its first required argument, else "unexpected") and a disabled
/// one by the gate. Safe for every command, shutdown and freeze included.
pub fn probe_enabled(client: &mut Client, name: &str) -> bool {
    let r = client.cmd(&format!(r#"{{"execute":"{name}","arguments":{{"qga-it-probe":1}}}}"#));
    let desc = r["error"]["desc"].as_str().unwrap_or_else(|| panic!("probe of {name} did not fail: {r}"));
    if desc == "Parameter 'qga-it-probe' is unexpected"
        || (desc.starts_with("Parameter '") && desc.ends_with("' is missing"))
    {
        assert_eq!(r["error"]["class"], "GenericError", "{r}");
        true
    } else {
        assert_eq!(r["error"]["class"], "CommandNotFound", "{r}");
        assert!(desc.starts_with(&format!("Command {name} has been disabled")), "probe of {name}: {r}");
        false
    }
}
