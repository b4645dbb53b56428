//! The frozen marker: how a restarted agent knows that an earlier one left the guest frozen
//! (qemu-ga 7.2's restart-comes-up-frozen). The front and the helper both decide "frozen" at
//! start from it, so the decision lives here once: a dangling marker link counts as frozen on
//! both sides (a disagreement would make the first privileged command stop the agent).

use std::path::{Path, PathBuf};

/// The marker's name inside the state directory; only its existence matters.
pub const MARKER_NAME: &str = "qga.state.isfrozen";

pub fn marker_path(statedir: &Path) -> PathBuf {
    statedir.join(MARKER_NAME)
}

/// Whether a previous instance left filesystems frozen. `symlink_metadata`, not `exists`: the
/// marker itself counts, whatever it points to.
pub fn marker_exists(marker: &Path) -> bool {
    marker.symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dangling_marker_link_counts_as_frozen() {
        let dir = std::env::temp_dir().join(format!("qga-frozen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = marker_path(&dir);
        let _ = std::fs::remove_file(&marker);
        assert!(!marker_exists(&marker));
        std::os::unix::fs::symlink(dir.join("nowhere"), &marker).unwrap();
        assert!(marker_exists(&marker));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
