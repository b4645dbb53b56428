//! The config-file reader: the `[general]` keys of a file applied to the settings, the mirror
//! image of `dump.rs`.

use super::error::CliError;
use super::keyfile::{KeyFile, KeyFileError};
use super::settings::Settings;
use super::table::{Read, CONFIG_KEYS};
use std::io;
use std::path::Path;

/// The largest config file read: far above any real one, and it keeps `-c /dev/zero` from
/// exhausting memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a config file, refusing one over [`MAX_CONFIG_BYTES`] and one that someone other than
/// root or the agent's user could have written (it names the freeze hook root runs; see
/// [`qga_policy::trust`]).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    // Checked before it is opened, so that a FIFO there is refused rather than waited on.
    qga_policy::trust::check_file_to_act_on(path).map_err(|e| match e.why {
        qga_policy::trust::Why::Io(io) => io,
        _ => io::Error::new(io::ErrorKind::PermissionDenied, format!("refused: {e}")),
    })?;
    let mut data = Vec::new();
    std::fs::File::open(path)?.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    Ok(data)
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
