//! Dropping privileges: the one ordered function that takes the helper from full root to the
//! three capabilities its operations need, called once at start-up after the launcher has been
//! forked and before the first request is read. The seccomp filter ([`crate::seccomp`]) goes right after.
//!
//! The helper stays uid 0: the files it writes (sysfs `online`, `/sys/power/state`, the state
//! directory's marker, `/dev/rtc0`) are root-owned, so owner permissions suffice and no
//! DAC-override capability is kept.

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::sys::prctl;
use nix::unistd::geteuid;

use crate::log;

/// What the helper keeps, each with the reason.
pub const KEEP: [(Capability, &str); 3] = [
    // FIFREEZE, FITHAW and FITRIM are CAP_SYS_ADMIN-only ioctls.
    (Capability::CAP_SYS_ADMIN, "FIFREEZE/FITHAW/FITRIM"),
    // settimeofday and RTC_SET_TIME need CAP_SYS_TIME.
    (Capability::CAP_SYS_TIME, "settimeofday and RTC_SET_TIME"),
    // Mount points may be directories root cannot read by mode; opening them for the
    // freeze/trim ioctls needs read and search permission whatever their mode.
    (Capability::CAP_DAC_READ_SEARCH, "opening every mount point"),
];

/// How the helper came out of [`demote`].
#[derive(Debug, PartialEq, Eq)]
pub enum Demoted {
    /// Capabilities reduced to this set.
    Reduced(Vec<Capability>),
    /// Not started as root: no capability to drop; operations fail with their errno texts.
    NotRoot,
}

#[derive(Debug)]
pub enum DemoteError {
    Caps {
        step: &'static str,
        error: String,
    },
    NoNewPrivs(Errno),
    /// The state read back is not the one set: refuse to serve.
    Verify(String),
}

impl std::fmt::Display for DemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoteError::Caps { step, error } => write!(f, "failed to {step}: {error}"),
            DemoteError::NoNewPrivs(e) => write!(f, "failed to set no_new_privs: {}", e.desc()),
            DemoteError::Verify(what) => write!(f, "privilege drop did not take effect: {what}"),
        }
    }
}

impl std::error::Error for DemoteError {}

fn caps_err(step: &'static str) -> impl Fn(caps::errors::CapsError) -> DemoteError {
    move |e| DemoteError::Caps { step, error: e.to_string() }
}

/// The capabilities to keep among those the helper has (a container may lack some).
pub fn keep_set(permitted: &CapsHashSet) -> CapsHashSet {
    KEEP.iter().map(|(c, _)| *c).filter(|c| permitted.contains(c)).collect()
}

/// Drops every capability but [`KEEP`] from the bounding, ambient, inheritable, permitted and
/// effective sets, sets no_new_privs and makes the process non-dumpable, then reads the state
/// back and fails if it is not what was set.
pub fn demote() -> Result<Demoted, DemoteError> {
    demote_to(&KEEP)
}

/// What the statfs probe keeps: it only resolves mount point paths for statfs, which may lie
/// below directories root cannot search by mode.
pub const PROBE_KEEP: [(Capability, &str); 1] = [(Capability::CAP_DAC_READ_SEARCH, "statfs of every mount point")];

/// [`demote`] to another kept set (the statfs probe's).
pub fn demote_to(wanted: &[(Capability, &str)]) -> Result<Demoted, DemoteError> {
    if !geteuid().is_root() {
        // Nothing to drop; no_new_privs still closes setuid/file-capability gains.
        prctl::set_no_new_privs().map_err(DemoteError::NoNewPrivs)?;
        return Ok(Demoted::NotRoot);
    }

    let permitted = caps::read(None, CapSet::Permitted).map_err(caps_err("read the permitted set"))?;
    let keep: CapsHashSet = wanted.iter().map(|(c, _)| *c).filter(|c| permitted.contains(c)).collect();
    for &(cap, why) in wanted {
        if !keep.contains(&cap) {
            log!("{cap} is not available; {why} will fail");
        }
    }

    // 1. Bounding set first, while CAP_SETPCAP is still effective: no later exec can regain
    //    what is dropped here.
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_err("drop a capability from the bounding set"))?;
        }
    }
    // 2. Ambient: nothing may be passed on (kernels without ambient capabilities have none).
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(caps_err("clear the ambient set"))?;
    }
    // 3. Inheritable: empty.
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear the inheritable set"))?;
    // 4. Effective before permitted: effective must stay a subset of permitted at each step.
    caps::set(None, CapSet::Effective, &keep).map_err(caps_err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(caps_err("set the permitted set"))?;
    // 5. No privilege gain through exec, and no core dumps or ptrace by non-privileged peers.
    prctl::set_no_new_privs().map_err(DemoteError::NoNewPrivs)?;
    prctl::set_dumpable(false).map_err(|e| DemoteError::Caps { step: "clear dumpable", error: e.desc().to_owned() })?;

    verify(&keep)?;
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    Ok(Demoted::Reduced(kept))
}

/// Like OpenSSH's demote check: read everything back rather than trust the calls.
fn verify(keep: &CapsHashSet) -> Result<(), DemoteError> {
    let read = |set: CapSet| caps::read(None, set).map_err(|e| DemoteError::Verify(e.to_string()));
    if read(CapSet::Effective)? != *keep || read(CapSet::Permitted)? != *keep {
        return Err(DemoteError::Verify("effective or permitted set differs from the kept set".into()));
    }
    if !read(CapSet::Inheritable)?.is_empty() {
        return Err(DemoteError::Verify("inheritable set is not empty".into()));
    }
    if !read(CapSet::Bounding)?.is_subset(keep) {
        return Err(DemoteError::Verify("bounding set holds more than the kept set".into()));
    }
    if caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP).is_ok() {
        return Err(DemoteError::Verify("CAP_SETPCAP could be raised again".into()));
    }
    if !prctl::get_no_new_privs().unwrap_or(false) {
        return Err(DemoteError::Verify("no_new_privs is not set".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_three_capabilities_are_kept() {
        let names: Vec<String> = KEEP.iter().map(|(c, _)| c.to_string()).collect();
        assert_eq!(names, ["CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_DAC_READ_SEARCH"]);
    }

    #[test]
    fn the_kept_set_is_limited_to_what_is_held() {
        let held: CapsHashSet = [Capability::CAP_SYS_ADMIN, Capability::CAP_NET_ADMIN].into_iter().collect();
        let keep = keep_set(&held);
        assert_eq!(keep, [Capability::CAP_SYS_ADMIN].into_iter().collect());
        assert_eq!(keep_set(&caps::all()).len(), 3);
    }
}
