//! The front's view of the filesystem when no `guest-file-*` command is enabled: a private
//! mount namespace whose root is an empty read-only tmpfs holding only read-only binds of
//! `/proc` (network statistics) and `/sys` (vcpus). Everything the front needs beyond that is
//! already open (channel, log, state file, helper socket, syslog socket). With file commands
//! enabled the front keeps the real filesystem: those commands are defined on it, and the
//! front's own user and seccomp filter confine them.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{chdir, mkdir, pivot_root};
use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub struct ViewError {
    step: &'static str,
    errno: nix::errno::Errno,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "building the front's empty filesystem view: {} failed: {}", self.step, self.errno)
    }
}

fn step<T>(name: &'static str, r: nix::Result<T>) -> Result<T, ViewError> {
    r.map_err(|errno| ViewError { step: name, errno })
}

const RO: MsFlags = MsFlags::MS_RDONLY.union(MsFlags::MS_NOSUID).union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// Replaces the front's root with the empty view. `mount_point` is any existing directory
/// (the state directory): the new root is mounted over it inside the private namespace only,
/// so nobody else sees it.
pub fn enter_empty_view(mount_point: &Path) -> Result<(), ViewError> {
    const NONE: Option<&str> = None;
    // A private namespace, and no mount event propagates back to the guest's.
    step("unshare(CLONE_NEWNS)", unshare(CloneFlags::CLONE_NEWNS))?;
    step("making mounts private", mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE))?;
    // The new root: a tiny tmpfs with two mount points.
    step(
        "mounting the new root",
        mount(
            Some("tmpfs"),
            mount_point,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=16k,mode=0755"),
        ),
    )?;
    for (source, name) in [("/proc", "proc"), ("/sys", "sys")] {
        let target = mount_point.join(name);
        step("creating a mount point", mkdir(&target, nix::sys::stat::Mode::from_bits_truncate(0o555)))?;
        step("binding /proc or /sys", mount(Some(source), &target, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE))?;
        step(
            "making /proc or /sys read-only",
            mount(NONE, &target, NONE, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | RO, NONE),
        )?;
    }
    step("making the new root read-only", mount(NONE, mount_point, NONE, MsFlags::MS_REMOUNT | RO, NONE))?;
    // Swap roots and drop the old one entirely.
    step("entering the new root", chdir(mount_point))?;
    step("pivot_root", pivot_root(".", "."))?;
    step("detaching the old root", umount2(".", MntFlags::MNT_DETACH))?;
    step("chdir /", chdir("/"))?;
    Ok(())
}
