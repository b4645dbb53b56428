//! guest-get-memory-blocks and guest-get-memory-block-info (front, from sysfs: the front's view
//! holds a read-only sysfs of its own, as for guest-get-vcpus) and guest-set-memory-blocks
//! (helper). The reads follow qemu-ga 7.2 step by step, error texts included: the directory
//! listing in the kernel's order, a block without `state` counted online and not offlinable,
//! `removable` deciding `can-offline`.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::args::MemoryBlock;
use crate::qmp::AgentError;
use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use nix::sys::uio::pread;
use qga_policy::Command;
use qga_protocol::{ask, MAX_MEMORY_BLOCKS};
use std::os::fd::OwnedFd;

/// With 7.2's trailing slash: its error texts show it.
const MEMORY_DIR: &str = "/sys/devices/system/memory/";

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// Why reading one sysfs file failed, in 7.2's words (`ga_read_sysfs_file`).
enum ReadError {
    Open(Errno),
    Read(Errno),
    Eof,
}

impl ReadError {
    /// The errno 7.2 looks at afterwards (0 after an empty read).
    fn errno(&self) -> Errno {
        match self {
            ReadError::Open(e) | ReadError::Read(e) => *e,
            ReadError::Eof => Errno::from_raw(0),
        }
    }

    fn into_agent_error(self, file: &str) -> AgentError {
        match self {
            ReadError::Open(e) => AgentError::os(format!("open sysfs file \"{file}\""), e),
            ReadError::Read(e) => AgentError::os(format!("pread sysfs file \"{file}\""), e),
            ReadError::Eof => AgentError::command(format!("pread sysfs file \"{file}\": unexpected EOF")),
        }
    }
}

/// Reads at most `max` bytes of `file` under `dirfd`, as 7.2 does (one pread at offset 0).
fn read_sysfs(dirfd: &OwnedFd, file: &str, max: usize) -> Result<Vec<u8>, ReadError> {
    let fd = openat(dirfd, file, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(ReadError::Open)?;
    let mut buf = vec![0u8; max];
    match pread(&fd, &mut buf, 0) {
        Err(e) => Err(ReadError::Read(e)),
        Ok(0) => Err(ReadError::Eof),
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
    }
}

/// `strtoul(name + 6, NULL, 10)` for a `memoryN` entry: the leading digits, saturating.
fn phys_index(suffix: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for d in suffix.iter().take_while(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
    }
    n
}

/// `strtol(buf, NULL, 16)`: blanks, a sign, an optional 0x, hex digits, saturating at the
/// long range; no digits is 0.
fn strtol_hex(buf: &[u8]) -> i64 {
    let mut s = buf;
    while let [c, rest @ ..] = s {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            s = rest;
        } else {
            break;
        }
    }
    let negative = s.first() == Some(&b'-');
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    if s.len() > 2 && s[0] == b'0' && matches!(s[1], b'x' | b'X') && s[2].is_ascii_hexdigit() {
        s = &s[2..];
    }
    let mut n: i128 = 0;
    for c in s.iter().take_while(|c| c.is_ascii_hexdigit()) {
        let d = (*c as char).to_digit(16).unwrap_or(0);
        n = (n * 16 + i128::from(d)).min(i128::from(i64::MAX) + 1);
    }
    if negative {
        i64::try_from(-n).unwrap_or(i64::MIN)
    } else {
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// One block's `online` and `can-offline`, as 7.2's `transfer_memory_block` reads them.
fn read_block(index: u64) -> Result<(bool, bool), AgentError> {
    let dir = format!("{MEMORY_DIR}memory{}/", index as i64);
    let dirfd =
        open(dir.as_str(), dir_flags(), Mode::empty()).map_err(|e| AgentError::os(format!("open(\"{dir}\")"), e))?;
    let state = match read_sysfs(&dirfd, "state", 10) {
        Ok(s) => s,
        // Kernels without the file cannot offline memory: the block is online.
        Err(e) if e.errno() == Errno::ENOENT => return Ok((true, false)),
        Err(e) => return Err(e.into_agent_error("state")),
    };
    let online = state.starts_with(b"online");
    let can_offline = match read_sysfs(&dirfd, "removable", 1) {
        Ok(r) => r[0] != b'0',
        Err(e) if e.errno() == Errno::ENOENT => false,
        Err(e) => return Err(e.into_agent_error("removable")),
    };
    Ok((online, can_offline))
}

/// Every block in directory order (7.2 does not sort); no memory directory is an empty list.
pub fn get_blocks() -> Result<Value, AgentError> {
    let entries = match std::fs::read_dir(MEMORY_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::List(vec![])),
        Err(e) => return Err(AgentError::os(format!("Can't open directory\"{MEMORY_DIR}\""), errno_of(&e))),
    };
    let mut list = Vec::new();
    for entry in entries.flatten() {
        use std::os::unix::ffi::OsStrExt;
        let name = entry.file_name();
        let Some(suffix) = name.as_bytes().strip_prefix(b"memory") else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let index = phys_index(suffix);
        let (online, can_offline) = read_block(index)?;
        list.push(
            Dict::new()
                .with("phys-index", Value::UInt(index))
                .with("online", Value::Bool(online))
                .with("can-offline", Value::Bool(can_offline))
                .into(),
        );
    }
    if list.is_empty() {
        return Err(AgentError::command("guest reported zero memory blocks!"));
    }
    Ok(Value::List(list))
}

/// The block size, from `block_size_bytes` (hexadecimal, in bytes).
pub fn get_block_info() -> Result<Value, AgentError> {
    let dirfd = open(MEMORY_DIR, dir_flags(), Mode::empty())
        .map_err(|e| AgentError::os(format!("open(\"{MEMORY_DIR}\")"), e))?;
    let text = read_sysfs(&dirfd, "block_size_bytes", 20).map_err(|e| e.into_agent_error("block_size_bytes"))?;
    Ok(Dict::new().with("size", Value::UInt(strtol_hex(&text) as u64)).into())
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

pub fn set_blocks(agent: &mut Agent, blocks: Vec<MemoryBlock>) -> Result<Value, AgentError> {
    // The helper's own bound: a longer list would be a malformed request to it, and it would
    // exit (taking the agent with it) instead of answering.
    if blocks.len() > MAX_MEMORY_BLOCKS {
        return Err(AgentError::command(format!(
            "guest-set-memory-blocks takes at most {MAX_MEMORY_BLOCKS} memory blocks; {} were given",
            blocks.len()
        )));
    }
    crate::slog!("guest-set-memory-blocks called");
    // The front checks first, as for guest-set-vcpus: a refused request is answered here and
    // never reaches the helper (which checks again on what it would change).
    let ids: Vec<u64> = blocks.iter().map(|b| b.phys_index).collect();
    agent.permit(Command::SetMemoryBlocks, &qga_policy::Invocation::SetMemoryBlocks { blocks: &ids })?;
    let results = agent.helper.ask(ask::set_memory_blocks(blocks))?;
    Ok(Value::List(
        results
            .into_iter()
            .map(|r| {
                let d = Dict::new()
                    .with("phys-index", Value::UInt(r.phys_index))
                    .with("response", Value::str(r.response.name()));
                match r.error_code {
                    Some(code) => d.with("error-code", Value::Int(code)),
                    None => d,
                }
                .into()
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_the_leading_digits_like_strtoul() {
        assert_eq!(phys_index(b"0"), 0);
        assert_eq!(phys_index(b"187"), 187);
        assert_eq!(phys_index(b"_tiers"), 0);
        assert_eq!(phys_index(b"12x"), 12);
        assert_eq!(phys_index(b"99999999999999999999999"), u64::MAX);
    }

    #[test]
    fn block_size_is_read_like_strtol_base_16() {
        assert_eq!(strtol_hex(b"8000000\n"), 0x800_0000);
        assert_eq!(strtol_hex(b"0x80000000"), 0x8000_0000);
        assert_eq!(strtol_hex(b"  +10"), 16);
        assert_eq!(strtol_hex(b"-1"), -1);
        assert_eq!(strtol_hex(b"0xg"), 0);
        assert_eq!(strtol_hex(b"zz"), 0);
        assert_eq!(strtol_hex(b"fffffffffffffffffff"), i64::MAX);
        assert_eq!(strtol_hex(b"-fffffffffffffffffff"), i64::MIN);
    }

    #[test]
    fn block_info_reads_the_real_sysfs_as_72_does() {
        // Where the machine has the directory, the answer is its block size; where not, 7.2's
        // error. Either way the text of the file decides, read here independently.
        match std::fs::read_to_string("/sys/devices/system/memory/block_size_bytes") {
            Ok(t) => {
                let expected = u64::from_str_radix(t.trim(), 16).unwrap();
                let v = get_block_info().unwrap();
                assert_eq!(v, Dict::new().with("size", Value::UInt(expected)).into());
            }
            Err(_) => assert!(get_block_info().is_err()),
        }
    }
}
