//! The front's command handlers, one module per command family, and the one match that maps
//! each command of the table to its handler. Handlers are thin: arguments arrive checked, and
//! privileged work is one typed request to the helper.

pub mod accounts;
pub mod file;
pub mod fsfreeze;
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

use crate::json::Value;
use crate::privsep::link::HelperLink;
use crate::qmp::args::Args;
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

/// Runs a command whose arguments passed the schema check.
pub fn run(agent: &mut Agent, command: Command, args: &Args) -> Result<Value, AgentError> {
    match command {
        Command::SyncDelimited | Command::Sync => sync::sync(args),
        Command::Ping => sync::ping(),
        Command::Info => Ok(sync::info(agent)),
        Command::GetTime => time::get_time(),
        Command::SetTime => time::set_time(agent, args),
        Command::Shutdown => power::shutdown(agent, args),
        Command::SuspendDisk | Command::SuspendRam | Command::SuspendHybrid => power::suspend(agent, command),
        Command::FileOpen => file::open(agent, args),
        Command::FileClose => file::close(agent, args),
        Command::FileRead => file::read(agent, args),
        Command::FileWrite => file::write(agent, args),
        Command::FileSeek => file::seek(agent, args),
        Command::FileFlush => file::flush(agent, args),
        Command::FsfreezeStatus => fsfreeze::status(agent),
        Command::FsfreezeFreeze => fsfreeze::freeze(agent),
        Command::FsfreezeFreezeList => fsfreeze::freeze_list(agent, args),
        Command::FsfreezeThaw => fsfreeze::thaw(agent),
        Command::Fstrim => fsfreeze::trim(agent, args),
        Command::NetworkGetInterfaces => network::get_interfaces(),
        Command::GetVcpus => vcpus::get(),
        Command::SetVcpus => vcpus::set(agent, args),
        Command::GetDisks => storage::get_disks(agent),
        Command::GetFsinfo => storage::get_fsinfo(agent),
        Command::SetUserPassword => accounts::set_user_password(agent, args),
        Command::GetMemoryBlocks => memory::get_blocks(),
        Command::SetMemoryBlocks => memory::set_blocks(agent, args),
        Command::GetMemoryBlockInfo => memory::get_block_info(),
        Command::GetHostName => host::get_host_name(),
        Command::GetUsers => users::get_users(),
        Command::GetTimezone => timezone::get_timezone(),
        Command::GetOsinfo => osinfo::get_osinfo(),
        // The gate never lets it through (it is unavailable on Linux); the answer is the gate's.
        Command::GetDevices => Err(AgentError::CommandDisabled(command.name())),
        Command::SshGetAuthorizedKeys => accounts::ssh_get(agent, args),
        Command::SshAddAuthorizedKeys => accounts::ssh_add(agent, args),
        Command::SshRemoveAuthorizedKeys => accounts::ssh_remove(agent, args),
        Command::GetDiskstats => stats::get_diskstats(),
        Command::GetCpustats => stats::get_cpustats(),
    }
}
