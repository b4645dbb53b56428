//! Harness for the integration tests, one file per job: starts the real `qemu-ga-rs` (which spawns the real
//! `qemu-ga-rs-helper` from its own directory) on a unix-listen socket in a fresh temporary
//! directory, talks raw bytes to it with timeouts, inspects both processes through /proc and
//! kills and cleans everything up on drop.
//!
//! Every wait has a deadline: a test fails, it never hangs.

// Each test binary uses a part of the harness.
#![allow(dead_code, unused_imports)]

mod agent;
pub mod canary;
mod client;
mod process;
mod procfs;
mod reference;
mod tempdir;

pub use agent::*;
pub use client::*;
pub use process::*;
pub use procfs::*;
pub use reference::*;
pub use tempdir::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FRONT: &str = env!("CARGO_BIN_EXE_qemu-ga-rs");
pub const HELPER_NAME: &str = "qemu-ga-rs-helper";

/// How long a reply, a start-up or an exit may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The 42 commands of qemu-ga 7.2's Linux build, in its schema (registration) order: the
/// tests' own copy, independent of the code under test.
pub const QEMU_7_2_ORDER: [&str; 42] = [
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-get-time",
    "guest-set-time",
    "guest-info",
    "guest-shutdown",
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-network-get-interfaces",
    "guest-get-vcpus",
    "guest-set-vcpus",
    "guest-get-disks",
    "guest-get-fsinfo",
    "guest-set-user-password",
    "guest-get-memory-blocks",
    "guest-set-memory-blocks",
    "guest-get-memory-block-info",
    "guest-exec-status",
    "guest-exec",
    "guest-get-host-name",
    "guest-get-users",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-get-devices",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-get-diskstats",
    "guest-get-cpustats",
];

/// The commands qemu-ga-rs implements, in 7.2's order: 7.2's list filtered by the command
/// table (so a command added to the table is covered without touching the tests, and a table
/// out of 7.2's order shows up as a mismatch with guest-info).
pub fn schema_order() -> Vec<&'static str> {
    QEMU_7_2_ORDER.iter().copied().filter(|n| qga_policy::Command::from_name(n).is_some()).collect()
}

/// Commands 7.2 lists in guest-info but always disables on Linux.
pub const UNAVAILABLE_ON_LINUX: [&str; 1] = ["guest-get-devices"];

/// The freeze allowlist (the same in 1.7, 7.2 and 10.0).
pub const FROZEN_ALLOWLIST: [&str; 6] =
    ["guest-sync-delimited", "guest-sync", "guest-ping", "guest-info", "guest-fsfreeze-status", "guest-fsfreeze-thaw"];

/// A shipped policy file, by name ("default", "allow-all", ...).
pub fn shipped_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policy").join(format!("{name}.policy"))
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Fails the calling test loudly when not run as root: these tests observe what the agent
/// does when started as root (demotion, helper capabilities) and must never pass vacuously.
pub fn require_root() {
    assert!(
        is_root(),
        "this test must run as root (uid 0): it checks the privilege separation the agent sets up when \
         started as root; running it as uid {} would prove nothing",
        nix::unistd::Uid::effective()
    );
}
