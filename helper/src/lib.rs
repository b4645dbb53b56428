//! The privileged helper of qemu-ga-rs: its closed request protocol (shared with the front) and
//! the pieces of its operations that are pure enough to unit-test.

pub mod protocol;

/// File name of the helper binary, installed beside `qemu-ga-rs`.
pub const HELPER_BINARY: &str = "qemu-ga-rs-helper";
/// File descriptor on which the helper finds its end of the request socketpair.
pub const REQUEST_FD: i32 = 3;
