//! Start-up, in order: policy (fail closed), state, log, channel, daemon, helper, demotion,
//! signals — and only then the first byte from the host is read.

use crate::channel;
use crate::commands::{file::Handles, Agent};
use crate::config::SandboxMode;
use crate::config::{Config, NamedRpc};
use crate::privsep::{demote, dynamic_id, link::HelperLink, seccomp, spawn, view};
use crate::server::{Exit, Server};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use qga_policy::record::SandboxRecord;
use qga_policy::reload::{ConfigFile, SOURCE_CONFIG_ALLOW, SOURCE_CONFIG_BLACKLIST, SOURCE_CONFIG_BLOCK};
use qga_policy::trust;
use qga_policy::{Effective, ListEntry, Policy, PolicyError};
use qga_protocol::{frozen, helper_args, placement};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Exit status when start-up fails (7.2 uses 1 throughout).
pub const EXIT_FAILURE: i32 = 1;

/// The persistent state file's name inside the state directory (7.2's).
const STATE_FILE: &str = "qga.state";
/// Audit records held while frozen, kept where a freeze cannot reach (see `audit`).
const AUDIT_SPILL: &str = "qga-rs.audit-held";

/// The start-up sandbox record inside the state directory (what a reload cannot change, see
/// `qga_policy::record`), so that `--check-policy` can tell whether a reload can apply a file.
pub const SANDBOX_RECORD: &str = "qga-rs.sandbox";

fn entries(list: &[NamedRpc]) -> Vec<ListEntry> {
    list.iter().map(|r| ListEntry::new(r.name.clone(), r.source.clone())).collect()
}

/// The effective policy: the policy file (or the shipped default) merged with the block and
/// allow lists. Anything not fully understood is an error, and so is a policy file that
/// someone other than root or the agent's user could have written (see [`trust`]).
pub fn effective_policy(config: &Config, file: Option<&Path>) -> Result<Effective, PolicyError> {
    let explicit = file.or(config.policy.as_deref());
    qga_policy::reload::effective(explicit, &entries(&config.block_rpcs), &entries(&config.allow_rpcs))
}

/// Opens a file that start-up needs before giving up root, outside the state directory (the
/// pidfile, the log), with the checks of [`trust`]. While frozen nothing may be created
/// (creating on a frozen filesystem blocks), so only an existing file is opened.
fn open_for_writing(path: &Path, append: bool, frozen: bool, mode: u32) -> Result<File, trust::Untrusted> {
    trust::open_file_to_write(path, trust::WriteOpen { append, create: !frozen, mode })
}

/// Whether `file` (opened read-write at its start) holds exactly `text`.
fn holds_exactly(file: &mut File, text: &[u8]) -> bool {
    use std::io::Read;
    // One byte more than the text: a longer file does not hold exactly it.
    let mut held = Vec::with_capacity(text.len() + 1);
    Read::by_ref(file).take(text.len() as u64 + 1).read_to_end(&mut held).is_ok() && held == text
}

/// Runs the agent without a config file to re-read on a reload; returns the process exit status.
pub fn run(config: Config) -> i32 {
    run_with(config, None)
}

/// Runs the agent; `config_file` is the config file start-up looked for, which a policy reload
/// re-reads for its lists. Returns the process exit status.
pub fn run_with(mut config: Config, config_file: Option<ConfigFile>) -> i32 {
    if let Err(e) = block_termination_signals() {
        eprintln!("qemu-ga-rs: failed to set up signal handling: {e}");
        return EXIT_FAILURE;
    }
    // Before anything drops the environment or builds the front's view (it binds that file).
    crate::commands::osinfo::take_override_from_environment();
    // The helper takes absolute paths only; resolve relative ones against the start directory
    // (before a daemon changes it).
    for path in
        [Some(&mut config.statedir), config.fsfreeze_hook.as_mut(), config.policy.as_mut()].into_iter().flatten()
    {
        if let Ok(abs) = std::path::absolute(&*path) {
            *path = abs;
        }
    }
    crate::alloc_tuning::apply();
    // 1. The policy, before anything else: never start with one not fully understood.
    let effective = match effective_policy(&config, None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("qemu-ga-rs: {e}");
            return EXIT_FAILURE;
        }
    };
    let policy = effective.policy().clone();
    let file_access = qga_policy::reload::needs_files(&policy);

    // The freeze hook root runs (a missing one is reported when it is run, as 7.2 does).
    if let Some(hook) = &config.fsfreeze_hook {
        match trust::check_hook(hook) {
            Err(e) if !e.is_not_found() => {
                eprintln!("qemu-ga-rs: fsfreeze hook refused: {e}");
                return EXIT_FAILURE;
            }
            _ => {}
        }
    }

    // 2. The state directory, opened once and checked (see trust); the helper gets its resolved
    //    path. Restart while frozen: come up frozen (7.2's check_is_frozen), decided as the
    //    helper decides it.
    let statedir = match trust::open_directory_to_write_in(&config.statedir) {
        Ok((dir, resolved)) => {
            config.statedir = resolved;
            dir
        }
        Err(e) => {
            eprintln!("qemu-ga-rs: state directory refused: {e}");
            return EXIT_FAILURE;
        }
    };
    let marker = frozen::marker_path(&config.statedir);
    let frozen = frozen::marker_exists(&marker);
    // Persistent state (handle counter), inside the directory just opened.
    let how = trust::WriteOpen { append: false, create: !frozen, mode: 0o600 };
    let state = match trust::open_file_to_write_in(&statedir, &config.statedir, OsStr::new(STATE_FILE), how) {
        Ok(f) => Ok(f),
        Err(e) if frozen && e.is_not_found() => Err(e),
        Err(e) => {
            eprintln!("qemu-ga-rs: unable to open the state file: {e}");
            return EXIT_FAILURE;
        }
    };
    // The sandbox record (not while frozen: writing to a frozen filesystem blocks).
    if !frozen {
        let how = trust::WriteOpen { append: false, create: true, mode: 0o644 };
        let text = SandboxRecord::of(&policy, config.sandbox != SandboxMode::Off).render();
        let written = trust::open_file_to_write_in(&statedir, &config.statedir, OsStr::new(SANDBOX_RECORD), how)
            .map_err(|e| e.to_string())
            .and_then(|mut f| {
                // Most starts find the record as they would write it: left alone, it costs no
                // truncation and no write (on ext4, truncating and rewriting a file forces its
                // blocks out at close).
                if holds_exactly(&mut f, text.as_bytes()) {
                    return Ok(());
                }
                // At offset 0: the comparison read moved the file's own offset.
                f.set_len(0).and_then(|()| f.write_all_at(text.as_bytes(), 0)).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("qemu-ga-rs: warning: start-up sandbox record not written: {e}");
        }
    }
    // Audit records held while frozen also go to a spill file, but only where the state
    // directory is on a filesystem that cannot be frozen (tmpfs, ramfs: FIFREEZE does not
    // apply to them, as /run): a front killed while frozen then loses none, the next start
    // writes them out. Elsewhere a write there could block on the freeze: no spill file.
    let audit_spill = if config.audit != crate::audit::Scope::Off && cannot_be_frozen(&statedir) {
        let how = trust::WriteOpen { append: false, create: true, mode: 0o600 };
        match trust::open_file_to_write_in(&statedir, &config.statedir, OsStr::new(AUDIT_SPILL), how) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("qemu-ga-rs: warning: audit spill file not opened: {e}");
                None
            }
        }
    } else {
        None
    };

    // 3. The log.
    let logfile = match &config.logfile {
        Some(p) => match open_for_writing(p, true, frozen, 0o640) {
            Ok(f) => Some(f),
            Err(e) if frozen => {
                eprintln!("qemu-ga-rs: log file not opened while frozen ({e}); logging to stderr");
                None
            }
            Err(e) => {
                eprintln!("qemu-ga-rs: unable to open specified log file: {e}");
                return EXIT_FAILURE;
            }
        },
        None => None,
    };
    crate::log::init(logfile, true, config.verbose);
    // The audit trail's file: opened like the log (append, 0600: records name paths).
    let audit_file = match &config.audit_file {
        Some(p) if config.audit != crate::audit::Scope::Off => match open_for_writing(p, true, frozen, 0o600) {
            Ok(f) => Some(f),
            Err(e) if frozen => {
                crate::warning!("audit file not opened while frozen ({e}); auditing to syslog only");
                None
            }
            Err(e) => {
                crate::error!("unable to open the audit file: {e}");
                return EXIT_FAILURE;
            }
        },
        _ => None,
    };
    let audit_spill_fd = audit_spill.as_ref().map(AsRawFd::as_raw_fd);
    crate::audit::init(config.audit, config.method.name(), audit_file, audit_spill);
    // Records a previous instance held when it stopped frozen: written now, or kept with the
    // new ones until thaw when this start is frozen too.
    if !frozen {
        crate::audit::set_frozen(false);
    }
    for w in effective.warnings() {
        crate::warning!("{w}");
    }
    let state = match state {
        Ok(f) => Some(f),
        Err(e) => {
            crate::warning!("state file not created while frozen ({e}); file handles are not persisted");
            None
        }
    };
    if frozen {
        crate::warning!(
            "previous instance appears to have exited with frozen filesystems. deferring logging/pidfile creation and \
             disabling non-fsfreeze-safe commands until guest-fsfreeze-thaw is issued, or filesystems are manually \
             unfrozen and the file {} is removed",
            marker.display()
        );
        crate::log::set_frozen(true);
    }

    // 4. The channel (a missing device is waited for).
    let channel = match channel::open(config.method, config.path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            crate::error!("failed to open channel: {e}");
            return EXIT_FAILURE;
        }
    };

    // 5. Daemonize after the channel opened, then the pidfile (deferred while frozen).
    let mut pidfile_on_thaw = None;
    if config.daemonize {
        if let Err(e) = daemonize() {
            crate::error!("failed to daemonize: {e}");
            return EXIT_FAILURE;
        }
        match open_for_writing(&config.pidfile, false, frozen, 0o644) {
            Ok(mut f) if !frozen => {
                let _ = f.set_len(0);
                let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
            }
            Ok(f) => pidfile_on_thaw = Some(f),
            Err(e) => crate::warning!("pidfile not written: {e}"),
        }
    }

    // 6. Who the front becomes (checked before anything is started).
    let running_as_root = nix::unistd::Uid::effective().is_root();
    let choice = if running_as_root {
        match demote::resolve_user(config.user.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::error!("{e}");
                return EXIT_FAILURE;
            }
        }
    } else {
        crate::warning!(
            "not started as root: the front keeps uid {}; privileged commands will fail",
            nix::unistd::Uid::current()
        );
        None
    };
    // A dynamic id: the one recorded by the last start, when the cheap checks allow (the
    // helper then reads every process in the background of this start-up, see
    // qga_protocol::front_id); else a fresh one, chosen by reading every process (most of a
    // start-up's time), on a thread of its own while the helper is spawned (the spawn waits
    // for the helper's exec), joined before anything that needs the front single-threaded
    // (the mount namespace, the ids). The helper's own processes use root's ids, so starting
    // it first changes nothing the scan decides.
    // Not while frozen: the record could not be written, nor removed by the helper (a write
    // to a frozen filesystem blocks); a restart while frozen reads every process itself.
    let (choice, id_record) = match choice {
        Some(demote::Choice::Dynamic) if !frozen => match dynamic_id::plan(&statedir, &config.statedir) {
            dynamic_id::Plan::Recorded(account) => (Some(demote::Choice::Recorded(account)), None),
            dynamic_id::Plan::Fresh(record) => (Some(demote::Choice::Dynamic), record),
        },
        other => (other, None),
    };
    drop(statedir);
    let dynamic = matches!(choice, Some(demote::Choice::Dynamic)).then(|| std::thread::spawn(demote::pick_dynamic));
    // 7. The privileged helper, with the policy it re-checks every request against.
    //    Front and helper share one CPU, the one the front runs on now (see placement).
    let cpu = placement::current_cpu();
    //    The helper starts in the background (see spawn): the front's first answer waits for none
    //    of its start-up.
    //    Only as root: leaving SCHED_IDLE takes privilege (CAP_SYS_NICE, or RLIMIT_NICE raised
    //    by root), and a helper that cannot leave it would refuse to serve.
    let background = running_as_root && spawn::background_possible();
    let verify_front_id = match &choice {
        Some(demote::Choice::Recorded(account)) => Some(account.uid),
        _ => None,
    };
    let reload =
        ReloadArgs { config_file: config_file.as_ref(), front_files: file_access, background, verify_front_id };
    let spawned = spawn::spawn_with(&spawn::helper_path(), &helper_args(&config, &policy, cpu, reload), background);
    let user = match (choice, dynamic.map(std::thread::JoinHandle::join)) {
        (Some(demote::Choice::Account(u) | demote::Choice::Recorded(u)), _) => Some(u),
        (_, Some(Ok(Ok(u)))) => {
            if let Some(record) = &id_record {
                if let Err(e) = record.write(u.uid) {
                    crate::warning!("the front's id is not recorded: {e}");
                }
            }
            Some(u)
        }
        (_, Some(Ok(Err(e)))) => {
            crate::error!("{e}");
            return EXIT_FAILURE;
        }
        (_, Some(Err(_))) => {
            crate::error!("choosing the front's user id failed");
            return EXIT_FAILURE;
        }
        (_, None) => None,
    };
    let helper = match spawned {
        Ok(h) => h,
        Err(e) => {
            crate::error!("failed to start the privileged helper: {e}");
            return EXIT_FAILURE;
        }
    };

    if let Some(cpu) = cpu {
        if let Err(e) = placement::pin_to(cpu) {
            crate::warning!("cannot keep to CPU {cpu} with the helper: {e}; running unpinned");
        }
    }

    // 8. Without file commands the front needs no filesystem: give it an empty one. With
    //    them, the real one under a /proc that shows no other process.
    if running_as_root && config.sandbox != SandboxMode::Off {
        let view = if file_access {
            view::enter_own_proc()
        } else {
            view::enter_empty_view(&config.statedir, &view::query_files(&policy))
        };
        if let Err(e) = view {
            crate::error!("{e}");
            return EXIT_FAILURE;
        }
    }

    // 9. Demotion.
    match demote::demote(user.as_ref()) {
        Ok(d) => crate::debug!("front demoted to {} (uid {}, gid {})", d.user, d.uid, d.gid),
        Err(e) => {
            crate::error!("failed to drop privileges: {e}");
            return EXIT_FAILURE;
        }
    }
    clear_environment();

    // 10. Signals arrive through a descriptor in the poll loop.
    let signals = match termination_signals() {
        Ok(s) => s,
        Err(e) => {
            crate::error!("failed to set up signal handling: {e}");
            return EXIT_FAILURE;
        }
    };

    // 11. Serve. The descriptors the filter lets the front truncate: the pidfile rewritten
    //     after a thaw and, with file commands, the state file holding the handle counter.
    //     And the audit spill file, emptied after each thaw.
    let truncatable: Vec<RawFd> = pidfile_on_thaw
        .iter()
        .chain(state.iter().filter(|_| file_access))
        .map(AsRawFd::as_raw_fd)
        .chain(audit_spill_fd)
        .collect();
    let agent = Agent {
        policy,
        frozen,
        files: Handles::new(state),
        helper: HelperLink::new(helper.socket),
        pidfile_on_thaw,
        file_access,
    };
    // The held files' watch, before the filter (which does not allow creating one): only
    // when an enabled command reads them (the files the empty view would bind); without it
    // they are read on every request.
    if !view::query_files(&agent.policy).is_empty() {
        if let Err(e) = crate::commands::watch::start() {
            crate::warning!("held files are read on every request: cannot watch for changes: {e}");
        }
    }
    let mut server = match Server::new(channel, agent, helper.child, helper.log, signals) {
        Ok(s) => s,
        Err(e) => {
            crate::error!("failed to set up the poll loop: {e}");
            return EXIT_FAILURE;
        }
    };
    // 12. The front's seccomp filter, last: everything it had to set up is set up.
    if let Err(e) = seccomp::apply(file_access, &truncatable, config.sandbox) {
        crate::error!("{e}");
        return EXIT_FAILURE;
    }
    // Started: the code that ran only for that is given back once the loop is first idle.
    let status = server.run();
    // Filesystems are thawed (the helper thaws before it confirms quitting or exits): write
    // what the log held.
    crate::log::set_frozen(false);
    match status {
        Exit::Signal => 0,
        Exit::HelperLost(why) | Exit::Error(why) => {
            crate::error!("{why}");
            EXIT_FAILURE
        }
    }
}

/// What the helper needs to re-read the policy on a reload, as start-up resolved it.
struct ReloadArgs<'a> {
    config_file: Option<&'a ConfigFile>,
    /// The front's sandbox includes the file commands.
    front_files: bool,
    /// The helper is started under SCHED_IDLE.
    background: bool,
    /// The front's recorded dynamic id, taken back without reading every process: the helper
    /// reads them.
    verify_front_id: Option<u32>,
}

/// The command line's part of a list (the config file's part is re-read by the helper).
fn command_line_entries(list: &[NamedRpc], source: &str) -> Vec<ListEntry> {
    let config_sources = [SOURCE_CONFIG_BLOCK, SOURCE_CONFIG_BLACKLIST, SOURCE_CONFIG_ALLOW];
    list.iter()
        .filter(|r| !config_sources.contains(&r.source.as_str()))
        .map(|r| ListEntry::new(&r.name, source))
        .collect()
}

fn helper_args(config: &Config, policy: &Policy, cpu: Option<usize>, reload: ReloadArgs) -> Vec<OsString> {
    helper_args::Args {
        statedir: config.statedir.clone(),
        enabled: helper_args::helper_commands(policy),
        hook: config.fsfreeze_hook.clone(),
        hook_timeout: helper_args::DEFAULT_HOOK_TIMEOUT,
        freeze_timeout: config.fsfreeze_timeout.map(std::time::Duration::from_secs),
        sandbox: config.sandbox,
        cpu,
        reload: qga_policy::reload::Sources {
            policy: config.policy.clone(),
            config: reload.config_file.cloned(),
            block: command_line_entries(&config.block_rpcs, helper_args::CLI_BLOCK_SOURCE),
            allow: command_line_entries(&config.allow_rpcs, helper_args::CLI_ALLOW_SOURCE),
        },
        front_files: reload.front_files,
        background_start: reload.background,
        verify_front_id: reload.verify_front_id,
    }
    .to_argv()
}

/// The front keeps nothing from its environment.
fn clear_environment() {
    // SAFETY: single-threaded at this point, and nothing holds a reference into the
    // environment. Each string is overwritten in place (so its bytes are gone from memory and
    // from /proc/PID/environ), then clearenv drops the table itself.
    unsafe {
        extern "C" {
            static mut environ: *mut *mut nix::libc::c_char;
        }
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry;
            std::ptr::write_bytes(text, 0, nix::libc::strlen(text));
            entry = entry.add(1);
        }
        nix::libc::clearenv();
    }
}

/// The signals the poll loop takes through a descriptor: stop (SIGTERM, SIGINT) and reload
/// (SIGHUP).
fn termination_set() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask
}

/// Blocked from the first step on: one that arrives during start-up (a service manager
/// stopping the agent as it starts, a client that connects and at once tears it down) waits,
/// and the loop takes it as its first event, stops the helper and exits 0, instead of the
/// default action killing the front halfway through its start-up. Threads and forks inherit
/// the mask; the helper's spawn resets it, as every spawn does.
fn block_termination_signals() -> nix::Result<()> {
    termination_set().thread_block()
}

fn termination_signals() -> nix::Result<SignalFd> {
    let mask = termination_set();
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// 7.2's become_daemon: fork (the parent exits), new session, / as cwd, stdio on /dev/null.
fn daemonize() -> nix::Result<()> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: single-threaded at this point; the child continues normally and the parent
    // exits at once without running any more of the program.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid()?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    nix::unistd::chdir("/")?;
    let null = OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|_| nix::errno::Errno::EIO)?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        unsafe {
            nix::libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
        }
    }
    Ok(())
}

/// Whether `dir` is on a filesystem that cannot be frozen (FIFREEZE needs a block device's
/// superblock: tmpfs and ramfs have none).
fn cannot_be_frozen(dir: &impl std::os::fd::AsFd) -> bool {
    use nix::sys::statfs::{fstatfs, FsType, TMPFS_MAGIC};
    // <linux/magic.h>'s RAMFS_MAGIC (nix does not name it).
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    fstatfs(dir).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC || s.filesystem_type() == RAMFS_MAGIC)
}
