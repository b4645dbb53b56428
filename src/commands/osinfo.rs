//! guest-get-osinfo: the kernel's uname fields and the os-release fields 7.2 reports, read
//! from /etc/os-release, else /usr/lib/os-release (bound read-only into the front's empty
//! view), parsed as 7.2 does: the file as a GKeyFile group, each value through 7.2's quote
//! handling ([`replace_special`]). 7.2's `QGA_OS_RELEASE` (a file to read instead, QEMU's own
//! tests use it) is taken from the environment at start-up, before the front drops it.

use super::held_file::HeldFile;
use crate::cli::keyfile::KeyFile;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// `QGA_OS_RELEASE` as found at start-up (resolved to an absolute path where it exists, so the
/// same path can be bound into the empty view and read there).
static OVERRIDE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records `QGA_OS_RELEASE`; called once at start-up while the environment is still there.
pub fn take_override_from_environment() {
    let value = std::env::var_os("QGA_OS_RELEASE").map(|p| std::fs::canonicalize(&p).unwrap_or_else(|_| p.into()));
    let _ = OVERRIDE.set(value);
}

/// The files guest-get-osinfo reads, in order: the override alone, else the two standard ones.
pub fn os_release_paths() -> Vec<PathBuf> {
    match OVERRIDE.get() {
        Some(Some(p)) => vec![p.clone()],
        _ => OS_RELEASE.iter().map(PathBuf::from).collect(),
    }
}

/// The os-release keys 7.2 reports, with their member names.
const FIELDS: [(&str, &str); 7] = [
    ("id", "ID"),
    ("name", "NAME"),
    ("pretty-name", "PRETTY_NAME"),
    ("version", "VERSION"),
    ("version-id", "VERSION_ID"),
    ("variant", "VARIANT"),
    ("variant-id", "VARIANT_ID"),
];

pub fn get_osinfo() -> Result<Value, AgentError> {
    let [version, release, machine] = KERNEL.with(|k| match k.get() {
        Some(fields) => Ok(fields.clone()),
        None => kernel_fields().map(|fields| k.get_or_init(|| fields).clone()),
    })?;
    let mut info = Dict::new()
        .with("kernel-version", Value::Str(version))
        .with("kernel-release", Value::Str(release))
        .with("machine", Value::Str(machine));
    let fields = STANDARD.with_borrow_mut(|standard| standard.get_or_insert_with(Standard::for_this_agent).fields());
    for (member, value) in fields.unwrap_or_default() {
        info = info.with(member, Value::str(value));
    }
    Ok(info.into())
}

thread_local! {
    /// The kernel's version, release and machine: asked once, as none of them can change
    /// while the kernel runs (unlike the node name, which guest-get-host-name asks for).
    static KERNEL: std::cell::OnceCell<[Vec<u8>; 3]> = const { std::cell::OnceCell::new() };
}

fn kernel_fields() -> Result<[Vec<u8>; 3], AgentError> {
    let uts = nix::sys::utsname::uname().map_err(|e| AgentError::os("uname failed", e))?;
    Ok([uts.version(), uts.release(), uts.machine()].map(|f| f.as_bytes().to_vec()))
}

/// The members 7.2 reports from one os-release file's content, in [`FIELDS`] order.
type Fields = Vec<(&'static str, Vec<u8>)>;

fn fields_of(keys: &KeyFile) -> Fields {
    FIELDS
        .iter()
        .filter_map(|&(member, key)| Some((member, replace_special(keys.get_value("os-release", key)?))))
        .collect()
}

/// The files read, held open between requests (see `held_file`: each request still answers
/// the content the path names now, from memory while the watch says it is unchanged), with
/// the members of the last content parsed: a request whose file holds the same bytes reuses
/// them instead of parsing them again.
struct Standard {
    paths: Vec<&'static str>,
    files: Vec<HeldFile>,
    last: Option<(usize, Vec<u8>, Fields)>,
    /// An override whose path is not UTF-8, which a held file cannot name: read plainly.
    unheld: Option<PathBuf>,
}

thread_local! {
    static STANDARD: std::cell::RefCell<Option<Standard>> = const { std::cell::RefCell::new(None) };
}

impl Standard {
    fn new(paths: Vec<&'static str>) -> Standard {
        Standard { files: paths.iter().map(|p| HeldFile::new(p)).collect(), paths, last: None, unheld: None }
    }

    /// The two standard files, or the override alone (its path kept for the process's life:
    /// it is made once).
    fn for_this_agent() -> Standard {
        let mut paths = Vec::new();
        let mut unheld = None;
        for path in os_release_paths() {
            match path.into_os_string().into_string() {
                Ok(p) => paths.push(&*Box::leak(p.into_boxed_str())),
                Err(p) => unheld = Some(PathBuf::from(p)),
            }
        }
        Standard { unheld, ..Standard::new(paths) }
    }

    /// The first of the files that reads and parses, as 7.2 tries them.
    fn fields(&mut self) -> Option<Fields> {
        if let Some(path) = &self.unheld {
            return fields_of_file(path);
        }
        for (i, file) in self.files.iter_mut().enumerate() {
            let Some(content) = file.read() else {
                // Not readable now: read it the plain way for 7.2's log line (or its content,
                // should it have appeared in between).
                match fields_of_file(Path::new(self.paths[i])) {
                    Some(f) => return Some(f),
                    None => continue,
                }
            };
            if let Some((at, bytes, fields)) = &self.last {
                if *at == i && bytes.as_slice() == content {
                    return Some(fields.clone());
                }
            }
            // Not a valid file: logged on every request, as 7.2 does; nothing kept.
            let Some(keys) = parse_content(self.paths[i], content) else { continue };
            let fields = fields_of(&keys);
            self.last = Some((i, content.to_vec(), fields.clone()));
            return Some(fields);
        }
        None
    }
}

/// One os-release file as 7.2 reads it: whole, UTF-8, and a valid key file once a group line
/// is put before it; otherwise logged and skipped.
fn fields_of_file(path: &Path) -> Option<Fields> {
    let shown = path.display().to_string();
    let content = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) => {
            crate::slog!("failed to read '{shown}', error: {}", failed_to_open(&shown, &e));
            return None;
        }
    };
    parse_content(&shown, &content).map(|keys| fields_of(&keys))
}

fn parse_content(path: &str, content: &[u8]) -> Option<KeyFile> {
    if std::str::from_utf8(content).is_err() {
        crate::slog!("file is not utf-8 encoded: {path}");
        return None;
    }
    let data = [b"[os-release]\n".as_slice(), content].concat();
    match KeyFile::parse(&data) {
        Ok(k) => Some(k),
        Err(e) => {
            crate::slog!("failed to parse file '{path}', error: {e}");
            None
        }
    }
}

/// GLib's `g_file_get_contents` message.
fn failed_to_open(path: &str, e: &std::io::Error) -> String {
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    format!("Failed to open file \u{201c}{path}\u{201d}: {}", crate::qmp::error::strerror(errno))
}

/// 7.2's `ga_osrelease_replace_special`, quirks included: a value not starting with a double
/// quote is cut at its first blank, then at its first semicolon (a single-quoted value too,
/// quotes kept); a double-quoted one loses its quotes and the backslash before `$ ' " \ ``.
/// Without a closing quote, 7.2's in-place copy leaves the rest of the original bytes after
/// the unescaped text.
fn replace_special(value: &[u8]) -> Vec<u8> {
    if value.first() != Some(&b'"') {
        let mut v = value;
        if let Some(i) = v.iter().position(|&b| b == b' ') {
            v = &v[..i];
        }
        if let Some(i) = v.iter().position(|&b| b == b';') {
            v = &v[..i];
        }
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(value.len());
    let mut p = 1;
    while p < value.len() {
        if value[p] == b'\\' {
            // A backslash before another character is kept as it is.
            if let Some(b'$' | b'\'' | b'"' | b'\\' | b'`') = value.get(p + 1) {
                p += 1;
            }
        } else if value[p] == b'"' {
            return out;
        }
        out.push(value[p]);
        p += 1;
    }
    let written = out.len();
    out.extend_from_slice(&value[written..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn double_quoted_values_lose_quotes_and_escapes() {
        assert_eq!(replace_special(br#""Debian GNU/Linux 12 (bookworm)""#), b"Debian GNU/Linux 12 (bookworm)");
        assert_eq!(replace_special(br#""a\"b\$c\\d\`e\nf""#), br#"a"b$c\d`e\nf"#);
        assert_eq!(replace_special(br#""a" tail"#), b"a");
    }

    #[test]
    fn unquoted_and_single_quoted_values_are_cut_at_a_blank_or_semicolon() {
        assert_eq!(replace_special(b"debian"), b"debian");
        assert_eq!(replace_special(b"12 (bookworm)"), b"12");
        assert_eq!(replace_special(b"a;b c"), b"a");
        assert_eq!(replace_special(b"'Debian GNU'"), b"'Debian");
    }

    #[test]
    fn an_unclosed_quote_keeps_7_2s_leftover_bytes() {
        // 7.2 copies in place and never terminates: "abc -> abc + the original's 4th byte.
        assert_eq!(replace_special(br#""abc"#), b"abcc");
        assert_eq!(replace_special(br#""a\\b"#), br#"a\b\b"#);
    }

    #[test]
    fn a_file_that_is_not_a_key_file_or_not_utf8_is_skipped() {
        assert!(parse_content("x", b"ID=debian\nnot a pair\n").is_none());
        assert!(parse_content("x", b"ID=\xff\n").is_none());
        let k = parse_content("x", b"# comment\nID=debian\nID=ubuntu\n\nVERSION_ID=\"12\"\n").unwrap();
        assert_eq!(k.get_value("os-release", "ID"), Some(&b"ubuntu"[..]));
        assert_eq!(k.get_value("os-release", "VERSION_ID"), Some(&br#""12""#[..]));
    }

    #[test]
    fn each_request_reads_what_the_path_names_now_rewritten_replaced_or_gone() {
        let dir = std::env::temp_dir().join(format!("qga-osinfo-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let leak = |name: &str| -> &'static str { Box::leak(dir.join(name).to_str().unwrap().into()) };
        let (etc, lib) = (leak("etc-os-release"), leak("lib-os-release"));
        let mut standard = Standard::new(vec![etc, lib]);
        let id = |s: &mut Standard| s.fields().map(|f| f.into_iter().find(|(m, _)| *m == "id").unwrap().1);
        std::fs::write(lib, "ID=fallback\n").unwrap();
        std::fs::write(etc, "ID=first\n").unwrap();
        assert_eq!(id(&mut standard), Some(b"first".to_vec()));
        assert_eq!(id(&mut standard), Some(b"first".to_vec()), "the same content, the same answer");
        // Rewritten in place (the same file, same length), then replaced by a rename.
        std::fs::OpenOptions::new().write(true).open(etc).unwrap().write_all_at(b"ID=fixed\n", 0).unwrap();
        assert_eq!(id(&mut standard), Some(b"fixed".to_vec()));
        std::fs::write(dir.join("new"), "ID=renamed\n").unwrap();
        std::fs::rename(dir.join("new"), etc).unwrap();
        assert_eq!(id(&mut standard), Some(b"renamed".to_vec()));
        // Gone: the second file, as 7.2 tries it; back: read again.
        std::fs::remove_file(etc).unwrap();
        assert_eq!(id(&mut standard), Some(b"fallback".to_vec()));
        std::fs::write(etc, "ID=back\n").unwrap();
        assert_eq!(id(&mut standard), Some(b"back".to_vec()));
        // Not UTF-8: skipped for the next one, every time.
        std::fs::write(etc, b"ID=\xff\n").unwrap();
        assert_eq!(id(&mut standard), Some(b"fallback".to_vec()));
        assert_eq!(id(&mut standard), Some(b"fallback".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
