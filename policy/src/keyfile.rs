//! A small reader and writer for GLib's key-file format, as far as qemu-ga's config file uses
//! it: groups, `key=value` lines, comments, value escapes, strings and booleans.
//!
//! It lives in the policy crate because two processes read the config file: the front at
//! start-up, and the privileged helper, which re-reads its block and allow lists on a reload.
//!
//! The reader follows GKeyFile's rules so that a file 7.2 accepts is accepted here and a file
//! it rejects is rejected, line by line:
//! - a line is first stripped of leading ASCII whitespace and of one trailing `\r`;
//! - empty lines and lines starting with `#` are comments;
//! - `[name]` (only blanks may follow the `]`) opens a group; repeated groups merge;
//! - `key = value`: blanks around `=` are dropped, blanks at the end of the value are kept;
//!   a key repeated in a group keeps its last value;
//! - anything else, a key before the first group, an invalid key or group name is an error
//!   for the whole file, wherever it is (GKeyFile parses the whole file before any lookup).
//!
//! Escapes (`\s \n \t \r \\`) are decoded only when a string value is asked for, and an
//! invalid one is an error only then: 7.2 never looks at keys it does not know.

use std::collections::HashMap;
use std::fmt;

/// A key-file problem, with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for KeyFileError {}

/// One raw value and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    raw: Vec<u8>,
    line: usize,
}

/// A parsed key file: raw (still escaped) values by group and key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFile {
    values: HashMap<(Vec<u8>, Vec<u8>), Entry>,
}

/// `g_ascii_isspace`: what GKeyFile skips around keys and values.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Shows a byte string in a message even if it is not UTF-8.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// GKeyFile's group-name rule: not empty, no brackets, no control characters.
fn is_group_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b != b'[' && b != b']' && !b.is_ascii_control())
}

/// GKeyFile's key-name rule: not empty, no leading or trailing space, no brackets except one
/// trailing locale suffix `[ll_CC.enc@mod]`.
fn is_key_name(key: &[u8]) -> bool {
    let base_len = key.iter().position(|&b| b == b'[' || b == b']').unwrap_or(key.len());
    let base = &key[..base_len];
    if base.is_empty() || base[0] == b' ' || base[base.len() - 1] == b' ' {
        return false;
    }
    let rest = &key[base_len..];
    if rest.is_empty() {
        return true;
    }
    // Only a `[locale]` suffix may follow, and nothing after it.
    if rest[0] != b'[' || rest[rest.len() - 1] != b']' || rest.len() < 2 {
        return false;
    }
    rest[1..rest.len() - 1]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b >= 0x80 || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

impl KeyFile {
    /// Parses a whole file.
    pub fn parse(data: &[u8]) -> Result<KeyFile, KeyFileError> {
        let mut file = KeyFile::default();
        let mut group: Option<Vec<u8>> = None;
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        // A final newline does not start one more (empty) line.
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (i, raw_line) in lines.into_iter().enumerate() {
            let number = i + 1;
            let err = |message: String| KeyFileError { line: number, message };
            let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
            let start = line.iter().position(|&b| !is_ascii_space(b)).unwrap_or(line.len());
            let line = &line[start..];

            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            if line[0] == b'[' {
                if let Some(close) = line.iter().position(|&b| b == b']') {
                    if line[close + 1..].iter().all(|&b| b == b' ' || b == b'\t') {
                        let name = &line[1..close];
                        if !is_group_name(name) {
                            return Err(err(format!("invalid group name: {}", show(name))));
                        }
                        group = Some(name.to_vec());
                        continue;
                    }
                }
                // Not a group line: GKeyFile then tries it as a key-value pair.
            }
            let eq = match line.iter().position(|&b| b == b'=') {
                Some(eq) if eq > 0 => eq,
                _ => {
                    return Err(err(format!(
                        "line \u{201c}{}\u{201d} is not a key-value pair, group, or comment",
                        show(line)
                    )))
                }
            };
            let Some(group) = group.as_ref() else {
                return Err(err("key file does not start with a group".to_string()));
            };
            let key_end = line[..eq].iter().rposition(|&b| !is_ascii_space(b)).map_or(0, |p| p + 1);
            let key = &line[..key_end];
            if !is_key_name(key) {
                return Err(err(format!("invalid key name: {}", show(key))));
            }
            let value = &line[eq + 1..];
            let vstart = value.iter().position(|&b| !is_ascii_space(b)).unwrap_or(value.len());
            file.values.insert((group.clone(), key.to_vec()), Entry { raw: value[vstart..].to_vec(), line: number });
        }
        Ok(file)
    }

    fn entry(&self, group: &str, key: &str) -> Option<&Entry> {
        self.values.get(&(group.as_bytes().to_vec(), key.as_bytes().to_vec()))
    }

    /// The line a key was (last) set on.
    #[cfg(test)]
    pub fn line_of(&self, group: &str, key: &str) -> Option<usize> {
        self.entry(group, key).map(|e| e.line)
    }

    /// A value as written, escapes not decoded (`g_key_file_get_value`); `None` if absent.
    pub fn get_value(&self, group: &str, key: &str) -> Option<&[u8]> {
        self.entry(group, key).map(|e| e.raw.as_slice())
    }

    /// A string value, escapes decoded (`g_key_file_get_string`); `None` if absent.
    pub fn get_string(&self, group: &str, key: &str) -> Option<Result<String, KeyFileError>> {
        let e = self.entry(group, key)?;
        let err = |message: String| KeyFileError { line: e.line, message };
        let Ok(text) = std::str::from_utf8(&e.raw) else {
            return Some(Err(err(format!("key \u{201c}{key}\u{201d} has a value which is not UTF-8"))));
        };
        Some(unescape(text).map_err(|m| err(format!("key \u{201c}{key}\u{201d}: {m}"))))
    }

    /// A boolean value (`g_key_file_get_boolean`): `true`/`1` or `false`/`0`, trailing
    /// blanks ignored, case-sensitive, no escapes; `None` if absent.
    pub fn get_boolean(&self, group: &str, key: &str) -> Option<Result<bool, KeyFileError>> {
        let e = self.entry(group, key)?;
        let end = e.raw.iter().rposition(|&b| !is_ascii_space(b)).map_or(0, |p| p + 1);
        Some(match &e.raw[..end] {
            b"true" | b"1" => Ok(true),
            b"false" | b"0" => Ok(false),
            other => Err(KeyFileError {
                line: e.line,
                message: format!(
                    "key \u{201c}{key}\u{201d} has value \u{201c}{}\u{201d}, which is not a boolean (true, false, 1 or 0)",
                    show(other)
                ),
            }),
        })
    }
}

/// Decodes GKeyFile's string escapes.
fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(format!("invalid escape sequence \u{201c}\\{other}\u{201d}")),
            None => return Err("escape character at end of line".to_string()),
        }
    }
    Ok(out)
}

/// Encodes a string the way `g_key_file_set_string` does: leading blanks as `\s`/`\t` (the
/// reader would drop them otherwise), line breaks and backslashes always; later blanks stay.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut leading = true;
    for c in value.chars() {
        match c {
            ' ' if leading => out.push_str("\\s"),
            '\t' if leading => out.push_str("\\t"),
            ' ' | '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => {
                out.push_str("\\\\");
                leading = false;
            }
            _ => {
                out.push(c);
                leading = false;
            }
        }
    }
    out
}

/// Builds one group's text as `g_key_file_to_data` prints it: `[group]`, then `key=value`
/// lines in insertion order.
pub struct Writer {
    text: String,
}

impl Writer {
    pub fn new(group: &str) -> Writer {
        Writer { text: format!("[{group}]\n") }
    }

    pub fn string(&mut self, key: &str, value: &str) {
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&escape(value));
        self.text.push('\n');
    }

    pub fn boolean(&mut self, key: &str, value: bool) {
        self.string(key, if value { "true" } else { "false" });
    }

    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(text: &str) -> KeyFile {
        match KeyFile::parse(text.as_bytes()) {
            Ok(k) => k,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn parse_error(text: &[u8]) -> KeyFileError {
        match KeyFile::parse(text) {
            Ok(k) => panic!("{text:?} parsed: {k:?}"),
            Err(e) => e,
        }
    }

    fn string(k: &KeyFile, key: &str) -> Option<String> {
        k.get_string("general", key).map(|r| r.unwrap_or_else(|e| panic!("{key}: {e}")))
    }

    #[test]
    fn comments_blank_lines_and_indentation_are_skipped() {
        let k = kf("# top\n\n   \n  [general]  \n\t# indented comment\n  path = x\n");
        assert_eq!(string(&k, "path").as_deref(), Some("x"));
    }

    #[test]
    fn blanks_around_equals_are_dropped_and_trailing_blanks_kept() {
        let k = kf("[general]\npath  =  a b  \t\n");
        assert_eq!(string(&k, "path").as_deref(), Some("a b  \t"));
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let k = kf("[general]\r\npath=x\r\n");
        assert_eq!(string(&k, "path").as_deref(), Some("x"));
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let k = kf("[general]\npath=x");
        assert_eq!(string(&k, "path").as_deref(), Some("x"));
    }

    #[test]
    fn repeated_key_keeps_the_last_value_and_its_line() {
        let k = kf("[general]\npath=1\npath=2\n");
        assert_eq!(string(&k, "path").as_deref(), Some("2"));
        assert_eq!(k.line_of("general", "path"), Some(3));
    }

    #[test]
    fn repeated_group_merges_and_other_groups_are_separate() {
        let k = kf("[general]\npath=1\n[other]\npath=2\npidfile=9\n[general]\nstatedir=3\n");
        assert_eq!(string(&k, "path").as_deref(), Some("1"));
        assert_eq!(string(&k, "statedir").as_deref(), Some("3"));
        assert_eq!(string(&k, "pidfile"), None);
    }

    #[test]
    fn locale_suffixed_keys_are_distinct_keys() {
        let k = kf("[general]\npath[de_DE.UTF-8@euro]=x\n");
        assert_eq!(string(&k, "path"), None);
    }

    #[test]
    fn escapes_are_decoded() {
        let k = kf("[general]\npath=\\s\\sx\\ty\\\\z\\n\\r\n");
        assert_eq!(string(&k, "path").as_deref(), Some("  x\ty\\z\n\r"));
    }

    #[test]
    fn invalid_escape_is_an_error_only_when_read() {
        let k = kf("[general]\nfoo=\\q\npath=\\q\nlogfile=x\\\n");
        let e = k.get_string("general", "path").and_then(Result::err);
        assert_eq!(e.map(|e| e.line), Some(3));
        let e = k.get_string("general", "logfile").and_then(Result::err);
        assert_eq!(e.map(|e| e.line), Some(4));
    }

    #[test]
    fn non_utf8_value_is_an_error_when_read_as_string() {
        let k = KeyFile::parse(b"[general]\npath=\xff\n").unwrap_or_default();
        assert!(matches!(k.get_string("general", "path"), Some(Err(KeyFileError { line: 2, .. }))));
    }

    #[test]
    fn booleans_follow_gkeyfile() {
        let k = kf("[general]\na=true\nb=1\nc=false  \nd=0\ne=yes\nf=TRUE\ng=true x\nh=\n");
        assert_eq!(k.get_boolean("general", "a"), Some(Ok(true)));
        assert_eq!(k.get_boolean("general", "b"), Some(Ok(true)));
        assert_eq!(k.get_boolean("general", "c"), Some(Ok(false)));
        assert_eq!(k.get_boolean("general", "d"), Some(Ok(false)));
        for (key, line) in [("e", 6), ("f", 7), ("g", 8), ("h", 9)] {
            assert_eq!(k.get_boolean("general", key).and_then(Result::err).map(|e| e.line), Some(line), "{key}");
        }
        assert_eq!(k.get_boolean("general", "absent"), None);
    }

    #[test]
    fn syntax_errors_name_their_line() {
        assert_eq!(parse_error(b"[general]\n\nnonsense\n").line, 3);
        assert_eq!(parse_error(b"# c\npath=x\n[general]\n").line, 2);
        assert_eq!(parse_error(b"[general]\n[gen]eral]\n").line, 2);
        assert_eq!(parse_error(b"[]\n").line, 1);
        assert_eq!(parse_error(b"[general]\na[b=1\n").line, 2);
        assert_eq!(parse_error(b"[general]\n=x\n").line, 2);
        assert_eq!(parse_error(b"[general]\npath=1\n[other]\nbroken\n").line, 4);
    }

    #[test]
    fn escape_matches_g_key_file_set_string() {
        assert_eq!(escape("  x\ty \\z"), "\\s\\sx\ty \\\\z");
        assert_eq!(escape("\tx\n\r"), "\\tx\\n\\r");
        assert_eq!(escape("a b  "), "a b  ");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn escaped_values_read_back_unchanged() {
        for value in ["", " lead", "\t\tlead", "trail  ", "a\\b", "line\nbreak\r", "mid dle", "\\s"] {
            let mut w = Writer::new("general");
            w.string("path", value);
            let k = kf(&w.finish());
            assert_eq!(string(&k, "path").as_deref(), Some(value));
        }
    }
}
