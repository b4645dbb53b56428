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

use std::ffi::CStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

pub struct HeldFile {
    path: &'static str,
    held: Option<Held>,
    buf: Vec<u8>,
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
        HeldFile { path, held: None, buf: Vec::new() }
    }

    /// The file's whole content now; None when the path names no readable regular file (the
    /// caller answers as 7.2 does without the file).
    pub fn read(&mut self) -> Option<&[u8]> {
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
        let want = usize::try_from(size).ok()?.saturating_add(SLACK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        pread_whole(file, &mut self.buf, usize::try_from(size).ok()).ok()
    }
}

/// Reads `file` whole from offset 0 into `buf`, which grows by doubling and stays grown;
/// returns the length read. `size`, the size the kernel reported for a regular file: a read
/// that reaches it without filling the buffer is the end (a regular file reads short only at
/// its end), which saves the last, empty read. Without it (procfs files report none) the file
/// is read until a read returns nothing.
pub fn pread_whole(file: &File, buf: &mut Vec<u8>, size: Option<usize>) -> std::io::Result<usize> {
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
                if size.is_some_and(|size| total >= size) && total < buf.len() {
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
}
