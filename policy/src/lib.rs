//! qemu-ga-rs's command catalogue, the policy file that enables and disables commands, and the
//! gate that decides, from the effective policy and the frozen state, whether a command may run.
//!
//! The path from disk to a decision: [`file::load_configured`] (or [`file::parse`]) reads and
//! checks the policy file, [`merge::merge`] folds in the `-b`/`-a` options and the config
//! lists and explains every command, and [`gate::decide`] applies the result and the frozen
//! state to each request; [`gate::permit`] checks a request's arguments against the `allow`
//! lines' conditions ([`rules`]).

pub mod catalog;
pub mod error;
pub mod file;
pub mod gate;
pub mod keyfile;
pub mod merge;
mod names;
pub mod passwd;
pub mod record;
pub mod reload;
pub mod rules;
pub mod seccomp;
pub mod trust;

pub use catalog::{Arg, ArgType, Command, CommandSpec, Process, COUNT, TABLE};
pub use error::PolicyError;
pub use file::{
    builtin_default, load_configured, load_file, load_or_builtin, parse, split_words, Action, FileDecider, FileVerdict,
    PolicyFile, Rule, BUILTIN_ORIGIN, DEFAULT_PATH, DEFAULT_POLICY_TEXT, MAX_FILE_SIZE, SHIPPED,
};
pub use gate::{decide, permit, permit_among, Decision, Grant, Invocation, Narrowing, Policy, Refusal};
pub use merge::{merge, split_list, AllowListVerdict, Effective, Explanation, ListEntry};
pub use names::nearest_command;
