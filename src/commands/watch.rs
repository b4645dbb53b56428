//! Knowing, without asking the kernel on every request, whether a held file (see `held_file`)
//! may have changed: one inotify instance per front, whose descriptor the poll loop watches.
//!
//! A held file is *fresh* from a successful resolution and read until an event says it may
//! have changed; a fresh file is answered from the bytes kept, with no system call. Resolution
//! walks the path as the kernel does (component by component, following symbolic links,
//! relative and absolute, at most [`MAX_LINKS`]) and, before it looks a name up in a
//! directory, watches that directory for entries created, deleted, moved in or out and for
//! changes of its own (attributes, deletion, move); the file it ends at is watched for writes,
//! attributes, deletion and moves. Any event on a watched directory that names a name looked
//! up there, any event on the directory itself or on the file, and a queue overflow (or a read
//! error) makes the file stale: the next request resolves and reads it again. A missing file is
//! "absent" until an event on a directory up to the missing name (utmp created later).
//!
//! Why this is as fresh as reading on every request: inotify events are queued by the system
//! call that makes the change, before it returns. A host that knows a change completed before
//! it sent a request sent that request after the event was queued, so the event was queued
//! before the request's first byte reached the agent. The poll loop drains this instance
//! before it serves the connection in the same wake-up (epoll reports keys in any order), and
//! goes back to `epoll_wait` after every reply; a request whose first byte was there when that
//! wait reported the connection readable is covered by it. Bytes that arrive after the wait (a
//! second request in the same read, a request read again without waiting, a request read after
//! a wait that reported the connection only writable) are not: before a held file is answered
//! for such a request, the instance is drained once more (one `read`; the bytes were read
//! before it, so every change they may depend on is in it). The first request of a read that
//! begins with that request's opening brace is the steady state of a host that waits for each
//! reply, and costs nothing.
//!
//! Changes inotify does not report fall back to a read on every request ([`Outcome::Unwatchable`]):
//! no instance (it could not be created), a watch that could not be added (limits,
//! permission), and a path through a filesystem whose changes may be made elsewhere (network
//! and host-shared filesystems: only the local types of [`is_local`] are trusted). A mount over
//! a directory or file on the path produces no inotify event either: the poll loop watches the
//! front's mount table (`/proc/self/mountinfo`) and a change makes every held file stale.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// Symbolic links followed in one resolution, as the kernel's limit before ELOOP.
pub const MAX_LINKS: usize = 40;

/// IN_MASK_ADD, which nix does not name.
const MASK_ADD: AddWatchFlags = AddWatchFlags::from_bits_retain(nix::libc::IN_MASK_ADD);

/// A directory a name was looked up in: its entries appearing, going or changing attributes,
/// and the directory itself changing, being deleted or moved. IN_ONLYDIR: a directory replaced
/// by something else between the lookup and the watch is not watched as one. IN_MASK_ADD: two
/// paths may meet at one inode; masks only add up (an extra event only makes a file stale).
const DIR_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR)
    .union(AddWatchFlags::IN_DONT_FOLLOW)
    .union(MASK_ADD);

/// The file the path ends at: written (each write, and the close after writing), attributes
/// changed (permissions), deleted or moved.
const FILE_MASK: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_DONT_FOLLOW)
    .union(MASK_ADD);

/// The events read at a time: a read returns whole events only, so one that leaves more room
/// than the largest event (header and a NAME_MAX name) emptied the queue.
const EVENT_BUFFER: usize = 16 * 1024;
const EVENT_HEADER: usize = std::mem::size_of::<nix::libc::inotify_event>();
const LARGEST_EVENT: usize = EVENT_HEADER + 256;

/// Filesystem types whose every change is made through this kernel, so inotify sees it
/// (`statfs` f_type). Anything else (nfs, cifs/smb, 9p, virtiofs, fuse, ceph, procfs...) is
/// read on every request.
const LOCAL_FILESYSTEMS: [(u64, &str); 10] = [
    (0xEF53, "ext2/ext3/ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlay"),
    (0xF2F5_2010, "f2fs"),
    (0x7371_7368, "squashfs"),
    (0xE0F5_E1E2, "erofs"),
    (0x4D44, "vfat/msdos"),
];

/// Whether changes on a filesystem of this `statfs` type are all seen by inotify.
pub fn is_local(f_type: u64) -> bool {
    LOCAL_FILESYSTEMS.iter().any(|&(t, _)| t == f_type)
}

/// Where a resolution ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// At a regular file, watched with every directory on the way.
    Found,
    /// Nowhere (a missing name, a loop, not a regular file): watched up to where it stopped.
    Absent,
    /// Somewhere inotify cannot be trusted to report changes: read on every request.
    Unwatchable,
}

/// One thing a held file's freshness depends on: a watch, and for a directory the name looked
/// up in it.
#[derive(Debug, Clone)]
struct Interest {
    wd: WatchDescriptor,
    /// The entry looked up, for a directory; None for the file itself.
    name: Option<Box<[u8]>>,
}

#[derive(Default)]
struct Holder {
    fresh: bool,
    interests: Vec<Interest>,
}

/// The instance, the held files' watches and freshness, and what the poll loop told it about
/// requests (see the module doc).
pub struct Watcher {
    inotify: Inotify,
    holders: Vec<Holder>,
    events: Box<[u8]>,
    /// Connection reads that brought bytes, and how many of them the last drain came after.
    reads: u64,
    drained_after: u64,
    /// The request being served was covered by the wait before its read.
    covered: bool,
}

impl Watcher {
    /// A non-blocking, close-on-exec instance.
    pub fn new() -> nix::Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Watcher {
            inotify,
            holders: Vec::new(),
            events: vec![0u8; EVENT_BUFFER].into_boxed_slice(),
            reads: 0,
            drained_after: 0,
            covered: true,
        })
    }

    fn register(&mut self) -> usize {
        self.holders.push(Holder::default());
        self.holders.len() - 1
    }

    /// Whether the held file in `slot` may be answered from what was read last. A request
    /// the last wait did not cover first drains the instance (see the module doc).
    fn is_fresh(&mut self, slot: usize) -> bool {
        if !self.covered && self.drained_after < self.reads {
            self.take_events();
        }
        self.holders.get(slot).is_some_and(|h| h.fresh)
    }

    fn set_fresh(&mut self, slot: usize) {
        if let Some(h) = self.holders.get_mut(slot) {
            h.fresh = true;
        }
    }

    /// Resolves `path` for the held file in `slot`, watching each directory before a name is
    /// looked up in it and the file it ends at; the watches of its previous resolution that
    /// no held file needs any more are removed. Unwatchable: the slot keeps no watch.
    fn resolve(&mut self, slot: usize, path: &[u8]) -> Outcome {
        let mut interests = Vec::new();
        let outcome = walk(&self.inotify, path, &mut interests);
        if outcome == Outcome::Unwatchable {
            interests.clear();
        }
        let Some(holder) = self.holders.get_mut(slot) else { return Outcome::Unwatchable };
        holder.fresh = false;
        let old = std::mem::replace(&mut holder.interests, interests);
        self.release(old);
        outcome
    }

    /// Gives up the watches only `interests` used (a watch is per inode and instance: two
    /// paths through one directory share it).
    fn release(&mut self, interests: Vec<Interest>) {
        let mut done: Vec<WatchDescriptor> = Vec::new();
        for Interest { wd, .. } in interests {
            let in_use = self.holders.iter().any(|h| h.interests.iter().any(|i| i.wd == wd));
            if !in_use && !done.contains(&wd) {
                // The kernel may have dropped it already (its inode deleted): EINVAL, nothing to do.
                let _ = self.inotify.rm_watch(wd);
                done.push(wd);
            }
        }
    }

    fn mark_all_stale(&mut self) {
        for h in &mut self.holders {
            h.fresh = false;
        }
    }

    /// Reads every queued event and marks stale the held files they touch; an overflow or a
    /// failed read marks every one.
    pub fn take_events(&mut self) {
        self.drained_after = self.reads;
        loop {
            match nix::unistd::read(self.inotify.as_fd(), &mut self.events) {
                Ok(n) => {
                    let events = std::mem::take(&mut self.events);
                    self.apply_events(&events[..n]);
                    self.events = events;
                    if n + LARGEST_EVENT <= self.events.len() {
                        return;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.mark_all_stale();
                    return;
                }
            }
        }
    }

    /// Applies a buffer of events as `read` returns them (whole `inotify_event`s, each
    /// followed by its NUL-padded name).
    fn apply_events(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            let Some((wd, mask, name, rest)) = next_event(buf) else {
                // Not what the kernel writes: trust nothing kept.
                self.mark_all_stale();
                return;
            };
            buf = rest;
            if mask & nix::libc::IN_Q_OVERFLOW != 0 {
                self.mark_all_stale();
                continue;
            }
            for h in &mut self.holders {
                if h.interests.iter().any(|i| touches(i, wd, name)) {
                    h.fresh = false;
                }
            }
        }
    }

    /// The distinct watches held now.
    pub fn watch_count(&self) -> usize {
        let mut wds: Vec<WatchDescriptor> =
            self.holders.iter().flat_map(|h| h.interests.iter().map(|i| i.wd)).collect();
        wds.sort_unstable();
        wds.dedup();
        wds.len()
    }
}

/// One event off the front of `buf`: its watch, mask, name (empty for none) and the rest.
fn next_event(buf: &[u8]) -> Option<(i32, u32, &[u8], &[u8])> {
    let header = buf.get(..EVENT_HEADER)?;
    let word = |at: usize| -> Option<[u8; 4]> { header.get(at..at + 4)?.try_into().ok() };
    let wd = i32::from_ne_bytes(word(0)?);
    let mask = u32::from_ne_bytes(word(4)?);
    let len = u32::from_ne_bytes(word(12)?) as usize;
    let name = buf.get(EVENT_HEADER..EVENT_HEADER + len)?;
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    Some((wd, mask, name, &buf[EVENT_HEADER + len..]))
}

/// Whether an event on watch `wd` naming `name` (empty: the watched inode itself) may change
/// what `interest` saw: anything on the file; on a directory, anything about the directory
/// itself (its attributes, deletion, move, the watch dropped) or about the entry looked up.
fn touches(interest: &Interest, wd: i32, name: &[u8]) -> bool {
    if interest.wd.as_raw() != wd {
        return false;
    }
    match &interest.name {
        None => true,
        Some(looked_up) => name.is_empty() || **looked_up == *name,
    }
}

/// A path being resolved: the directory reached so far (absolute, without symbolic links)
/// and the components still to look up.
struct Walk {
    dir: Vec<u8>,
    rest: VecDeque<Vec<u8>>,
    links: usize,
}

impl Walk {
    fn push_front_components(&mut self, path: &[u8]) {
        for part in path.split(|&b| b == b'/').rev().filter(|p| !p.is_empty()) {
            self.rest.push_front(part.to_vec());
        }
    }

    fn child(&self, name: &[u8]) -> Vec<u8> {
        let mut p = self.dir.clone();
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        p
    }

    fn go_up(&mut self) {
        if let Some(at) = self.dir.iter().rposition(|&b| b == b'/') {
            self.dir.truncate(at.max(1));
        }
    }
}

/// What a name names, not following a final symbolic link.
enum Kind {
    Directory,
    Regular,
    Link,
    Other,
    Missing,
}

/// Resolves `path` as the kernel would, adding each watch before the lookup it guards (see
/// [`Watcher::resolve`]); the interests taken are pushed onto `interests`.
fn walk(inotify: &Inotify, path: &[u8], interests: &mut Vec<Interest>) -> Outcome {
    if path.first() != Some(&b'/') {
        return Outcome::Unwatchable;
    }
    let mut w = Walk { dir: b"/".to_vec(), rest: VecDeque::new(), links: 0 };
    w.push_front_components(path);
    while let Some(name) = w.rest.pop_front() {
        match name.as_slice() {
            b"." => continue,
            b".." => {
                w.go_up();
                continue;
            }
            _ => {}
        }
        match add_watch(inotify, &w.dir, DIR_MASK) {
            Ok(wd) => interests.push(Interest { wd, name: Some(name.clone().into_boxed_slice()) }),
            Err(outcome) => return outcome,
        }
        let full = w.child(&name);
        match kind_of(&full) {
            Kind::Missing | Kind::Other => return Outcome::Absent,
            Kind::Directory => w.dir = full,
            Kind::Regular if w.rest.is_empty() => {
                return match add_watch(inotify, &full, FILE_MASK) {
                    Ok(wd) => {
                        interests.push(Interest { wd, name: None });
                        Outcome::Found
                    }
                    Err(outcome) => outcome,
                };
            }
            // A file in the middle of a path: ENOTDIR.
            Kind::Regular => return Outcome::Absent,
            Kind::Link => {
                w.links += 1;
                let Some(target) = read_link(&full).filter(|_| w.links <= MAX_LINKS) else {
                    return Outcome::Absent;
                };
                if target.first() == Some(&b'/') {
                    w.dir = b"/".to_vec();
                }
                w.push_front_components(&target);
            }
        }
    }
    // The path names a directory.
    Outcome::Absent
}

/// Watches `path` (not following a final link) on a local filesystem. A name gone meanwhile
/// is [`Outcome::Absent`] (the watch on its directory saw it go, so the file is stale again);
/// any other failure, or a filesystem inotify cannot vouch for, is [`Outcome::Unwatchable`].
fn add_watch(inotify: &Inotify, path: &[u8], mask: AddWatchFlags) -> Result<WatchDescriptor, Outcome> {
    let c_path = CString::new(path).map_err(|_| Outcome::Absent)?;
    let wd = match inotify.add_watch(c_path.as_c_str(), mask) {
        Ok(wd) => wd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => return Err(Outcome::Absent),
        Err(_) => return Err(Outcome::Unwatchable),
    };
    match nix::sys::statfs::statfs(c_path.as_c_str()) {
        Ok(fs) if is_local(fs.filesystem_type().0 as u64) => Ok(wd),
        _ => {
            let _ = inotify.rm_watch(wd);
            Err(Outcome::Unwatchable)
        }
    }
}

fn kind_of(path: &[u8]) -> Kind {
    let Ok(c_path) = CString::new(path) else { return Kind::Missing };
    // SAFETY: statx is a plain C struct of integers, for which all zero bytes is a valid value.
    let mut stx: nix::libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes only into `stx`, a properly sized and aligned statx struct; the path
    // is a NUL-terminated string that lives across the call.
    let r = unsafe {
        nix::libc::statx(
            nix::libc::AT_FDCWD,
            c_path.as_ptr(),
            nix::libc::AT_SYMLINK_NOFOLLOW,
            nix::libc::STATX_TYPE,
            &mut stx,
        )
    };
    if r != 0 {
        return Kind::Missing;
    }
    match u32::from(stx.stx_mode) & nix::libc::S_IFMT {
        nix::libc::S_IFDIR => Kind::Directory,
        nix::libc::S_IFREG => Kind::Regular,
        nix::libc::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// A symbolic link's target (one `readlinkat`); None if it cannot be read or is as long as
/// the buffer (the kernel's limit is one byte less).
fn read_link(path: &[u8]) -> Option<Vec<u8>> {
    let c_path = CString::new(path).ok()?;
    let mut buf = vec![0u8; nix::libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most buf.len() bytes into `buf`, which lives across the
    // call; the path is a NUL-terminated string.
    let n = unsafe { nix::libc::readlinkat(nix::libc::AT_FDCWD, c_path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0 && n < buf.len())?;
    buf.truncate(n);
    Some(buf)
}

// ---- the front's one instance ----

thread_local! {
    static WATCHER: RefCell<Option<Watcher>> = const { RefCell::new(None) };
}

fn with<T>(f: impl FnOnce(&mut Watcher) -> T) -> Option<T> {
    WATCHER.with_borrow_mut(|w| w.as_mut().map(f))
}

/// Creates the front's instance (before its seccomp filter, which does not allow creating
/// one). Without it every held file is read on every request.
pub fn start() -> nix::Result<()> {
    let watcher = Watcher::new()?;
    WATCHER.with_borrow_mut(|w| *w = Some(watcher));
    Ok(())
}

/// Gives up watching: every held file is read on every request from now on.
pub fn stop() {
    WATCHER.with_borrow_mut(|w| *w = None);
}

/// The instance's descriptor, for the poll loop. It lives until [`stop`], which the front
/// calls only before it starts serving.
pub fn descriptor() -> Option<RawFd> {
    with(|w| w.inotify.as_fd().as_raw_fd())
}

/// The poll loop found the instance readable: drain it.
pub fn take_events() {
    with(Watcher::take_events);
}

/// The front's mount table changed: a mount may hide or reveal any file on any path.
pub fn mark_all_stale() {
    with(Watcher::mark_all_stale);
}

/// The poll loop read bytes from the connection.
pub fn input_arrived() {
    with(|w| w.reads += 1);
}

/// The poll loop is about to serve a request; `covered`: its first byte was there when the
/// wait before its read reported the connection ready (see the module doc).
pub fn serving(covered: bool) {
    with(|w| w.covered = covered);
}

/// A slot for one held file; None without an instance.
pub fn register() -> Option<usize> {
    with(Watcher::register)
}

pub fn is_fresh(slot: usize) -> bool {
    with(|w| w.is_fresh(slot)).unwrap_or(false)
}

pub fn set_fresh(slot: usize) {
    with(|w| w.set_fresh(slot));
}

pub fn resolve(slot: usize, path: &str) -> Outcome {
    with(|w| w.resolve(slot, path.as_bytes())).unwrap_or(Outcome::Unwatchable)
}

#[cfg(test)]
pub fn watch_count() -> usize {
    with(|w| w.watch_count()).unwrap_or(0)
}

/// The watches the kernel holds on the front's instance, from its fdinfo.
#[cfg(test)]
pub fn kernel_watch_count() -> usize {
    let Some(fd) = descriptor() else { return 0 };
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    info.lines().filter(|l| l.starts_with("inotify wd:")).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("qga-watch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn event(wd: i32, mask: u32, name: &[u8]) -> Vec<u8> {
        let len = if name.is_empty() { 0 } else { (name.len() + 1).next_multiple_of(16) };
        let mut e = Vec::new();
        e.extend_from_slice(&wd.to_ne_bytes());
        e.extend_from_slice(&mask.to_ne_bytes());
        e.extend_from_slice(&0u32.to_ne_bytes());
        e.extend_from_slice(&(len as u32).to_ne_bytes());
        let mut padded = name.to_vec();
        padded.resize(len, 0);
        e.extend_from_slice(&padded);
        e
    }

    /// Two fresh held files: `a` looked `localtime` up in a directory, `b` is a file; with the
    /// raw numbers of their two watches (real ones, on scratch inodes).
    fn two_fresh_holders(w: &mut Watcher) -> (usize, usize, i32, i32) {
        let dir = scratch(&format!("synthetic-{:?}", std::thread::current().id()));
        std::fs::write(dir.join("f"), "x").unwrap();
        let dir_wd = w.inotify.add_watch(&dir, DIR_MASK).unwrap();
        let file_wd = w.inotify.add_watch(&dir.join("f"), FILE_MASK).unwrap();
        let (a, b) = (w.register(), w.register());
        w.holders[a].interests = vec![Interest { wd: dir_wd, name: Some(b"localtime".to_vec().into()) }];
        w.holders[b].interests = vec![Interest { wd: file_wd, name: None }];
        w.set_fresh(a);
        w.set_fresh(b);
        (a, b, dir_wd.as_raw(), file_wd.as_raw())
    }

    #[test]
    fn an_event_marks_stale_only_the_files_it_touches() {
        let mut w = Watcher::new().unwrap();
        let (a, b, dir, file) = two_fresh_holders(&mut w);
        // Another name in the watched directory: nothing.
        w.apply_events(&event(dir, nix::libc::IN_CREATE, b"localtime.new"));
        assert!(w.holders[a].fresh && w.holders[b].fresh);
        // The name looked up, moved over: that file only.
        w.apply_events(&event(dir, nix::libc::IN_MOVED_TO, b"localtime"));
        assert!(!w.holders[a].fresh && w.holders[b].fresh);
        // The directory itself (no name): every file looked up in it.
        w.set_fresh(a);
        w.apply_events(&event(dir, nix::libc::IN_ATTRIB, b""));
        assert!(!w.holders[a].fresh);
        // Anything on the file.
        w.apply_events(&event(file, nix::libc::IN_MODIFY, b""));
        assert!(!w.holders[b].fresh);
    }

    #[test]
    fn an_overflow_or_a_malformed_buffer_marks_every_file_stale() {
        let mut w = Watcher::new().unwrap();
        let (a, b, _, _) = two_fresh_holders(&mut w);
        w.apply_events(&event(-1, nix::libc::IN_Q_OVERFLOW, b""));
        assert!(!w.holders[a].fresh && !w.holders[b].fresh);
        w.set_fresh(a);
        w.set_fresh(b);
        let mut cut = event(3, nix::libc::IN_CREATE, b"x");
        cut.truncate(20);
        w.apply_events(&cut);
        assert!(!w.holders[a].fresh && !w.holders[b].fresh);
    }

    #[test]
    fn events_in_one_buffer_are_all_applied() {
        let mut w = Watcher::new().unwrap();
        let (a, b, dir, file) = two_fresh_holders(&mut w);
        let buf = [event(dir, nix::libc::IN_CREATE, b"other"), event(file, nix::libc::IN_CLOSE_WRITE, b"")].concat();
        w.apply_events(&buf);
        assert!(w.holders[a].fresh && !w.holders[b].fresh);
    }

    #[test]
    fn only_local_filesystems_are_trusted() {
        let ext4 = 0xEF53;
        let tmpfs = 0x0102_1994;
        assert!(is_local(ext4) && is_local(tmpfs));
        let nfs = nix::libc::NFS_SUPER_MAGIC as u64;
        let smb2 = 0xFE53_4D42;
        let cifs = 0xFF53_4D42;
        let v9fs = 0x0102_1997;
        let fuse = 0x6573_5546; // virtiofs is a fuse filesystem
        let ceph = 0x00C3_6400;
        let proc = nix::libc::PROC_SUPER_MAGIC as u64;
        for t in [nfs, smb2, cifs, v9fs, fuse, ceph, proc] {
            assert!(!is_local(t), "{t:#x}");
        }
    }

    #[test]
    fn a_path_through_a_filesystem_that_is_not_local_is_unwatchable() {
        // procfs changes without inotify events: nothing under it is trusted.
        let mut w = Watcher::new().unwrap();
        let slot = w.register();
        assert_eq!(w.resolve(slot, b"/proc/self/status"), Outcome::Unwatchable);
        assert_eq!(w.watch_count(), 0);
        assert_eq!(w.resolve(slot, b"relative/path"), Outcome::Unwatchable);
    }

    #[test]
    fn a_chain_of_links_is_followed_and_every_directory_and_link_on_it_watched() {
        let dir = scratch("chain");
        let d = |p: &str| dir.join(p);
        std::fs::create_dir_all(d("usr/lib")).unwrap();
        std::fs::create_dir_all(d("etc")).unwrap();
        std::fs::write(d("usr/lib/os-release"), "ID=x\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", d("etc/os-release")).unwrap();
        std::os::unix::fs::symlink(d("etc"), d("var")).unwrap();
        std::os::unix::fs::symlink("var/./os-release", d("link")).unwrap();
        let mut w = Watcher::new().unwrap();
        let slot = w.register();
        assert_eq!(w.resolve(slot, d("link").to_str().unwrap().as_bytes()), Outcome::Found);
        let names: Vec<&[u8]> = w.holders[slot].interests.iter().filter_map(|i| i.name.as_deref()).collect();
        for name in [&b"link"[..], b"var", b"etc", b"os-release", b"usr", b"lib"] {
            assert!(names.contains(&name), "{:?} not looked up: {names:?}", String::from_utf8_lossy(name));
        }
        assert!(w.holders[slot].interests.last().unwrap().name.is_none(), "the file itself is watched");
    }

    #[test]
    fn a_loop_is_absent() {
        let dir = scratch("loop");
        std::os::unix::fs::symlink(dir.join("b"), dir.join("a")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("b")).unwrap();
        let mut w = Watcher::new().unwrap();
        let slot = w.register();
        assert_eq!(w.resolve(slot, dir.join("a").to_str().unwrap().as_bytes()), Outcome::Absent);
        // 40 links are followed, the 41st is not.
        let chain = scratch("forty");
        std::fs::write(chain.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", chain.join("l0")).unwrap();
        for i in 1..=40 {
            std::os::unix::fs::symlink(format!("l{}", i - 1), chain.join(format!("l{i}"))).unwrap();
        }
        assert_eq!(w.resolve(slot, chain.join("l39").to_str().unwrap().as_bytes()), Outcome::Found);
        assert_eq!(w.resolve(slot, chain.join("l40").to_str().unwrap().as_bytes()), Outcome::Absent);
    }
}
