//! The front's view of the filesystem. When no `guest-file-*` command is enabled: a private
//! mount namespace whose root is an empty read-only tmpfs holding only a read-only procfs of
//! its own (network statistics, cpu and disk counters), a read-only sysfs (vcpus) and
//! read-only binds of exactly the guest files the enabled host queries read (os-release, the
//! time zone, utmp: [`query_files`]). Everything the front needs
//! beyond that is already open (channel, log, state file, helper socket, syslog socket). With
//! file commands enabled the front keeps the real filesystem (those commands are defined on
//! it; the front's own user and seccomp filter confine them) under a procfs of its own. Either
//! way its /proc lists no other process.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{chdir, chroot, mkdir, pivot_root};
use std::fmt;
use std::path::{Path, PathBuf};

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
const NONE: Option<&str> = None;

/// procfs options: processes the front cannot ptrace-read are not listed at all. The front's
/// uid is its own (no other process has it) and it is not dumpable, so it sees itself only.
const PROC_OPTIONS: &str = "hidepid=2";

/// A mount namespace of the front's own: nothing mounted in it is seen by the guest.
/// `propagation` says whether the guest's later mounts still reach it (`MS_SLAVE`: the file
/// commands see a filesystem mounted after the agent started) or not (`MS_PRIVATE`).
fn own_namespace(propagation: MsFlags) -> Result<(), ViewError> {
    step("unshare(CLONE_NEWNS)", unshare(CloneFlags::CLONE_NEWNS))?;
    step("making mounts one-way", mount(NONE, "/", NONE, MsFlags::MS_REC | propagation, NONE))
}

/// A procfs instance of the front's own at `target`, read-only, listing no other process.
fn mount_own_proc(target: &Path) -> Result<(), ViewError> {
    step("mounting a procfs of its own", mount(Some("proc"), target, Some("proc"), RO, Some(PROC_OPTIONS)))
}

/// The guest files the host queries read, each needed only while its command is enabled:
/// utmp (guest-get-users), /etc/localtime (guest-get-timezone) and the os-release files
/// (guest-get-osinfo). A missing file is left out of the view, as the command then answers as
/// 7.2 does without it.
pub fn query_files(policy: &qga_policy::Policy) -> Vec<PathBuf> {
    use qga_policy::Command;
    let mut files = Vec::new();
    if policy.is_enabled(Command::GetUsers) {
        files.push(PathBuf::from("/var/run/utmp"));
    }
    if policy.is_enabled(Command::GetTimezone) {
        files.push(PathBuf::from("/etc/localtime"));
    }
    if policy.is_enabled(Command::GetOsinfo) {
        files.extend(crate::commands::osinfo::os_release_paths());
    }
    files
}

/// Binds one guest file, read-only, at the same path in the new root. The bind follows
/// symbolic links (/etc/localtime to its zone file, /var/run to /run) and holds the file as
/// it is now: one rewritten in place (utmp) stays current, one replaced by another file (a new
/// time zone link) shows after a restart.
fn bind_file(root: &Path, source: &Path) -> Result<(), ViewError> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_file() && source.is_absolute() => {}
        _ => return Ok(()),
    }
    let relative = source.strip_prefix("/").unwrap_or(source);
    let target = root.join(relative);
    let mut dir = root.to_path_buf();
    for part in relative.parent().into_iter().flat_map(|p| p.components()) {
        dir.push(part);
        match mkdir(&dir, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(errno) => return Err(ViewError { step: "creating a directory for a query file", errno }),
        }
    }
    std::fs::File::create(&target).map_err(|e| ViewError {
        step: "creating a mount point for a query file",
        errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    step("binding a query file", mount(Some(source), &target, NONE, MsFlags::MS_BIND, NONE))?;
    step("making a query file read-only", mount(NONE, &target, NONE, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | RO, NONE))
}

/// Replaces the front's root with the empty view. `mount_point` is any existing directory
/// (the state directory): the new root is mounted over it inside the private namespace only,
/// so no one else sees it. /proc and /sys are fresh instances rather than binds of the guest's,
/// so no submount of the guest's (securityfs, cgroup, debugfs, binfmt_misc...) comes along:
/// every mount in the view is read-only.
pub fn enter_empty_view(mount_point: &Path, files: &[PathBuf]) -> Result<(), ViewError> {
    own_namespace(MsFlags::MS_PRIVATE)?;
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
    for name in ["proc", "sys"] {
        step(
            "creating a mount point",
            mkdir(&mount_point.join(name), nix::sys::stat::Mode::from_bits_truncate(0o555)),
        )?;
    }
    mount_own_proc(&mount_point.join("proc"))?;
    step("mounting sysfs", mount(Some("sysfs"), &mount_point.join("sys"), Some("sysfs"), RO, NONE))?;
    for file in files {
        bind_file(mount_point, file)?;
    }
    step("making the new root read-only", mount(NONE, mount_point, NONE, MsFlags::MS_REMOUNT | RO, NONE))?;
    step("entering the new root", chdir(mount_point))?;
    match pivot_root(".", ".") {
        // Swap roots and drop the old one entirely.
        Ok(()) => step("detaching the old root", umount2(".", MntFlags::MNT_DETACH))?,
        // A guest running from its initramfs has the initial rootfs as its root, which can
        // never be pivoted away (EINVAL). Do what switch_root does there: move the new root
        // over / (in this namespace only) and make it the process's root. The old root stays
        // underneath, unreachable: the front holds no directory outside the view and, once
        // demoted, has no CAP_SYS_CHROOT or CAP_SYS_ADMIN to climb out or unmount.
        Err(nix::errno::Errno::EINVAL) => {
            step("moving the new root over the initial rootfs", mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE))?;
            step("chroot into the new root", chroot("."))?;
        }
        Err(errno) => return Err(ViewError { step: "pivot_root", errno }),
    }
    step("chdir /", chdir("/"))?;
    Ok(())
}

/// With file commands the front keeps the real filesystem, including what the guest mounts
/// later, but its /proc is a procfs of its own that lists no other process: the guest's
/// processes are neither listed nor reachable through /proc/PID/{environ,mem,root}.
pub fn enter_own_proc() -> Result<(), ViewError> {
    own_namespace(MsFlags::MS_SLAVE)?;
    mount_own_proc(Path::new("/proc"))
}
