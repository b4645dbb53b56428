//! The allocator's tuning for the front's workload.
//!
//! guest-file-read and -write move buffers of up to 48 MiB, typically a client's chosen piece
//! size (1 MiB is common) over and over. glibc's default serves each such buffer with a fresh
//! mmap and unmaps it on free; its adaptive threshold ends up exactly at the freed size, and
//! a request of that same size is mapped again, so every piece cost a few hundred page faults
//! on freshly zeroed pages (measured: 325 per 1 MiB read). Fixed thresholds keep buffers up
//! to 4 MiB on the heap, reused, and let the heap keep up to 8 MiB free before giving memory
//! back; larger buffers are still mapped and returned at once.
//!
//! One arena: the front's only other thread is start-up's short-lived user id scan, whose few
//! allocations would otherwise make glibc set up (and keep) a second arena.

use nix::libc;

const MMAP_THRESHOLD: libc::c_int = 4 << 20;
const TRIM_THRESHOLD: libc::c_int = 8 << 20;

pub fn apply() {
    // SAFETY: mallopt only changes malloc's parameters; it is called once at start-up, before
    // any other thread exists. A refusal (return 0) leaves the defaults, which also work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
