//! qemu-ga-rs's front as a library: the JSON stream, dispatch, command handlers, channels,
//! the poll loop and start-up. The `qemu-ga-rs` binary is a thin `main` over it; fuzz
//! targets and benchmarks use the same code.

pub mod alloc_tuning;
pub mod audit;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod inherited_fds;
pub mod json;
#[macro_use]
pub mod log;
pub mod privsep;
pub mod qmp;
pub mod server;
pub mod start;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// `len` pseudo-random bytes from a xorshift64 generator whose state `seed` carries on
    /// from call to call: reproducible inputs without a random-number crate.
    pub fn pseudo_random_bytes(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }
}
