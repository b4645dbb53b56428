//! The launcher: a tiny process, forked at start-up before the helper drops its capabilities,
//! that keeps full root and runs the few external programs the operations need (shutdown,
//! systemctl, pm-utils, the fsfreeze hook), so they never inherit the helper's reduced
//! capabilities, its no_new_privs or its seccomp filter (filters survive fork and exec).
//!
//! It is closed like the front↔helper protocol: the helper names a [`Job`] (a fixed program
//! with one of a fixed set of argument lists); there is no free-form exec. The hook path is the
//! only program path not compiled in, and it is fixed when the launcher is forked. The framing
//! is the protocol's (`u32` little-endian length + payload); a request is a tag and a mode byte,
//! an answer an [`Outcome`] tag and an `i32`. The launcher exits when the helper's end closes.
//!
//! It is also the guest's guard against a helper that dies while holding filesystems frozen
//! (SIGKILL, a crash, a seccomp kill): it outlives the helper, keeps full root and is outside
//! the filter, so when the helper's end closes and the frozen marker is still there (a helper
//! that exits normally thaws and removes it first), it thaws every filesystem, removes the
//! marker and runs the hook's `thaw`, then exits. Nothing of this is reachable from the front:
//! the front never talks to the launcher, and the launcher acts only on the helper's EOF.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{access, fork, AccessFlags, ForkResult, Pid};

pub(crate) use crate::child_setup::close_other_fds;
pub use crate::child_setup::{PROGRAM_UMASK, SEARCH_DIRS};
use crate::log;
use crate::protocol::{read_frame, read_frame_with, write_frame, ExecPlan, FrameError, ShutdownMode, SuspendMode};
use crate::protocol::{MAX_EXEC_FRAME, MAX_FRAME};
use crate::supervisor::{ExecAnswer, Programs};

/// 7.2 runs shutdown from this fixed path.
pub const SHUTDOWN: &str = "/sbin/shutdown";
/// The environment of programs that are scripts (pm-utils, the hook) and need a PATH; nothing
/// of the agent's own environment is passed on.
pub const SCRIPT_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a job with a timeout is checked on.
const POLL: Duration = Duration::from_millis(20);

qga_protocol::wire_codes! {
    /// The hook's single argument.
    pub enum HookPhase {
        Freeze = 0,
        Thaw = 1,
    }
}

qga_protocol::wire_codes! {
    /// The first byte of each order the helper gives the launcher: a job's (1-9), exec's
    /// (10-19: start, status) or the account jobs' (20-29, a whole request follows).
    pub enum OrderTag {
        Shutdown = 1,
        SystemdProbe = 2,
        SystemdSuspend = 3,
        PmProbe = 4,
        PmSuspend = 5,
        Hook = 6,
        ExecStart = 10,
        ExecStatus = 11,
        Account = 20,
    }
}

qga_protocol::wire_codes! {
    /// The first byte of the launcher's answer to a job: how it ended.
    enum OutcomeTag {
        Exited = 1,
        Signaled = 2,
        NotFound = 3,
        NotAccessible = 4,
        TimedOut = 5,
        SpawnFailed = 6,
        WaitFailed = 7,
    }
}

impl HookPhase {
    pub fn arg(self) -> &'static str {
        match self {
            HookPhase::Freeze => "freeze",
            HookPhase::Thaw => "thaw",
        }
    }
}

/// Everything the launcher may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// `/sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown"`.
    Shutdown(ShutdownMode),
    /// `systemctl status systemd-hibernate|systemd-suspend|systemd-hybrid-sleep`.
    SystemdProbe(SuspendMode),
    /// `systemctl hibernate|suspend|hybrid-sleep`.
    SystemdSuspend(SuspendMode),
    /// `pm-is-supported --hibernate|--suspend|--suspend-hybrid`.
    PmProbe(SuspendMode),
    /// `pm-hibernate|pm-suspend|pm-suspend-hybrid`.
    PmSuspend(SuspendMode),
    /// `HOOK freeze|thaw`, with the hook timeout.
    Hook(HookPhase),
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// A program looked up by name is in none of [`SEARCH_DIRS`] (7.2: not on PATH).
    NotFound,
    /// The hook failed `access(X_OK)`.
    NotAccessible(Errno),
    /// The hook outlived the timeout and was killed with its whole session.
    TimedOut,
    SpawnFailed(Errno),
    WaitFailed(Errno),
}

/// Which program a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Fixed(&'static str),
    /// Looked up in [`SEARCH_DIRS`].
    Named(&'static str),
    /// The `--fsfreeze-hook` path.
    Hook,
}

/// The environment a job gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Env {
    Empty,
    Script,
}

/// A job spelled out: program, the arguments after argv[0], environment, timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub program: Program,
    pub args: Vec<&'static str>,
    pub env: Env,
    pub timed: bool,
}

impl Job {
    /// The one place that maps a job to its program and argument list.
    pub fn spec(self) -> Spec {
        use SuspendMode::*;
        let (program, args, env, timed) = match self {
            Job::Shutdown(mode) => {
                let flag = match mode {
                    ShutdownMode::Powerdown => "-P",
                    ShutdownMode::Halt => "-H",
                    ShutdownMode::Reboot => "-r",
                };
                (Program::Fixed(SHUTDOWN), vec!["-h", flag, "+0", "hypervisor initiated shutdown"], Env::Empty, false)
            }
            Job::SystemdProbe(m) => {
                let unit = match m {
                    Disk => "systemd-hibernate",
                    Ram => "systemd-suspend",
                    Hybrid => "systemd-hybrid-sleep",
                };
                (Program::Named("systemctl"), vec!["status", unit], Env::Empty, false)
            }
            Job::SystemdSuspend(m) => (Program::Named("systemctl"), vec![systemctl_verb(m)], Env::Empty, false),
            Job::PmProbe(m) => {
                let flag = match m {
                    Disk => "--hibernate",
                    Ram => "--suspend",
                    Hybrid => "--suspend-hybrid",
                };
                (Program::Named("pm-is-supported"), vec![flag], Env::Script, false)
            }
            Job::PmSuspend(m) => (Program::Named(pm_program(m)), vec![], Env::Script, false),
            Job::Hook(phase) => (Program::Hook, vec![phase.arg()], Env::Script, true),
        };
        Spec { program, args, env, timed }
    }

    fn encode(self) -> Vec<u8> {
        let (tag, arg) = match self {
            Job::Shutdown(m) => (OrderTag::Shutdown, m.code()),
            Job::SystemdProbe(m) => (OrderTag::SystemdProbe, m.code()),
            Job::SystemdSuspend(m) => (OrderTag::SystemdSuspend, m.code()),
            Job::PmProbe(m) => (OrderTag::PmProbe, m.code()),
            Job::PmSuspend(m) => (OrderTag::PmSuspend, m.code()),
            Job::Hook(p) => (OrderTag::Hook, p.code()),
        };
        vec![tag.code(), arg]
    }

    fn decode(b: &[u8]) -> Result<Job, FrameError> {
        let [tag, arg] = *b else {
            return Err(if b.len() < 2 { FrameError::Truncated } else { FrameError::TrailingBytes(b.len() - 2) });
        };
        let suspend = || SuspendMode::from_code(arg).ok_or(FrameError::BadValue("suspend mode"));
        Ok(match OrderTag::from_code(tag).ok_or(FrameError::UnknownTag(tag))? {
            OrderTag::Shutdown => {
                Job::Shutdown(ShutdownMode::from_code(arg).ok_or(FrameError::BadValue("shutdown mode"))?)
            }
            OrderTag::SystemdProbe => Job::SystemdProbe(suspend()?),
            OrderTag::SystemdSuspend => Job::SystemdSuspend(suspend()?),
            OrderTag::PmProbe => Job::PmProbe(suspend()?),
            OrderTag::PmSuspend => Job::PmSuspend(suspend()?),
            OrderTag::Hook => Job::Hook(HookPhase::from_code(arg).ok_or(FrameError::BadValue("hook phase"))?),
            // Not jobs: Order::decode takes exec's orders and the loop the account jobs first.
            OrderTag::ExecStart | OrderTag::ExecStatus | OrderTag::Account => return Err(FrameError::UnknownTag(tag)),
        })
    }
}

/// `systemctl VERB` for a suspend mode.
pub fn systemctl_verb(m: SuspendMode) -> &'static str {
    match m {
        SuspendMode::Disk => "hibernate",
        SuspendMode::Ram => "suspend",
        SuspendMode::Hybrid => "hybrid-sleep",
    }
}

/// The pm-utils program for a suspend mode.
pub fn pm_program(m: SuspendMode) -> &'static str {
    match m {
        SuspendMode::Disk => "pm-hibernate",
        SuspendMode::Ram => "pm-suspend",
        SuspendMode::Hybrid => "pm-suspend-hybrid",
    }
}

impl Outcome {
    fn encode(self) -> Vec<u8> {
        let (tag, v) = match self {
            Outcome::Exited(c) => (OutcomeTag::Exited, c),
            Outcome::Signaled(s) => (OutcomeTag::Signaled, s),
            Outcome::NotFound => (OutcomeTag::NotFound, 0),
            Outcome::NotAccessible(e) => (OutcomeTag::NotAccessible, e as i32),
            Outcome::TimedOut => (OutcomeTag::TimedOut, 0),
            Outcome::SpawnFailed(e) => (OutcomeTag::SpawnFailed, e as i32),
            Outcome::WaitFailed(e) => (OutcomeTag::WaitFailed, e as i32),
        };
        let mut b = vec![tag.code()];
        b.extend_from_slice(&v.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Outcome, FrameError> {
        let [tag, v0, v1, v2, v3] = *b else {
            return Err(if b.len() < 5 { FrameError::Truncated } else { FrameError::TrailingBytes(b.len() - 5) });
        };
        let v = i32::from_le_bytes([v0, v1, v2, v3]);
        Ok(match OutcomeTag::from_code(tag).ok_or(FrameError::UnknownTag(tag))? {
            OutcomeTag::Exited => Outcome::Exited(v),
            OutcomeTag::Signaled => Outcome::Signaled(v),
            OutcomeTag::NotFound => Outcome::NotFound,
            OutcomeTag::NotAccessible => Outcome::NotAccessible(Errno::from_raw(v)),
            OutcomeTag::TimedOut => Outcome::TimedOut,
            OutcomeTag::SpawnFailed => Outcome::SpawnFailed(Errno::from_raw(v)),
            OutcomeTag::WaitFailed => Outcome::WaitFailed(Errno::from_raw(v)),
        })
    }
}

/// What the launcher is fixed to at fork time.
#[derive(Clone, Debug)]
pub struct Config {
    pub hook: Option<PathBuf>,
    pub hook_timeout: Duration,
    /// The frozen marker; if it exists when the helper's end closes, the launcher thaws.
    pub thaw_marker: Option<PathBuf>,
}

#[derive(Debug)]
pub enum LaunchError {
    Start(Errno),
    /// The launcher is gone or answered out of protocol.
    Channel(FrameError),
    NoHook,
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Start(e) => write!(f, "failed to start the program launcher: {}", e.desc()),
            LaunchError::Channel(e) => write!(f, "the program launcher is not available ({e})"),
            LaunchError::NoHook => write!(f, "no fsfreeze hook is configured"),
        }
    }
}

impl std::error::Error for LaunchError {}

/// Runs jobs; the real one is [`Launcher`], tests use fakes.
pub trait Run {
    fn run(&mut self, job: Job) -> Result<Outcome, LaunchError>;
    /// An account job (guest-set-user-password, guest-ssh-*): the request itself, carried out
    /// by [`crate::accounts::serve_job`]; the answer is the reply to give the front.
    fn account(&mut self, req: &crate::protocol::Request) -> Result<crate::protocol::Reply, LaunchError>;
    /// guest-exec: starts the plan's program under a supervisor of its own.
    fn exec(&mut self, plan: &ExecPlan) -> Result<ExecAnswer, LaunchError>;
    /// guest-exec-status: a started program's status.
    fn exec_status(&mut self, pid: i64) -> Result<ExecAnswer, LaunchError>;
}

/// What the helper asks the launcher: a fixed job, or one of exec's two orders.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Order {
    Job(Job),
    ExecStart(ExecPlan),
    ExecStatus(i64),
}

impl Order {
    fn encode(&self) -> Vec<u8> {
        match self {
            Order::Job(j) => j.encode(),
            Order::ExecStart(plan) => {
                let mut b = vec![OrderTag::ExecStart.code()];
                plan.encode_into(&mut b);
                b
            }
            Order::ExecStatus(pid) => {
                let mut b = vec![OrderTag::ExecStatus.code()];
                b.extend_from_slice(&pid.to_le_bytes());
                b
            }
        }
    }

    fn decode(b: &[u8]) -> Result<Order, FrameError> {
        match b.first().copied().and_then(OrderTag::from_code) {
            Some(OrderTag::ExecStart) => Ok(Order::ExecStart(ExecPlan::decode_from(&b[1..])?)),
            Some(OrderTag::ExecStatus) => {
                let pid: [u8; 8] = b[1..].try_into().map_err(|_| FrameError::BadValue("pid"))?;
                Ok(Order::ExecStatus(i64::from_le_bytes(pid)))
            }
            _ => Ok(Order::Job(Job::decode(b)?)),
        }
    }

    /// Only an exec start carries large data (the input).
    fn frame_bound(tag: u8) -> usize {
        if tag == OrderTag::ExecStart.code() {
            MAX_EXEC_FRAME
        } else {
            MAX_FRAME
        }
    }
}

/// The helper's handle on the launcher process.
pub struct Launcher {
    sock: UnixStream,
    has_hook: bool,
}

impl Launcher {
    /// Forks the launcher. Call while still fully privileged, before anything untrusted has
    /// been read and before any other descriptor the launcher must not hold is wrapped.
    pub fn start(config: Config) -> Result<Launcher, LaunchError> {
        let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(LaunchError::Start)?;
        // SAFETY: the helper is single-threaded here (no thread has been spawned), so the child
        // may run arbitrary code, including allocation, after fork.
        match unsafe { fork() }.map_err(LaunchError::Start)? {
            ForkResult::Child => {
                drop(mine);
                close_other_fds(theirs.as_raw_fd());
                // Out of the helper's start-up background at once: what it runs must not
                // inherit SCHED_IDLE or the raised RLIMIT_NICE (see background). Root may.
                if let Err(e) = crate::background::leave() {
                    log!("launcher: cannot leave the background: {}", e.desc());
                    std::process::exit(1);
                }
                // The helper's start-up code this copy will not run (see protocol::idle).
                crate::protocol::idle::release_startup_pages();
                let code = serve(UnixStream::from(theirs), &config);
                std::process::exit(code);
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                log!("launcher started (pid {child})");
                Ok(Launcher { sock: UnixStream::from(mine), has_hook: config.hook.is_some() })
            }
        }
    }
}

impl Run for Launcher {
    fn run(&mut self, job: Job) -> Result<Outcome, LaunchError> {
        if matches!(job, Job::Hook(_)) && !self.has_hook {
            return Err(LaunchError::NoHook);
        }
        write_frame(&mut self.sock, &job.encode()).map_err(|e| LaunchError::Channel(FrameError::Io(e)))?;
        let payload = read_frame(&mut self.sock).map_err(LaunchError::Channel)?;
        Outcome::decode(&payload).map_err(LaunchError::Channel)
    }

    fn account(&mut self, req: &crate::protocol::Request) -> Result<crate::protocol::Reply, LaunchError> {
        let mut frame = vec![OrderTag::Account.code()];
        frame.extend_from_slice(&req.encode());
        write_frame(&mut self.sock, &frame).map_err(|e| LaunchError::Channel(FrameError::Io(e)))?;
        let payload = read_frame(&mut self.sock).map_err(LaunchError::Channel)?;
        crate::protocol::Reply::decode(&payload).map_err(LaunchError::Channel)
    }

    fn exec(&mut self, plan: &ExecPlan) -> Result<ExecAnswer, LaunchError> {
        self.ask(&Order::ExecStart(plan.clone()))
    }

    fn exec_status(&mut self, pid: i64) -> Result<ExecAnswer, LaunchError> {
        self.ask(&Order::ExecStatus(pid))
    }
}

impl Launcher {
    fn ask(&mut self, order: &Order) -> Result<ExecAnswer, LaunchError> {
        write_frame(&mut self.sock, &order.encode()).map_err(|e| LaunchError::Channel(FrameError::Io(e)))?;
        let payload = read_frame_with(&mut self.sock, ExecAnswer::frame_bound).map_err(LaunchError::Channel)?;
        ExecAnswer::decode(&payload).map_err(LaunchError::Channel)
    }
}

/// The launcher's loop: one job at a time until the helper closes its end.
fn serve(mut sock: UnixStream, config: &Config) -> i32 {
    let mut programs = Programs::default();
    loop {
        let payload = read_frame_with(&mut sock, Order::frame_bound);
        // Account jobs carry a whole request and answer a whole reply.
        if let Ok(p) = &payload {
            if p.first() == Some(&OrderTag::Account.code()) {
                let cx = crate::accounts::Context {
                    find_program: |name| find_program(name, is_executable_file),
                    program_env: SCRIPT_ENV,
                    program_umask: PROGRAM_UMASK,
                    close_other_fds,
                };
                match crate::accounts::serve_job(&p[1..], &cx) {
                    Ok(reply) => {
                        if write_frame(&mut sock, &reply.encode()).is_err() {
                            return 1;
                        }
                        continue;
                    }
                    Err(e) => {
                        log!("launcher: refusing request: {e}");
                        thaw_if_left_frozen(config);
                        return 1;
                    }
                }
            }
        }
        let order = match payload.and_then(|p| Order::decode(&p)) {
            Ok(order) => order,
            Err(FrameError::Closed) => {
                thaw_if_left_frozen(config);
                return 0;
            }
            Err(e) => {
                log!("launcher: refusing request: {e}");
                thaw_if_left_frozen(config);
                return 1;
            }
        };
        let answer = match order {
            Order::Job(job) => {
                let outcome = execute(job, config);
                log!("launcher: {job:?}: {outcome:?}");
                outcome.encode()
            }
            Order::ExecStart(plan) => {
                let answer = programs.start(&plan);
                log!(
                    "launcher: exec of {}: {answer:?}",
                    crate::protocol::text::neutralise(&String::from_utf8_lossy(&plan.program))
                );
                answer.encode()
            }
            Order::ExecStatus(pid) => programs.status(pid).encode(),
        };
        if write_frame(&mut sock, &answer).is_err() {
            return 1;
        }
    }
}

/// The helper is gone. If the marker is still there it died frozen (a helper that exits thaws
/// and removes the marker first): thaw at once, in the helper's own order (filesystems,
/// marker, hook `thaw`), so nothing in the guest stays blocked until a host notices.
fn thaw_if_left_frozen(config: &Config) {
    let Some(marker) = &config.thaw_marker else { return };
    if !crate::freeze::marker_exists(marker) {
        return;
    }
    let thawed = match crate::mounts::read_mounts() {
        Ok(mounts) => crate::freeze::thaw_mounts(&mounts),
        Err(e) => {
            log!("launcher: the helper died frozen and the mount list cannot be read ({e}): not thawed");
            return;
        }
    };
    crate::freeze::remove_marker(marker);
    log!("launcher: the helper died while frozen: thawed {thawed} filesystem(s) and removed the marker");
    if config.hook.is_some() {
        let outcome = execute(Job::Hook(HookPhase::Thaw), config);
        log!("launcher: fsfreeze hook thaw after the helper died: {outcome:?}");
    }
}

/// Finds a program by name in [`SEARCH_DIRS`].
pub fn find_program(name: &str, is_executable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    SEARCH_DIRS.iter().map(|d| Path::new(d).join(name)).find(|p| is_executable(p))
}

fn is_executable_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false) && access(p, AccessFlags::X_OK).is_ok()
}

fn execute(job: Job, config: &Config) -> Outcome {
    let spec = job.spec();
    let path = match spec.program {
        Program::Fixed(p) => PathBuf::from(p),
        Program::Named(n) => match find_program(n, is_executable_file) {
            Some(p) => p,
            None => return Outcome::NotFound,
        },
        Program::Hook => match &config.hook {
            Some(h) => {
                // 7.2 checks access(X_OK) before running the hook.
                if let Err(e) = access(h.as_path(), AccessFlags::X_OK) {
                    return Outcome::NotAccessible(e);
                }
                // Checked again at each run: the hook may have appeared or changed since start-up.
                if let Err(e) = crate::trust::check_hook(h) {
                    crate::log!("refusing to run the fsfreeze hook: {e}");
                    return Outcome::NotAccessible(Errno::EACCES);
                }
                h.clone()
            }
            None => return Outcome::NotFound,
        },
    };
    // argv[0] is what 7.2 passes: the name for programs run by name or from a fixed path,
    // the full path for the hook.
    let argv0: &[u8] = match spec.program {
        Program::Fixed(p) => p.rsplit('/').next().unwrap_or(p).as_bytes(),
        Program::Named(n) => n.as_bytes(),
        Program::Hook => path.as_os_str().as_bytes(),
    };
    let Some(c_path) = cstring(path.as_os_str().as_bytes()) else { return Outcome::SpawnFailed(Errno::EINVAL) };
    let mut argv = Vec::with_capacity(1 + spec.args.len());
    for a in std::iter::once(argv0).chain(spec.args.iter().map(|a| a.as_bytes())) {
        match cstring(a) {
            Some(c) => argv.push(c),
            None => return Outcome::SpawnFailed(Errno::EINVAL),
        }
    }
    let env: Vec<CString> = match spec.env {
        Env::Empty => vec![],
        Env::Script => cstring(SCRIPT_ENV.as_bytes()).into_iter().collect(),
    };
    let timeout = spec.timed.then_some(config.hook_timeout);
    spawn_and_wait(&c_path, &argv, &env, timeout)
}

fn cstring(b: &[u8]) -> Option<CString> {
    CString::new(b).ok()
}

fn spawn_and_wait(path: &CString, argv: &[CString], env: &[CString], timeout: Option<Duration>) -> Outcome {
    let devnull = match open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    // SAFETY: the launcher is single-threaded, so the child may allocate; it only sets up
    // its session and stdio and then execs or _exits.
    match unsafe { fork() } {
        Err(e) => Outcome::SpawnFailed(e),
        Ok(ForkResult::Child) => exec_child(path, argv, env, devnull),
        Ok(ForkResult::Parent { child }) => {
            drop(devnull);
            wait_child(child, timeout)
        }
    }
}

/// In the forked child: a session of its own, `/` as working directory and a fixed umask (not
/// whatever directory and mask the agent was started with), stdio on /dev/null, default signal
/// handling (the helper ignores SIGINT/SIGTERM/SIGHUP/SIGPIPE and ignored dispositions survive
/// exec), then exec. Exit 127 if exec fails.
fn exec_child(path: &CString, argv: &[CString], env: &[CString], devnull: OwnedFd) -> ! {
    let _ = nix::unistd::setsid();
    if nix::unistd::chdir("/").is_err() {
        // SAFETY: as below: _exit ends the forked child at once.
        unsafe { nix::libc::_exit(127) }
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(PROGRAM_UMASK));
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGPIPE, Signal::SIGCHLD] {
        // SAFETY: SIG_DFL installs no handler code; nothing in this process relies on the
        // old disposition after exec.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = nix::unistd::dup2_stdin(&devnull);
    let _ = nix::unistd::dup2_stdout(&devnull);
    let _ = nix::unistd::dup2_stderr(&devnull);
    drop(devnull);
    let _ = nix::unistd::execve(path, argv, env);
    // SAFETY: _exit ends the forked child at once without running the parent's exit handlers
    // or flushing its copied buffers.
    unsafe { nix::libc::_exit(127) }
}

fn wait_child(pid: Pid, timeout: Option<Duration>) -> Outcome {
    let deadline = timeout.map(|t| Instant::now() + t);
    let flags = deadline.map(|_| WaitPidFlag::WNOHANG);
    loop {
        match waitpid(pid, flags) {
            Ok(WaitStatus::Exited(_, code)) => return Outcome::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Outcome::Signaled(sig as i32),
            Ok(WaitStatus::StillAlive) => {
                let Some(deadline) = deadline else { continue };
                let now = Instant::now();
                if now >= deadline {
                    // The child called setsid, so its pid is its process group: kill the hook
                    // and everything it started.
                    let _ = signal::killpg(pid, Signal::SIGKILL);
                    let _ = signal::kill(pid, Signal::SIGKILL);
                    let _ = reap(pid);
                    return Outcome::TimedOut;
                }
                std::thread::sleep(POLL.min(deadline - now));
            }
            Ok(_) => {} // stopped/continued: keep waiting for the end
            Err(Errno::EINTR) => {}
            Err(e) => return Outcome::WaitFailed(e),
        }
    }
}

fn reap(pid: Pid) -> Result<WaitStatus, Errno> {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_jobs() -> Vec<Job> {
        let mut v = vec![];
        for s in [ShutdownMode::Powerdown, ShutdownMode::Halt, ShutdownMode::Reboot] {
            v.push(Job::Shutdown(s));
        }
        for m in [SuspendMode::Disk, SuspendMode::Ram, SuspendMode::Hybrid] {
            v.extend([Job::SystemdProbe(m), Job::SystemdSuspend(m), Job::PmProbe(m), Job::PmSuspend(m)]);
        }
        v.extend([Job::Hook(HookPhase::Freeze), Job::Hook(HookPhase::Thaw)]);
        v
    }

    #[test]
    fn shutdown_modes_map_to_72s_argv() {
        let s = Job::Shutdown(ShutdownMode::Powerdown).spec();
        assert_eq!(s.program, Program::Fixed("/sbin/shutdown"));
        assert_eq!(s.args, ["-h", "-P", "+0", "hypervisor initiated shutdown"]);
        assert_eq!(s.env, Env::Empty);
        assert_eq!(Job::Shutdown(ShutdownMode::Halt).spec().args[1], "-H");
        assert_eq!(Job::Shutdown(ShutdownMode::Reboot).spec().args[1], "-r");
    }

    #[test]
    fn suspend_modes_map_to_systemd_and_pm_utils_argv() {
        use SuspendMode::*;
        let probe: Vec<_> = [Disk, Ram, Hybrid].map(|m| Job::SystemdProbe(m).spec().args).to_vec();
        assert_eq!(
            probe,
            [
                vec!["status", "systemd-hibernate"],
                vec!["status", "systemd-suspend"],
                vec!["status", "systemd-hybrid-sleep"]
            ]
        );
        let act: Vec<_> = [Disk, Ram, Hybrid].map(|m| Job::SystemdSuspend(m).spec().args).to_vec();
        assert_eq!(act, [vec!["hibernate"], vec!["suspend"], vec!["hybrid-sleep"]]);
        let pm: Vec<_> = [Disk, Ram, Hybrid].map(|m| Job::PmProbe(m).spec().args).to_vec();
        assert_eq!(pm, [vec!["--hibernate"], vec!["--suspend"], vec!["--suspend-hybrid"]]);
        let progs: Vec<_> = [Disk, Ram, Hybrid].map(|m| Job::PmSuspend(m).spec().program).to_vec();
        assert_eq!(
            progs,
            [Program::Named("pm-hibernate"), Program::Named("pm-suspend"), Program::Named("pm-suspend-hybrid")]
        );
    }

    #[test]
    fn only_the_hook_has_a_timeout() {
        for j in all_jobs() {
            assert_eq!(j.spec().timed, matches!(j, Job::Hook(_)), "{j:?}");
        }
        assert_eq!(Job::Hook(HookPhase::Freeze).spec().args, ["freeze"]);
        assert_eq!(Job::Hook(HookPhase::Thaw).spec().args, ["thaw"]);
    }

    #[test]
    fn every_launcher_tag_and_code_is_declared_once_and_round_trips() {
        use qga_protocol::codes::assert_codes;
        assert_codes(OrderTag::ALL, OrderTag::code, OrderTag::from_code);
        assert_codes(OutcomeTag::ALL, OutcomeTag::code, OutcomeTag::from_code);
        assert_codes(HookPhase::ALL, HookPhase::code, HookPhase::from_code);
        // Every job's tag is a job order's, and exec's and the account jobs' are not jobs.
        for j in all_jobs() {
            let tag = OrderTag::from_code(j.encode()[0]).unwrap();
            assert!(!matches!(tag, OrderTag::ExecStart | OrderTag::ExecStatus | OrderTag::Account), "{j:?}");
        }
        for tag in [OrderTag::ExecStart, OrderTag::ExecStatus, OrderTag::Account] {
            assert!(matches!(Job::decode(&[tag.code(), 0]), Err(FrameError::UnknownTag(_))), "{tag:?}");
        }
    }

    #[test]
    fn jobs_and_outcomes_round_trip() {
        for j in all_jobs() {
            assert_eq!(Job::decode(&j.encode()).unwrap(), j);
        }
        for o in [
            Outcome::Exited(3),
            Outcome::Signaled(9),
            Outcome::NotFound,
            Outcome::NotAccessible(Errno::EACCES),
            Outcome::TimedOut,
            Outcome::SpawnFailed(Errno::EAGAIN),
            Outcome::WaitFailed(Errno::ECHILD),
        ] {
            assert_eq!(Outcome::decode(&o.encode()).unwrap(), o);
        }
    }

    #[test]
    fn malformed_jobs_are_refused() {
        assert!(Job::decode(&[]).is_err());
        assert!(Job::decode(&[1]).is_err());
        assert!(Job::decode(&[1, 0, 0]).is_err());
        assert!(Job::decode(&[1, 3]).is_err());
        assert!(Job::decode(&[2, 3]).is_err());
        assert!(Job::decode(&[6, 2]).is_err());
        assert!(Job::decode(&[0, 0]).is_err());
        assert!(Job::decode(&[7, 0]).is_err());
    }

    #[test]
    fn programs_are_found_only_in_the_fixed_directories_in_order() {
        let found =
            find_program("systemctl", |p| p == Path::new("/bin/systemctl") || p == Path::new("/usr/bin/systemctl"));
        assert_eq!(found, Some(PathBuf::from("/usr/bin/systemctl")));
        assert_eq!(find_program("pm-suspend", |_| false), None);
    }

    #[test]
    fn a_timed_out_child_is_killed_with_its_session() {
        // Runs /bin/sleep through the real spawn path (no privileged effect).
        let path = CString::new("/bin/sleep").unwrap();
        let argv = [CString::new("sleep").unwrap(), CString::new("30").unwrap()];
        let start = Instant::now();
        let o = spawn_and_wait(&path, &argv, &[], Some(Duration::from_millis(200)));
        assert_eq!(o, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn exit_status_and_exec_failure_are_reported() {
        let sh = CString::new("/bin/sh").unwrap();
        let argv = [CString::new("sh").unwrap(), CString::new("-c").unwrap(), CString::new("exit 3").unwrap()];
        assert_eq!(spawn_and_wait(&sh, &argv, &[], None), Outcome::Exited(3));
        let missing = CString::new("/nonexistent/program").unwrap();
        assert_eq!(spawn_and_wait(&missing, &argv[..1], &[], None), Outcome::Exited(127));
    }
}
