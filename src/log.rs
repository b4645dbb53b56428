//! The agent's log. Records go to the `-l` file or stderr (errors and warnings always, the
//! rest with `-v`), and the `slog` records qemu-ga sends to syslog go to syslog too. While
//! filesystems are frozen nothing is written anywhere that could block on them: records wait
//! in a bounded memory buffer and are written after thaw (qemu-ga 7.2 drops them). Every
//! record's text is neutralised (control characters escaped, length bounded) on the way in.

use qga_protocol::text::neutralise;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    /// qemu-ga's `slog()`: a record of what the host asked for, also sent to syslog.
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Records kept while frozen; older ones beyond this are dropped and counted.
const FROZEN_BUFFER_RECORDS: usize = 4096;

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Logger {
    file: Option<File>,
    syslog: Option<Syslog>,
    verbose: bool,
    frozen: bool,
    held: VecDeque<(Level, String, String)>,
    dropped: usize,
}

thread_local! {
    static LOGGER: RefCell<Logger> = const { RefCell::new(Logger {
        file: None,
        syslog: None,
        verbose: false,
        frozen: false,
        held: VecDeque::new(),
        dropped: 0,
    }) };
}

/// Sets the destinations: `file` (None means stderr), syslog on or off, verbosity.
pub fn init(file: Option<File>, use_syslog: bool, verbose: bool) {
    let syslog = if use_syslog {
        syslog::unix(syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "qemu-ga-rs".into(),
            pid: std::process::id(),
        })
        .ok()
    } else {
        None
    };
    LOGGER.with(|l| {
        let mut l = l.borrow_mut();
        l.file = file;
        l.syslog = syslog;
        l.verbose = verbose;
    });
}

pub fn is_verbose() -> bool {
    LOGGER.with(|l| l.borrow().verbose)
}

/// Enters or leaves the frozen state; leaving writes what was held.
pub fn set_frozen(frozen: bool) {
    LOGGER.with(|l| {
        let mut l = l.borrow_mut();
        l.frozen = frozen;
        if !frozen {
            let held: Vec<_> = l.held.drain(..).collect();
            let dropped = std::mem::take(&mut l.dropped);
            if dropped > 0 {
                l.emit(Level::Warning, None, &format!("{dropped} log record(s) dropped while frozen"));
            }
            for (level, stamp, msg) in held {
                l.emit(level, Some(&stamp), &msg);
            }
        }
    });
    // The audit trail holds and releases its records with the log.
    crate::audit::set_frozen(frozen);
}

/// Whether a record of this level goes anywhere (or is held while frozen). The macros ask
/// first, so a record nobody reads is never formatted.
pub fn wanted(level: Level) -> bool {
    LOGGER.with(|l| {
        let l = l.borrow();
        l.frozen || level <= Level::Warning || l.verbose || (level == Level::Info && l.syslog.is_some())
    })
}

/// Writes (or holds) a record. Its text goes through [`neutralise`] first, whoever made it:
/// records carry host-supplied strings.
pub fn log(level: Level, msg: &str) {
    let msg = neutralise(msg);
    let msg = msg.as_ref();
    LOGGER.with(|l| {
        let mut l = l.borrow_mut();
        if l.frozen {
            if l.held.len() == FROZEN_BUFFER_RECORDS {
                l.held.pop_front();
                l.dropped += 1;
            }
            let stamp = timestamp();
            l.held.push_back((level, stamp, msg.to_string()));
        } else {
            l.emit(level, None, msg);
        }
    });
}

fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

impl Logger {
    /// Writes a record; `stamp` is the time it was made, if not now.
    fn emit(&mut self, level: Level, stamp: Option<&str>, msg: &str) {
        if level <= Level::Warning || self.verbose {
            let line = match stamp {
                Some(stamp) => format!("{stamp}: {}: {msg}\n", level.name()),
                None => format!("{}: {}: {msg}\n", timestamp(), level.name()),
            };
            match &mut self.file {
                Some(f) => {
                    let _ = f.write_all(line.as_bytes());
                }
                None => {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
        }
        if let Some(s) = &mut self.syslog {
            let text = format_args!("{}: {msg}", level.name());
            let _ = match level {
                Level::Error => s.err(text),
                Level::Warning => s.warning(text),
                Level::Info => s.info(text),
                Level::Debug if self.verbose => s.debug(text),
                Level::Debug => Ok(()),
            };
        }
    }
}

#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) } }
#[macro_export]
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($t)*)) } }
/// qemu-ga's `slog()`.
#[macro_export]
macro_rules! slog { ($($t:tt)*) => { if $crate::log::wanted($crate::log::Level::Info) { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) } } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::is_verbose() { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) } } }
