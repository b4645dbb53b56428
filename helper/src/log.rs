//! Log lines on stderr. The front reads fd 2 line by line and routes each record to its log,
//! so every record is one line, written with a single `write` (records of the helper and of the
//! launcher share the pipe and must not interleave), and a write error is ignored (a dead front
//! must not turn a log line into a crash).
//!
//! Every record goes through [`neutralise`] (shared with the front, which applies it to its own
//! records and to the helper's as it relays them).

use std::io::Write;

pub use qga_protocol::text::{neutralise, MAX_RECORD_BYTES};

/// Writes one record. Use the [`log!`](crate::log!) macro.
pub fn line(args: std::fmt::Arguments<'_>) {
    let text = format!("helper: {args}");
    // A record never spans lines: the front splits on '\n'.
    let mut text = neutralise(&text).into_owned();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `log!("froze {} filesystem(s)", n)` writes `helper: froze 3 filesystem(s)` to stderr.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => {
        $crate::log::line(format_args!($($t)*))
    };
}
