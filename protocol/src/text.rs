//! Text bound for a log line. [`neutralise`] is the one place where such text (the helper's
//! and the front's records, and syslog) is made safe: host-supplied strings (a file path, a
//! mode) reach log records, and the front relays the helper's records line by line, so both
//! sides must agree on what one line is.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest record text kept, in bytes; the rest is cut and its size said.
pub const MAX_RECORD_BYTES: usize = 2048;

/// Room kept at the end of a cut text for saying so.
const CUT_NOTE_ROOM: usize = 64;

/// Makes a record's text safe to write as one log or syslog line: every control character
/// (newlines and carriage returns included, and the Unicode line and paragraph separators)
/// becomes a visible escape such as `\n` or `\u{1b}`, so no text can start a forged record or
/// drive a terminal; and a result longer than [`MAX_RECORD_BYTES`] is cut at a character
/// boundary and says the size of the whole text (a request logged whole cannot make a
/// multi-megabyte line). The result is at most [`MAX_RECORD_BYTES`] long, so applying it twice
/// changes nothing more.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    let needs_escape = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if text.len() <= MAX_RECORD_BYTES && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_RECORD_BYTES));
    let mut cut_at = None;
    for c in text.chars() {
        if cut_at.is_none() && out.len() > MAX_RECORD_BYTES - CUT_NOTE_ROOM {
            cut_at = Some(out.len());
        }
        if out.len() > MAX_RECORD_BYTES {
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if let (true, Some(at)) = (out.len() > MAX_RECORD_BYTES, cut_at) {
        out.truncate(at);
        let _ = write!(out, "... (cut; {} bytes in all)", text.len());
    }
    Cow::Owned(out)
}

/// The C library's text for an errno value (strerror's, without Rust's " (os error N)").
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_in_host_text_cannot_start_a_forged_record() {
        let text = "guest-file-open called, filepath: /x\n1700000000.000000: error: forged\r\u{2028}\u{1b}[2J";
        let safe = neutralise(text);
        assert!(!safe.chars().any(|c| c.is_control() || c == '\u{2028}'), "{safe}");
        assert_eq!(
            safe,
            "guest-file-open called, filepath: /x\\n1700000000.000000: error: forged\\r\\u{2028}\\u{1b}[2J"
        );
    }

    #[test]
    fn a_long_text_is_cut_and_says_how_long_it_was() {
        for text in ["é".repeat(MAX_RECORD_BYTES), "\n".repeat(5 << 20)] {
            let safe = neutralise(&text);
            assert!(safe.len() <= MAX_RECORD_BYTES, "{}", safe.len());
            assert!(safe.ends_with(&format!("... (cut; {} bytes in all)", text.len())), "{safe}");
            assert_eq!(neutralise(&safe), safe, "a cut text is cut once");
        }
        let fits = "a".repeat(MAX_RECORD_BYTES);
        assert_eq!(neutralise(&fits), fits);
    }

    #[test]
    fn plain_text_is_kept_and_neutralising_twice_changes_nothing() {
        assert!(matches!(neutralise("froze 3 filesystem(s)"), Cow::Borrowed(_)));
        let once = neutralise("a\nb\u{7f}").into_owned();
        assert_eq!(neutralise(&once), once);
    }
}
