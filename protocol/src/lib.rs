//! The contract between qemu-ga-rs's unprivileged front and its privileged helper, in a crate
//! of its own so that the front links nothing privileged: the closed request/reply messages and
//! their frames ([`messages`], re-exported at the top), where the helper finds its socket
//! ([`REQUEST_FD`]) and binary ([`HELPER_BINARY`]) and the command line it is started with
//! ([`helper_args`]), the frozen marker both sides read at start
//! ([`frozen`]), how the front's own user id is chosen and checked ([`front_id`]), the clock range both check ([`set_time`]), how both keep to one CPU ([`placement`]), how log text is made one safe
//! line ([`text`]), how an open file travels from the helper to the front ([`fdpass`]) and what
//! every process gives back once started ([`idle`]).

pub mod accounts;
pub mod ask;
pub mod codes;
pub mod exec;
pub mod fdpass;
pub mod front_id;
pub mod frozen;
pub mod helper_args;
pub mod idle;
pub mod messages;
pub mod placement;
pub mod set_time;
pub mod storage;
pub mod text;
mod wire;

pub use messages::*;

/// File name of the helper binary, installed beside `qemu-ga-rs`.
pub const HELPER_BINARY: &str = "qemu-ga-rs-helper";
/// File descriptor on which the helper finds its end of the request socketpair.
pub const REQUEST_FD: i32 = 3;
