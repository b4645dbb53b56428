//! qemu-ga-rs-helper: the privileged half of qemu-ga-rs. The front starts it as root with
//! stdin/stdout on /dev/null, stderr on its log pipe and fd 3 on the request socketpair.
//! Start-up order matters: parse argv, ignore the signals the front handles, check the front's
//! recorded user id against every process (when the front asks), fork the launcher
//! (full root, before anything is dropped), fork the statfs probes, drop privileges, narrow the
//! filesystem (Landlock), join the front's CPU, leave the background, apply the seccomp filter,
//! then serve. The launcher is forked before the filter so that it, and what it runs, is not
//! under it. All of it normally runs in the background of the front's start-up (`background`).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::socket::{getsockopt, sockopt, SockType};
use nix::sys::stat::{fstat, SFlag};

use qga_helper::background;
use qga_helper::demote::{demote, Demoted};
use qga_helper::landlock::{self, Restricted};
use qga_helper::launcher::{self, Launcher};
use qga_helper::seccomp::{self, SandboxMode};
use qga_helper::serve::{self, exit, Server};
use qga_helper::statfs_probe::Probes;
use qga_helper::system::System;
use qga_helper::uevents::Uevents;
use qga_helper::{args, freeze, log, placement, REQUEST_FD};

fn main() {
    std::process::exit(start());
}

fn start() -> i32 {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            log!("{e}");
            log!("usage: qemu-ga-rs-helper --statedir DIR --enabled NAME[,NAME...] [--fsfreeze-hook PATH] [--hook-timeout SECS] [--cpu N] [--policy PATH] [--config PATH [--config-required]] [--cli-block NAMES] [--cli-allow NAMES] [--front-files] [--background-start] [--verify-front-id ID] [--seccomp=log | --no-sandbox]");
            return exit::USAGE;
        }
    };

    // The front handles these and sends Quit; the helper must never die of them while frozen.
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety question arises.
        if let Err(e) = unsafe { signal::signal(sig, SigHandler::SigIgn) } {
            log!("cannot ignore {sig}: {}", e.desc());
            return exit::FAILURE;
        }
    }

    if let Err(why) = check_request_fd(REQUEST_FD) {
        log!("fd {REQUEST_FD}: {why}");
        return exit::USAGE;
    }

    // The front's recorded id, taken back without reading every process: read them now,
    // before anything is started (in the background of the front's start-up, as all of this).
    if let Some(id) = args.verify_front_id {
        if let Err(why) = qga_helper::front_id::verify(id, &args.statedir) {
            log!("{why}");
            return exit::FAILURE;
        }
    }

    // While root: let every process of the helper leave SCHED_IDLE later without privileges.
    if let Err(e) = background::enter(args.background_start) {
        log!("cannot prepare to leave the background: {}", e.desc());
        return exit::FAILURE;
    }

    // Forked before fd 3 is wrapped (the launcher closes every descriptor it does not need)
    // and before privileges are dropped (programs it runs get full root).
    let thaw_marker = Some(freeze::marker_path(&args.statedir));
    let config = launcher::Config { hook: args.hook.clone(), hook_timeout: args.hook_timeout, thaw_marker };
    let launcher = match Launcher::start(config) {
        Ok(l) => l,
        Err(e) => {
            log!("{e}");
            return exit::FAILURE;
        }
    };

    // The statfs probes: forked like the launcher, before privileges are dropped; each
    // narrows itself (CAP_DAC_READ_SEARCH only, its own seccomp filter). Started whatever the
    // policy says, since a reload (SIGHUP) may enable guest-get-fsinfo later. Each is kept to
    // the front's CPU, which the helper joins too: each guest-get-fsinfo is a round trip to a
    // probe, and waking a process on another CPU costs more than the statfs itself. A probe
    // stuck on a hung mount sleeps, so it takes nothing from that CPU.
    let probes = Probes::start(args.sandbox, args.cpu);
    // The kernel's device events, which keep the storage queries' cache true: a socket, so
    // opened before the seccomp filter (which allows no socket calls); after the forks, so
    // no child holds it.
    let uevents =
        Uevents::open().map_err(|e| log!("guest-get-fsinfo and -disks read sysfs on every request: {e}")).ok();

    // Before CAP_SYS_NICE is dropped, if RLIMIT_NICE cannot stand in for it (see background).
    if let Err(e) = background::leave_while_privileged() {
        log!("cannot leave the background: {}", e.desc());
        return exit::FAILURE;
    }
    match demote() {
        Ok(Demoted::Reduced(kept)) => log!("privileges reduced to {kept:?}"),
        Ok(Demoted::NotRoot) => log!("not running as root: privileged operations will fail"),
        Err(e) => {
            log!("{e}");
            return exit::FAILURE;
        }
    }
    // After demote (no_new_privs is set) and before the seccomp filter (which does not allow
    // the Landlock calls): the filesystem narrowed to what the operations touch.
    // Where Landlock fixed guest-file-open's reach, if it did (a reload may not go beyond it).
    let mut file_reach = None;
    if args.sandbox != SandboxMode::Off {
        let reread = landlock::reread_paths(&args.reload);
        for (file, why) in &reread.files_only {
            log!(
                "reload: {} is not in a directory of its own ({why}): the helper may read that file only, so a \
                 reload after it is replaced (as editors do, renaming a new file over it) fails until a restart; \
                 keep it in a directory of its own such as /etc/qemu-ga-rs/",
                file.display()
            );
        }
        // With guest-file-open enabled at start, the directories its rules name (or `/`).
        let files = if args.front_files { qga_helper::files::landlock_paths(&args.enabled) } else { Vec::new() };
        match landlock::restrict_with_files(&args.statedir, &reread.paths, &files) {
            Ok(Restricted::Enforced(abi)) => {
                log!("landlock enforced (ABI {abi}): filesystem access narrowed");
                file_reach = Some(files);
            }
            Ok(Restricted::Unavailable(e)) => {
                log!("landlock is unavailable ({}): filesystem access not narrowed", e.desc())
            }
            Err(e) => {
                log!("{e}");
                return exit::FAILURE;
            }
        }
    }
    // Only now, after the launcher's fork (what it runs keeps the original affinity) and the
    // start-up work, which meanwhile may use a CPU the front is not using; while the affinity
    // can still be changed without a system call the filter would have to allow.
    if let Some(cpu) = args.cpu {
        if let Err(e) = placement::pin_to(cpu) {
            log!("cannot join the front on CPU {cpu}: {}; running unpinned", e.desc());
        }
    }
    // Back to SCHED_OTHER before serving (and before the filter, which does not allow it).
    if let Err(e) = background::leave() {
        log!("cannot leave the background: {}", e.desc());
        return exit::FAILURE;
    }
    // After demote (no_new_privs is set), before the first untrusted byte. From here on every
    // system call is checked against seccomp::TABLE.
    if let Err(e) = seccomp::apply(args.sandbox, args.front_files) {
        log!("{e}");
        return exit::FAILURE;
    }
    match args.sandbox {
        SandboxMode::Enforce => log!("seccomp filter applied"),
        SandboxMode::Log => log!("seccomp filter applied in log mode (--seccomp=log): violations are only logged"),
        SandboxMode::Off => log!("no seccomp filter (--no-sandbox)"),
    }

    let marker = freeze::marker_path(&args.statedir);
    let frozen = freeze::marker_exists(&marker);
    if frozen {
        log!("{} exists: a previous instance left filesystems frozen; starting frozen", marker.display());
    }

    // SAFETY: fd 3 was checked above to be an open socket; by the start-up contract nothing
    // else in this process owns it, and from here on only this UnixStream does.
    let mut chan = unsafe { UnixStream::from_raw_fd(REQUEST_FD) };
    let ops = System::new(launcher, &args.statedir, args.hook, args.hook_timeout, probes)
        .with_reload_sources(args.reload)
        .with_uevents(uevents);
    let mut server = Server::new(ops, args.enabled, frozen)
        .with_front_files(args.front_files)
        .with_file_reach(file_reach)
        .with_freeze_timeout(args.freeze_timeout);
    // Started: the code that ran only for that need not stay mapped (see protocol::idle).
    qga_helper::protocol::idle::release_startup_pages();
    let status = serve::run(&mut server, &mut chan);
    log!("exiting with status {status}");
    status
}

/// fd 3 must be an open stream socket; mark it close-on-exec so no program can inherit it.
fn check_request_fd(fd: RawFd) -> Result<(), String> {
    // SAFETY: the descriptor is only borrowed for the duration of these calls; it is checked
    // to be open by fcntl first.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = fcntl(borrowed, FcntlArg::F_GETFD).map_err(|e| format!("not open: {}", e.desc()))?;
    let st = fstat(borrowed).map_err(|e| e.desc().to_owned())?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err("not a socket".to_owned());
    }
    if getsockopt(&borrowed, sockopt::SockType) != Ok(SockType::Stream) {
        return Err("not a stream socket".to_owned());
    }
    let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
    fcntl(borrowed, FcntlArg::F_SETFD(flags)).map_err(|e| e.desc().to_owned())?;
    Ok(())
}
