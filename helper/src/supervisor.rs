//! guest-exec's programs, run by the launcher: one supervisor process per program, forked by
//! the launcher (full root, outside every filter). The supervisor becomes a child subreaper
//! (so a program's daemonising children are re-parented to it, not to init), starts the program
//! in a session of its own as the plan's user, writes its input, keeps at most the output limit
//! of each captured stream, enforces the time limit by killing the program and every
//! descendant, and then sends one status frame to the launcher and exits. Its memory is
//! bounded by twice the output limit; the launcher keeps at most [`MAX_EXEC_PROGRAMS`] of them.
//!
//! The launcher asks a supervisor nothing: the status frame is written only once the program
//! has ended and its output is closed, so "readable" means "exited" (7.2 reports exited only
//! when the output channels are closed too). Reading it is guest-exec-status's answer, after
//! which the launcher reaps the supervisor and forgets the pid, as 7.2 forgets it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};

use crate::child_setup::{close_other_fds, PROGRAM_UMASK, SEARCH_DIRS};
use crate::log;
use crate::protocol::{read_frame_with, write_frame, Captured, ExecEnd, ExecPlan, ExecStatus, MAX_EXEC_FRAME};
use crate::protocol::{MAX_EXEC_PROGRAMS, MAX_FRAME};
use qga_policy::passwd;

/// How often a supervisor looks at its children when nothing else wakes it.
const TICK: Duration = Duration::from_millis(50);
/// After a time-limit kill, how long output still held open (by a process that could not be
/// killed) is waited for before the status is reported anyway.
const KILL_GRACE: Duration = Duration::from_secs(2);

qga_protocol::wire_codes! {
    /// The first byte of each [`ExecAnswer`].
    enum AnswerTag {
        Started = 10,
        SpawnFailed = 11,
        NoSuchUser = 12,
        TooMany = 13,
        UnknownPid = 14,
        Status = 15,
    }
}

/// What the launcher answers about a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecAnswer {
    Started {
        pid: i64,
    },
    /// The program could not be started: 7.2's g_spawn error, with this errno.
    SpawnFailed(Errno),
    /// The plan's user is not in /etc/passwd.
    NoSuchUser(String),
    /// [`MAX_EXEC_PROGRAMS`] programs are running or not yet reported.
    TooMany,
    /// No program with this pid is known (never started, or already reported exited).
    UnknownPid,
    Status(ExecStatus),
}

impl ExecAnswer {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            ExecAnswer::Started { pid } => {
                b.push(AnswerTag::Started.code());
                b.extend_from_slice(&pid.to_le_bytes());
            }
            ExecAnswer::SpawnFailed(e) => {
                b.push(AnswerTag::SpawnFailed.code());
                b.extend_from_slice(&(*e as i32).to_le_bytes());
            }
            ExecAnswer::NoSuchUser(u) => {
                b.push(AnswerTag::NoSuchUser.code());
                b.extend_from_slice(&u.as_bytes()[..u.len().min(64)]);
            }
            ExecAnswer::TooMany => b.push(AnswerTag::TooMany.code()),
            ExecAnswer::UnknownPid => b.push(AnswerTag::UnknownPid.code()),
            ExecAnswer::Status(s) => {
                b.push(AnswerTag::Status.code());
                s.encode_into(&mut b);
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<ExecAnswer, crate::protocol::FrameError> {
        use crate::protocol::FrameError;
        let (&tag, rest) = b.split_first().ok_or(FrameError::Truncated)?;
        let exact = |n: usize| match rest.len().cmp(&n) {
            std::cmp::Ordering::Less => Err(FrameError::Truncated),
            std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(rest.len() - n)),
            std::cmp::Ordering::Equal => Ok(()),
        };
        Ok(match AnswerTag::from_code(tag).ok_or(FrameError::UnknownTag(tag))? {
            AnswerTag::Started => {
                exact(8)?;
                ExecAnswer::Started { pid: i64::from_le_bytes(rest.try_into().map_err(|_| FrameError::Truncated)?) }
            }
            AnswerTag::SpawnFailed => {
                exact(4)?;
                ExecAnswer::SpawnFailed(Errno::from_raw(i32::from_le_bytes(
                    rest.try_into().map_err(|_| FrameError::Truncated)?,
                )))
            }
            AnswerTag::NoSuchUser if rest.len() <= 64 => {
                ExecAnswer::NoSuchUser(String::from_utf8(rest.to_vec()).map_err(|_| FrameError::BadValue("user name"))?)
            }
            AnswerTag::TooMany => {
                exact(0)?;
                ExecAnswer::TooMany
            }
            AnswerTag::UnknownPid => {
                exact(0)?;
                ExecAnswer::UnknownPid
            }
            AnswerTag::Status => ExecAnswer::Status(ExecStatus::decode_from(rest)?),
            AnswerTag::NoSuchUser => return Err(FrameError::BadValue("user name length")),
        })
    }

    /// The bound of an answer frame by its tag: only a status carries output.
    pub fn frame_bound(tag: u8) -> usize {
        if tag == AnswerTag::Status.code() {
            MAX_EXEC_FRAME
        } else {
            MAX_FRAME
        }
    }
}

/// One running (or exited and not yet reported) program, as the launcher holds it.
struct Running {
    supervisor: Pid,
    status: UnixStream,
}

/// The launcher's table of programs, by the pid the host knows them by.
#[derive(Default)]
pub struct Programs {
    running: BTreeMap<i64, Running>,
}

/// The program's path: as given when it holds a `/`; otherwise looked up in the plan's PATH
/// (7.2's G_SPAWN_SEARCH_PATH_FROM_ENVP) or, without one, the launcher's fixed directories.
/// A name found nowhere stays as it is, so exec fails with ENOENT as 7.2's does.
fn resolve(plan: &ExecPlan) -> Vec<u8> {
    if plan.program.contains(&b'/') || plan.program.is_empty() {
        return plan.program.clone();
    }
    let path_var = plan.env.iter().find_map(|e| e.strip_prefix(b"PATH="));
    let dirs: Vec<Vec<u8>> = match path_var {
        Some(p) => p.split(|&b| b == b':').map(|d| if d.is_empty() { b".".to_vec() } else { d.to_vec() }).collect(),
        None => SEARCH_DIRS.iter().map(|d| d.as_bytes().to_vec()).collect(),
    };
    for dir in dirs {
        let mut candidate = dir;
        candidate.push(b'/');
        candidate.extend_from_slice(&plan.program);
        let p = Path::new(std::ffi::OsStr::from_bytes(&candidate));
        if p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() {
            return candidate;
        }
    }
    plan.program.clone()
}

fn cstrings(words: &[Vec<u8>]) -> Option<Vec<CString>> {
    words.iter().map(|w| CString::new(w.clone()).ok()).collect()
}

impl Programs {
    /// Starts a program under a new supervisor. Call only from the single-threaded launcher.
    pub fn start(&mut self, plan: &ExecPlan) -> ExecAnswer {
        if self.running.len() >= MAX_EXEC_PROGRAMS {
            return ExecAnswer::TooMany;
        }
        // The rule's user as login(1) or runuser(1) would make it: uid, primary group and the
        // groups that list it (the account files themselves, see qga_policy::passwd). An
        // unreadable file refuses the run as an unknown user would: never run as root instead.
        let account = match &plan.user {
            None => None,
            Some(u) => match qga_policy::passwd::lookup(u.as_bytes()) {
                Ok(Some(a)) => Some(a),
                Ok(None) | Err(_) => return ExecAnswer::NoSuchUser(u.clone()),
            },
        };
        let (Some(path), Some(argv), Some(env)) =
            (CString::new(resolve(plan)).ok(), cstrings(&plan.argv), cstrings(&plan.env))
        else {
            // A NUL inside a string: exec would see a shorter one; 7.2's g_spawn fails likewise.
            return ExecAnswer::SpawnFailed(Errno::EINVAL);
        };
        let (mine, theirs) = match socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return ExecAnswer::SpawnFailed(e),
        };
        // SAFETY: the launcher is single-threaded, so the child may allocate and run any code.
        match unsafe { fork() } {
            Err(e) => ExecAnswer::SpawnFailed(e),
            Ok(ForkResult::Child) => {
                drop(mine);
                // The supervisor holds its own socket only: not the launcher's link to the
                // helper, nor the other programs' status sockets (closed below, so the table's
                // handles must not close them again).
                std::mem::forget(std::mem::take(&mut self.running));
                close_other_fds(theirs.as_raw_fd());
                let code = supervise(UnixStream::from(theirs), plan, &path, &argv, &env, account.as_ref());
                // SAFETY: _exit ends the forked supervisor without running the launcher's
                // exit handlers or flushing its copied buffers.
                unsafe { nix::libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => {
                drop(theirs);
                let mut status = UnixStream::from(mine);
                let first = read_frame_with(&mut status, ExecAnswer::frame_bound)
                    .map_err(|e| e.to_string())
                    .and_then(|b| ExecAnswer::decode(&b).map_err(|e| e.to_string()));
                match first {
                    Ok(ExecAnswer::Started { pid }) => {
                        self.running.insert(pid, Running { supervisor: child, status });
                        ExecAnswer::Started { pid }
                    }
                    Ok(other) => {
                        reap(child);
                        other
                    }
                    Err(e) => {
                        log!("launcher: exec supervisor failed before starting the program: {e}");
                        reap(child);
                        ExecAnswer::SpawnFailed(Errno::EIO)
                    }
                }
            }
        }
    }

    /// A program's status: running, or its end and output (and then it is forgotten).
    pub fn status(&mut self, pid: i64) -> ExecAnswer {
        let Some(r) = self.running.get_mut(&pid) else { return ExecAnswer::UnknownPid };
        let mut fds = [PollFd::new(r.status.as_fd(), PollFlags::POLLIN)];
        if let Ok(0) = poll(&mut fds, PollTimeout::ZERO) {
            return ExecAnswer::Status(ExecStatus::default());
        }
        let r = self.running.remove(&pid).expect("present above");
        let mut sock = r.status;
        let answer = match read_frame_with(&mut sock, ExecAnswer::frame_bound).map(|b| ExecAnswer::decode(&b)) {
            Ok(Ok(ExecAnswer::Status(s))) if s.end.is_some() => ExecAnswer::Status(s),
            other => {
                // The supervisor died without reporting (it cannot be killed by the host; a
                // bug or the OOM killer): the program's fate is unknown, report it killed.
                log!("launcher: the supervisor of pid {pid} ended without a status: {other:?}");
                ExecAnswer::Status(ExecStatus {
                    end: Some(ExecEnd::Signaled(Signal::SIGKILL as i32)),
                    ..Default::default()
                })
            }
        };
        reap(r.supervisor);
        answer
    }
}

fn reap(pid: Pid) {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// One captured stream while the program runs.
struct Stream {
    fd: Option<OwnedFd>,
    kept: Captured,
    limit: usize,
}

impl Stream {
    fn new(fd: Option<OwnedFd>, limit: usize) -> Stream {
        Stream { fd, kept: Captured::default(), limit }
    }

    /// One read: keep what fits under the limit, drop and flag the rest; EOF or an error closes.
    fn read_some(&mut self) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [0u8; 65536];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                let room = self.limit.saturating_sub(self.kept.data.len());
                let keep = n.min(room);
                self.kept.data.extend_from_slice(&buf[..keep]);
                if keep < n {
                    self.kept.truncated = true;
                }
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            Err(_) => self.fd = None,
        }
    }
}

/// The supervisor's whole life, in the child of the launcher. Returns its exit status.
fn supervise(
    mut sock: UnixStream,
    plan: &ExecPlan,
    path: &CString,
    argv: &[CString],
    env: &[CString],
    account: Option<&passwd::Account>,
) -> i32 {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and changes only this
    // process's attribute.
    if unsafe { nix::libc::prctl(nix::libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        log!("launcher: exec supervisor: PR_SET_CHILD_SUBREAPER failed: {}", Errno::last());
    }
    let started = match spawn(plan, path, argv, env, account) {
        Ok(s) => s,
        Err(e) => {
            let _ = write_frame(&mut sock, &ExecAnswer::SpawnFailed(e).encode());
            return 0;
        }
    };
    let Spawned { pid, stdin, stdout, stderr } = started;
    if write_frame(&mut sock, &ExecAnswer::Started { pid: pid.as_raw() as i64 }.encode()).is_err() {
        let _ = kill_descendants(pid);
        return 1;
    }
    // Readable when the program ends, so its end wakes the loop at once rather than at the
    // next tick (the tick still reaps re-parented descendants).
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = match unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) } {
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        fd if fd >= 0 => Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) }),
        _ => None,
    };
    let limit = plan.output_limit as usize;
    let (mut out, mut err) = (Stream::new(stdout, limit), Stream::new(stderr, limit));
    let mut input = stdin.map(|fd| (fd, plan.input.as_deref().unwrap_or(&[]), 0usize));
    let deadline = plan.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let mut end: Option<ExecEnd> = None;
    let mut killed_at: Option<Instant> = None;
    loop {
        let output_open = out.fd.is_some() || err.fd.is_some();
        if end.is_some() && (!output_open || killed_at.is_some_and(|k| k.elapsed() >= KILL_GRACE)) {
            break;
        }
        // Input: write what the pipe takes; the whole of it written (or the reader gone),
        // close it so the program sees EOF.
        if let Some((fd, data, done)) = &mut input {
            match nix::unistd::write(&*fd, &data[*done..]) {
                Ok(n) => *done += n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => *done = data.len(),
            }
            if *done >= data.len() {
                input = None;
            }
        }
        let wait = match deadline {
            Some(d) if killed_at.is_none() => TICK.min(d.saturating_duration_since(Instant::now())),
            _ => TICK,
        };
        {
            let mut fds: Vec<PollFd> = Vec::with_capacity(3);
            for s in [&out, &err] {
                if let Some(fd) = &s.fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                }
            }
            if let Some((fd, _, _)) = &input {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            }
            if let (Some(fd), None) = (&pidfd, end) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let ms = PollTimeout::try_from(wait.as_millis().min(1000) as i32).unwrap_or(PollTimeout::ZERO);
            let _ = poll(&mut fds, ms);
        }
        for s in [&mut out, &mut err] {
            if s.fd.as_ref().is_some_and(readable) {
                s.read_some();
            }
        }
        end = end.or_else(|| reap_children(pid));
        // Past the limit, whether the program still runs or a descendant holds its output open.
        if killed_at.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
            log!("launcher: pid {pid} exceeded its time limit: killing it and its descendants");
            end = kill_descendants(pid).or(end).or_else(|| reap_children(pid));
            killed_at = Some(Instant::now());
            input = None;
        }
    }
    // Under a rule the time limit bounds the program's descendants too: none outlives it.
    if plan.timeout.is_some() {
        let _ = kill_descendants(pid);
    }
    let status = ExecStatus { end, out: out.kept, err: err.kept };
    let _ = sock.flush();
    match write_frame(&mut sock, &ExecAnswer::Status(status).encode()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn readable(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Reaps every child that has ended (re-parented descendants included); the program's own end
/// when it is among them.
fn reap_children(program: Pid) -> Option<ExecEnd> {
    let mut end = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == program => end = Some(ExecEnd::Exited(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == program => end = Some(ExecEnd::Signaled(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return end,
            Ok(_) => {}
        }
    }
}

/// This process's children, from /proc (each process's parent is field 4 of its stat line).
fn children() -> Vec<Pid> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
        let ppid: i32 = std::str::from_utf8(after).ok()?.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == me).then_some(Pid::from_raw(pid))
    })
    .collect()
}

/// Kills the program's process group and every descendant: as a subreaper this process
/// inherits each orphan, so killing its children until none is left reaches them all,
/// including those that left the program's session. Returns the program's end if it was
/// reaped here.
fn kill_descendants(program: Pid) -> Option<ExecEnd> {
    let _ = signal::killpg(program, Signal::SIGKILL);
    let until = Instant::now() + KILL_GRACE;
    let mut end = None;
    loop {
        let kids = children();
        for k in &kids {
            let _ = signal::killpg(*k, Signal::SIGKILL);
            let _ = signal::kill(*k, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
        // Reap what died, keeping the program's own status.
        end = reap_children(program).or(end);
        if kids.is_empty() || Instant::now() >= until {
            return end;
        }
    }
}

struct Spawned {
    pid: Pid,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
}

fn nonblocking(fd: &OwnedFd) {
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

/// Forks and execs the program; the exec's errno comes back over a close-on-exec pipe, so a
/// program that cannot be run is an error here, as g_spawn's is in 7.2.
fn spawn(
    plan: &ExecPlan,
    path: &CString,
    argv: &[CString],
    env: &[CString],
    account: Option<&passwd::Account>,
) -> Result<Spawned, Errno> {
    let devnull = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    let stdin = if plan.input.is_some() { Some(pipe()?) } else { None };
    let stdout = if plan.capture { Some(pipe()?) } else { None };
    let stderr = if plan.capture { Some(pipe()?) } else { None };
    let (report_r, report_w) = pipe()?;
    // SAFETY: the supervisor is single-threaded; the child only sets up and execs or _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let fd0 = stdin.as_ref().map_or(&devnull, |(r, _)| r);
            let fd1 = stdout.as_ref().map_or(&devnull, |(_, w)| w);
            let fd2 = stderr.as_ref().map_or(&devnull, |(_, w)| w);
            let errno = exec_program(path, argv, env, account, [fd0, fd1, fd2]);
            let _ = nix::unistd::write(&report_w, &(errno as i32).to_le_bytes());
            // SAFETY: _exit ends the forked child at once.
            unsafe { nix::libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(report_w);
            drop(devnull);
            let mut report = std::fs::File::from(report_r);
            let mut b = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match report.read(&mut b[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if got == 4 {
                let _ = waitpid(child, None);
                return Err(Errno::from_raw(i32::from_le_bytes(b)));
            }
            let keep_read = |p: Option<(OwnedFd, OwnedFd)>| p.map(|(r, _w)| r);
            let stdin = stdin.map(|(_r, w)| w);
            let (stdout, stderr) = (keep_read(stdout), keep_read(stderr));
            for fd in [&stdin, &stdout, &stderr].into_iter().flatten() {
                nonblocking(fd);
            }
            Ok(Spawned { pid: child, stdin, stdout, stderr })
        }
    }
}

/// In the forked program: a session of its own, `/` and the fixed umask, default signals,
/// stdio, the user's groups and ids, exec.
/// Returns only on failure, with the errno to report.
fn exec_program(
    path: &CString,
    argv: &[CString],
    env: &[CString],
    account: Option<&passwd::Account>,
    stdio: [&OwnedFd; 3],
) -> Errno {
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::unistd::chdir("/") {
        return e;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(PROGRAM_UMASK));
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGPIPE, Signal::SIGCHLD] {
        // SAFETY: SIG_DFL installs no handler code; nothing relies on the old disposition.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for (target, fd) in stdio.into_iter().enumerate() {
        // SAFETY: dup2 onto 0-2 in the forked child; the sources stay open until exec closes
        // them (close-on-exec), and nothing else in this process uses descriptors 0-2.
        if unsafe { nix::libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
            return Errno::last();
        }
    }
    if let Some(a) = account {
        let groups: Vec<Gid> = a.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        if let Err(e) = nix::unistd::setgroups(&groups) {
            return e;
        }
        if let Err(e) = nix::unistd::setgid(Gid::from_raw(a.gid)) {
            return e;
        }
        if let Err(e) = nix::unistd::setuid(Uid::from_raw(a.uid)) {
            return e;
        }
    }
    match nix::unistd::execve(path, argv, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_tag_is_declared_once_and_round_trips() {
        qga_protocol::codes::assert_codes(AnswerTag::ALL, AnswerTag::code, AnswerTag::from_code);
    }

    #[test]
    fn answers_round_trip() {
        for a in [
            ExecAnswer::Started { pid: 7 },
            ExecAnswer::SpawnFailed(Errno::ENOENT),
            ExecAnswer::NoSuchUser("nobody".into()),
            ExecAnswer::TooMany,
            ExecAnswer::UnknownPid,
            ExecAnswer::Status(ExecStatus { end: Some(ExecEnd::Exited(3)), ..Default::default() }),
        ] {
            assert_eq!(ExecAnswer::decode(&a.encode()).unwrap(), a);
        }
        assert!(ExecAnswer::decode(&[13, 0]).is_err());
        assert!(ExecAnswer::decode(&[99]).is_err());
    }
}
