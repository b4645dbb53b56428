//! qemu-ga-rs's front as a library: the JSON stream, dispatch, command handlers, channels,
//! the poll loop and start-up. The `qemu-ga-rs` binary is a thin `main` over it; fuzz
//! targets and benchmarks use the same code.

pub mod alloc_tuning;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod json;
#[macro_use]
pub mod log;
pub mod privsep;
pub mod qmp;
pub mod server;
pub mod start;
