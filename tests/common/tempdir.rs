//! Fresh temporary directories for one test, removed on drop.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory, mode 0755, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("qga-rs-it-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `NAME` in this directory, written with [`write_trusted`].
    pub fn trusted_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        write_trusted(&path, text);
        path
    }

    /// A subdirectory with mode 1777 that the demoted front (its own uid) can create files in.
    pub fn scratch(&self) -> PathBuf {
        let p = self.path.join("scratch");
        if !p.exists() {
            fs::create_dir(&p).expect("create scratch dir");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o1777)).expect("chmod scratch dir");
        }
        p
    }
}

/// Writes a file as the agent's trust checks want a policy or config file: root-owned (the
/// tests run as root) and mode 0644 (anything group- or world-writable is refused).
pub fn write_trusted(path: &Path, text: &str) {
    fs::write(path, text).expect("write a trusted file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod a trusted file 0644");
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
