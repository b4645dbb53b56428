//! qemu-ga-rs's command catalogue, the policy file that enables and disables commands, and the
//! gate that decides, from the effective policy and the frozen state, whether a command may run.

pub mod catalog;
pub mod gate;

pub use catalog::{Arg, ArgType, Command, CommandSpec, Process, COUNT, TABLE};
pub use gate::{decide, Decision, Policy};
