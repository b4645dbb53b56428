//! The privileged helper of qemu-ga-rs: the request loop and the operations it carries out for
//! the front. The protocol both speak is the `qemu-ga-rs-protocol` crate (re-exported here as
//! [`protocol`]), so the front never links this crate.
//!
//! Every module has one job; the pure parts (parsing, texts, conversions, the state machine)
//! are unit-tested without touching the machine.

pub mod accounts;
pub mod background;
pub mod blockdev;
pub mod child_setup;
pub mod clock;
pub mod demote;
pub mod exec_plan;
pub mod files;
pub mod freeze;
pub mod front_id;
pub mod hook;
pub mod landlock;
pub mod launcher;
pub mod log;
pub mod memory;
pub mod mounts;
pub mod power;
pub mod seccomp;
pub mod serve;
pub mod statfs_probe;
pub mod storage;
pub mod supervisor;
pub mod system;
pub mod trim;
pub mod uevents;
pub mod vcpus;

pub use qga_policy::trust;
pub use qga_protocol as protocol;
pub use qga_protocol::{helper_args as args, placement, REQUEST_FD};
