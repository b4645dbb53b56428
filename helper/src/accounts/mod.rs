//! guest-set-user-password and guest-ssh-*-authorized-keys on the privileged side.
//!
//! The helper re-checks the request ([`recheck`]: 7.2's argument rules and the bounds; the
//! policy's user rule is checked by the serve loop with the same `permit` as the front) and
//! hands it to its launcher as one account job (launcher tag 20: the protocol request itself).
//! The launcher, which keeps full root outside the filter:
//! - for a password, runs `chpasswd` (or `chpasswd -e` for a crypted one), as 7.2 does, with
//!   `USER:PASSWORD` on its standard input: never on a command line, in the environment or in
//!   a log;
//! - for keys, looks the user up in `/etc/passwd` and forks a child that drops to the user
//!   (supplementary groups, gid, uid; not dumpable) before it touches anything in the home
//!   directory ([`authkeys`]); the child sends its result back on a pipe.

pub mod authkeys;
use qga_policy::passwd;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{self, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};

use crate::log;
use crate::protocol::accounts::{check_key, check_key_bounds, check_password, check_password_user};
use crate::protocol::{FrameError, Reply, Request, MAX_FRAME};
use authkeys::{KeysOp, KeysResult};

/// How long chpasswd or a key child may take (a home on a dead network mount must not hang the
/// helper for ever).
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Whether `req` is an account request within 7.2's rules and the protocol's bounds: what the
/// front checked already. `Err` names the rule; the helper then treats the front as broken.
pub fn recheck(req: &Request) -> Result<(), &'static str> {
    let keys = match req {
        Request::SetUserPassword { user, password, .. } => {
            check_password_user(user)?;
            // The front sends the password already cut at its first NUL.
            if password.0.contains(&0) || check_password(&password.0).is_err() {
                return Err("forbidden characters in raw password");
            }
            return Ok(());
        }
        Request::SshGetKeys { .. } => return Ok(()),
        Request::SshAddKeys { keys, .. } | Request::SshRemoveKeys { keys, .. } => keys,
        _ => return Err("not an account request"),
    };
    if keys.iter().any(|k| check_key(k).is_err()) {
        return Err("invalid OpenSSH public key");
    }
    check_key_bounds(keys).map_err(|_| "too many or too long keys")
}

/// The C library's text for an errno value, as 7.2's messages carry it (std's own adds
/// " (os error N)").
pub fn strerror(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A user name for the log: one line, bounded.
pub fn shown(user: &[u8]) -> String {
    crate::protocol::text::neutralise(&String::from_utf8_lossy(&user[..user.len().min(64)])).into_owned()
}

/// What the launcher lends an account job (passed in, so this module does not import the
/// launcher that calls it).
pub struct Context {
    /// Finds a program by name in the launcher's fixed directories.
    pub find_program: fn(&str) -> Option<std::path::PathBuf>,
    /// The environment of the programs it runs (`PATH=...`).
    pub program_env: &'static str,
    /// Their umask.
    pub program_umask: u32,
    /// Closes every descriptor above stdio but one (in a child, before it becomes the user).
    pub close_other_fds: fn(i32),
}

/// In the launcher: carries out one account job (the payload after the launcher's `OrderTag::Account`) and returns
/// the reply to send back. A payload that is not an account request is a broken helper.
pub fn serve_job(payload: &[u8], cx: &Context) -> Result<Reply, FrameError> {
    let req = Request::decode(payload)?;
    if let Err(why) = recheck(&req) {
        log!("launcher: refusing account job: {why}");
        return Err(FrameError::BadValue("account job"));
    }
    let reply = match &req {
        Request::SetUserPassword { user, password, crypted } => set_password(user, &password.0, *crypted, cx),
        Request::SshGetKeys { user } => keys_job(user, &KeysOp::Get, cx),
        Request::SshAddKeys { user, keys, reset } => keys_job(user, &KeysOp::Add { keys, reset: *reset }, cx),
        Request::SshRemoveKeys { user, keys } => keys_job(user, &KeysOp::Remove { keys }, cx),
        _ => return Err(FrameError::BadValue("account job")),
    };
    let outcome = match &reply {
        Reply::Done | Reply::Keys { .. } => "done",
        Reply::NoSuchUser => "no such user",
        _ => "failed",
    };
    log!("launcher: {} for user '{}': {outcome}", req.name(), shown(request_user(&req)));
    Ok(reply)
}

fn request_user(req: &Request) -> &[u8] {
    match req {
        Request::SetUserPassword { user, .. }
        | Request::SshGetKeys { user }
        | Request::SshAddKeys { user, .. }
        | Request::SshRemoveKeys { user, .. } => user,
        _ => b"",
    }
}

fn failed(desc: impl Into<String>) -> Reply {
    Reply::Failed { desc: desc.into() }
}

fn devnull() -> Result<OwnedFd, Errno> {
    open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
}

/// 7.2's guest-set-user-password after its checks: `chpasswd [-e]` with `USER:PASSWORD\n` on
/// its standard input, and 7.2's texts for each way it can fail.
fn set_password(user: &[u8], password: &[u8], crypted: bool, cx: &Context) -> Reply {
    let Some(path) = (cx.find_program)("chpasswd") else {
        return failed("cannot find 'passwd' program in PATH");
    };
    let mut line = zeroizing(Vec::with_capacity(user.len() + password.len() + 2));
    line.0.extend_from_slice(user);
    line.0.push(b':');
    line.0.extend_from_slice(password);
    line.0.push(b'\n');
    let Ok(c_path) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())) else {
        return failed("cannot find 'passwd' program in PATH");
    };
    let mut argv = vec![c"chpasswd".to_owned()];
    if crypted {
        argv.push(c"-e".to_owned());
    }
    let env = [std::ffi::CString::new(cx.program_env).unwrap_or_default()];
    let Ok((read_end, write_end)) = nix::unistd::pipe2(OFlag::O_CLOEXEC) else {
        return failed("cannot create pipe FDs");
    };
    let Ok(null) = devnull() else { return failed("cannot create pipe FDs") };
    // SAFETY: the launcher is single-threaded, so the child may allocate; it only sets up its
    // session and stdio and then execs or _exits.
    let child = match unsafe { fork() } {
        Err(e) => return failed(format!("failed to create child process: {}", strerror(e))),
        Ok(ForkResult::Child) => {
            drop(write_end);
            let _ = nix::unistd::setsid();
            let _ = nix::unistd::chdir("/");
            nix::sys::stat::umask(Mode::from_bits_truncate(cx.program_umask));
            reset_signals();
            let _ = nix::unistd::dup2_stdin(&read_end);
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
            let _ = nix::unistd::execve(&c_path, &argv, &env);
            // SAFETY: _exit ends the forked child at once, without the parent's exit handlers.
            unsafe { nix::libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(read_end);
    drop(null);
    let mut pipe = std::fs::File::from(write_end);
    if let Err(e) = pipe.write_all(&line.0) {
        drop(pipe);
        let _ = wait_bounded(child, Instant::now() + TIME_LIMIT);
        return failed(format!("cannot write new account password: {e}"));
    }
    drop(pipe);
    match wait_bounded(child, Instant::now() + TIME_LIMIT) {
        Ok(WaitStatus::Exited(_, 0)) => Reply::Done,
        Ok(WaitStatus::Exited(..)) => failed("child process has failed to set user password"),
        Ok(_) => failed("child process has terminated abnormally"),
        Err(e) => failed(format!("failed to wait for child (pid: {child}): {}", strerror(e))),
    }
}

/// Bytes zeroed when dropped (the `USER:PASSWORD` line).
struct Zeroing(Vec<u8>);

fn zeroizing(v: Vec<u8>) -> Zeroing {
    Zeroing(v)
}

impl Drop for Zeroing {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into the vector's buffer.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn reset_signals() {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGPIPE, Signal::SIGCHLD] {
        // SAFETY: SIG_DFL installs no handler code; nothing in this process relies on the old
        // disposition afterwards.
        let _ = unsafe { signal::signal(sig, signal::SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&signal::SigSet::empty()), None);
}

/// Waits for `pid` until `deadline`; past it, kills it (and its session) and reports ETIMEDOUT.
fn wait_bounded(pid: Pid, deadline: Instant) -> Result<WaitStatus, Errno> {
    loop {
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    let _ = signal::killpg(pid, Signal::SIGKILL);
                    let _ = signal::kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    return Err(Errno::ETIMEDOUT);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(s),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The key commands: the account from the passwd file, then the work in a child that is the
/// user.
fn keys_job(user: &[u8], op: &KeysOp<'_>, cx: &Context) -> Reply {
    let account = match passwd::lookup(user) {
        Ok(Some(a)) => a,
        Ok(None) => return Reply::NoSuchUser,
        Err(e) => return failed(format!("failed to lookup user '{}': {e}", String::from_utf8_lossy(user))),
    };
    let Ok((read_end, write_end)) = nix::unistd::pipe2(OFlag::O_CLOEXEC) else {
        return failed("cannot create pipe FDs");
    };
    // SAFETY: the launcher is single-threaded, so the child may allocate; it drops to the user
    // before it touches the home directory, writes one result and _exits.
    let child = match unsafe { fork() } {
        Err(e) => return failed(format!("failed to create child process: {}", strerror(e))),
        Ok(ForkResult::Child) => {
            drop(read_end);
            // Nothing but the result pipe (and stdio on /dev/null) crosses into the user's
            // process: in particular not the launcher's socket.
            (cx.close_other_fds)(write_end.as_raw_fd());
            if let Ok(null) = devnull() {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            let result = match become_user(&account) {
                Ok(()) => authkeys::run(&account.home, op),
                Err(e) => KeysResult::Failed(format!("failed to switch to user '{}': {}", shown(user), strerror(e))),
            };
            let reply = match result {
                KeysResult::Keys(keys) => Reply::Keys { keys },
                KeysResult::Done => Reply::Done,
                KeysResult::Failed(desc) => Reply::Failed { desc },
            };
            let mut pipe = std::fs::File::from(write_end);
            let code = i32::from(pipe.write_all(&reply.encode()).is_err());
            // SAFETY: _exit ends the forked child at once, without the parent's exit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(write_end);
    let deadline = Instant::now() + TIME_LIMIT;
    let payload = read_until(read_end, deadline);
    let status = wait_bounded(child, deadline.max(Instant::now() + Duration::from_millis(100)));
    match (payload, status) {
        (Some(p), Ok(WaitStatus::Exited(_, 0))) => match Reply::decode(&p) {
            Ok(r @ (Reply::Keys { .. } | Reply::Done | Reply::Failed { .. })) => r,
            _ => failed("the account child answered out of protocol"),
        },
        (_, Err(Errno::ETIMEDOUT)) | (None, _) => {
            let _ = signal::kill(child, Signal::SIGKILL);
            failed(format!("the work on the keys of user '{}' did not finish in time", shown(user)))
        }
        _ => failed("child process has terminated abnormally"),
    }
}

/// Everything the child writes, up to a frame, or `None` past the deadline.
fn read_until(fd: OwnedFd, deadline: Instant) -> Option<Vec<u8>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => return None,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return None,
        }
        match file.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) if out.len() + n <= MAX_FRAME => out.extend_from_slice(&buf[..n]),
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// In the key child: the user's groups, gid and uid, irrevocably, and not dumpable (a process
/// of the user cannot ptrace it or read its memory).
fn become_user(a: &passwd::Account) -> Result<(), Errno> {
    let groups: Vec<Gid> = a.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    nix::unistd::setgroups(&groups)?;
    nix::unistd::setresgid(Gid::from_raw(a.gid), Gid::from_raw(a.gid), Gid::from_raw(a.gid))?;
    nix::unistd::setresuid(Uid::from_raw(a.uid), Uid::from_raw(a.uid), Uid::from_raw(a.uid))?;
    nix::sys::prctl::set_dumpable(false)?;
    if a.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(Errno::EPERM);
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
    Ok(())
}
