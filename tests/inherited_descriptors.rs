//! Descriptors inherited at start-up reach neither the demoted front nor the helper (security
//! review finding 7). The fallback used when close_range fails is shown by a unit test of
//! `inherited_fds`; this one runs the real processes with a descriptor left open for them.
//! Its own test binary: the descriptor is left open in this whole test process.

mod common;

use common::*;
use std::os::fd::AsRawFd;

#[test]
fn a_descriptor_inherited_at_start_up_reaches_neither_the_front_nor_the_helper() {
    let dir = TempDir::new();
    let marker = dir.path().join("inherited-marker");
    let file = std::fs::File::create(&marker).unwrap();
    // Without close-on-exec, as a careless service manager or parent would leave it.
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
    let fd = file.as_raw_fd();
    let mut agent = Agent::start_in(dir, &[]);
    for (who, pid) in [("front", agent.front_pid), ("helper", agent.helper_pid)] {
        let open: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .collect();
        assert!(!open.is_empty(), "no descriptors listed for the {who}");
        assert!(!open.iter().any(|p| p == &marker), "fd {fd} inherited by the {who}: {open:?}");
    }
    assert_eq!(agent.terminate().code(), Some(0));
    drop(file);
}
