//! The front's demotion, as one ordered function. After it returns the front runs as an
//! unprivileged user with no capabilities in any set, no_new_privs, no way to create processes,
//! no core dumps and a memory ceiling. Each step depends on the ones before it: the bounding
//! set can only be emptied while CAP_SETPCAP is held, groups and ids only while root.

use caps::{CapSet, CapsHashSet};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use super::dynamic_id;
use super::passwd::{self, Account};
use std::fmt;

/// The user the front runs as when none is configured and this one exists; without it the
/// front gets a uid of its own ([`dynamic_id`]), never a user shared with other services.
pub const DEDICATED_USER: &str = "qemu-ga-rs";

#[derive(Debug)]
pub enum DemoteError {
    UnknownUser(String),
    LookupFailed(String, std::io::Error),
    NoDynamicId(std::io::Error),
    Step(&'static str, String),
    StillPrivileged(&'static str),
}

impl fmt::Display for DemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoteError::UnknownUser(u) => write!(f, "unknown user '{u}'"),
            DemoteError::LookupFailed(u, e) => write!(f, "cannot look up user '{u}' in {}: {e}", passwd::PASSWD),
            DemoteError::NoDynamicId(e) => write!(f, "cannot choose a user id of the front's own: {e}"),
            DemoteError::Step(step, e) => write!(f, "{step} failed: {e}"),
            DemoteError::StillPrivileged(what) => write!(f, "demotion check failed: {what}"),
        }
    }
}

/// Who the front became.
pub struct Demoted {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Who the front is to become, as far as `/etc/passwd` says.
pub enum Choice {
    /// The configured user, or the dedicated one.
    Account(Account),
    /// Neither exists: a uid no one else has, chosen by [`dynamic_id::pick`]. That choice scans
    /// every process, so start-up makes it while the helper starts ([`pick_dynamic`]).
    Dynamic,
    /// Neither exists, and the id the last start chose is taken back without scanning
    /// ([`dynamic_id::plan`]): the helper is asked to scan.
    Recorded(Account),
}

/// Resolves the configured user, or the default choice, from `/etc/passwd` (see [`passwd`]):
/// the dedicated user if it exists, else a dynamic id no one else has (chosen later).
pub fn resolve_user(configured: Option<&str>) -> Result<Choice, DemoteError> {
    let path = std::path::Path::new(passwd::PASSWD);
    let lookup = |name: &str| passwd::lookup_in(path, name).map_err(|e| DemoteError::LookupFailed(name.into(), e));
    match configured {
        Some(name) => Ok(Choice::Account(lookup(name)?.ok_or_else(|| DemoteError::UnknownUser(name.into()))?)),
        None => Ok(lookup(DEDICATED_USER)?.map_or(Choice::Dynamic, Choice::Account)),
    }
}

/// Chooses the dynamic id ([`dynamic_id::pick`]).
pub fn pick_dynamic() -> Result<Account, DemoteError> {
    dynamic_id::pick().map_err(DemoteError::NoDynamicId)
}

fn step<T, E: fmt::Display>(name: &'static str, r: Result<T, E>) -> Result<T, DemoteError> {
    r.map_err(|e| DemoteError::Step(name, e.to_string()))
}

/// Demotes the front. Started as root it becomes `user`; started as anyone else it keeps its
/// ids and still gives up whatever capabilities it has.
pub fn demote(user: Option<&Account>) -> Result<Demoted, DemoteError> {
    let was_root = Uid::effective().is_root();
    // 1. Empty the bounding set while CAP_SETPCAP is still held, so no later exec (there is
    //    none, but defence in depth) could regain a capability.
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        step("dropping the capability bounding set", caps::clear(None, CapSet::Bounding))?;
    }
    // 2-4. Supplementary groups, then gid, then uid: each needs the privileges the next one drops.
    let (name, uid, gid) = match (was_root, user) {
        (true, Some(u)) => {
            step("setgroups", setgroups(&[]))?;
            let (uid, gid) = (Uid::from_raw(u.uid), Gid::from_raw(u.gid));
            step("setresgid", setresgid(gid, gid, gid))?;
            step("setresuid", setresuid(uid, uid, uid))?;
            (u.name.clone(), u.uid, u.gid)
        }
        _ => (String::from("(unchanged)"), Uid::current().as_raw(), Gid::current().as_raw()),
    };
    // 5. Every capability set empty (setuid already cleared permitted and effective for a
    //    former root; inheritable and ambient need clearing explicitly).
    step("clearing ambient capabilities", caps::clear(None, CapSet::Ambient))?;
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        step("clearing capabilities", caps::set(None, set, &CapsHashSet::new()))?;
    }
    // 5b. Not dumpable, explicitly (a uid change usually clears it, but that depends on
    //    fs.suid_dumpable): its /proc files stay root's, and no process can ptrace it or read
    //    its memory.
    step("clearing dumpable", nix::sys::prctl::set_dumpable(false))?;
    // 6. no_new_privs: nothing executed from here on could gain privileges.
    step("setting no_new_privs", nix::sys::prctl::set_no_new_privs())?;
    // 7. No new processes (the front never forks after start-up) and no core dumps, which
    //    could hold request data.
    step("limiting processes", setrlimit(Resource::RLIMIT_NPROC, 0, 0))?;
    step("disabling core dumps", setrlimit(Resource::RLIMIT_CORE, 0, 0))?;
    //    A memory ceiling sized from the largest legal request and reply: past it the front
    //    fails an allocation and ends, instead of the guest running out of memory.
    let ceiling =
        crate::server::MEMORY_CEILING.min(step("reading the memory limit", getrlimit(Resource::RLIMIT_DATA))?.1);
    step("limiting memory", setrlimit(Resource::RLIMIT_DATA, ceiling, ceiling))?;
    // 8. Check the result rather than trust it.
    if was_root && user.is_some() && (Uid::current().is_root() || Uid::effective().is_root()) {
        return Err(DemoteError::StillPrivileged("still uid 0"));
    }
    if nix::sys::prctl::get_dumpable().unwrap_or(true) {
        return Err(DemoteError::StillPrivileged("still dumpable"));
    }
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        if !caps::read(None, set).map(|s| s.is_empty()).unwrap_or(false) {
            return Err(DemoteError::StillPrivileged("a capability set is not empty"));
        }
    }
    Ok(Demoted { user: name, uid, gid })
}
