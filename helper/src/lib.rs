//! The privileged helper of qemu-ga-rs: its closed request protocol (shared with the front),
//! the request loop and the operations it carries out for the front.
//!
//! Every module has one job; the pure parts (parsing, texts, conversions, the state machine)
//! are unit-tested without touching the machine.

pub mod args;
pub mod clock;
pub mod demote;
pub mod freeze;
pub mod hook;
pub mod landlock;
pub mod launcher;
pub mod log;
pub mod mounts;
pub mod placement;
pub mod power;
pub mod protocol;
pub mod seccomp;
pub mod serve;
pub mod system;
pub mod trim;
pub mod trust;
pub mod vcpus;

/// File name of the helper binary, installed beside `qemu-ga-rs`.
pub const HELPER_BINARY: &str = "qemu-ga-rs-helper";
/// File descriptor on which the helper finds its end of the request socketpair.
pub const REQUEST_FD: i32 = 3;
