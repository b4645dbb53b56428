//! Sizes of mounted filesystems for guest-get-fsinfo without ever blocking the helper.
//!
//! statfs on a mount whose server is gone (a dead NFS server, a FUSE daemon that never
//! answers) does not return, and nothing can interrupt it. qemu-ga 7.2 calls it in its only
//! thread, so one such mount hangs guest-get-fsinfo and every later request. Here the calls
//! are made by small probe processes, forked by the helper at start-up (before it drops
//! privileges), each with only CAP_DAC_READ_SEARCH, no_new_privs and a seccomp filter of its
//! own ([`PROBE_TABLE`]: statfs and its socket, nothing that opens a file). The helper hands a
//! probe the list of mount points and reads one result per path; a probe that makes no
//! progress for [`STALL`] is taken to be stuck on its current path, which is then left without
//! sizes (and skipped by later requests while that probe stays stuck), and the rest of the
//! list goes to the next idle probe. Nothing waits longer than [`BOUND`] in all. A stuck probe
//! that comes back (the server answers again) finishes its old list, which the helper
//! discards, and is idle again.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult};
use qga_policy::allow;
use qga_policy::seccomp::{clear, compile, eq, Allowed, BpfProgram, SandboxError, SandboxMode};

use crate::log;
use crate::protocol::{read_frame, write_frame, FrameError};

/// How many probes the helper keeps: how many hung mounts can be outstanding before sizes are
/// left out for every mount.
pub const PROBES: usize = 2;
/// How long a probe may go without answering one path before it counts as stuck.
pub const STALL: Duration = Duration::from_millis(600);
/// The most all statfs calls of one request may take together.
pub const BOUND: Duration = Duration::from_millis(1800);
/// Most paths in one list (the reply's bound).
const MAX_PATHS: usize = crate::protocol::storage::MAX_MOUNTS;

const PROT_EXEC: u64 = libc::PROT_EXEC as u64;

/// The probe's seccomp filter: each call with the reason.
pub const PROBE_TABLE: &[Allowed<'static>] = &[
    allow!(SYS_read, "reading path lists from the helper"),
    allow!(SYS_recvfrom, [eq(4, 0)], "reading path lists (recv: no source address)"),
    allow!(SYS_write, "writing results to the helper; log records on stderr"),
    allow!(SYS_sendto, [eq(4, 0)], "writing results (send: no destination address)"),
    allow!(SYS_statfs, "the probe's one job: statvfs of a mount point"),
    allow!(SYS_brk, "allocator"),
    allow!(SYS_mmap, [clear(2, PROT_EXEC)], "allocator: large blocks; never executable"),
    allow!(SYS_mremap, "allocator: growing a large block"),
    allow!(SYS_munmap, "allocator; std frees the signal stack at exit"),
    allow!(SYS_mprotect, [clear(2, PROT_EXEC)], "allocator: glibc's heap set-up; never executable"),
    allow!(SYS_madvise, [eq(2, libc::MADV_DONTNEED as u64)], "allocator: glibc returning heap memory"),
    allow!(SYS_close, "closing descriptors at exit"),
    allow!(SYS_sigaltstack, "std disables the signal stack at exit"),
    allow!(SYS_rt_sigreturn, "returning from std's stack-overflow handler"),
    allow!(SYS_restart_syscall, "a call interrupted by SIGSTOP/SIGCONT resumes"),
    allow!(SYS_exit_group, "exiting when the helper closes its end"),
];

/// Compiles the probe's filter.
pub fn filter(mode: SandboxMode) -> Result<BpfProgram, SandboxError> {
    compile(PROBE_TABLE, mode)
}

/// The helper's handle on one probe.
struct Probe {
    sock: UnixStream,
    /// Bytes read from the probe that do not yet make a whole answer: one read takes every
    /// answer the probe has written (usually a size and the end mark together).
    inbuf: Vec<u8>,
    /// The list the probe is working on, if it has not finished it.
    busy: Option<u32>,
    /// The path it is stuck on (skipped by later requests until it finishes).
    stuck_on: Option<String>,
    dead: bool,
}

/// The probes, and the list numbers that tell a stuck probe's late answers apart.
pub struct Probes {
    probes: Vec<Probe>,
    next_batch: u32,
}

impl Probes {
    /// Forks [`PROBES`] probes. Call while still privileged and single-threaded, after the
    /// launcher is forked and before fd 3 is wrapped. Each is kept to `cpu` (the front's, which
    /// the helper joins too).
    pub fn start(mode: SandboxMode, cpu: Option<usize>) -> Probes {
        let mut probes = Vec::new();
        for _ in 0..PROBES {
            match fork_probe(mode, cpu) {
                Ok(sock) => probes.push(Probe { sock, inbuf: Vec::new(), busy: None, stuck_on: None, dead: false }),
                Err(e) => log!("statfs probe not started: {}", e.desc()),
            }
        }
        Probes { probes, next_batch: 1 }
    }

    /// Probes over already connected sockets (the tests' fake probes).
    pub fn from_sockets(socks: Vec<UnixStream>) -> Probes {
        Probes {
            probes: socks
                .into_iter()
                .map(|sock| Probe { sock, inbuf: Vec::new(), busy: None, stuck_on: None, dead: false })
                .collect(),
            next_batch: 1,
        }
    }

    /// (used, total) bytes of each path, `None` where statfs failed, was not answered in
    /// time or is known to hang. Returns within [`BOUND`] (plus scheduling).
    pub fn sizes(&mut self, paths: &[String]) -> Vec<Option<(u64, u64)>> {
        let start = Instant::now();
        let deadline = start + BOUND;
        self.collect_finished();
        let mut out = vec![None; paths.len()];
        let hung: Vec<String> = self.probes.iter().filter_map(|p| p.stuck_on.clone()).collect();
        let mut pending: Vec<usize> = (0..paths.len().min(MAX_PATHS)).filter(|&i| !hung.contains(&paths[i])).collect();
        while !pending.is_empty() && Instant::now() < deadline {
            let Some(idx) = self.probes.iter().position(|p| p.busy.is_none() && !p.dead) else { break };
            let batch = self.next_batch;
            self.next_batch = self.next_batch.wrapping_add(1);
            let probe = &mut self.probes[idx];
            let list: Vec<&str> = pending.iter().map(|&i| paths[i].as_str()).collect();
            if write_frame(&mut probe.sock, &encode_list(batch, &list)).is_err() {
                probe.dead = true;
                continue;
            }
            probe.busy = Some(batch);
            let mut done = vec![false; pending.len()];
            let mut last = Instant::now();
            loop {
                let wait = (last + STALL).min(deadline).saturating_duration_since(Instant::now());
                let Some(answer) = probe.next_answer(wait) else {
                    // Stuck on the first path it has not answered.
                    if let Some(k) = done.iter().position(|d| !d) {
                        probe.stuck_on = Some(paths[pending[k]].clone());
                        done[k] = true;
                    }
                    break;
                };
                match answer {
                    Ok(Answer::Size { batch: b, index, sizes }) if b == batch && (index as usize) < done.len() => {
                        out[pending[index as usize]] = sizes;
                        done[index as usize] = true;
                        last = Instant::now();
                    }
                    Ok(Answer::End { batch: b }) if b == batch => {
                        probe.busy = None;
                        done.iter_mut().for_each(|d| *d = true);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        probe.dead = true;
                        break;
                    }
                }
            }
            pending = pending.into_iter().zip(done).filter(|(_, d)| !d).map(|(i, _)| i).collect();
        }
        out
    }

    /// Reads what stuck probes have sent since: a probe whose old list has ended is idle.
    fn collect_finished(&mut self) {
        for probe in self.probes.iter_mut().filter(|p| p.busy.is_some() && !p.dead) {
            while let Some(answer) = probe.next_answer(Duration::ZERO) {
                match answer {
                    Ok(Answer::End { batch }) if Some(batch) == probe.busy => {
                        probe.busy = None;
                        probe.stuck_on = None;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        probe.dead = true;
                        break;
                    }
                }
            }
        }
    }
}

/// Most bytes of one answer frame (a size answer is 26).
const MAX_ANSWER: usize = 64;

impl Probe {
    /// The next answer, waiting at most `wait` for each read; None if nothing came in time.
    fn next_answer(&mut self, wait: Duration) -> Option<Result<Answer, FrameError>> {
        loop {
            if self.inbuf.len() >= 4 {
                let len = u32::from_le_bytes([self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]]) as usize;
                if len > MAX_ANSWER {
                    return Some(Err(FrameError::TooLong(len)));
                }
                if self.inbuf.len() >= 4 + len {
                    let answer = decode_answer(&self.inbuf[4..4 + len]);
                    self.inbuf.drain(..4 + len);
                    return Some(answer);
                }
            }
            if !readable(&self.sock, wait) {
                return None;
            }
            let mut chunk = [0u8; 512];
            match (&self.sock).read(&mut chunk) {
                Ok(0) => return Some(Err(FrameError::Closed)),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(FrameError::Io(e))),
            }
        }
    }
}

fn readable(sock: &UnixStream, wait: Duration) -> bool {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

enum Answer {
    Size { batch: u32, index: u32, sizes: Option<(u64, u64)> },
    End { batch: u32 },
}

fn encode_list(batch: u32, paths: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&batch.to_le_bytes());
    b.extend_from_slice(&(paths.len() as u32).to_le_bytes());
    for p in paths {
        b.extend_from_slice(&(p.len() as u32).to_le_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, FrameError> {
    let s = b.get(at..at + 4).ok_or(FrameError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, FrameError> {
    Ok(u64::from(u32_at(b, at)?) | (u64::from(u32_at(b, at + 4)?) << 32))
}

fn decode_list(b: &[u8]) -> Result<(u32, Vec<String>), FrameError> {
    let batch = u32_at(b, 0)?;
    let n = u32_at(b, 4)? as usize;
    if n > MAX_PATHS {
        return Err(FrameError::BadValue("path count"));
    }
    let mut at = 8;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32_at(b, at)? as usize;
        let s = b.get(at + 4..at + 4 + len).ok_or(FrameError::Truncated)?;
        out.push(String::from_utf8(s.to_vec()).map_err(|_| FrameError::BadValue("path"))?);
        at += 4 + len;
    }
    if at != b.len() {
        return Err(FrameError::TrailingBytes(b.len() - at));
    }
    Ok((batch, out))
}

fn encode_size(batch: u32, index: u32, sizes: Option<(u64, u64)>) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(&batch.to_le_bytes());
    b.extend_from_slice(&index.to_le_bytes());
    match sizes {
        None => b.push(0),
        Some((used, total)) => {
            b.push(1);
            b.extend_from_slice(&used.to_le_bytes());
            b.extend_from_slice(&total.to_le_bytes());
        }
    }
    b
}

fn encode_end(batch: u32) -> Vec<u8> {
    let mut b = vec![1u8];
    b.extend_from_slice(&batch.to_le_bytes());
    b
}

fn decode_answer(b: &[u8]) -> Result<Answer, FrameError> {
    match b.first() {
        Some(0) => {
            let batch = u32_at(b, 1)?;
            let index = u32_at(b, 5)?;
            let sizes = match (b.get(9), b.len()) {
                (Some(0), 10) => None,
                (Some(1), 26) => Some((u64_at(b, 10)?, u64_at(b, 18)?)),
                _ => return Err(FrameError::BadValue("probe answer")),
            };
            Ok(Answer::Size { batch, index, sizes })
        }
        Some(1) if b.len() == 5 => Ok(Answer::End { batch: u32_at(b, 1)? }),
        Some(&t) => Err(FrameError::UnknownTag(t)),
        None => Err(FrameError::Truncated),
    }
}

/// 7.2's sizes from statvfs: used = blocks - free, total = used + available (what a
/// non-root user can use), both in fragment-size units, in `unsigned long` arithmetic.
pub fn sizes_of(path: &str) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = st.fragment_size();
    let used = st.blocks().wrapping_sub(st.blocks_free());
    let total = used.wrapping_add(st.blocks_available());
    Some((used.wrapping_mul(frsize), total.wrapping_mul(frsize)))
}

/// A probe's loop: one list at a time, one answer per path, then the end mark; exits when the
/// helper closes its end or sends something malformed.
pub fn serve(sock: UnixStream, stat: impl Fn(&str) -> Option<(u64, u64)>) -> i32 {
    // Buffered: a list comes in one read, not three (length, tag, rest).
    let mut lists = std::io::BufReader::with_capacity(4096, &sock);
    let mut sock = &sock;
    loop {
        let (batch, paths) = match read_frame(&mut lists).and_then(|f| decode_list(&f)) {
            Ok(l) => l,
            Err(FrameError::Closed) => return 0,
            Err(_) => return 3,
        };
        // One write per answer, as each statfs returns (a hang on path k leaves the answers
        // before it with the helper); the last answer and the end mark in one write.
        let mut out = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            push_frame(&mut out, &encode_size(batch, i as u32, stat(p)));
            if i + 1 < paths.len() {
                if sock.write_all(&out).is_err() {
                    return 0;
                }
                out.clear();
            }
        }
        push_frame(&mut out, &encode_end(batch));
        if sock.write_all(&out).is_err() {
            return 0;
        }
    }
}

/// A frame as [`write_frame`] writes it, appended to `out`.
fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

fn fork_probe(mode: SandboxMode, cpu: Option<usize>) -> Result<UnixStream, nix::errno::Errno> {
    let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: the helper is single-threaded here (no thread has been spawned), so the child may
    // run arbitrary code, including allocation, after fork.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(mine);
            crate::launcher::close_other_fds(theirs.as_raw_fd());
            std::process::exit(probe_main(UnixStream::from(theirs), mode));
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            // The front's CPU, as the helper's (see the helper's main), set here so that it
            // holds before the helper serves, however late the probe itself runs.
            if let Some(cpu) = cpu {
                if let Err(e) = crate::placement::pin_process_to(child, cpu) {
                    log!("statfs probe {child}: cannot join the front on CPU {cpu}: {}; running unpinned", e.desc());
                }
            }
            log!("statfs probe started (pid {child})");
            Ok(UnixStream::from(mine))
        }
    }
}

fn probe_main(sock: UnixStream, mode: SandboxMode) -> i32 {
    if let Err(e) = crate::background::leave_while_privileged() {
        log!("statfs probe: cannot leave the background: {}", e.desc());
        return 1;
    }
    if let Err(e) = crate::demote::demote_to(&crate::demote::PROBE_KEEP) {
        log!("statfs probe: {e}");
        return 1;
    }
    // Back to SCHED_OTHER (see background), before the filter, which does not allow it.
    if let Err(e) = crate::background::leave() {
        log!("statfs probe: cannot leave the background: {}", e.desc());
        return 1;
    }
    if mode != SandboxMode::Off {
        if let Err(e) = filter(mode).and_then(|p| qga_policy::seccomp::apply(&p)) {
            log!("statfs probe: {e}");
            return 1;
        }
    }
    // The helper's start-up code this copy will not run (see protocol::idle).
    crate::protocol::idle::release_startup_pages();
    serve(sock, sizes_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake probe in a thread: paths named "/hang" never answer (until the test ends).
    fn fake() -> (Probes, Vec<std::thread::JoinHandle<()>>) {
        let mut socks = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (a, b) = UnixStream::pair().unwrap();
            socks.push(a);
            threads.push(std::thread::spawn(move || {
                serve(b, |p| {
                    if p == "/hang" {
                        std::thread::sleep(Duration::from_secs(4));
                    }
                    Some((p.len() as u64, 100))
                });
            }));
        }
        (Probes::from_sockets(socks), threads)
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_path_is_answered_in_order() {
        let (mut probes, _t) = fake();
        assert_eq!(probes.sizes(&paths(&["/", "/boot"])), vec![Some((1, 100)), Some((5, 100))]);
        assert_eq!(probes.sizes(&paths(&["/x"])), vec![Some((2, 100))]);
    }

    #[test]
    fn a_hung_path_is_left_out_within_the_bound_and_the_rest_still_answered() {
        let (mut probes, _t) = fake();
        let t = Instant::now();
        let got = probes.sizes(&paths(&["/", "/hang", "/boot"]));
        assert!(t.elapsed() < BOUND + Duration::from_millis(300), "{:?}", t.elapsed());
        assert_eq!(got, vec![Some((1, 100)), None, Some((5, 100))]);
        // The next request skips the hung path at once and uses the other probe.
        let t = Instant::now();
        assert_eq!(probes.sizes(&paths(&["/hang", "/a"])), vec![None, Some((2, 100))]);
        assert!(t.elapsed() < Duration::from_millis(300), "{:?}", t.elapsed());
    }

    #[test]
    fn the_probe_filter_compiles_and_never_allows_opening_files_or_processes() {
        assert!(!filter(SandboxMode::Enforce).unwrap().is_empty());
        for e in PROBE_TABLE {
            assert!(e.why.len() > 8);
            assert!(
                ![
                    libc::SYS_openat,
                    libc::SYS_execve,
                    libc::SYS_clone,
                    libc::SYS_clone3,
                    libc::SYS_socket,
                    libc::SYS_ioctl
                ]
                .contains(&e.nr),
                "{}",
                e.name
            );
        }
    }
}
