//! The request loop and the helper's state machine: read a frame, decode it, check it against
//! the policy and the frozen state, act, answer. Anything the front should never send (a bad
//! frame, a disabled command, a request that is out of state) ends the helper without an
//! answer, after thawing if it holds filesystems frozen. The operations sit behind
//! [`Operations`] so the machine is tested with a fake.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use qga_policy::{decide, permit, Command, Decision, Invocation, Policy};
use qga_protocol::ask::{self, reply, Ask, FreezeCount, Reloaded};
use qga_protocol::set_time;

use crate::files::{OpenError, Target};
use crate::log;
use crate::protocol::storage::{DiskInfo, FsInfo};
use crate::protocol::{fdpass, OpenMode};
use crate::protocol::{
    read_message_frame, write_frame, ExecPlan, ExecRequest, ExecStatus, FrameError, MemoryBlockResult,
    MemoryBlockState, Reply, Request, ShutdownMode, SuspendMode, TrimResult, VcpuState, MAX_FRAME,
};

/// Exit statuses of the helper.
pub mod exit {
    /// Quit, or EOF while thawed.
    pub const OK: i32 = 0;
    /// EOF or a lost channel while frozen (after thawing), or a start-up failure.
    pub const FAILURE: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// The front sent something it never should: refused without an answer.
    pub const REFUSED: i32 = 3;
}

/// The result of a thaw: the count (or error) and whether filesystems may still be frozen
/// (only when the mount list could not be read, so nothing was thawed).
#[derive(Debug, PartialEq, Eq)]
pub struct Thawed {
    pub result: Result<i64, String>,
    pub still_frozen: bool,
}

/// The privileged operations. Errors are the guest-visible texts.
pub trait Operations {
    /// Hook, then freeze every filesystem, or with `only` those mounted at one of its mount
    /// points (guest-fsfreeze-freeze-list). `Ok(n)` with n > 0 leaves filesystems frozen;
    /// `Ok(0)` and errors leave everything thawed (an error thaws what was frozen).
    fn freeze(&mut self, only: Option<&[Vec<u8>]>) -> Result<i64, String>;
    fn thaw(&mut self) -> Thawed;
    fn trim(&mut self, minimum: i64) -> Result<Vec<TrimResult>, String>;
    fn shutdown(&mut self, mode: ShutdownMode) -> Result<(), String>;
    fn suspend(&mut self, mode: SuspendMode) -> Result<(), String>;
    fn set_vcpus(&mut self, vcpus: &[VcpuState]) -> Result<i64, String>;
    /// One result per block; the command itself does not fail.
    fn set_memory_blocks(&mut self, blocks: &[MemoryBlockState]) -> Vec<MemoryBlockResult>;
    fn set_time(&mut self, time_ns: Option<i64>) -> Result<(), String>;
    /// Reload: reads and validates the policy file and the config file's lists itself; the
    /// error says why (with file:line), and nothing changes then.
    fn load_policy(&mut self) -> Result<Policy, String>;
    /// guest-get-fsinfo, in 7.2's reply order; returns within the statfs bound.
    fn fsinfo(&mut self) -> Result<Vec<FsInfo>, String>;
    /// guest-get-disks, in 7.2's reply order.
    fn disks(&mut self) -> Result<Vec<DiskInfo>, String>;
    /// guest-set-user-password and guest-ssh-*-authorized-keys (already re-checked): the reply
    /// to give (`Done`, `Keys`, `NoSuchUser` or `Failed`).
    fn account(&mut self, req: &Request) -> Reply;
    /// guest-file-open of what [`crate::files::target`] decided.
    fn open_file(&mut self, target: &Target, mode: OpenMode) -> Result<OwnedFd, OpenError>;
    /// guest-exec: starts the plan's program; its pid.
    fn exec(&mut self, plan: &ExecPlan) -> Result<i64, String>;
    /// guest-exec-status: a started program's status (forgotten once reported exited).
    fn exec_status(&mut self, pid: i64) -> Result<ExecStatus, String>;
}

/// Why a request is refused (and the helper exits).
#[derive(Debug)]
pub enum Refusal {
    Frame(FrameError),
    Disabled(Command),
    Frozen(Command),
    /// Arguments the front must have refused (7.2's rules for the account commands).
    Arguments(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Frame(e) => write!(f, "malformed frame: {e}"),
            Refusal::Disabled(c) => write!(f, "{} is not enabled", c.name()),
            Refusal::Frozen(c) => write!(f, "{} is not allowed while frozen", c.name()),
            Refusal::Arguments(why) => write!(f, "arguments the front must refuse: {why}"),
        }
    }
}

/// The helper's own gate: the policy re-check and the frozen-state rule, through the one
/// [`decide`]. FreezeStatus and Quit carry no command and are always allowed.
pub fn check(req: &Request, policy: &Policy, frozen: bool) -> Result<(), Refusal> {
    let Some(cmd) = req.command() else { return Ok(()) };
    match decide(policy, cmd, frozen) {
        Decision::Enabled => Ok(()),
        Decision::Disabled => Err(Refusal::Disabled(cmd)),
        Decision::Frozen => Err(Refusal::Frozen(cmd)),
    }
}

/// What the loop does after one request.
#[derive(Debug)]
pub enum Step {
    Reply(Reply),
    /// Answer, then exit with this status.
    ReplyAndExit(Reply, i32),
    /// Answer with this descriptor attached (guest-file-open); it is closed once sent.
    ReplyWithFd(Reply, OwnedFd),
    Refuse(Refusal),
}

pub struct Server<O: Operations> {
    ops: O,
    /// The effective policy: from `--enabled` at start, then from each reload that applied.
    policy: Policy,
    frozen: bool,
    /// The front's sandbox covers the file commands (it started with them enabled).
    front_files: bool,
    /// Where Landlock let guest-file-open reach at start-up (directories and access), when it
    /// narrowed the helper; a reload may not go beyond it.
    file_reach: Option<Vec<(std::path::PathBuf, qga_policy::rules::Access)>>,
    /// The freeze time limit (`--fsfreeze-timeout`), and when the current freeze began.
    freeze_timeout: Option<Duration>,
    frozen_since: Option<Instant>,
}

/// A request channel the loop can wait on with a time limit (the freeze time limit).
pub trait WaitReadable {
    /// Waits until a read would not block or `limit` has passed; false when it passed.
    fn wait_readable(&mut self, limit: Duration) -> bool;
}

impl WaitReadable for std::os::unix::net::UnixStream {
    fn wait_readable(&mut self, limit: Duration) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        // Whole milliseconds, rounded up so an expiry is never reported early; at most
        // PollTimeout's range (the loop waits again for what is left).
        let ms = limit.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => false,
            // Readable, closed or failed: the read that follows finds out which.
            Ok(_) => true,
            Err(nix::errno::Errno::EINTR) => true,
            Err(_) => true,
        }
    }
}

fn failed(desc: String) -> Reply {
    Reply::Failed { desc }
}

impl<O: Operations> Server<O> {
    pub fn new(ops: O, policy: Policy, frozen: bool) -> Server<O> {
        Server { ops, policy, frozen, front_files: false, file_reach: None, freeze_timeout: None, frozen_since: None }
    }

    /// Says that the front started with the file commands, so a reload may enable them.
    pub fn with_front_files(mut self, front_files: bool) -> Server<O> {
        self.front_files = front_files;
        self
    }

    /// Says where the helper's Landlock ruleset lets guest-file-open reach (fixed at start-up).
    pub fn with_file_reach(mut self, reach: Option<Vec<(std::path::PathBuf, qga_policy::rules::Access)>>) -> Server<O> {
        self.file_reach = reach;
        self
    }

    /// Reload: the new policy applies only if it validates and the start-up sandboxes (the
    /// front's, and the helper's reach for guest-file-open) cover it; otherwise the old one stays in force and the answer says why. Frozen state and
    /// everything else are untouched.
    fn reload(&mut self) -> Reloaded {
        let new = match self.ops.load_policy() {
            Ok(p) => p,
            Err(reason) => return Reloaded::Refused { restart: false, reason },
        };
        if let Some(reason) = qga_policy::reload::needs_restart(&new, self.front_files) {
            return Reloaded::Refused { restart: true, reason };
        }
        // A rule beyond the ruleset would be enabled and pass both gates, and every open it
        // allows would then fail with EACCES: refused whole instead, saying a restart applies it.
        if let Some(started) = &self.file_reach {
            let new_reach = crate::files::landlock_paths(&new);
            if let Some(reason) = qga_policy::reload::reach_needs_restart(started, &new_reach) {
                return Reloaded::Refused { restart: true, reason };
            }
        }
        self.policy = new.clone();
        Reloaded::Applied(new)
    }

    /// Sets the freeze time limit; a freeze found at start counts from now.
    pub fn with_freeze_timeout(mut self, limit: Option<Duration>) -> Server<O> {
        self.freeze_timeout = limit;
        self.frozen_since = self.timed_freeze_start();
        self
    }

    /// When a freeze that starts now must end: only under a time limit (the clock is read
    /// only then).
    fn timed_freeze_start(&self) -> Option<Instant> {
        (self.frozen && self.freeze_timeout.is_some()).then(Instant::now)
    }

    /// How long the current freeze may still last, if it is frozen under a time limit.
    pub fn freeze_time_left(&self) -> Option<Duration> {
        let limit = self.freeze_timeout?;
        let since = self.frozen_since.filter(|_| self.frozen)?;
        Some(limit.saturating_sub(since.elapsed()))
    }

    /// The freeze time limit expired: thaw (with the hook), as guest-fsfreeze-thaw would.
    /// The front learns it from the next status or thaw (status then reads "thawed" and a
    /// thaw answers 0).
    pub fn freeze_time_limit_expired(&mut self) {
        let limit = self.freeze_timeout.unwrap_or_default().as_secs();
        let t = self.ops.thaw();
        self.frozen = t.still_frozen;
        match t.result {
            Ok(n) => log!("fsfreeze-timeout: frozen for {limit} s: thawed {n} filesystem(s)"),
            Err(e) => log!("fsfreeze-timeout: frozen for {limit} s: thaw: {e}"),
        }
        // A thaw that could not read the mount list is tried again after another period.
        self.frozen_since = self.timed_freeze_start();
    }

    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// Checks and carries out one decoded request.
    pub fn handle(&mut self, req: Request) -> Step {
        if let Err(r) = check(&req, &self.policy, self.frozen) {
            return Step::Refuse(r);
        }
        if matches!(
            req,
            Request::SetUserPassword { .. }
                | Request::SshGetKeys { .. }
                | Request::SshAddKeys { .. }
                | Request::SshRemoveKeys { .. }
        ) {
            if let Err(why) = crate::accounts::recheck(&req) {
                return Step::Refuse(Refusal::Arguments(why));
            }
        }
        if let Some(refusal) = self.refused_by_conditions(&req) {
            log!("refused by the policy's conditions: {refusal}");
            return Step::Reply(failed(refusal));
        }
        // Each arm's handler returns its own request's answer, which `reply` turns into the one
        // reply that carries it: an arm cannot answer with another request's reply.
        let reply = match req {
            Request::FreezeStatus => reply::<ask::FreezeStatus>(Ok(self.frozen)),
            Request::Quit => {
                self.thaw_if_frozen("quit");
                return Step::ReplyAndExit(reply::<ask::Quit>(Ok(())), exit::OK);
            }
            Request::Freeze => reply::<ask::Freeze>(self.freeze(None)),
            Request::FreezeList { mountpoints } => reply::<ask::Freeze>(self.freeze(mountpoints.as_deref())),
            Request::Thaw => reply::<ask::Thaw>(self.thaw()),
            Request::Trim { minimum } => reply::<ask::Trim>(self.ops.trim(minimum)),
            Request::Shutdown { mode } => {
                log!("shutdown requested, mode {mode:?}");
                reply::<ask::Shutdown>(self.ops.shutdown(mode))
            }
            Request::Suspend { mode } => {
                log!("suspend requested, mode {mode:?}");
                reply::<ask::Suspend>(self.ops.suspend(mode))
            }
            Request::SetVcpus { vcpus } => reply::<ask::SetVcpus>(self.ops.set_vcpus(&vcpus)),
            Request::SetMemoryBlocks { blocks } => {
                reply::<ask::SetMemoryBlocks>(Ok(self.ops.set_memory_blocks(&blocks)))
            }
            Request::SetTime { time_ns } => reply::<ask::SetTime>(self.ops.set_time(time_ns)),
            Request::Reload => reply::<ask::Reload>(Ok(self.reload())),
            Request::GetFsinfo => reply::<ask::GetFsinfo>(self.ops.fsinfo()),
            Request::GetDisks => reply::<ask::GetDisks>(self.ops.disks()),
            Request::SetUserPassword { .. } => {
                reply::<ask::SetUserPassword>(self.account::<ask::SetUserPassword>(&req))
            }
            Request::SshGetKeys { .. } => reply::<ask::SshGetKeys>(self.account::<ask::SshGetKeys>(&req)),
            Request::SshAddKeys { .. } => reply::<ask::SshAddKeys>(self.account::<ask::SshAddKeys>(&req)),
            Request::SshRemoveKeys { .. } => reply::<ask::SshRemoveKeys>(self.account::<ask::SshRemoveKeys>(&req)),
            Request::FileOpen { path, mode } => {
                let target = match crate::files::target(&self.policy, &path, mode) {
                    Ok(t) => t,
                    Err(refusal) => {
                        log!("refused by the policy's conditions: {refusal}");
                        return Step::Reply(failed(refusal));
                    }
                };
                match self.ops.open_file(&target, mode) {
                    Ok(fd) => return Step::ReplyWithFd(reply::<ask::FileOpen>(Ok(Ok(()))), fd),
                    Err(OpenError::Errno(e)) => reply::<ask::FileOpen>(Ok(Err(e as i32))),
                    Err(OpenError::Refused(why)) => {
                        log!("refused by the policy's conditions: {why}");
                        reply::<ask::FileOpen>(Err(why))
                    }
                }
            }
            Request::Exec(req) => reply::<ask::Exec>(self.exec(&req)),
            Request::ExecStatus { pid } => reply::<ask::ExecStatus>(self.ops.exec_status(pid)),
        };
        // A reply within every list and string bound can still exceed the frame bound.
        if matches!(reply, Reply::Fsinfo { .. } | Reply::Disks { .. }) && reply.encode().len() > MAX_FRAME {
            return Step::Reply(failed(format!("the reply exceeds the {MAX_FRAME}-byte bound of the helper's frames")));
        }
        Step::Reply(reply)
    }

    /// guest-exec: the policy re-check on the request as received (program, arguments,
    /// environment, input, capture), then the plan its grant gives, run by the launcher.
    fn exec(&mut self, req: &ExecRequest) -> Result<i64, String> {
        let env = req.env.as_deref().unwrap_or(&[]);
        let invocation = Invocation::Exec {
            program: &req.path,
            args: &req.args,
            env,
            input: req.input.is_some(),
            capture: req.capture,
        };
        let plan = match permit(&self.policy, Command::Exec, &invocation) {
            Ok(grant) => crate::exec_plan::plan(req, &grant),
            Err(refusal) => {
                log!("refused by the policy's conditions: {refusal}");
                return Err(refusal.0);
            }
        };
        self.ops.exec(&plan)
    }

    /// guest-fsfreeze-freeze and -freeze-list: one path, so both keep the same frozen state,
    /// marker, hook and logging.
    fn freeze(&mut self, only: Option<&[Vec<u8>]>) -> Result<FreezeCount, String> {
        match self.ops.freeze(only) {
            Ok(count) => {
                self.frozen = count > 0;
                self.frozen_since = self.timed_freeze_start();
                log!("froze {count} filesystem(s)");
                Ok(FreezeCount { count, frozen: self.frozen })
            }
            Err(e) => {
                self.frozen = false;
                log!("freeze failed: {e}");
                Err(e)
            }
        }
    }

    /// guest-fsfreeze-thaw: the count, with the state after it (still frozen only when the
    /// mount list could not be read).
    fn thaw(&mut self) -> Result<FreezeCount, String> {
        let was_frozen = self.frozen;
        let t = self.ops.thaw();
        self.frozen = self.frozen && t.still_frozen;
        match t.result {
            Ok(count) => {
                // The front logs every thaw call; a thaw that changed nothing adds no line of
                // its own.
                if count > 0 || was_frozen {
                    log!("thawed {count} filesystem(s)");
                }
                Ok(FreezeCount { count, frozen: self.frozen })
            }
            Err(e) => {
                log!("thaw: {e}");
                Err(e)
            }
        }
    }

    /// The argument re-check, on the request as the helper will carry it out (the clock step
    /// from its own clock): the policy's refusal text, or `None`. The front checked first, so a
    /// refusal here is a front that misbehaved or a clock that moved in between; either way the
    /// request fails and nothing is done.
    fn refused_by_conditions(&self, req: &Request) -> Option<String> {
        let ids: Vec<u64>;
        let invocation = match req {
            Request::Shutdown { mode } => Invocation::Shutdown { mode: (*mode).into() },
            Request::SetTime { time_ns } => {
                Invocation::SetTime { step: time_ns.map(|ns| set_time::step_seconds(ns, set_time::now_ns())) }
            }
            Request::SetVcpus { vcpus } => {
                ids = vcpus.iter().map(|v| u64::try_from(v.logical_id).unwrap_or(u64::MAX)).collect();
                Invocation::SetVcpus { cpus: &ids }
            }
            Request::Trim { minimum } => Invocation::Fstrim { minimum: *minimum as u64 },
            Request::FileOpen { path, mode } => Invocation::FileOpen { path, access: mode.access() },
            Request::SetMemoryBlocks { blocks } => {
                ids = blocks.iter().map(|b| b.phys_index).collect();
                Invocation::SetMemoryBlocks { blocks: &ids }
            }
            Request::SetUserPassword { user, crypted, .. } => Invocation::SetUserPassword { user, crypted: *crypted },
            Request::SshGetKeys { user } | Request::SshAddKeys { user, .. } | Request::SshRemoveKeys { user, .. } => {
                Invocation::SshKeys { user }
            }
            Request::FreezeList { .. }
            | Request::GetFsinfo
            | Request::GetDisks
            | Request::FreezeStatus
            | Request::Quit
            | Request::Reload
            | Request::Freeze
            | Request::Thaw
            | Request::Suspend { .. }
            // guest-exec's check is in `exec`, which needs the grant as well; the status of a
            // program the policy let start is not narrowed further.
            | Request::Exec(_)
            | Request::ExecStatus { .. } => return None,
        };
        let cmd = req.command()?;
        permit(&self.policy, cmd, &invocation).err().map(|r| r.0)
    }

    /// The account commands, carried out by the launcher, whose reply must be of the request's
    /// kind `K`: logged by user name and key count (never a password or a key).
    fn account<K: Ask>(&mut self, req: &Request) -> Result<K::Answer, String> {
        let (user, keys) = match req {
            Request::SetUserPassword { user, .. } | Request::SshGetKeys { user } => (user, None),
            Request::SshAddKeys { user, keys, .. } | Request::SshRemoveKeys { user, keys } => (user, Some(keys.len())),
            _ => return Err("not an account request".into()),
        };
        let reply = self.ops.account(req);
        let outcome = match &reply {
            Reply::Failed { desc } => desc.as_str(),
            Reply::NoSuchUser => "no such user",
            _ => "done",
        };
        match keys {
            Some(n) => log!("{} for user '{}', {n} key(s): {outcome}", req.name(), crate::accounts::shown(user)),
            None => log!("{} for user '{}': {outcome}", req.name(), crate::accounts::shown(user)),
        }
        // The launcher answers with a whole reply: one of another kind is a broken launcher,
        // and the command fails.
        ask::answer::<K>(reply).unwrap_or_else(|other| {
            log!("the launcher answered {} with a reply of another kind ({:?})", req.name(), other.tag());
            Err("internal error: unexpected answer from the program launcher".into())
        })
    }

    /// Thaws (with the hook) if frozen, before the helper goes away.
    fn thaw_if_frozen(&mut self, why: &str) {
        if !self.frozen {
            return;
        }
        let t = self.ops.thaw();
        self.frozen = t.still_frozen;
        match t.result {
            Ok(n) => log!("{why}: thawed {n} filesystem(s) before exiting"),
            Err(e) => log!("{why}: thaw before exiting: {e}"),
        }
    }

    /// Ends after a refusal: no answer, thaw, non-zero status.
    pub fn refuse(&mut self, why: Refusal) -> i32 {
        log!("refusing request: {why}; exiting");
        self.thaw_if_frozen("refused request");
        exit::REFUSED
    }

    /// Ends when the front has gone (EOF or a failed write).
    pub fn front_gone(&mut self, why: &str) -> i32 {
        let was_frozen = self.frozen;
        log!("{why}; exiting");
        self.thaw_if_frozen(why);
        if was_frozen {
            exit::FAILURE
        } else {
            exit::OK
        }
    }
}

/// A request channel that can carry a descriptor with a reply (a unix socket).
pub trait SendFd {
    /// Writes one frame with `fd` attached.
    fn write_frame_with_fd(&mut self, payload: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<()>;
}

impl SendFd for std::os::unix::net::UnixStream {
    fn write_frame_with_fd(&mut self, payload: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<()> {
        fdpass::write_frame_with_fd(self, payload, fd)
    }
}

/// Serves requests on `chan` until the helper must exit; returns the exit status.
pub fn run<O: Operations, C: Read + Write + WaitReadable + SendFd>(server: &mut Server<O>, chan: &mut C) -> i32 {
    loop {
        if let Some(left) = server.freeze_time_left() {
            if left.is_zero() || !chan.wait_readable(left) {
                if server.freeze_time_left().is_some_and(|l| l.is_zero()) {
                    server.freeze_time_limit_expired();
                }
                continue;
            }
        }
        let req = match read_message_frame(chan).and_then(|p| Request::decode(&p)) {
            Ok(req) => req,
            Err(FrameError::Closed) => return server.front_gone("the front closed the channel"),
            Err(FrameError::Io(e)) => return server.front_gone(&format!("reading the channel failed: {e}")),
            Err(e) => return server.refuse(Refusal::Frame(e)),
        };
        let (reply, exit_status, fd) = match server.handle(req) {
            Step::Reply(r) => (r, None, None),
            Step::ReplyAndExit(r, code) => (r, Some(code), None),
            Step::ReplyWithFd(r, fd) => (r, None, Some(fd)),
            Step::Refuse(why) => return server.refuse(why),
        };
        let written = match &fd {
            Some(fd) => chan.write_frame_with_fd(&reply.encode(), fd.as_fd()),
            None => write_frame(chan, &reply.encode()),
        };
        // The helper keeps no file open: the front holds the only copy from here on.
        drop(fd);
        if let Err(e) = written {
            return server.front_gone(&format!("writing a reply failed: {e}"));
        }
        if let Some(code) = exit_status {
            return code;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Records the operations called; freeze freezes `freeze_count` filesystems.
    #[derive(Default)]
    struct FakeOps {
        calls: Vec<&'static str>,
        freeze_count: i64,
        freeze_error: Option<String>,
        /// What the policy file says on a reload (`None`: it does not validate).
        next_policy: Option<Policy>,
        plans: Vec<ExecPlan>,
    }

    impl Operations for FakeOps {
        fn freeze(&mut self, only: Option<&[Vec<u8>]>) -> Result<i64, String> {
            self.calls.push(if only.is_some() { "freeze_list" } else { "freeze" });
            match &self.freeze_error {
                Some(e) => Err(e.clone()),
                None => Ok(self.freeze_count),
            }
        }
        fn thaw(&mut self) -> Thawed {
            self.calls.push("thaw");
            Thawed { result: Ok(2), still_frozen: false }
        }
        fn trim(&mut self, _: i64) -> Result<Vec<TrimResult>, String> {
            self.calls.push("trim");
            Ok(vec![])
        }
        fn shutdown(&mut self, _: ShutdownMode) -> Result<(), String> {
            self.calls.push("shutdown");
            Ok(())
        }
        fn suspend(&mut self, _: SuspendMode) -> Result<(), String> {
            self.calls.push("suspend");
            Err("the requested suspend mode is not supported by the guest".into())
        }
        fn set_vcpus(&mut self, v: &[VcpuState]) -> Result<i64, String> {
            self.calls.push("set_vcpus");
            Ok(v.len() as i64)
        }
        fn set_time(&mut self, _: Option<i64>) -> Result<(), String> {
            self.calls.push("set_time");
            Ok(())
        }
        fn load_policy(&mut self) -> Result<Policy, String> {
            self.calls.push("load_policy");
            self.next_policy.clone().ok_or_else(|| "policy:2: unknown keyword 'alow'".to_string())
        }
        fn set_memory_blocks(&mut self, blocks: &[MemoryBlockState]) -> Vec<MemoryBlockResult> {
            self.calls.push("set_memory_blocks");
            let success = crate::protocol::MemoryBlockResponse::Success;
            blocks
                .iter()
                .map(|b| MemoryBlockResult { phys_index: b.phys_index, response: success, error_code: None })
                .collect()
        }
        fn fsinfo(&mut self) -> Result<Vec<FsInfo>, String> {
            self.calls.push("fsinfo");
            Ok(vec![])
        }
        fn disks(&mut self) -> Result<Vec<DiskInfo>, String> {
            self.calls.push("disks");
            Ok(vec![])
        }
        fn account(&mut self, _: &Request) -> Reply {
            self.calls.push("account");
            Reply::Done
        }

        fn open_file(&mut self, target: &Target, _: OpenMode) -> Result<OwnedFd, OpenError> {
            self.calls.push("open_file");
            match target {
                Target::Anywhere(p) if p == b"/missing" => Err(OpenError::Errno(nix::errno::Errno::ENOENT)),
                _ => Ok(std::fs::File::open("/dev/null").unwrap().into()),
            }
        }
        fn exec(&mut self, plan: &ExecPlan) -> Result<i64, String> {
            self.calls.push("exec");
            self.plans.push(plan.clone());
            Ok(42)
        }
        fn exec_status(&mut self, _: i64) -> Result<ExecStatus, String> {
            self.calls.push("exec_status");
            Ok(ExecStatus::default())
        }
    }

    fn all_enabled() -> Policy {
        Policy::allow_all()
    }

    fn server(frozen: bool) -> Server<FakeOps> {
        Server::new(FakeOps { freeze_count: 3, ..Default::default() }, all_enabled(), frozen)
    }

    fn acting_requests() -> Vec<Request> {
        vec![
            Request::Freeze,
            Request::FreezeList { mountpoints: Some(vec![b"/".to_vec()]) },
            Request::Trim { minimum: 0 },
            Request::Shutdown { mode: ShutdownMode::Powerdown },
            Request::Suspend { mode: SuspendMode::Ram },
            Request::SetVcpus { vcpus: vec![] },
            Request::SetMemoryBlocks { blocks: vec![] },
            Request::SetTime { time_ns: None },
        ]
    }

    /// A channel: the frames to read, and what the helper wrote.
    struct Chan {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
        fds_sent: usize,
    }

    impl Chan {
        fn new(bytes: Vec<u8>) -> Chan {
            Chan { input: Cursor::new(bytes), output: vec![], fds_sent: 0 }
        }
        fn frames(reqs: &[Request]) -> Chan {
            let mut b = vec![];
            for r in reqs {
                write_frame(&mut b, &r.encode()).unwrap();
            }
            Chan::new(b)
        }
        fn replies(&self) -> Vec<Reply> {
            let mut r = &self.output[..];
            let mut out = vec![];
            while !r.is_empty() {
                out.push(Reply::decode(&crate::protocol::read_frame(&mut r).unwrap()).unwrap());
            }
            out
        }
    }

    impl WaitReadable for Chan {
        fn wait_readable(&mut self, _: Duration) -> bool {
            true
        }
    }

    impl SendFd for Chan {
        fn write_frame_with_fd(&mut self, payload: &[u8], _: BorrowedFd<'_>) -> std::io::Result<()> {
            self.fds_sent += 1;
            write_frame(&mut self.output, payload)
        }
    }

    #[test]
    fn a_file_open_answers_with_one_descriptor_and_a_failed_one_with_its_errno() {
        let mut s = Server::new(FakeOps::default(), Policy::only([Command::FileOpen]), false);
        let mut chan = Chan::frames(&[
            Request::FileOpen { path: b"/tmp/x".to_vec(), mode: OpenMode::Write },
            Request::FileOpen { path: b"/missing".to_vec(), mode: OpenMode::Read },
        ]);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        assert_eq!(chan.replies(), [Reply::FileOpened, Reply::FileOpenFailed { errno: nix::libc::ENOENT }]);
        assert_eq!(chan.fds_sent, 1);
    }

    #[test]
    fn a_file_open_no_rule_allows_is_refused_by_the_helper_without_opening() {
        let rule = qga_policy::Narrowing::parse(Command::FileOpen, vec!["path=/srv/drop/".into()]).unwrap();
        let mut s =
            Server::new(FakeOps::default(), Policy::only([Command::FileOpen]).with_conditions(vec![rule]), false);
        for path in [&b"/etc/shadow"[..], b"/srv/drop/../../etc/shadow"] {
            let Step::Reply(Reply::Failed { desc }) =
                s.handle(Request::FileOpen { path: path.to_vec(), mode: OpenMode::Read })
            else {
                panic!("not refused");
            };
            assert!(desc.starts_with("the policy does not allow guest-file-open '"), "{desc}");
        }
        assert!(s.ops.calls.is_empty(), "{:?}", s.ops.calls);
    }

    #[test]
    fn the_freeze_time_limit_thaws_once_and_only_when_frozen() {
        let mut s = server(false).with_freeze_timeout(Some(Duration::from_millis(50)));
        assert_eq!(s.freeze_time_left(), None);
        assert!(matches!(s.handle(Request::Freeze), Step::Reply(Reply::FreezeCount { count: 3, frozen: true })));
        assert!(s.freeze_time_left().is_some_and(|l| l <= Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.freeze_time_left(), Some(Duration::ZERO));
        s.freeze_time_limit_expired();
        assert!(!s.frozen());
        assert_eq!(s.freeze_time_left(), None);
        assert_eq!(s.ops.calls, ["freeze", "thaw"]);
        // A later thaw is still answered.
        assert!(matches!(s.handle(Request::Thaw), Step::Reply(Reply::FreezeCount { frozen: false, .. })));
    }

    #[test]
    fn without_a_time_limit_a_freeze_never_expires() {
        let mut s = server(false);
        s.handle(Request::Freeze);
        assert_eq!(s.freeze_time_left(), None);
        assert_eq!(server(true).freeze_time_left(), None);
    }

    impl Read for Chan {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Chan {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_acting_request_is_out_of_state_while_frozen() {
        for req in acting_requests() {
            assert!(matches!(check(&req, &all_enabled(), true), Err(Refusal::Frozen(_))), "{req:?}");
            assert!(check(&req, &all_enabled(), false).is_ok(), "{req:?}");
        }
    }

    #[test]
    fn thaw_status_and_quit_are_allowed_in_both_states() {
        for frozen in [false, true] {
            for req in [Request::Thaw, Request::FreezeStatus, Request::Quit] {
                assert!(check(&req, &all_enabled(), frozen).is_ok(), "{req:?} frozen={frozen}");
            }
        }
    }

    #[test]
    fn status_and_quit_need_no_policy_but_everything_else_does() {
        let none = Policy::only([]);
        assert!(check(&Request::FreezeStatus, &none, false).is_ok());
        assert!(check(&Request::Quit, &none, true).is_ok());
        assert!(matches!(check(&Request::Thaw, &none, false), Err(Refusal::Disabled(Command::FsfreezeThaw))));
        for req in acting_requests() {
            assert!(check(&req, &none, false).is_err(), "{req:?}");
        }
        let only_ram = Policy::only([Command::SuspendRam]);
        assert!(check(&Request::Suspend { mode: SuspendMode::Ram }, &only_ram, false).is_ok());
        assert!(check(&Request::Suspend { mode: SuspendMode::Disk }, &only_ram, false).is_err());
    }

    #[test]
    fn a_request_the_conditions_refuse_fails_and_nothing_is_done() {
        let conditions = qga_protocol::helper_args::parse_conditions(
            "guest-shutdown mode=reboot\nguest-fstrim floor=4096\nguest-set-vcpus cpus=1-3\nguest-set-time max-step=60",
        )
        .unwrap();
        let mut s = Server::new(FakeOps::default(), Policy::allow_all().with_conditions(conditions), false);
        let failed = |step: Step| match step {
            Step::Reply(Reply::Failed { desc }) => desc,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            failed(s.handle(Request::Shutdown { mode: ShutdownMode::Halt })),
            "the policy does not allow guest-shutdown mode 'halt'"
        );
        assert!(failed(s.handle(Request::Trim { minimum: 0 })).contains("minimum 0"));
        let cpu0 = vec![VcpuState { logical_id: 0, online: false }];
        assert!(failed(s.handle(Request::SetVcpus { vcpus: cpu0 })).contains("logical-id 0"));
        assert!(failed(s.handle(Request::SetTime { time_ns: Some(0) })).contains("step"));
        assert!(failed(s.handle(Request::SetTime { time_ns: None })).contains("hardware clock"));
        assert!(s.ops.calls.is_empty(), "{:?}", s.ops.calls);
        assert!(matches!(s.handle(Request::Shutdown { mode: ShutdownMode::Reboot }), Step::Reply(Reply::Done)));
        assert!(matches!(s.handle(Request::Trim { minimum: 4096 }), Step::Reply(Reply::Trimmed { .. })));
        assert_eq!(s.ops.calls, ["shutdown", "trim"]);
    }

    #[test]
    fn freeze_then_thaw_moves_the_state() {
        let mut s = server(false);
        assert!(matches!(s.handle(Request::Freeze), Step::Reply(Reply::FreezeCount { count: 3, frozen: true })));
        assert!(s.frozen());
        assert!(matches!(s.handle(Request::FreezeStatus), Step::Reply(Reply::FreezeState { frozen: true })));
        assert!(matches!(s.handle(Request::Thaw), Step::Reply(Reply::FreezeCount { count: 2, frozen: false })));
        assert!(!s.frozen());
    }

    #[test]
    fn freeze_list_takes_the_freeze_path_and_its_state() {
        let mut s = server(false);
        let req = Request::FreezeList { mountpoints: Some(vec![b"/".to_vec()]) };
        assert!(matches!(s.handle(req.clone()), Step::Reply(Reply::FreezeCount { count: 3, frozen: true })));
        assert!(s.frozen());
        // Frozen by either command, neither may run again until thaw.
        assert!(matches!(s.handle(req), Step::Refuse(Refusal::Frozen(Command::FsfreezeFreezeList))));
        assert!(matches!(s.handle(Request::Freeze), Step::Refuse(Refusal::Frozen(Command::FsfreezeFreeze))));
        assert!(matches!(s.handle(Request::Thaw), Step::Reply(Reply::FreezeCount { count: 2, frozen: false })));
        assert_eq!(s.ops.calls, ["freeze_list", "thaw"]);
    }

    #[test]
    fn a_freeze_list_matching_nothing_answers_zero_and_stays_thawed() {
        let mut s = Server::new(FakeOps::default(), all_enabled(), false);
        let req = Request::FreezeList { mountpoints: Some(vec![]) };
        assert!(matches!(s.handle(req), Step::Reply(Reply::FreezeCount { count: 0, frozen: false })));
        assert!(!s.frozen());
    }

    #[test]
    fn freeze_list_is_gated_by_its_own_name() {
        let only_freeze = crate::args::parse_enabled("guest-fsfreeze-freeze").unwrap();
        let req = Request::FreezeList { mountpoints: None };
        assert!(matches!(check(&req, &only_freeze, false), Err(Refusal::Disabled(Command::FsfreezeFreezeList))));
    }

    #[test]
    fn freezing_nothing_stays_thawed() {
        let mut s = Server::new(FakeOps::default(), all_enabled(), false);
        assert!(matches!(s.handle(Request::Freeze), Step::Reply(Reply::FreezeCount { count: 0, frozen: false })));
        assert!(!s.frozen());
    }

    #[test]
    fn a_failed_freeze_is_answered_and_leaves_the_helper_thawed() {
        let ops =
            FakeOps { freeze_error: Some("failed to freeze /: Operation not permitted".into()), ..Default::default() };
        let mut s = Server::new(ops, all_enabled(), false);
        match s.handle(Request::Freeze) {
            Step::Reply(Reply::Failed { desc }) => assert_eq!(desc, "failed to freeze /: Operation not permitted"),
            other => panic!("{other:?}"),
        }
        assert!(!s.frozen());
    }

    #[test]
    fn freeze_while_frozen_is_refused_without_acting() {
        let mut s = server(true);
        assert!(matches!(s.handle(Request::Freeze), Step::Refuse(Refusal::Frozen(Command::FsfreezeFreeze))));
        assert!(s.ops.calls.is_empty());
    }

    #[test]
    fn thaw_while_thawed_is_legal() {
        let mut s = server(false);
        assert!(matches!(s.handle(Request::Thaw), Step::Reply(Reply::FreezeCount { .. })));
        assert_eq!(s.ops.calls, ["thaw"]);
    }

    #[test]
    fn quit_thaws_if_frozen_then_answers_done_and_exits_zero() {
        let mut s = server(true);
        assert!(matches!(s.handle(Request::Quit), Step::ReplyAndExit(Reply::Done, exit::OK)));
        assert_eq!(s.ops.calls, ["thaw"]);
        let mut s = server(false);
        assert!(matches!(s.handle(Request::Quit), Step::ReplyAndExit(Reply::Done, exit::OK)));
        assert!(s.ops.calls.is_empty());
    }

    #[test]
    fn operation_errors_are_answered_not_fatal() {
        let mut chan = Chan::frames(&[Request::Suspend { mode: SuspendMode::Ram }, Request::Quit]);
        let mut s = server(false);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        assert_eq!(
            chan.replies(),
            [Reply::Failed { desc: "the requested suspend mode is not supported by the guest".into() }, Reply::Done]
        );
    }

    #[test]
    fn a_refused_request_gets_no_answer_and_thaws_first() {
        let mut chan = Chan::frames(&[Request::FreezeStatus, Request::Shutdown { mode: ShutdownMode::Halt }]);
        let mut s = server(true);
        assert_eq!(run(&mut s, &mut chan), exit::REFUSED);
        assert_eq!(chan.replies(), [Reply::FreezeState { frozen: true }]);
        assert_eq!(s.ops.calls, ["thaw"]);
    }

    #[test]
    fn a_disabled_request_is_refused_without_acting() {
        let mut chan = Chan::frames(&[Request::Shutdown { mode: ShutdownMode::Powerdown }]);
        let mut s = Server::new(FakeOps::default(), Policy::only([]), false);
        assert_eq!(run(&mut s, &mut chan), exit::REFUSED);
        assert!(chan.output.is_empty());
        assert!(s.ops.calls.is_empty());
    }

    #[test]
    fn malformed_frames_are_refused_without_an_answer() {
        let mut oversized = ((crate::protocol::MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        oversized.extend_from_slice(&[1; 8]);
        for bytes in [vec![1, 0, 0, 0, 200], vec![2, 0, 0, 0, 1], oversized, vec![5, 0, 0, 0, 5], vec![3, 0]] {
            let mut chan = Chan::new(bytes.clone());
            let mut s = server(false);
            assert_eq!(run(&mut s, &mut chan), exit::REFUSED, "{bytes:?}");
            assert!(chan.output.is_empty());
            assert!(s.ops.calls.is_empty());
        }
    }

    #[test]
    fn eof_exits_zero_when_thawed_and_one_after_thawing() {
        let mut s = server(false);
        assert_eq!(run(&mut s, &mut Chan::new(vec![])), exit::OK);
        assert!(s.ops.calls.is_empty());
        let mut s = server(true);
        assert_eq!(run(&mut s, &mut Chan::new(vec![])), exit::FAILURE);
        assert_eq!(s.ops.calls, ["thaw"]);
    }

    #[test]
    fn replies_carry_the_operations_results() {
        let v = vec![VcpuState { logical_id: 1, online: true }, VcpuState { logical_id: 2, online: false }];
        let mut chan = Chan::frames(&[
            Request::SetVcpus { vcpus: v },
            Request::Trim { minimum: 0 },
            Request::SetTime { time_ns: Some(0) },
            Request::Shutdown { mode: ShutdownMode::Reboot },
        ]);
        let mut s = server(false);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        assert_eq!(
            chan.replies(),
            [Reply::VcpusSet { count: 2 }, Reply::Trimmed { paths: vec![] }, Reply::Done, Reply::Done]
        );
    }

    #[test]
    fn a_reload_replaces_the_policy_the_helper_checks_against() {
        let ops = FakeOps { next_policy: Some(Policy::only([Command::Shutdown])), ..Default::default() };
        let mut chan = Chan::frames(&[Request::Reload, Request::Shutdown { mode: ShutdownMode::Halt }]);
        let mut s = Server::new(ops, Policy::only([]), false);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        assert_eq!(chan.replies(), [Reply::Reloaded { policy: Policy::only([Command::Shutdown]) }, Reply::Done]);
        // And back: a reload that disables it makes the next request a refusal.
        let ops = FakeOps { next_policy: Some(Policy::only([])), ..Default::default() };
        let mut chan = Chan::frames(&[Request::Reload, Request::Shutdown { mode: ShutdownMode::Halt }]);
        let mut s = Server::new(ops, all_enabled(), false);
        assert_eq!(run(&mut s, &mut chan), exit::REFUSED);
        assert_eq!(chan.replies(), [Reply::Reloaded { policy: Policy::only([]) }]);
        assert_eq!(s.ops.calls, ["load_policy"]);
    }

    #[test]
    fn an_invalid_file_or_a_wider_front_sandbox_changes_nothing() {
        let mut chan = Chan::frames(&[Request::Reload, Request::Shutdown { mode: ShutdownMode::Halt }]);
        let mut s = Server::new(FakeOps::default(), Policy::only([Command::Shutdown]), false);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        let replies = chan.replies();
        assert!(
            matches!(&replies[0], Reply::ReloadRefused { restart: false, reason } if reason.starts_with("policy:2:"))
        );
        assert_eq!(replies[1], Reply::Done);

        let files = Policy::only([Command::Shutdown, Command::FileOpen]);
        let ops = FakeOps { next_policy: Some(files.clone()), ..Default::default() };
        let mut chan = Chan::frames(&[Request::Reload, Request::Shutdown { mode: ShutdownMode::Halt }]);
        let mut s = Server::new(ops, Policy::only([]), false);
        assert_eq!(run(&mut s, &mut chan), exit::REFUSED, "the old policy (nothing enabled) stays");
        assert!(matches!(&chan.replies()[0], Reply::ReloadRefused { restart: true, .. }));
        // A front that started with file commands may get them back.
        let ops = FakeOps { next_policy: Some(files.clone()), ..Default::default() };
        let mut chan = Chan::frames(&[Request::Reload]);
        let mut s = Server::new(ops, Policy::only([]), false).with_front_files(true);
        assert_eq!(run(&mut s, &mut chan), exit::OK);
        assert_eq!(chan.replies(), [Reply::Reloaded { policy: files }]);
    }

    #[test]
    fn a_reload_while_frozen_keeps_the_filesystems_frozen() {
        let ops = FakeOps { next_policy: Some(Policy::only([])), ..Default::default() };
        let mut chan = Chan::frames(&[Request::Reload, Request::FreezeStatus]);
        let mut s = Server::new(ops, all_enabled(), true);
        run(&mut s, &mut chan);
        assert_eq!(chan.replies()[1], Reply::FreezeState { frozen: true });
        // The reload touched nothing but the policy; the thaw is the end of input's.
        assert_eq!(s.ops.calls, ["load_policy", "thaw"]);
    }
}
