//! The check of the front's recorded dynamic id that the front leaves to the helper (why:
//! `qga_protocol::front_id`): before the helper serves, no process but the front may use it.
//! Run in the helper's start-up, as root, before Landlock narrows what it may read.

use std::path::Path;

use crate::protocol::front_id::{self, RECORD_NAME};

/// Ok when no process other than the front (the helper's parent) has `id` among its uids and
/// gids. Otherwise the record naming it is removed, so that the next start chooses afresh,
/// and the reason is returned for the log: the helper then refuses to serve.
pub fn verify(id: u32, statedir: &Path) -> Result<(), String> {
    let front = nix::unistd::getppid().as_raw().unsigned_abs();
    let record = statedir.join(RECORD_NAME);
    match front_id::process_using(Path::new("/proc"), id, front) {
        Ok(None) => Ok(()),
        Ok(Some(user)) => {
            let next = match std::fs::remove_file(&record) {
                Ok(()) => "the record is removed: the next start chooses another id".to_owned(),
                Err(e) => format!("removing the record failed ({e}): remove it before the next start"),
            };
            Err(format!(
                "the front's user id {id} (recorded in {}) is also used by process {} ({}): refusing to serve; {next}",
                record.display(),
                user.pid,
                String::from_utf8_lossy(&user.name)
            ))
        }
        Err(e) => Err(format!("cannot check that no other process uses the front's user id {id}: {e}")),
    }
}
