//! Why the command line or the config file was refused.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Why the command line or config file was refused. The agent exits 1 for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CliError {
    /// getopt's complaint (unknown option, missing or unexpected argument, ambiguous prefix).
    Usage(String),
    /// A non-option argument.
    Operand(OsString),
    /// The config file could not be read (absent `-c` file, or anything but "not found" for
    /// the implicit one).
    ConfigRead { file: PathBuf, message: String },
    /// The config file is malformed, or a known key has a bad value.
    Config { file: PathBuf, line: usize, message: String },
    /// `-m` or the `method` key names no method.
    InvalidMethod(String),
    /// `--audit` or the `audit` key names no scope.
    InvalidAudit(String),
    /// `--fsfreeze-timeout` or its key is not a number of seconds in range.
    InvalidFsfreezeTimeout(String),
    /// An option value that must be text (a method, path, user or RPC name) is not UTF-8.
    NotUtf8 { option: &'static str },
    /// Options that cannot be combined.
    Conflict(String),
}

impl CliError {
    /// The exit status the agent uses (7.2 uses 1 for every start-up failure).
    pub fn exit_code(&self) -> i32 {
        1
    }

    /// 7.2's second line after a getopt error, for the usage errors only.
    pub fn usage_hint(&self, program: &str) -> Option<String> {
        match self {
            CliError::Usage(_) | CliError::Operand(_) => {
                Some(format!("Unknown option, try '{program} --help' for more information."))
            }
            _ => None,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Operand(a) => write!(f, "unexpected argument '{}'", a.to_string_lossy()),
            CliError::ConfigRead { file, message } => {
                write!(f, "error loading configuration from path: {}, {message}", file.display())
            }
            CliError::Config { file, line, message } => {
                write!(f, "error loading configuration from path: {}:{line}: {message}", file.display())
            }
            CliError::InvalidMethod(m) => write!(f, "invalid method: {m}"),
            CliError::InvalidFsfreezeTimeout(t) => {
                write!(f, "invalid fsfreeze-timeout: {t} (seconds, 0 to {})", super::settings::MAX_FSFREEZE_TIMEOUT)
            }
            CliError::InvalidAudit(a) => write!(f, "invalid audit scope: {a} (changes, all or off)"),
            CliError::NotUtf8 { option } => write!(f, "the argument of {option} is not valid UTF-8"),
            CliError::Conflict(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}
