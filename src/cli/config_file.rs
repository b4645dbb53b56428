//! The config-file reader: the `[general]` keys of a file applied to the settings, the mirror
//! image of `dump.rs`.

use super::error::CliError;
use super::keyfile::{KeyFile, KeyFileError};
use super::settings::Settings;
use super::table::{Read, CONFIG_KEYS};
use std::io;
use std::path::Path;

/// Reads a config file, with the checks and bound the helper also applies when it re-reads the
/// file on a reload.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    qga_policy::reload::read_config_file(path)
}

/// Applies the `[general]` keys of `data` in the table's order (7.2's, then ours). Unknown
/// keys and other groups are ignored, as 7.2 ignores them.
pub fn apply(settings: &mut Settings, data: &[u8], file: &Path) -> Result<(), CliError> {
    let located = |e: KeyFileError| CliError::Config { file: file.to_path_buf(), line: e.line, message: e.message };
    let kf = KeyFile::parse(data).map_err(located)?;
    for key in CONFIG_KEYS {
        match key.read {
            Read::Boolean(set) => {
                if let Some(v) = kf.get_boolean("general", key.name).transpose().map_err(located)? {
                    set(settings, v);
                }
            }
            Read::String(set) => {
                if let Some(v) = kf.get_string("general", key.name).transpose().map_err(located)? {
                    set(settings, v);
                }
            }
        }
    }
    Ok(())
}
