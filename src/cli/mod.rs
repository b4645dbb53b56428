//! The command line and the config file, turned into an [`Action`].
//!
//! Order, as in qemu-ga 7.2: the config file is read first (`-c FILE`, else `$QGA_CONF`,
//! else `/etc/qemu/qemu-ga.conf`), then the options are applied in command-line order.
//! Scalars: the last setting wins, so the command line overrides the file. Block and allow
//! lists accumulate: the file's entries first, then the options', each entry keeping its
//! source for messages. `-h`, `-V` and `-b help` act as soon as they are reached, so they win
//! over anything after them, but a broken config file still fails first (7.2 does the same).
//!
//! Differences from 7.2, all on the strict side:
//! - a non-option argument is an error (7.2 silently ignores it);
//! - an unknown method is an error here (7.2 fails later, at channel set-up);
//! - `--blacklist` warns, like the config key;
//! - the config file's `blacklist` and `block-rpcs` both count (7.2 drops `block-rpcs` when
//!   both are present); list names are trimmed of blanks (7.2 keeps them, which makes
//!   `-b "a, b"` silently not block `b`);
//! - `-D` lists block names in the order given (7.2 reverses each comma list, an artefact of
//!   building its list by prepending).
//!
//! Names in the lists are not checked here: the policy merge does that, failing closed.

mod config_file;
mod dump;
mod error;
pub mod help;
pub(crate) use qga_policy::keyfile;
mod options;
mod settings;
pub mod table;
#[cfg(test)]
mod tests;

pub use dump::dump;
pub use error::CliError;
pub use settings::{
    Parsed, SOURCE_ALLOW, SOURCE_BLACKLIST, SOURCE_BLOCK, SOURCE_CONFIG_ALLOW, SOURCE_CONFIG_BLACKLIST,
    SOURCE_CONFIG_BLOCK,
};

use crate::config::{Action, DEFAULT_CONFIG_FILE};
use settings::Settings;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use table::Opt;

/// Parses the arguments (without argv[0]) and the config file. The warnings are dropped:
/// callers that log should use [`parse_with_warnings`].
// The contracted entry point: it stays even when the caller uses `parse_with_warnings`.
#[allow(dead_code)]
pub fn parse(args: Vec<OsString>, env_qga_conf: Option<OsString>) -> Result<Action, CliError> {
    parse_with_warnings(args, env_qga_conf).map(|p| p.action)
}

/// [`parse`], keeping the warnings. Reads the config file from disk.
pub fn parse_with_warnings(args: Vec<OsString>, env_qga_conf: Option<OsString>) -> Result<Parsed, CliError> {
    parse_with_reader(&args, env_qga_conf.as_deref().map(Path::new), config_file::read)
}

/// The parser proper; `read` stands for reading a file so tests can supply files.
pub fn parse_with_reader<R>(args: &[OsString], env_qga_conf: Option<&Path>, mut read: R) -> Result<Parsed, CliError>
where
    R: FnMut(&Path) -> io::Result<Vec<u8>>,
{
    let scan = options::scan(args);
    let mut settings = Settings::new();

    // The file is needed before any option applies, and `-c` may come anywhere: take the
    // last `-c` seen before a getopt error (the scan stops there, as 7.2 does).
    let explicit = scan.tokens.iter().rev().find(|t| t.opt == Opt::Config).and_then(|t| t.arg.clone());
    let (file, required) = match (&explicit, env_qga_conf) {
        (Some(c), _) => (PathBuf::from(c), true),
        (None, Some(env)) => (env.to_path_buf(), false),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let looked_for =
        qga_policy::reload::ConfigFile { path: std::path::absolute(&file).unwrap_or(file.clone()), required };
    match read(&file) {
        Ok(data) => config_file::apply(&mut settings, &data, &file)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
        Err(e) => return Err(CliError::ConfigRead { file, message: e.to_string() }),
    }

    for token in scan.tokens {
        if let Some(action) = settings.apply(token.opt, token.arg)? {
            return Ok(Parsed { config_file: Some(looked_for), ..settings.early(action) });
        }
    }
    if let Some(e) = scan.error {
        return Err(CliError::Usage(e));
    }
    if let Some(operand) = scan.operands.into_iter().next() {
        return Err(CliError::Operand(operand));
    }
    settings.finish().map(|p| Parsed { config_file: Some(looked_for), ..p })
}
