//! guest-get-cpustats (/proc/stat) and guest-get-diskstats (/proc/diskstats), read from the
//! front's own procfs instance: both files are system-wide counters, the same in every procfs
//! instance, so the front needs no other view of the guest. Lines are parsed exactly as 7.2's
//! `sscanf` formats read them (see [`Fields`]), which decides which members each entry has.

use super::held_file::{pread_whole, TextEnd};
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use nix::errno::Errno;

const PROC_STAT: &str = "/proc/stat";
const PROC_DISKSTATS: &str = "/proc/diskstats";

/// A procfs counter file, opened on its first request and then held: each request reads it
/// again from offset 0 with `pread` into a buffer kept between requests (one or two system
/// calls instead of open, statx, a read per doubling of a buffer that starts at 32 bytes, and
/// close: ten for /proc/stat). Freshness is kept by procfs itself: a read at offset 0 makes the
/// kernel generate the file's text again, so every answer holds the counters of that moment, as
/// a new open would. The front is single-threaded: one holder per file per thread.
struct Held {
    path: &'static str,
    end: TextEnd,
    file: Option<std::fs::File>,
    buf: Vec<u8>,
}

/// The first read's size: /proc/stat is about 1.5 KiB per CPU, /proc/diskstats 100-odd bytes
/// per block device; the buffer grows (and stays grown) for larger files.
const FIRST_READ: usize = 16 * 1024;

impl Held {
    const fn new(path: &'static str, end: TextEnd) -> Held {
        Held { path, end, file: None, buf: Vec::new() }
    }

    /// The file's whole text now, or 7.2's `open("PATH"): <strerror>`.
    fn read(&mut self) -> Result<&[u8], AgentError> {
        let path = self.path;
        let failed = |e: std::io::Error| {
            AgentError::os(format!("open(\"{path}\")"), Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)))
        };
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(std::fs::File::open(path).map_err(failed)?),
        };
        if self.buf.len() < FIRST_READ {
            self.buf.resize(FIRST_READ, 0);
        }
        match pread_whole(file, &mut self.buf, self.end) {
            Ok(total) => Ok(&self.buf[..total]),
            Err(e) => {
                // Opened again on the next request rather than trusted after a failure.
                self.file = None;
                Err(failed(e))
            }
        }
    }
}

thread_local! {
    static STAT: std::cell::RefCell<Held> = const { std::cell::RefCell::new(Held::new(PROC_STAT, TextEnd::FirstShortRead)) };
    static DISKSTATS: std::cell::RefCell<Held> = const { std::cell::RefCell::new(Held::new(PROC_DISKSTATS, TextEnd::EmptyRead)) };
}

/// One line read the way glibc's `sscanf` reads `%s`, `%lu` and `%u`: blanks skipped before
/// each field, a number is an optional sign and decimal digits (saturating at the maximum, a
/// minus sign wrapping as `strtoul` does), and the scan stops at the first field that fails.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(line: &'a [u8]) -> Fields<'a> {
        Fields { rest: line }
    }

    fn skip_blanks(&mut self) {
        let n = self.rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        self.rest = &self.rest[n..];
    }

    /// `%s`: None at the end of the line.
    fn word(&mut self) -> Option<&'a [u8]> {
        self.skip_blanks();
        let n = self.rest.iter().take_while(|b| !b.is_ascii_whitespace()).count();
        let (word, rest) = self.rest.split_at(n);
        self.rest = rest;
        (n > 0).then_some(word)
    }

    /// `%lu`: None when no digits follow (the scan ends there).
    fn ulong(&mut self) -> Option<u64> {
        self.skip_blanks();
        let (negative, start) = match self.rest.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };
        let digits = self.rest[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let text = &self.rest[start..start + digits];
        self.rest = &self.rest[start + digits..];
        let value = text.iter().try_fold(0u64, |v, d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')));
        Some(match value {
            None => u64::MAX,
            Some(v) if negative => v.wrapping_neg(),
            Some(v) => v,
        })
    }

    /// `%u`: the `%lu` value truncated to 32 bits, as glibc stores it in an `unsigned int`.
    fn uint(&mut self) -> Option<u64> {
        self.ulong().map(|v| u64::from(v as u32))
    }
}

/// The lines of `text`, found a word at a time: most of /proc/stat is its long "intr" line,
/// which cpustats only steps over.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_newline(current) {
            Some(end) => {
                rest = Some(&current[end + 1..]);
                Some(&current[..end])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The index of the first newline in `s`.
fn find_newline(s: &[u8]) -> Option<usize> {
    let mut words = s.chunks_exact(8);
    let mut start = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        if crate::json::swar::has_byte(word, b'\n') {
            break;
        }
        start += 8;
    }
    s[start..].iter().position(|&b| b == b'\n').map(|i| start + i)
}

/// `atoi`: optional sign and leading digits, 0 without any.
fn atoi(text: &[u8]) -> i32 {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let v = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i32, |v, d| v.wrapping_mul(10).wrapping_add((d - b'0') as i32));
    if negative {
        v.wrapping_neg()
    } else {
        v
    }
}

pub fn get_cpustats() -> Result<Value, AgentError> {
    let clk_tck = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    };
    STAT.with_borrow_mut(|held| Ok(Value::List(cpustats(held.read()?, clk_tck))))
}

/// The per-processor lines ("cpuN ..."; the "cpu" total is left out) in file order, each
/// counter converted from clock ticks to milliseconds with 7.2's unsigned arithmetic.
fn cpustats(text: &[u8], clk_tck: u64) -> Vec<Value> {
    const NAMES: [&str; 10] =
        ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guestnice"];
    let mut list = Vec::new();
    for line in lines(text) {
        let mut f = Fields::new(line);
        let Some(name) = f.word() else { continue };
        // 7.2 scans every line's numbers but looks at them only for "cpuN" lines: skipping
        // the others first (the long "intr" line among them) changes nothing it answers.
        if !name.starts_with(b"cpu") || name.len() == 3 {
            continue;
        }
        let mut numbers = [0u64; NAMES.len()];
        let mut scanned = 0;
        while scanned < NAMES.len() {
            let Some(n) = f.ulong() else { break };
            numbers[scanned] = n;
            scanned += 1;
        }
        // sscanf's count: the name and the numbers.
        let count = 1 + scanned;
        if count < 5 {
            crate::slog!("Parsing cpu stat from {PROC_STAT} failed, see \"man proc\"");
            break;
        }
        let ms = |i: usize| Value::UInt(numbers[i].wrapping_mul(1000) / clk_tck);
        let mut d = Dict::with_capacity(2 + NAMES.len());
        d.insert_name("type", Value::str("linux"));
        d.insert_name("cpu", Value::Int(i64::from(atoi(&name[3..]))));
        for (i, member) in NAMES.iter().enumerate().take(4) {
            d.insert_name(member, ms(i));
        }
        // Which optional members 7.2 sets for a given count (irq and softirq come together).
        let optional: [(usize, bool); 6] =
            [(4, count > 5), (5, count > 6), (6, count > 6), (7, count > 8), (8, count > 9), (9, count > 10)];
        for (i, present) in optional {
            if present {
                d.insert_name(NAMES[i], ms(i));
            }
        }
        list.push(d.into());
    }
    list
}

pub fn get_diskstats() -> Result<Value, AgentError> {
    DISKSTATS.with_borrow_mut(|held| Ok(Value::List(diskstats(held.read()?))))
}

/// One entry per line with at least the 2.4 kernels' partition format (major, minor, name
/// and four counters); the members present follow how many fields the line has, as in 7.2.
fn diskstats(text: &[u8]) -> Vec<Value> {
    let mut list = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        let mut f = Fields::new(line);
        let (Some(major), Some(minor), Some(name)) = (f.uint(), f.uint(), f.word()) else { continue };
        // The 17 counters of 7.2's format: %lu or %u each.
        let wide = [
            true, true, true, true, true, true, true, false, false, false, false, true, true, true, false, true, false,
        ];
        let mut n: Vec<u64> = Vec::with_capacity(wide.len());
        for is_wide in wide {
            match if is_wide { f.ulong() } else { f.uint() } {
                Some(v) => n.push(v),
                None => break,
            }
        }
        let count = 3 + n.len();
        if count < 7 {
            continue;
        }
        let mut stats = Dict::new();
        let mut set = |member: &'static str, i: usize| stats.insert_name(member, Value::UInt(n[i]));
        if count == 7 {
            set("read-ios", 0);
            set("read-sectors", 1);
            set("write-ios", 2);
            set("write-sectors", 3);
        }
        if count >= 14 {
            for (member, i) in [
                ("read-ios", 0),
                ("read-sectors", 2),
                ("read-merges", 1),
                ("read-ticks", 3),
                ("write-ios", 4),
                ("write-sectors", 6),
                ("write-merges", 5),
                ("write-ticks", 7),
                ("ios-pgr", 8),
                ("total-ticks", 9),
                ("weight-ticks", 10),
            ] {
                set(member, i);
            }
        }
        if count >= 18 {
            for (member, i) in
                [("discard-ios", 11), ("discard-merges", 12), ("discard-sectors", 13), ("discard-ticks", 14)]
            {
                set(member, i);
            }
        }
        if count >= 20 {
            set("flush-ios", 15);
            set("flush-ticks", 16);
        }
        list.push(
            Dict::new()
                .with("name", Value::str(name))
                .with("major", Value::UInt(major))
                .with("minor", Value::UInt(minor))
                .with("stats", stats.into())
                .into(),
        );
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_file_is_read_again_from_the_start_and_shows_its_current_text() {
        use std::os::unix::fs::FileExt;
        // Both ways of finding the end, on a regular file (which reads short only at its end,
        // as both procfs kinds of text do at theirs).
        for (name, end) in [("empty-read", TextEnd::EmptyRead), ("first-short-read", TextEnd::FirstShortRead)] {
            let dir = std::env::temp_dir().join(format!("qga-held-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path: &'static str = Box::leak(dir.join("counters").to_string_lossy().into_owned().into_boxed_str());
            std::fs::write(path, b"cpu0 1 2 3 4\n").unwrap();
            let mut held = Held::new(path, end);
            assert_eq!(held.read().unwrap(), b"cpu0 1 2 3 4\n", "{name}");
            // Rewritten in place (the held descriptor's inode) and grown past the first read,
            // then to exactly the grown buffer's size (a full read is not the end).
            let long = vec![b'7'; FIRST_READ * 3 + 5];
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.write_all_at(&long, 0).unwrap();
            assert_eq!(held.read().unwrap(), &long[..], "{name}");
            let exact = vec![b'8'; held.buf.len()];
            file.write_all_at(&exact, 0).unwrap();
            assert_eq!(held.read().unwrap(), &exact[..], "{name}");
            // Shrunk: the shorter text, not the old tail.
            file.set_len(3).unwrap();
            assert_eq!(held.read().unwrap(), b"888", "{name}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn lines_are_split_at_every_newline_wherever_it_falls_in_a_word() {
        for text in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"\n\nb",
            b"cpu0 1 2\nintr 0 0 0 0 0 0 0 0 0 0 0\n\nctxt 5",
            b"0123456\n89abcdef\n",
        ] {
            let expected: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            assert_eq!(lines(text).collect::<Vec<_>>(), expected, "{}", String::from_utf8_lossy(text));
        }
        let long: Vec<u8> =
            (0..200).flat_map(|i| if i % 37 == 36 { vec![b'\n'] } else { vec![b'0' + (i % 10) as u8] }).collect();
        assert_eq!(lines(&long).collect::<Vec<_>>(), long.split(|b| *b == b'\n').collect::<Vec<_>>());
    }

    #[test]
    fn proc_stat_is_read_whole_by_the_first_short_read() {
        // The same text as reading on until the end, cpu lines for every cpu.
        let mut one = Held::new(PROC_STAT, TextEnd::FirstShortRead);
        let text = String::from_utf8(one.read().unwrap().to_vec()).unwrap();
        assert!(text.ends_with('\n') && text.contains("\nintr ") && text.contains("\nprocs_running "), "{text}");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(text.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count() >= cpus, "{text}");
    }

    #[test]
    fn proc_stat_read_twice_through_the_held_descriptor_moves_on() {
        // The kernel generates the text again for a read at offset 0: the counters advance.
        let mut held = Held::new(PROC_STAT, TextEnd::FirstShortRead);
        let first = cpustats(held.read().unwrap(), 100);
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let second = cpustats(held.read().unwrap(), 100);
        assert_eq!(first.len(), second.len());
        let busy = |l: &[Value]| -> u64 {
            l.iter()
                .map(|v| match (get(v, "user"), get(v, "system")) {
                    (Value::UInt(u), Value::UInt(s)) => u + s,
                    _ => 0,
                })
                .sum()
        };
        assert!(busy(&second) > busy(&first), "the second read shows the same counters: not fresh");
        // A held file that cannot be opened is 7.2's open error, and opened again next time.
        let mut missing = Held::new("/proc/no-such-counters", TextEnd::FirstShortRead);
        assert_eq!(missing.read().unwrap_err().desc(), b"open(\"/proc/no-such-counters\"): No such file or directory");
    }

    fn members(v: &Value) -> Vec<String> {
        let Value::Dict(d) = v else { panic!("not an object") };
        d.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect()
    }

    fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
        let Value::Dict(d) = v else { panic!("not an object") };
        d.get(key).unwrap_or_else(|| panic!("no {key}"))
    }

    const STAT: &[u8] = b"cpu  10 20 30 40 50 60 70 80 90 100\n\
cpu0 1 2 3 4 5 6 7 8 9 10\n\
cpu1 100 0 0 7\n\
intr 1 2 3\n\
ctxt 99\n";

    #[test]
    fn the_total_line_is_left_out_and_ticks_become_milliseconds() {
        let l = cpustats(STAT, 100);
        assert_eq!(l.len(), 2);
        assert_eq!(get(&l[0], "cpu"), &Value::Int(0));
        assert_eq!(get(&l[0], "user"), &Value::UInt(10));
        assert_eq!(get(&l[0], "guestnice"), &Value::UInt(100));
        assert_eq!(get(&l[1], "user"), &Value::UInt(1000));
        assert_eq!(get(&l[1], "type"), &Value::str("linux"));
    }

    #[test]
    fn an_old_kernels_four_counters_give_only_the_required_members() {
        let l = cpustats(STAT, 100);
        assert_eq!(members(&l[1]), ["type", "cpu", "user", "nice", "system", "idle"]);
        assert_eq!(members(&l[0]).len(), 12);
    }

    #[test]
    fn a_cpu_line_with_too_few_counters_ends_the_list() {
        let l = cpustats(b"cpu0 1 2 3 4\ncpu1 1 2\ncpu2 1 2 3 4\n", 100);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn counters_use_unsigned_wrapping_arithmetic() {
        let l = cpustats(b"cpu3 18446744073709551615 0 0 0\n", 100);
        assert_eq!(get(&l[0], "user"), &Value::UInt(u64::MAX.wrapping_mul(1000) / 100));
        assert_eq!(get(&l[0], "cpu"), &Value::Int(3));
    }

    #[test]
    fn numbers_parse_like_strtoul() {
        let mut f = Fields::new(b"  12 -1 +3 99999999999999999999999 x");
        assert_eq!(f.ulong(), Some(12));
        assert_eq!(f.ulong(), Some(u64::MAX));
        assert_eq!(f.ulong(), Some(3));
        assert_eq!(f.ulong(), Some(u64::MAX));
        assert_eq!(f.ulong(), None);
        assert_eq!(Fields::new(b"4294967297").uint(), Some(1));
        assert_eq!(atoi(b"12abc"), 12);
        assert_eq!(atoi(b"x"), 0);
    }

    #[test]
    fn a_modern_diskstats_line_has_every_member() {
        let l = diskstats(b" 254       0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n");
        assert_eq!(l.len(), 1);
        assert_eq!(get(&l[0], "name"), &Value::str("vda"));
        assert_eq!(get(&l[0], "major"), &Value::UInt(254));
        let s = get(&l[0], "stats");
        assert_eq!(members(s).len(), 17);
        assert_eq!(get(s, "read-merges"), &Value::UInt(2));
        assert_eq!(get(s, "read-sectors"), &Value::UInt(3));
        assert_eq!(get(s, "weight-ticks"), &Value::UInt(11));
        assert_eq!(get(s, "flush-ticks"), &Value::UInt(17));
    }

    #[test]
    fn diskstats_members_follow_the_field_count() {
        let text = b"3 1 hda1 10 20 30 40\n8 0 sda 1 2 3 4 5\n8 16 sdb 1 2 3 4 5 6 7 8 9 10 11\n\
8 1 sda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n8 2 sda2 1\n\n";
        let l = diskstats(text);
        assert_eq!(l.len(), 4);
        let old = get(&l[0], "stats");
        assert_eq!(members(old), ["read-ios", "read-sectors", "write-ios", "write-sectors"]);
        assert_eq!(get(old, "read-sectors"), &Value::UInt(20));
        // Between the two forms: an entry with no counters at all, as 7.2.
        assert!(members(get(&l[1], "stats")).is_empty());
        assert_eq!(members(get(&l[2], "stats")).len(), 11);
        // 14 counters: the discard group comes only with all four of its counters.
        assert_eq!(members(get(&l[3], "stats")).len(), 11);
    }
}
