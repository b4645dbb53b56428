//! The front's command handlers, one module per command family, and the one match that maps
//! each command of the table to its handler. Handlers are thin: arguments arrive checked, and
//! privileged work is one typed request to the helper.

pub mod accounts;
pub mod exec;
pub mod file;
pub mod fsfreeze;
pub mod held_file;
pub mod host;
pub mod memory;
pub mod network;
pub mod osinfo;
pub mod power;
pub mod stats;
pub mod storage;
pub mod sync;
pub mod time;
pub mod timezone;
pub mod users;
pub mod vcpus;
pub mod watch;

use crate::json::Value;
use crate::privsep::link::HelperLink;
use crate::qmp::call::Call;
use crate::qmp::AgentError;
use qga_policy::{Command, Grant, Invocation, Policy};

/// What the handlers share: the effective policy, the frozen flag, open file handles and the
/// link to the helper.
pub struct Agent {
    pub policy: Policy,
    pub frozen: bool,
    pub files: file::Handles,
    pub helper: HelperLink,
    /// The pidfile of an agent that started frozen, written once filesystems are thawed.
    pub pidfile_on_thaw: Option<std::fs::File>,
    /// The front's sandbox (filesystem view, system call filter) includes the file commands:
    /// fixed at start-up, it bounds what a policy reload may enable.
    pub file_access: bool,
}

impl Agent {
    /// The argument gate for a request about to be carried out: its grant, or the policy's
    /// refusal (logged, and answered as a GenericError; nothing has been done or sent).
    pub fn permit(&self, command: Command, invocation: &Invocation<'_>) -> Result<Grant<'_>, AgentError> {
        qga_policy::permit(&self.policy, command, invocation).map_err(|refusal| {
            crate::slog!("{} refused by policy: {refusal}", command.name());
            AgentError::PolicyRefused(refusal.0)
        })
    }

    /// Enters or leaves the frozen state: the gate, the log and the deferred start-up work
    /// follow the flag.
    pub fn set_frozen(&mut self, frozen: bool) {
        if self.frozen != frozen {
            self.frozen = frozen;
            crate::log::set_frozen(frozen);
            if frozen {
                crate::warning!("disabling logging due to filesystem freeze");
            } else {
                crate::warning!("logging re-enabled due to filesystem unfreeze");
            }
        }
    }
}

/// Runs a command whose arguments passed the schema check, each handler taking its call's
/// typed fields.
pub fn run(agent: &mut Agent, call: Call) -> Result<Value, AgentError> {
    match call {
        Call::SyncDelimited { id } | Call::Sync { id } => Ok(sync::sync(id)),
        Call::Ping => sync::ping(),
        Call::Info => Ok(sync::info(agent)),
        Call::GetTime => time::get_time(),
        Call::SetTime { time } => time::set_time(agent, time),
        Call::Shutdown { mode } => power::shutdown(agent, mode.as_deref()),
        Call::SuspendDisk => power::suspend(agent, Command::SuspendDisk),
        Call::SuspendRam => power::suspend(agent, Command::SuspendRam),
        Call::SuspendHybrid => power::suspend(agent, Command::SuspendHybrid),
        Call::FileOpen { path, mode } => file::open(agent, &path, mode.as_deref()),
        Call::FileClose { handle } => file::close(agent, handle),
        Call::FileRead { handle, count } => file::read(agent, handle, count),
        Call::FileWrite { handle, buf_b64, count } => file::write(agent, handle, &buf_b64, count),
        Call::FileSeek { handle, offset, whence } => file::seek(agent, handle, offset, whence),
        Call::FileFlush { handle } => file::flush(agent, handle),
        Call::FsfreezeStatus => fsfreeze::status(agent),
        Call::FsfreezeFreeze => fsfreeze::freeze(agent),
        Call::FsfreezeFreezeList { mountpoints } => fsfreeze::freeze_list(agent, mountpoints),
        Call::FsfreezeThaw => fsfreeze::thaw(agent),
        Call::Fstrim { minimum } => fsfreeze::trim(agent, minimum),
        Call::NetworkGetInterfaces => network::get_interfaces(),
        Call::GetVcpus => vcpus::get(),
        Call::SetVcpus { vcpus } => vcpus::set(agent, vcpus),
        Call::GetDisks => storage::get_disks(agent),
        Call::GetFsinfo => storage::get_fsinfo(agent),
        Call::SetUserPassword { username, password, crypted } => {
            accounts::set_user_password(agent, &username, &password, crypted)
        }
        Call::GetMemoryBlocks => memory::get_blocks(),
        Call::SetMemoryBlocks { mem_blks } => memory::set_blocks(agent, mem_blks),
        Call::GetMemoryBlockInfo => memory::get_block_info(),
        Call::GetHostName => host::get_host_name(),
        Call::GetUsers => users::get_users(),
        Call::GetTimezone => timezone::get_timezone(),
        Call::GetOsinfo => osinfo::get_osinfo(),
        Call::ExecStatus { pid } => exec::status(agent, pid),
        Call::Exec { path, arg, env, input_data, capture_output } => {
            exec::exec(agent, path, arg, env, input_data, capture_output)
        }
        // The gate never lets it through (it is unavailable on Linux); the answer is the gate's.
        Call::GetDevices => Err(AgentError::CommandDisabled(Command::GetDevices.name())),
        Call::SshGetAuthorizedKeys { username } => accounts::ssh_get(agent, &username),
        Call::SshAddAuthorizedKeys { username, keys, reset } => {
            accounts::ssh_add(agent, &username, &keys, reset.unwrap_or(false))
        }
        Call::SshRemoveAuthorizedKeys { username, keys } => accounts::ssh_remove(agent, &username, &keys),
        Call::GetDiskstats => stats::get_diskstats(),
        Call::GetCpustats => stats::get_cpustats(),
    }
}
