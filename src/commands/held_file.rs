//! A small guest file that a query reads whole on every request (utmp, /etc/localtime), held
//! open between requests: each request asks the kernel which file the path names now (one
//! `statx`) and, while that is still the held file, reads it again from offset 0 with `pread`
//! into a buffer kept between requests; only a different file (a new time zone link, utmp
//! created again) is opened. Two system calls per request instead of `std::fs::read`'s open,
//! statx, two reads and close.
//!
//! Freshness is 7.2's, which opens the file on every request: the answer is the content of the
//! file the path names at the moment of the request. A file rewritten in place is the same
//! file, read again; a replaced one has another identity. The identity is the device and inode
//! number, taken from the held descriptor itself (`fstat`), and it cannot be reused by another
//! file while the descriptor holds the inode, so equal numbers mean the same file. The front is
//! single-threaded: one holder per file per thread.
//!
//! With the front's inotify instance (see `watch`), the file is not even asked about while it
//! is fresh: its path is resolved and watched once, the file read, and its bytes answered
//! from memory with no system call until an event says the file, or a directory or link on
//! its path, may have changed. Where changes cannot be watched, each request asks as above.

use std::ffi::CStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

pub struct HeldFile {
    path: &'static str,
    held: Option<Held>,
    buf: Vec<u8>,
    watching: Watching,
    /// What the last read found: the content's length in `buf`, or None for no file.
    kept: Option<usize>,
}

/// Whether the file's freshness comes from the front's inotify instance.
#[derive(Clone, Copy)]
enum Watching {
    /// Not yet asked (or no instance yet): asks again at the next read.
    NotYet,
    /// The slot of its watches and freshness.
    Slot(usize),
    /// Its path cannot be watched: asked about on every request.
    Never,
}

struct Held {
    file: File,
    dev: u64,
    ino: u64,
}

/// Room beyond the announced size, so a file that grew since the `statx` is still read whole
/// by the first `pread` in most cases (and the loop below reads on while it fills the buffer).
const SLACK: usize = 4096;

impl HeldFile {
    pub const fn new(path: &'static str) -> HeldFile {
        HeldFile { path, held: None, buf: Vec::new(), watching: Watching::NotYet, kept: None }
    }

    /// The file's whole content now; None when the path names no readable regular file (the
    /// caller answers as 7.2 does without the file).
    pub fn read(&mut self) -> Option<&[u8]> {
        if let Watching::NotYet = self.watching {
            if let Some(slot) = super::watch::register() {
                self.watching = Watching::Slot(slot);
            }
        }
        let Watching::Slot(slot) = self.watching else { return self.read_asking() };
        if super::watch::is_fresh(slot) {
            return self.kept.map(|len| &self.buf[..len]);
        }
        // Watched first, then read: a change after the watches are in place is an event.
        if super::watch::resolve(slot, self.path) == super::watch::Outcome::Unwatchable {
            crate::debug!("{} is read on every request: its changes cannot be watched", self.path);
            self.watching = Watching::Never;
            return self.read_asking();
        }
        self.kept = self.read_asking().map(<[u8]>::len);
        super::watch::set_fresh(slot);
        self.kept.map(|len| &self.buf[..len])
    }

    /// Asks the kernel which file the path names now and reads it.
    fn read_asking(&mut self) -> Option<&[u8]> {
        match self.read_now() {
            Some(len) => Some(&self.buf[..len]),
            None => {
                self.held = None;
                None
            }
        }
    }

    fn read_now(&mut self) -> Option<usize> {
        let (dev, ino, size) = stat_path(self.path)?;
        let same = self.held.as_ref().is_some_and(|h| h.dev == dev && h.ino == ino);
        if !same {
            let file = File::open(self.path).ok()?;
            let meta = file.metadata().ok()?;
            if !meta.is_file() {
                return None;
            }
            self.held = Some(Held { file, dev: meta.dev(), ino: meta.ino() });
        }
        let file = &self.held.as_ref()?.file;
        let size = usize::try_from(size).ok()?;
        let want = size.saturating_add(SLACK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        pread_whole(file, &mut self.buf, TextEnd::AtSize(size)).ok()
    }
}

/// How a read shows that a file's text is complete.
#[derive(Clone, Copy)]
pub enum TextEnd {
    /// A regular file of the size the kernel reported: a read that reaches it without filling
    /// the buffer is the end (a regular file reads short only at its end), which saves the
    /// last, empty read.
    AtSize(usize),
    /// A text the kernel generates whole as one record (/proc/stat: `single_open_size`), of
    /// which a read copies as much as the buffer holds: a read that leaves room in the buffer
    /// returned all of it. Asking again at the end would only answer 0 bytes, and on the
    /// request path every extra system call costs a scheduler round with the client (measured
    /// at about a microsecond on one CPU).
    FirstShortRead,
    /// A text the kernel generates a record at a time, filling at most its own page-sized
    /// buffer per read (/proc/diskstats: a record per block device), so a short read is not
    /// the end: read on until a read answers 0 bytes.
    EmptyRead,
}

/// Reads `file` whole from offset 0 into `buf`, which grows by doubling and stays grown;
/// returns the length read, having stopped where `end` says the text ends.
pub fn pread_whole(file: &File, buf: &mut Vec<u8>, end: TextEnd) -> std::io::Result<usize> {
    if buf.is_empty() {
        buf.resize(SLACK, 0);
    }
    let mut total = 0;
    loop {
        if total == buf.len() {
            buf.resize(total * 2, 0);
        }
        match file.read_at(&mut buf[total..], total as u64) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                total += n;
                let room_left = total < buf.len();
                let ended = match end {
                    TextEnd::AtSize(size) => total >= size && room_left,
                    TextEnd::FirstShortRead => room_left,
                    TextEnd::EmptyRead => false,
                };
                if ended {
                    return Ok(total);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The identity (device, inode) and size of the file `path` names now, following symbolic
/// links as an open would; one `statx` asking for exactly those, no allocation.
fn stat_path(path: &str) -> Option<(u64, u64, u64)> {
    let mut c_path = [0u8; 256];
    let bytes = path.as_bytes();
    c_path.get_mut(..bytes.len())?.copy_from_slice(bytes);
    // The NUL is the byte after the path (a path with one inside names a shorter one, as for
    // any C caller): only that far is searched, not the whole buffer.
    let c_path = CStr::from_bytes_until_nul(c_path.get(..=bytes.len())?).ok()?;
    // SAFETY: statx is a plain C struct of integers, for which all zero bytes is a valid value.
    let mut stx: nix::libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes only into `stx`, a properly sized and aligned statx struct; the path
    // is a NUL-terminated string that lives across the call.
    let r = unsafe {
        nix::libc::statx(
            nix::libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            nix::libc::STATX_TYPE | nix::libc::STATX_INO | nix::libc::STATX_SIZE,
            &mut stx,
        )
    };
    if r != 0 || u32::from(stx.stx_mode) & nix::libc::S_IFMT != nix::libc::S_IFREG {
        return None;
    }
    let dev = nix::libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
    Some((dev, stx.stx_ino, stx.stx_size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn scratch(name: &str) -> &'static str {
        let dir = std::env::temp_dir().join(format!("qga-held-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Box::leak(dir.join("f").to_str().unwrap().to_string().into_boxed_str())
    }

    #[test]
    fn a_file_rewritten_in_place_is_read_with_its_new_content() {
        let path = scratch("in-place");
        std::fs::write(path, b"first").unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&b"first"[..]));
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
        f.write_all(b"second, longer").unwrap();
        assert_eq!(held.read(), Some(&b"second, longer"[..]));
        f.set_len(3).unwrap();
        assert_eq!(held.read(), Some(&b"sec"[..]));
    }

    #[test]
    fn a_replaced_file_is_opened_again() {
        let path = scratch("replaced");
        std::fs::write(path, b"old zone").unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&b"old zone"[..]));
        let tmp = format!("{path}.new");
        std::fs::write(&tmp, b"new zone").unwrap();
        std::fs::rename(&tmp, path).unwrap();
        assert_eq!(held.read(), Some(&b"new zone"[..]));
    }

    #[test]
    fn a_file_removed_is_gone_and_one_created_later_is_read() {
        let path = scratch("removed");
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), None);
        std::fs::write(path, b"utmp").unwrap();
        assert_eq!(held.read(), Some(&b"utmp"[..]));
        std::fs::remove_file(path).unwrap();
        assert_eq!(held.read(), None);
    }

    #[test]
    fn a_file_larger_than_the_buffer_is_read_whole() {
        let path = scratch("large");
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        std::fs::write(path, &big).unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&big[..]));
        let bigger: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(path, &bigger).unwrap();
        assert_eq!(held.read(), Some(&bigger[..]));
    }

    #[test]
    fn a_directory_is_not_a_file() {
        let path = scratch("dir");
        std::fs::create_dir(path).unwrap();
        assert_eq!(HeldFile::new(path).read(), None);
    }

    // ---- with the front's inotify instance ----

    use crate::commands::watch;

    /// A scratch directory, with the test thread's own instance started (each test runs on a
    /// thread of its own, and the instance is per thread).
    fn watched_scratch(name: &str) -> std::path::PathBuf {
        watch::start().unwrap();
        let dir = std::env::temp_dir().join(format!("qga-held-watch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn leak(path: std::path::PathBuf) -> &'static str {
        Box::leak(path.to_str().unwrap().to_string().into_boxed_str())
    }

    /// The kept bytes are answered until the poll loop drains the events (which it does before
    /// it serves the request that may depend on them); then the new ones. Without the watch
    /// that sees the change, the second read would still answer `before`.
    fn changes_after_events(held: &mut HeldFile, before: Option<&[u8]>, after: Option<&[u8]>) {
        assert_eq!(held.read(), before, "kept until the events are taken");
        watch::take_events();
        assert_eq!(held.read(), after, "the change is seen once the events are taken");
        assert_eq!(held.read(), after);
    }

    #[test]
    fn watched_a_file_rewritten_in_place_is_stale_after_the_write() {
        let dir = watched_scratch("in-place");
        let path = leak(dir.join("utmp"));
        std::fs::write(path, b"first").unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&b"first"[..]));
        std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(b"FIRST", 0).unwrap();
        changes_after_events(&mut held, Some(b"first"), Some(b"FIRST"));
    }

    #[test]
    fn watched_a_file_replaced_by_a_rename_is_stale() {
        let dir = watched_scratch("renamed");
        let path = leak(dir.join("localtime"));
        std::fs::write(path, b"old zone").unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&b"old zone"[..]));
        std::fs::write(dir.join("new"), b"new zone").unwrap();
        std::fs::rename(dir.join("new"), path).unwrap();
        changes_after_events(&mut held, Some(b"old zone"), Some(b"new zone"));
    }

    #[test]
    fn watched_a_file_removed_then_created_is_seen_going_and_coming() {
        let dir = watched_scratch("created");
        let path = leak(dir.join("utmp"));
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), None);
        std::fs::write(path, b"utmp").unwrap();
        changes_after_events(&mut held, None, Some(b"utmp"));
        std::fs::remove_file(path).unwrap();
        changes_after_events(&mut held, Some(b"utmp"), None);
    }

    #[test]
    fn watched_a_link_retargeted_by_renaming_a_new_link_over_it_is_stale() {
        let dir = watched_scratch("ln-sf");
        std::fs::write(dir.join("Paris"), b"CET").unwrap();
        std::fs::write(dir.join("Tokyo"), b"JST").unwrap();
        std::os::unix::fs::symlink("Paris", dir.join("localtime")).unwrap();
        let mut held = HeldFile::new(leak(dir.join("localtime")));
        assert_eq!(held.read(), Some(&b"CET"[..]));
        // ln -sf: a new link under another name, renamed over the old one.
        std::os::unix::fs::symlink(dir.join("Tokyo"), dir.join("localtime.tmp")).unwrap();
        std::fs::rename(dir.join("localtime.tmp"), dir.join("localtime")).unwrap();
        changes_after_events(&mut held, Some(b"CET"), Some(b"JST"));
        // The old target changed: no longer on the path, nothing to see.
        std::fs::write(dir.join("Paris"), b"CEST").unwrap();
        watch::take_events();
        assert_eq!(held.read(), Some(&b"JST"[..]));
    }

    #[test]
    fn watched_a_directory_link_on_the_path_retargeted_is_stale() {
        let dir = watched_scratch("dir-link");
        for (zone, data) in [("a", "zone a"), ("b", "zone b")] {
            std::fs::create_dir_all(dir.join(zone).join("Etc")).unwrap();
            std::fs::write(dir.join(zone).join("Etc/UTC"), data).unwrap();
        }
        std::os::unix::fs::symlink("a", dir.join("zoneinfo")).unwrap();
        let mut held = HeldFile::new(leak(dir.join("zoneinfo/Etc/UTC")));
        assert_eq!(held.read(), Some(&b"zone a"[..]));
        std::os::unix::fs::symlink("b", dir.join("zoneinfo.tmp")).unwrap();
        std::fs::rename(dir.join("zoneinfo.tmp"), dir.join("zoneinfo")).unwrap();
        changes_after_events(&mut held, Some(b"zone a"), Some(b"zone b"));
    }

    #[test]
    fn watched_a_directory_on_the_path_renamed_away_is_stale() {
        let dir = watched_scratch("dir-renamed");
        std::fs::create_dir_all(dir.join("run/sub")).unwrap();
        std::fs::write(dir.join("run/sub/utmp"), b"here").unwrap();
        let mut held = HeldFile::new(leak(dir.join("run/sub/utmp")));
        assert_eq!(held.read(), Some(&b"here"[..]));
        std::fs::rename(dir.join("run/sub"), dir.join("run/gone")).unwrap();
        changes_after_events(&mut held, Some(b"here"), None);
        // And a directory moved in under the name.
        std::fs::create_dir_all(dir.join("other")).unwrap();
        std::fs::write(dir.join("other/utmp"), b"back").unwrap();
        std::fs::rename(dir.join("other"), dir.join("run/sub")).unwrap();
        changes_after_events(&mut held, None, Some(b"back"));
    }

    #[test]
    fn watched_a_chain_of_links_sees_a_change_at_its_end_and_in_its_middle() {
        // /etc/os-release -> ../usr/lib/os-release, reached through /var -> /etc.
        let dir = watched_scratch("chain");
        std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("usr/lib/os-release"), b"ID=one\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", dir.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink(dir.join("etc"), dir.join("var")).unwrap();
        let mut held = HeldFile::new(leak(dir.join("var/os-release")));
        assert_eq!(held.read(), Some(&b"ID=one\n"[..]));
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("usr/lib/os-release"))
            .unwrap()
            .write_all_at(b"ID=two", 0)
            .unwrap();
        changes_after_events(&mut held, Some(b"ID=one\n"), Some(b"ID=two\n"));
        std::fs::remove_file(dir.join("etc/os-release")).unwrap();
        std::fs::write(dir.join("etc/os-release"), b"ID=own\n").unwrap();
        changes_after_events(&mut held, Some(b"ID=two\n"), Some(b"ID=own\n"));
    }

    #[test]
    fn watched_a_loop_is_absent_until_it_is_broken() {
        let dir = watched_scratch("loop");
        std::os::unix::fs::symlink("b", dir.join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.join("b")).unwrap();
        let mut held = HeldFile::new(leak(dir.join("a")));
        assert_eq!(held.read(), None);
        std::fs::remove_file(dir.join("b")).unwrap();
        std::fs::write(dir.join("b"), b"broken").unwrap();
        changes_after_events(&mut held, None, Some(b"broken"));
    }

    #[test]
    fn watched_a_zone_switched_back_and_forth_a_thousand_times_keeps_a_bounded_watch_count() {
        let dir = watched_scratch("bounded");
        for zone in ["Paris", "Tokyo"] {
            std::fs::create_dir_all(dir.join(zone)).unwrap();
            std::fs::write(dir.join(zone).join("zone"), zone).unwrap();
        }
        std::os::unix::fs::symlink("Paris/zone", dir.join("localtime")).unwrap();
        let mut held = HeldFile::new(leak(dir.join("localtime")));
        assert_eq!(held.read(), Some(&b"Paris"[..]));
        let (ours, kernels) = (watch::watch_count(), watch::kernel_watch_count());
        assert_eq!(ours, kernels);
        for i in 0..1000 {
            let zone = if i % 2 == 0 { "Tokyo" } else { "Paris" };
            std::os::unix::fs::symlink(format!("{zone}/zone"), dir.join("localtime.tmp")).unwrap();
            std::fs::rename(dir.join("localtime.tmp"), dir.join("localtime")).unwrap();
            watch::take_events();
            assert_eq!(held.read(), Some(zone.as_bytes()));
            assert!(watch::watch_count() <= ours, "{i}: {} watches", watch::watch_count());
        }
        assert!(watch::kernel_watch_count() <= kernels, "the kernel holds {}", watch::kernel_watch_count());
    }

    #[test]
    fn watched_a_request_the_wait_did_not_cover_takes_the_events_itself() {
        let dir = watched_scratch("uncovered");
        let path = leak(dir.join("f"));
        std::fs::write(path, b"first").unwrap();
        let mut held = HeldFile::new(path);
        assert_eq!(held.read(), Some(&b"first"[..]));
        std::fs::write(path, b"second").unwrap();
        // Covered by the wait before its read: the wait's drain is the one that counts.
        watch::input_arrived();
        watch::serving(true);
        assert_eq!(held.read(), Some(&b"first"[..]));
        // Read after that wait (a second request in the same read): drained first.
        watch::serving(false);
        assert_eq!(held.read(), Some(&b"second"[..]));
        // Once per read: later requests of the same read are covered by that drain.
        std::fs::write(path, b"third").unwrap();
        assert_eq!(held.read(), Some(&b"second"[..]));
        watch::input_arrived();
        assert_eq!(held.read(), Some(&b"third"[..]));
    }

    #[test]
    fn a_path_whose_changes_inotify_may_miss_is_asked_about_on_every_request() {
        let _ = watched_scratch("procfs");
        // procfs is not a local filesystem whose changes inotify reports.
        let mut held = HeldFile::new("/proc/self/stat");
        assert!(held.read().is_some());
        assert!(matches!(held.watching, Watching::Never));
        assert_eq!(watch::watch_count(), 0);
    }
}
