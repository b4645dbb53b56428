//! guest-file-open/-close/-read/-write/-seek/-flush. The helper opens the file (as root, beneath
//! the directory of the policy rule that allows it: helper/src/files.rs) and hands the
//! descriptor over; reading, writing, seeking and closing then happen here, in the front, on that
//! descriptor. Handles start at 1000, are never reused, and the counter survives restarts in
//! `<statedir>/qga.state` (7.2's key file). Files are opened non-blocking so a FIFO cannot
//! hang the agent; new files get mode 0644.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::args::Whence;
use crate::qmp::AgentError;
use base64::Engine;
use nix::errno::Errno;
use qga_policy::Command;
use qga_protocol::{OpenMode, MAX_FILE_PATH};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// guest-file-read's default count (7.2's QGA_READ_COUNT_DEFAULT).
const DEFAULT_READ_COUNT: i64 = 4096;
/// guest-file-read's largest count: 48 MiB, whose base64 fits the 64 MiB JSON limit.
pub const MAX_READ_COUNT: i64 = 48 << 20;
/// Open handles at once; the next open is refused with a clear error.
pub const MAX_OPEN_HANDLES: usize = 1024;
/// The first handle of a fresh state file.
const FIRST_HANDLE: i64 = 1000;

struct Handle {
    file: File,
}

/// The open handles and the persisted handle counter.
pub struct Handles {
    open: BTreeMap<i64, Handle>,
    next: i64,
    /// `<statedir>/qga.state`, opened before the front gave up root.
    state: Option<File>,
}

impl Handles {
    /// Loads the counter from the state file (a missing or unreadable value means 1000) and
    /// makes room for [`MAX_OPEN_HANDLES`] descriptors.
    pub fn new(state: Option<File>) -> Handles {
        reserve_descriptors();
        let mut text = String::new();
        let next = match &state {
            Some(f) => {
                let _ = (&*f).read_to_string(&mut text);
                parse_counter(&text).unwrap_or(FIRST_HANDLE)
            }
            None => FIRST_HANDLE,
        };
        let mut handles = Handles { open: BTreeMap::new(), next, state };
        if text.is_empty() {
            let _ = handles.persist();
        }
        handles
    }

    fn persist(&mut self) -> std::io::Result<()> {
        let Some(f) = &self.state else { return Ok(()) };
        let text = format!("[global]\nfd_counter={}\n", self.next);
        f.write_all_at(text.as_bytes(), 0)?;
        f.set_len(text.len() as u64)
    }

    fn find(&mut self, handle: i64) -> Result<&mut Handle, AgentError> {
        self.open.get_mut(&handle).ok_or_else(|| AgentError::command(format!("handle '{handle}' has not been found")))
    }
}

/// Descriptors the front needs besides the handles: channel, helper link and log, poll,
/// signals, state file, and a margin for what a command opens briefly.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft RLIMIT_NOFILE (up to the hard limit) so that the handle limit, not the
/// descriptor limit, is what a client runs into: with the common soft limit of 1024 the front
/// would otherwise fail opens with EMFILE below 1024 handles and, worse, could no longer
/// accept the next client. Raising the soft limit needs no privilege.
fn reserve_descriptors() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = MAX_OPEN_HANDLES as u64 + RESERVED_DESCRIPTORS;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
        }
    }
}

/// The value of `fd_counter` in the `[global]` group of the state file, a GKeyFile as 7.2
/// writes it (read with the one keyfile reader, as the configuration file is).
fn parse_counter(text: &str) -> Option<i64> {
    let file = crate::cli::keyfile::KeyFile::parse(text.as_bytes()).ok()?;
    file.get_string("global", "fd_counter")?.ok()?.trim().parse().ok()
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

pub fn open(agent: &mut Agent, path: &[u8], mode: Option<&[u8]>) -> Result<Value, AgentError> {
    let mode_text = mode.unwrap_or(b"r");
    crate::slog!("guest-file-open called, filepath: {}, mode: {}", lossy(path), lossy(mode_text));
    let mode = OpenMode::parse(mode_text)
        .ok_or_else(|| AgentError::command([b"invalid file open mode '", mode_text, b"'"].concat()))?;
    // A NUL cannot come from the host (the JSON layer decodes \u0000 as C0 80); it would end the
    // path in 7.2, so it ends it here too, before any rule is checked.
    let path = match path.iter().position(|&b| b == 0) {
        Some(nul) => &path[..nul],
        None => path,
    };
    // The first gate; the helper checks the same rules again on what it opens.
    if agent.policy.conditions_of(Command::FileOpen).next().is_some() {
        let inv = qga_policy::Invocation::FileOpen { path, access: mode.access() };
        agent.permit(Command::FileOpen, &inv)?;
    }
    if agent.files.open.len() >= MAX_OPEN_HANDLES {
        return Err(AgentError::command(format!("too many open file handles (limit {MAX_OPEN_HANDLES})")));
    }
    let failed =
        |e: Errno| AgentError::os([b"failed to open file '", path, b"' (mode: '", mode_text, b"')"].concat(), e);
    // What the kernel would answer for a path it cannot take, without asking the helper: an
    // empty one does not exist, a longer one than PATH_MAX is too long.
    if path.is_empty() {
        return Err(failed(Errno::ENOENT));
    }
    if path.len() > MAX_FILE_PATH {
        return Err(failed(Errno::ENAMETOOLONG));
    }
    let file = agent.helper.open_file(path, mode)?.map_err(failed)?;
    let files = &mut agent.files;
    let handle = files.next;
    files.next += 1;
    if files.persist().is_err() {
        return Err(AgentError::command("failed to commit persistent state to disk"));
    }
    files.open.insert(handle, Handle { file });
    crate::slog!("guest-file-open, handle: {handle}");
    Ok(Value::Int(handle))
}

pub fn close(agent: &mut Agent, handle: i64) -> Result<Value, AgentError> {
    crate::slog!("guest-file-close called, handle: {handle}");
    agent.files.find(handle)?;
    agent.files.open.remove(&handle);
    Ok(Value::empty_dict())
}

pub fn read(agent: &mut Agent, handle: i64, count: Option<i64>) -> Result<Value, AgentError> {
    let h = agent.files.find(handle)?;
    let count = match count {
        None => DEFAULT_READ_COUNT,
        Some(c) if (0..=MAX_READ_COUNT).contains(&c) => c,
        Some(c) => return Err(AgentError::InvalidValue { value: c, argument: "count" }),
    } as usize;
    // read_to_end reads into the vector's spare capacity (nothing is zeroed first) until
    // `count` bytes or the end of the file; fewer than asked means the end was reached.
    let mut buf = Vec::with_capacity(count);
    if let Err(e) = Read::by_ref(&mut h.file).take(count as u64).read_to_end(&mut buf) {
        crate::slog!("guest-file-read failed, handle: {handle}");
        return Err(io_error("failed to read file", &e));
    }
    // 7.2 reports feof() right after its fread and then calls clearerr(): `eof` says whether
    // this read hit the end, never an earlier one (a count of 0 reads nothing: false).
    let hit_eof = buf.len() < count;
    Ok(Dict::new()
        .with("count", Value::Int(buf.len() as i64))
        .with("buf-b64", Value::Base64(buf))
        .with("eof", Value::Bool(hit_eof))
        .into())
}

pub fn write(agent: &mut Agent, handle: i64, buf_b64: &[u8], count: Option<i64>) -> Result<Value, AgentError> {
    let h = agent.files.find(handle)?;
    let data = decode_base64(buf_b64)?;
    let count = match count {
        None => data.len(),
        Some(c) if c >= 0 && c as u64 <= data.len() as u64 => c as usize,
        Some(c) => return Err(AgentError::InvalidValue { value: c, argument: "count" }),
    };
    let mut done = 0;
    while done < count {
        match h.file.write(&data[done..count]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                crate::slog!("guest-file-write failed, handle: {handle}");
                return Err(io_error("failed to write to file", &e));
            }
        }
    }
    // fwrite never sets the end-of-file indicator and 7.2 clears it after every read: false.
    Ok(Dict::new().with("count", Value::Int(done as i64)).with("eof", Value::Bool(false)).into())
}

pub fn seek(agent: &mut Agent, handle: i64, offset: i64, whence: Whence) -> Result<Value, AgentError> {
    let h = agent.files.find(handle)?;
    let pos = match whence {
        Whence::Set | Whence::Code(0) => SeekFrom::Start(offset as u64),
        Whence::Cur | Whence::Code(1) => SeekFrom::Current(offset),
        Whence::End | Whence::Code(2) => SeekFrom::End(offset),
        Whence::Code(other) => return Err(AgentError::command(format!("invalid whence code {other}"))),
    };
    // A negative SEEK_SET offset reaches lseek as the same negative off_t: EINVAL, as fseek.
    match h.file.seek(pos) {
        Ok(position) => {
            Ok(Dict::new().with("position", Value::Int(position as i64)).with("eof", Value::Bool(false)).into())
        }
        Err(e) => Err(io_error("failed to seek file", &e)),
    }
}

pub fn flush(agent: &mut Agent, handle: i64) -> Result<Value, AgentError> {
    agent.files.find(handle)?;
    // Writes go straight to the file: there is no user-space buffer to flush.
    Ok(Value::empty_dict())
}

fn io_error(what: &str, e: &std::io::Error) -> AgentError {
    AgentError::os(what, Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// 7.2's base64 decoding: the text may hold only the base64 alphabet and '=' (anywhere);
/// then glib's lenient decoder runs: groups of four, '=' counts as a zero digit that also
/// suppresses output bytes, and a trailing partial group is dropped.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, AgentError> {
    // Canonical base64 (what every client sends) decodes the same either way; the strict
    // decoder is several times faster, and anything it refuses takes the exact path.
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(bytes) => Ok(bytes),
        Err(_) => decode_base64_like_glib(text),
    }
}

/// glib's decoding as qemu-ga 7.2 applies it after its validity check: `=` counts as zero
/// bits, a group of four ending in `=` or `==` yields fewer bytes, and a trailing partial
/// group is dropped.
fn decode_base64_like_glib(text: &[u8]) -> Result<Vec<u8>, AgentError> {
    fn rank(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut v, mut n) = (0u32, 0);
    let mut last = [0u8; 2];
    for &c in text {
        let r = rank(c).ok_or_else(|| AgentError::command("Base64 data contains invalid characters"))?;
        last = [c, last[0]];
        v = (v << 6) | r;
        n += 1;
        if n == 4 {
            out.push((v >> 16) as u8);
            if last[1] != b'=' {
                out.push((v >> 8) as u8);
            }
            if last[0] != b'=' {
                out.push(v as u8);
            }
            n = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_base64_path_agrees_with_the_exact_one_wherever_it_accepts() {
        // Every canonical encoding of lengths 0..64, plus inputs only the exact path takes.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..64usize {
            let bytes = crate::test_support::pseudo_random_bytes(&mut state, len);
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            assert_eq!(decode_base64(text.as_bytes()).unwrap(), bytes);
            assert_eq!(decode_base64_like_glib(text.as_bytes()).unwrap(), bytes);
        }
        for odd in [&b"Zg"[..], b"Zh==", b"Zm9vYg", b"Z===", b"Zm=v", b"YQ==YQ=="] {
            let exact = decode_base64_like_glib(odd).unwrap();
            assert_eq!(decode_base64(odd).unwrap(), exact, "{}", String::from_utf8_lossy(odd));
        }
        assert!(decode_base64(b"Zm9v!").is_err());
    }

    #[test]
    fn the_counter_is_read_from_the_global_group() {
        assert_eq!(parse_counter("[global]\nfd_counter=1070\n"), Some(1070));
        assert_eq!(parse_counter("[other]\nfd_counter=5\n[global]\nfd_counter = 7\n"), Some(7));
        assert_eq!(parse_counter(""), None);
    }

    #[test]
    fn base64_decodes_like_glib_after_the_alphabet_check() {
        assert_eq!(decode_base64(b"aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert_eq!(decode_base64(b"aGVsbG8").unwrap(), b"hel"); // partial group dropped
        assert!(decode_base64(b"aGVs bG8=").is_err());
        assert!(decode_base64(b"!!!!").is_err());
    }
}
