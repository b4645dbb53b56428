//! The real [`Operations`]: glue between the state machine and the modules that act on the
//! machine. Freeze and thaw follow 7.2's order: hook `freeze` before anything is frozen,
//! marker before the first FIFREEZE; on a freeze error everything is thawed (hook `thaw`
//! included, its errors ignored) and the marker removed; thaw removes the marker and then runs
//! hook `thaw`, whose failure is the command's error although the filesystems are thawed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::blockdev::Root;
use crate::clock;
use crate::files::{self, OpenError, Target};
use crate::freeze::{self, freeze_mounts, thaw_mounts};
use crate::hook::{self, HookPhase};
use crate::launcher::{Job, Run};
use crate::log;
use crate::memory::{self, SYSFS_MEMORY};
use crate::mounts::{read_mounts, read_mounts_named};
use crate::power::{self, SysfsPower};
use crate::protocol::storage::{DiskInfo, FsInfo};
use crate::protocol::{ExecPlan, ExecStatus, MAX_EXEC_PROGRAMS};
use crate::protocol::{
    MemoryBlockResult, MemoryBlockState, OpenMode, ShutdownMode, SuspendMode, TrimResult, VcpuState,
};
use crate::serve::{Operations, Thawed};
use crate::statfs_probe::Probes;
use crate::storage;
use crate::supervisor::ExecAnswer;
use crate::trim::trim_mounts;
use crate::uevents::Uevents;
use crate::vcpus::{self, SYSFS_CPU};

pub struct System<R: Run> {
    launcher: R,
    marker: PathBuf,
    hook: Option<PathBuf>,
    hook_timeout: Duration,
    /// Where a reload reads the policy from.
    sources: qga_policy::reload::Sources,
    probes: Probes,
    storage: storage::Cache,
}

impl<R: Run> System<R> {
    pub fn new(
        launcher: R,
        statedir: &Path,
        hook: Option<PathBuf>,
        hook_timeout: Duration,
        probes: Probes,
    ) -> System<R> {
        System {
            launcher,
            marker: freeze::marker_path(statedir),
            hook,
            hook_timeout,
            sources: qga_policy::reload::Sources::default(),
            probes,
            storage: storage::Cache::new(None),
        }
    }

    /// Keeps the storage queries' device descriptions between requests, dropped on every
    /// device event `uevents` receives (without it nothing is kept).
    pub fn with_uevents(mut self, uevents: Option<Uevents>) -> System<R> {
        self.storage = storage::Cache::new(uevents);
        self
    }

    /// Where a reload reads the policy from.
    pub fn with_reload_sources(mut self, sources: qga_policy::reload::Sources) -> System<R> {
        self.sources = sources;
        self
    }

    fn run_hook(&mut self, phase: HookPhase) -> Result<(), String> {
        let Some(path) = self.hook.clone() else { return Ok(()) };
        let outcome = self.launcher.run(Job::Hook(phase));
        hook::result_text(&path, self.hook_timeout, outcome)
    }
}

impl<R: Run> Operations for System<R> {
    fn load_policy(&mut self) -> Result<qga_policy::Policy, String> {
        let effective = qga_policy::reload::load(&self.sources).map_err(|e| e.to_string())?;
        for w in effective.warnings() {
            log!("policy reload: {w}");
        }
        Ok(effective.policy().clone())
    }

    fn freeze(&mut self, only: Option<&[Vec<u8>]>) -> Result<i64, String> {
        self.run_hook(HookPhase::Freeze)?;
        let mounts = match only {
            None => read_mounts(),
            Some(names) => read_mounts_named(names),
        }
        .map_err(|e| e.to_string())?;
        freeze::create_marker(&self.marker);
        match freeze_mounts(&mounts) {
            Ok(0) => {
                freeze::remove_marker(&self.marker);
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) => {
                let t = self.thaw();
                log!("freeze failed ({e}); thawed: {:?}", t.result);
                Err(e.to_string())
            }
        }
    }

    fn thaw(&mut self) -> Thawed {
        let mounts = match read_mounts() {
            Ok(m) => m,
            Err(e) => return Thawed { result: Err(e.to_string()), still_frozen: true },
        };
        let count = thaw_mounts(&mounts);
        freeze::remove_marker(&self.marker);
        let result = self.run_hook(HookPhase::Thaw).map(|()| count);
        Thawed { result, still_frozen: false }
    }

    fn trim(&mut self, minimum: i64) -> Result<Vec<TrimResult>, String> {
        let mounts = read_mounts().map_err(|e| e.to_string())?;
        Ok(trim_mounts(&mounts, minimum))
    }

    fn shutdown(&mut self, mode: ShutdownMode) -> Result<(), String> {
        power::shutdown(&mut self.launcher, mode)
    }

    fn suspend(&mut self, mode: SuspendMode) -> Result<(), String> {
        power::suspend(&mut self.launcher, &mut SysfsPower, mode)
    }

    fn set_vcpus(&mut self, vcpus: &[VcpuState]) -> Result<i64, String> {
        vcpus::set_vcpus(Path::new(SYSFS_CPU), vcpus).map_err(|e| e.to_string())
    }

    fn set_memory_blocks(&mut self, blocks: &[MemoryBlockState]) -> Vec<MemoryBlockResult> {
        memory::set_memory_blocks(Path::new(SYSFS_MEMORY), blocks)
    }

    fn set_time(&mut self, time_ns: Option<i64>) -> Result<(), String> {
        clock::set_time(time_ns).map_err(|e| e.to_string())
    }

    fn fsinfo(&mut self) -> Result<Vec<FsInfo>, String> {
        self.storage.fsinfo(&Root::real(), &mut self.probes)
    }

    fn disks(&mut self) -> Result<Vec<DiskInfo>, String> {
        self.storage.disks(&Root::real())
    }

    fn account(&mut self, req: &crate::protocol::Request) -> crate::protocol::Reply {
        self.launcher
            .account(req)
            .unwrap_or_else(|e| crate::protocol::Reply::Failed { desc: format!("failed to create child process: {e}") })
    }

    fn open_file(&mut self, target: &Target, mode: OpenMode) -> Result<std::os::fd::OwnedFd, OpenError> {
        files::open(target, mode)
    }

    fn exec(&mut self, plan: &ExecPlan) -> Result<i64, String> {
        match self.launcher.exec(plan).map_err(|e| e.to_string())? {
            ExecAnswer::Started { pid } => Ok(pid),
            other => Err(exec_error(&plan.program, other)),
        }
    }

    fn exec_status(&mut self, pid: i64) -> Result<ExecStatus, String> {
        match self.launcher.exec_status(pid).map_err(|e| e.to_string())? {
            ExecAnswer::Status(s) => Ok(s),
            other => Err(exec_error(b"", other)),
        }
    }
}

/// The guest-visible text of a launcher answer that is not a success: 7.2's own texts where it
/// has the case (a program that cannot be run, an unknown pid), ours for the limits it lacks.
fn exec_error(program: &[u8], answer: ExecAnswer) -> String {
    match answer {
        ExecAnswer::SpawnFailed(e) => format!(
            "Guest agent command failed, error was 'Failed to execute child process \u{201C}{}\u{201D} ({})'",
            String::from_utf8_lossy(program),
            crate::protocol::text::strerror(e as i32)
        ),
        ExecAnswer::NoSuchUser(u) => {
            format!("guest-exec: the user '{u}' the policy runs the program as does not exist")
        }
        ExecAnswer::TooMany => format!(
            "guest-exec: {MAX_EXEC_PROGRAMS} programs are running or have exited without guest-exec-status \
             collecting their status; no more are started until it has"
        ),
        ExecAnswer::UnknownPid => "Invalid parameter 'pid'".to_string(),
        ExecAnswer::Started { .. } | ExecAnswer::Status(_) => {
            "internal error: unexpected answer from the program launcher".to_string()
        }
    }
}
