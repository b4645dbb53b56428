//! The front's single-threaded poll loop. The connection is served in one straight loop
//! (write, read, dispatch) in which requests wait, in the kernel's buffer, while too many reply
//! bytes are unsent; the loop also relays the helper's log, watches the helper and handles
//! signals: termination, and SIGHUP, which reloads the policy between two requests. Reports
//! that a held file may have changed (its inotify instance, the mount table) are taken before
//! anything else in a wake-up (see `commands::watch`).

use crate::channel::{self, Channel};
use crate::commands::Agent;
use crate::json::MessageParser;
use crate::qmp::dispatch;
use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use polling::{Event, PollMode, Poller};
use qga_protocol::ask::{self, Reloaded};
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Child;

/// Bytes read from the channel at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Stop taking requests while more than this many reply bytes wait to be sent: each reply is
/// counted as it is built, so unsent output stays below this plus the replies that complete on
/// one input byte (at most two: a number and the bracket after it)...
const OUTPUT_HIGH_WATER: usize = 4 << 20;
/// ...and start again once they drained below this.
const OUTPUT_LOW_WATER: usize = 1 << 20;

/// The largest reply a legal request can produce: guest-file-read's largest count, base64
/// encoded, with room for the reply's other members.
pub const LARGEST_REPLY: usize = (crate::commands::file::MAX_READ_COUNT as usize).div_ceil(3) * 4 + (1 << 16);

/// The front's memory ceiling (RLIMIT_DATA), sized from the largest legal request and reply,
/// not from the guest's memory: the largest message is held up to four times while it is
/// lexed, gathered, parsed and decoded (each buffer possibly at twice its length while it
/// grows); unsent output is bounded as above; the rest is the parser's tokens and the heap.
/// A flood that got past the bounds would end the front here instead of exhausting the guest.
pub const MEMORY_CEILING: u64 =
    (4 * 2 * crate::json::streamer::MAX_MESSAGE_SIZE + OUTPUT_HIGH_WATER + 2 * 2 * LARGEST_REPLY + (256 << 20)) as u64;
// A ceiling above 2 GiB would bound nothing a small guest could spare.
const _: () = assert!(MEMORY_CEILING <= 2 << 30);

/// The reply buffer's capacity kept between replies.
const OUTPUT_KEEP: usize = 2 << 20;

/// How long the helper may take to thaw and confirm quitting on SIGTERM.
const QUIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

const KEY_CONN: usize = 0;
const KEY_LISTENER: usize = 1;
const KEY_HELPER: usize = 2;
const KEY_HELPER_LOG: usize = 3;
const KEY_SIGNAL: usize = 4;
/// The inotify instance that keeps held files fresh (see `commands::watch`).
const KEY_WATCH: usize = 5;
/// The front's mount table: a mount on a held file's path produces no inotify event.
const KEY_MOUNTS: usize = 6;

/// Interest in readability and writability, and edge-triggering, as a small bit set.
const READ: u32 = 1;
const WRITE: u32 = 2;
const EDGE: u32 = 4;
/// Priority (EPOLLPRI): how a mount table reports a change.
const PRIORITY: u32 = 8;
/// Events taken from the kernel per wait: more than the loop registers (seven sources and the
/// crate's two), so one wait reports every ready source, the watch among them.
const MAX_EVENTS: usize = 16;

/// The poll loop's poller with interest given as [`READ`]/[`WRITE`]/[`EDGE`] bits; callers
/// change interest only when it really changes. The `polling` crate creates the epoll instance
/// and registers every descriptor (each event's data is its key); the loop then waits on that
/// epoll descriptor itself with one `epoll_wait`, because the crate's own wait costs four more
/// system calls per request (it arms its timeout timerfd and re-arms it with `epoll_ctl` before
/// every wait, even without a timeout, then reads its notifier and re-arms that too). The loop
/// needs neither: it never waits with a timeout and never wakes the poller from elsewhere. The
/// crate's two internal sources stay registered one-shot and never fire (the timer is never
/// armed, the notifier never signalled); their key, `usize::MAX`, is none of the loop's.
struct EventPoller {
    poller: Poller,
    ready: [libc::epoll_event; MAX_EVENTS],
}

impl EventPoller {
    fn new() -> io::Result<EventPoller> {
        Ok(EventPoller { poller: Poller::new()?, ready: [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS] })
    }

    fn event(bits: u32, key: usize) -> (Event, PollMode) {
        let mut ev = match (bits & READ != 0, bits & WRITE != 0) {
            (true, true) => Event::all(key),
            (true, false) => Event::readable(key),
            (false, true) => Event::writable(key),
            (false, false) => Event::none(key),
        };
        ev.set_priority(bits & PRIORITY != 0);
        (ev, if bits & EDGE != 0 { PollMode::Edge } else { PollMode::Level })
    }

    fn add(&self, fd: BorrowedFd, bits: u32, key: usize) -> io::Result<()> {
        let (ev, mode) = Self::event(bits, key);
        // SAFETY: every registered descriptor is owned by the Server, which deletes it from the
        // poller before closing it (clients) or outlives the poller (the rest).
        unsafe { self.poller.add_with_mode(&fd, ev, mode) }
    }

    fn modify(&self, fd: BorrowedFd, bits: u32, key: usize) -> io::Result<()> {
        let (ev, mode) = Self::event(bits, key);
        self.poller.modify_with_mode(fd, ev, mode)
    }

    fn delete(&self, fd: BorrowedFd) -> io::Result<()> {
        self.poller.delete(fd)
    }

    /// Whether the `i`th source the last wait reported was readable then (input waiting, not
    /// only room to write).
    fn was_readable(&self, i: usize) -> bool {
        self.ready.get(i).is_some_and(|ev| ev.events & libc::EPOLLIN as u32 != 0)
    }

    /// Waits (one `epoll_wait`; `block`: without a timeout, else not at all); fills `keys` with
    /// the keys of ready sources and returns how many there are.
    fn wait(&mut self, keys: &mut [usize; MAX_EVENTS], block: bool) -> io::Result<usize> {
        let epoll = self.poller.as_raw_fd();
        let timeout = if block { -1 } else { 0 };
        // SAFETY: `epoll` is the poller's epoll descriptor, open while `self.poller` lives; the
        // kernel writes at most MAX_EVENTS entries into `ready`, which holds exactly that many.
        let n = unsafe { libc::epoll_wait(epoll, self.ready.as_mut_ptr(), MAX_EVENTS as libc::c_int, timeout) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (key, ev) in keys.iter_mut().zip(&self.ready[..n]) {
            *key = ev.u64 as usize;
        }
        Ok(n)
    }
}

/// The connection requests arrive on.
enum Conn {
    /// A device, always open. virtio-serial is watched edge-triggered, for reading and writing,
    /// from start-up on and never re-registered: with no host attached it polls readable and
    /// hung up forever, and re-registering a descriptor that is ready queues an event at once
    /// (epoll_ctl's EPOLL_CTL_MOD), so the agent would spin; only the port's own wake-ups
    /// (data, a host opening or closing it, room to write) may wake the agent.
    Device { file: File, virtio: bool },
    /// A listening socket and its current client, if any.
    Socket { listener: OwnedFd, client: Option<File> },
}

/// One read's bytes; `start..end` is what the parser has not taken yet.
struct InputBuffer {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl InputBuffer {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// What a read brought.
enum Input {
    /// Bytes; `more_may_wait` when the channel may hold more right now.
    Got { more_may_wait: bool },
    /// Nothing now (would block, or the peer left).
    None,
}

pub struct Server {
    poller: EventPoller,
    conn: Conn,
    /// The interest the connection is registered with (level-triggered connections).
    conn_interest: u32,
    /// Where channel reads land, with the part not yet parsed.
    input: InputBuffer,
    parser: MessageParser,
    /// Replies not yet sent start at `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// Requests wait while unsent output drains (see [`OUTPUT_HIGH_WATER`]).
    reading_paused: bool,
    agent: Agent,
    helper_child: Child,
    helper_log: File,
    helper_log_buf: Vec<u8>,
    signals: SignalFd,
    /// The front's mount table, held open while it is watched (see [`KEY_MOUNTS`]).
    _mounts: Option<File>,
    /// The next request read may be answered from held files' freshness without asking
    /// the watch again: it begins the read that directly follows a wait that reported the
    /// connection (see `commands::watch`).
    first_request_covered: bool,
}

/// How the loop ended.
pub enum Exit {
    /// A termination signal: the helper thawed (if needed) and quit.
    Signal,
    /// The helper is gone; the agent must not keep running without it.
    HelperLost(String),
    /// An unrecoverable channel or poll error.
    Error(String),
}

/// Registers the held files' inotify instance, and the front's mount table for its changes,
/// if the instance was started; returns the mount table. Without both, held files are not
/// watched at all (each request asks the kernel, as without an instance).
fn watch_held_files(poller: &EventPoller) -> Option<File> {
    use crate::commands::watch;
    let fd = watch::descriptor()?;
    // SAFETY: the instance lives in the front's thread until `watch::stop`, which is only called
    // here, before serving; the descriptor is deleted from the poller first.
    let inotify = unsafe { BorrowedFd::borrow_raw(fd) };
    let registered = register(poller, inotify, READ, KEY_WATCH).and_then(|()| {
        // The front's own procfs: its mount namespace's table. A change polls as EPOLLPRI
        // (and EPOLLERR), once per change, without a read.
        let mounts = File::open("/proc/self/mountinfo")?;
        register(poller, mounts.as_fd(), PRIORITY, KEY_MOUNTS)?;
        Ok(mounts)
    });
    match registered {
        Ok(mounts) => Some(mounts),
        Err(e) => {
            crate::warning!("held files are read on every request: cannot watch for changes: {e}");
            let _ = poller.delete(inotify);
            watch::stop();
            None
        }
    }
}

/// Every registered descriptor is owned by the Server, which deletes it from the poller before
/// closing it (clients) or outlives the poller (the rest).
fn register(poller: &EventPoller, fd: BorrowedFd, events: u32, key: usize) -> io::Result<()> {
    poller.add(fd, events, key)
}

impl Server {
    pub fn new(
        channel: Channel,
        agent: Agent,
        helper_child: Child,
        helper_log: File,
        signals: SignalFd,
    ) -> io::Result<Server> {
        let poller = EventPoller::new()?;
        let conn = match channel {
            Channel::Device { file, virtio } => {
                register(&poller, file.as_fd(), if virtio { READ | WRITE | EDGE } else { READ }, KEY_CONN)?;
                Conn::Device { file, virtio }
            }
            Channel::Listener { socket } => {
                register(&poller, socket.as_fd(), READ, KEY_LISTENER)?;
                Conn::Socket { listener: socket, client: None }
            }
        };
        register(&poller, agent.helper.socket().as_fd(), READ, KEY_HELPER)?;
        nix::fcntl::fcntl(&helper_log, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
        register(&poller, helper_log.as_fd(), READ, KEY_HELPER_LOG)?;
        register(&poller, signals.as_fd(), READ, KEY_SIGNAL)?;
        let mounts = watch_held_files(&poller);
        Ok(Server {
            poller,
            conn,
            conn_interest: READ,
            input: InputBuffer { buf: vec![0u8; READ_CHUNK].into_boxed_slice(), start: 0, end: 0 },
            parser: MessageParser::new(),
            out: Vec::new(),
            out_pos: 0,
            reading_paused: false,
            agent,
            helper_child,
            helper_log,
            helper_log_buf: Vec::new(),
            signals,
            _mounts: mounts,
            first_request_covered: false,
        })
    }

    pub fn run(&mut self) -> Exit {
        let mut keys = [0usize; MAX_EVENTS];
        // The start-up code's pages are given back (see protocol's idle) the first time nothing
        // is waiting, not before: a host already connected gets its first answer first.
        let mut startup_pages_held = true;
        loop {
            let n = match self.poller.wait(&mut keys, !startup_pages_held) {
                Ok(0) if startup_pages_held => {
                    qga_protocol::idle::release_startup_pages();
                    startup_pages_held = false;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Exit::Error(format!("poll failed: {e}")),
            };
            // Changes first, whatever order the keys came in: a request served in this wake-up
            // must see every change its host could know of (see `commands::watch`).
            for &key in &keys[..n] {
                match key {
                    KEY_WATCH => crate::commands::watch::take_events(),
                    KEY_MOUNTS => crate::commands::watch::mark_all_stale(),
                    _ => {}
                }
            }
            for (i, &key) in keys[..n].iter().enumerate() {
                let result = match key {
                    KEY_CONN => {
                        let had_input = self.poller.was_readable(i);
                        self.service_conn(had_input)
                    }
                    KEY_LISTENER => self.accept_client(),
                    KEY_HELPER => Err(self.helper_gone("its socket closed")),
                    KEY_HELPER_LOG => {
                        self.relay_helper_log();
                        Ok(())
                    }
                    KEY_SIGNAL => self.take_signal(),
                    _ => Ok(()),
                };
                if let Err(exit) = result {
                    return exit;
                }
            }
        }
    }

    // ---- the connection ----

    fn conn_file(&self) -> Option<&File> {
        conn_file(&self.conn)
    }

    /// Serves the connection in one straight loop: write what waits, then (unless output is
    /// backed up) take input, dispatching its requests until it is used up or output backs up.
    /// Requests not yet taken stay in the kernel's buffer (at most one read's worth in ours)
    /// until output drains; a slow client still gets every reply, in order.
    ///
    /// `had_input`: the wait reported the connection readable (not only writable), so its first
    /// unread byte was there when the wait took its ready sources: only the first read after
    /// such a wait is covered by that wait's reports of changes (see `commands::watch`).
    fn service_conn(&mut self, had_input: bool) -> Result<(), Exit> {
        let mut after_wait = had_input;
        loop {
            self.flush_output()?;
            if self.output_backed_up() {
                break;
            }
            if self.input.is_empty() {
                let covered = std::mem::take(&mut after_wait);
                match self.read_input(covered)? {
                    Input::Got { more_may_wait } => {
                        self.dispatch_input()?;
                        if !more_may_wait && self.input.is_empty() {
                            self.flush_output()?;
                            break;
                        }
                    }
                    Input::None => break,
                }
            } else {
                self.dispatch_input()?;
            }
        }
        self.update_interest()
    }

    /// Whether requests must wait: set when unsent output passes the high-water mark, cleared
    /// when it drains below the low-water mark.
    fn output_backed_up(&mut self) -> bool {
        if self.reading_paused && self.pending_output() < OUTPUT_LOW_WATER {
            self.reading_paused = false;
        }
        self.reading_paused
    }

    /// One read into the empty input buffer. `after_wait`: the first read since the wait that
    /// reported the connection ready; the request that begins it was covered by that wait.
    fn read_input(&mut self, after_wait: bool) -> Result<Input, Exit> {
        // An edge-triggered device must be read until it would block; a level-triggered
        // descriptor that filled less than the buffer is drained for now (the poller reports
        // it again if more arrived), which saves a read that would only say so.
        let level = !matches!(self.conn, Conn::Device { virtio: true, .. });
        loop {
            let Some(mut file) = conn_file(&self.conn) else { return Ok(Input::None) };
            match file.read(&mut self.input.buf) {
                Ok(0) => {
                    self.end_of_input();
                    return Ok(Input::None);
                }
                Ok(n) => {
                    self.input.start = 0;
                    self.input.end = n;
                    crate::commands::watch::input_arrived();
                    // The first request begins at the read's first byte (its brace), so that
                    // byte made the connection ready before the wait returned.
                    self.first_request_covered = after_wait && self.input.buf[0] == b'{';
                    return Ok(Input::Got { more_may_wait: !level || n == self.input.buf.len() });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Input::None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warning!("error reading channel: {e}");
                    self.channel_error(e)?;
                    return Ok(Input::None);
                }
            }
        }
    }

    /// Parses and dispatches the buffered input, counting each reply as it is built, and
    /// stops after the request whose reply takes unsent output past the high-water mark.
    fn dispatch_input(&mut self) -> Result<(), Exit> {
        let agent = &mut self.agent;
        let out = &mut self.out;
        let out_pos = self.out_pos;
        let mut backed_up = false;
        let mut covered = std::mem::take(&mut self.first_request_covered);
        let input = &self.input.buf[self.input.start..self.input.end];
        let used = self.parser.feed_until(input, &mut |message| {
            crate::commands::watch::serving(std::mem::take(&mut covered));
            dispatch::handle_into(agent, message, out);
            backed_up = out.len() - out_pos > OUTPUT_HIGH_WATER;
            if backed_up {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        self.input.start += used;
        self.reading_paused |= backed_up;
        if let Some(why) = self.agent.helper.lost().map(str::to_string) {
            self.relay_last_helper_log();
            return Err(Exit::HelperLost(why));
        }
        Ok(())
    }

    fn pending_output(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes what it can of the unsent output without blocking.
    fn flush_output(&mut self) -> Result<(), Exit> {
        while self.pending_output() > 0 {
            let Some(mut file) = self.conn_file() else {
                self.discard_output();
                return Ok(());
            };
            match file.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    crate::warning!("error writing channel: {e}");
                    return self.channel_error(e);
                }
            }
        }
        if self.pending_output() == 0 {
            self.discard_output();
        } else if self.out_pos > (1 << 20) {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    fn discard_output(&mut self) {
        self.out.clear();
        self.out_pos = 0;
        // Keep room for a 1 MiB read's reply (about 1.4 MB of base64), so reading a file in
        // such pieces reuses one buffer; let anything bigger go.
        if self.out.capacity() > OUTPUT_KEEP {
            // A fresh buffer rather than shrink_to: one that grew past the allocator's mmap
            // threshold stays a mapping of its own when shrunk, and every later reply that
            // grows it again would fault in fresh pages instead of reusing the heap.
            self.out = Vec::with_capacity(1 << 16);
        }
    }

    /// What to wait for on the connection: input unless output is backed up, output while some
    /// waits. Asked of `output_backed_up`, which ends the pause once output drained: a flush
    /// that sent a reply whole (a client reading as fast as it is written) must not leave the
    /// connection paused with nothing left to write, waiting for nothing.
    fn update_interest(&mut self) -> Result<(), Exit> {
        let want_read = !self.output_backed_up();
        let want_write = self.pending_output() > 0;
        let wanted = interest(want_read, want_write);
        let result = match &self.conn {
            // Edge-triggered for both from start-up on; never re-registered (see `Conn::Device`).
            Conn::Device { virtio: true, .. } => return Ok(()),
            // Level-triggered: only a change of interest needs the kernel.
            _ if wanted == self.conn_interest => Ok(()),
            Conn::Device { file, virtio: false } => self.poller.modify(file.as_fd(), wanted, KEY_CONN),
            Conn::Socket { client: Some(c), .. } => self.poller.modify(c.as_fd(), wanted, KEY_CONN),
            Conn::Socket { client: None, .. } => return Ok(()),
        };
        self.conn_interest = wanted;
        result.map_err(|e| Exit::Error(format!("poll registration failed: {e}")))
    }

    /// A read found end of file. On virtio-serial it means no host holds the port now: the port
    /// stays open, and what the host sent before it left (a partial request) and the replies
    /// not yet sent are kept for the next host, as qemu-ga 7.2 does (a host that wants a clean
    /// start sends 0xFF, which discards a partial request). Elsewhere the peer is gone.
    fn end_of_input(&mut self) {
        if !matches!(self.conn, Conn::Device { virtio: true, .. }) {
            self.peer_gone();
        }
    }

    /// The peer went away: a socket client closed, or a device failed to read or write.
    fn peer_gone(&mut self) {
        self.parser = MessageParser::new();
        self.input.clear();
        self.discard_output();
        self.reading_paused = false;
        match &mut self.conn {
            Conn::Device { .. } => {}
            Conn::Socket { listener, client } => {
                if let Some(c) = client.take() {
                    let _ = self.poller.delete(c.as_fd());
                }
                let _ = self.poller.modify(listener.as_fd(), READ, KEY_LISTENER);
            }
        }
    }

    /// A read or write error: a socket client is dropped and the next one served; a device
    /// error that means the device is gone ends the agent (its service manager restarts it
    /// and start-up waits for the device).
    fn channel_error(&mut self, e: io::Error) -> Result<(), Exit> {
        match self.conn {
            Conn::Socket { .. } => {
                self.peer_gone();
                Ok(())
            }
            Conn::Device { .. } if e.raw_os_error() == Some(nix::libc::ENODEV) => {
                Err(Exit::Error(format!("channel device gone: {e}")))
            }
            Conn::Device { .. } => {
                self.peer_gone();
                Ok(())
            }
        }
    }

    fn accept_client(&mut self) -> Result<(), Exit> {
        let Conn::Socket { listener, client } = &mut self.conn else { return Ok(()) };
        if client.is_some() {
            return Ok(());
        }
        match channel::accept(listener) {
            Ok(Some(fd)) => {
                let file = File::from(fd);
                register(&self.poller, file.as_fd(), READ, KEY_CONN)
                    .map_err(|e| Exit::Error(format!("poll registration failed: {e}")))?;
                self.conn_interest = READ;
                // One client at a time: stop accepting until this one leaves.
                let _ = self.poller.modify(listener.as_fd(), 0, KEY_LISTENER);
                *client = Some(file);
                // Each connection starts with a clean parser.
                self.parser = MessageParser::new();
                self.input.clear();
                self.discard_output();
                self.reading_paused = false;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                crate::warning!("error accepting connection: {e}");
                Ok(())
            }
        }
    }

    // ---- the helper ----

    fn helper_gone(&mut self, why: &str) -> Exit {
        self.relay_helper_log_until_closed();
        let status = match self.helper_child.try_wait() {
            Ok(Some(s)) => format!(" ({s})"),
            _ => String::new(),
        };
        let why = format!("privileged helper exited: {why}{status}");
        self.agent.helper.mark_lost(why.clone());
        Exit::HelperLost(why)
    }

    /// The helper went away during a request: let it finish (briefly) and relay what it wrote
    /// last, which says why (a refusal is logged only there).
    fn relay_last_helper_log(&mut self) {
        for _ in 0..50 {
            if !matches!(self.helper_child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.relay_helper_log_until_closed();
    }

    /// The helper is gone: relay what its side still writes until every writer has closed the
    /// pipe (bounded). The launcher outlives the helper: when the helper died frozen it thaws
    /// and logs that right after, and the front would otherwise exit before the line arrives.
    fn relay_helper_log_until_closed(&mut self) {
        let deadline = std::time::Instant::now() + HELPER_LOG_DRAIN;
        while !self.relay_helper_log() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Relays the complete lines the helper's side has written; true once the pipe is closed.
    fn relay_helper_log(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let mut eof = false;
        loop {
            match (&self.helper_log).read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.helper_log_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        while let Some(end) = self.helper_log_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.helper_log_buf.drain(..=end).collect();
            crate::warning!("{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        }
        if self.helper_log_buf.len() > 64 * 1024 {
            self.helper_log_buf.clear();
        }
        if eof {
            // A closed pipe polls readable forever: stop watching it.
            let _ = self.poller.delete(self.helper_log.as_fd());
        }
        eof
    }

    // ---- signals ----

    fn take_signal(&mut self) -> Result<(), Exit> {
        let Ok(Some(info)) = self.signals.read_signal() else { return Ok(()) };
        let signal = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
        if signal == Signal::SIGHUP {
            return self.reload_policy();
        }
        crate::warning!(
            "received {signal}, exiting{}",
            if self.agent.frozen { " after thawing filesystems" } else { "" }
        );
        match self.agent.helper.quit(QUIT_LIMIT) {
            Ok(()) => {}
            Err(e) if self.agent.helper.lost().is_none() => {
                crate::error!("unexpected reply to quit from the helper: {}", String::from_utf8_lossy(&e.desc()))
            }
            Err(_) => crate::error!("the helper did not confirm quitting"),
        }
        self.relay_helper_log();
        // The helper exits right after confirming; reap it, but never wait on it unbounded.
        for _ in 0..50 {
            if !matches!(self.helper_child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(Exit::Signal)
    }
}

impl Server {
    /// SIGHUP: the helper re-reads and validates the policy itself and answers with the new
    /// enabled set, or why nothing changed. Only the gate's policy changes: the channel, the
    /// parser, open file handles and the frozen state are left as they are.
    fn reload_policy(&mut self) -> Result<(), Exit> {
        crate::warning!("received SIGHUP, reloading the policy");
        let reply = self.agent.helper.ask(ask::reload());
        self.relay_helper_log();
        match reply {
            Ok(Reloaded::Applied(policy)) => {
                // The helper already refuses this; the front does not rely on it, since its own
                // sandbox could not serve the file commands.
                if let Some(why) = qga_policy::reload::needs_restart(&policy, self.agent.file_access) {
                    crate::error!("policy reload refused, the policy in force is unchanged: {why}");
                    return Ok(());
                }
                let change = describe_change(&self.agent.policy, &policy);
                crate::warning!("policy reloaded: {change}");
                audit_reload("policy-reload-applied", &change);
                self.agent.policy = policy;
            }
            Ok(Reloaded::Refused { restart: true, reason }) => {
                crate::warning!("policy reload refused, the policy in force is unchanged: {reason}");
                audit_reload("policy-reload-refused", &reason);
            }
            Ok(Reloaded::Refused { restart: false, reason }) => {
                crate::warning!("policy reload refused, the policy in force is unchanged: invalid policy: {reason}");
                audit_reload("policy-reload-refused", &format!("invalid policy: {reason}"));
            }
            // A reply of another kind, or a failure: the helper is still there.
            Err(e) if self.agent.helper.lost().is_none() => crate::error!(
                "unexpected reply to a policy reload from the helper: {}",
                String::from_utf8_lossy(&e.desc())
            ),
            Err(_) => {
                let why = self.agent.helper.lost().unwrap_or("privileged helper lost").to_string();
                self.relay_last_helper_log();
                return Err(Exit::HelperLost(why));
            }
        }
        Ok(())
    }
}

/// A reload changes what the host may do: the audit trail records it (applied or refused, and
/// why), whatever its scope.
fn audit_reload(event: &str, detail: &str) {
    if crate::audit::enabled() {
        crate::audit::write(crate::audit::event_record(std::time::SystemTime::now(), event, detail));
    }
}

/// "enabled a, b; disabled c" or "no change", for the log.
/// How long a front whose helper is gone waits for the rest of the helper side's log: the
/// launcher's thaw of a guest the helper left frozen (its filesystems, the marker) takes well
/// under a second; the freeze hook's own `thaw` may take longer and is not waited for.
const HELPER_LOG_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

fn describe_change(old: &qga_policy::Policy, new: &qga_policy::Policy) -> String {
    let names = |pick: &dyn Fn(qga_policy::Command) -> bool| {
        qga_policy::Command::all().filter(|c| pick(*c)).map(|c| c.name()).collect::<Vec<_>>().join(", ")
    };
    let enabled = names(&|c| new.is_enabled(c) && !old.is_enabled(c));
    let disabled = names(&|c| !new.is_enabled(c) && old.is_enabled(c));
    let mut parts = Vec::new();
    if !enabled.is_empty() {
        parts.push(format!("enabled {enabled}"));
    }
    if !disabled.is_empty() {
        parts.push(format!("disabled {disabled}"));
    }
    // The conditions in force afterwards, whole: what the admin wrote, as the policy shows it.
    if old.conditions() != new.conditions() {
        let lines: Vec<String> = new.conditions().iter().map(|n| n.to_line()).collect();
        parts.push(match lines.is_empty() {
            true => "argument conditions: none".to_string(),
            false => format!("argument conditions: {}", lines.join(", ")),
        });
    }
    if parts.is_empty() {
        "no change".to_string()
    } else {
        parts.join("; ")
    }
}

fn interest(read: bool, write: bool) -> u32 {
    (if read { READ } else { 0 }) | (if write { WRITE } else { 0 })
}

/// The descriptor requests arrive on and replies leave by, if there is one now.
fn conn_file(conn: &Conn) -> Option<&File> {
    match conn {
        Conn::Device { file, .. } => Some(file),
        Conn::Socket { client, .. } => client.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_direct_wait_reports_each_ready_descriptor_by_its_key_and_nothing_of_the_crates_own() {
        let mut poller = EventPoller::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        poller.add(b.as_fd(), READ, KEY_HELPER_LOG).unwrap();
        poller.add(d.as_fd(), READ, KEY_SIGNAL).unwrap();
        a.write_all(b"x").unwrap();
        let mut keys = [0usize; MAX_EVENTS];
        assert_eq!(poller.wait(&mut keys, true).unwrap(), 1);
        assert_eq!(keys[0], KEY_HELPER_LOG);
        assert!(poller.was_readable(0));
        // An interest change takes effect: now reported as writable, and not as readable.
        poller.modify(b.as_fd(), WRITE, KEY_HELPER_LOG).unwrap();
        assert_eq!(poller.wait(&mut keys, true).unwrap(), 1);
        assert_eq!(keys[0], KEY_HELPER_LOG);
        assert!(!poller.was_readable(0));
        poller.delete(b.as_fd()).unwrap();
        drop(a);
        // d's peer still open and silent: nothing else is ready, and the crate's own sources
        // are quiet (a wait without blocking reports nothing).
        assert_eq!(poller.wait(&mut keys, false).unwrap(), 0);
    }
}
