//! One typed call per command: the checked arguments of a request as the fields of its
//! command's variant, so a handler takes named, typed values and never looks an argument up
//! by its name. `Call::build` is the one place names are read, one exhaustive match over
//! `Command` (a new table row does not build until it has its variant); the test below holds
//! each builder to its schema row: it reads every argument the row declares, with the row's
//! type, and nothing else.
//!
//! The schema check (`args::check`) still comes first and alone makes the wire errors, in
//! 7.2's order; a builder only moves the values it checked into place.

use super::args::{Args, MemoryBlock, Vcpu, Whence};
use super::error::AgentError;
use qga_policy::Command;
use qga_protocol::accounts::Secret;

/// A command with its typed arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    SyncDelimited {
        id: i64,
    },
    Sync {
        id: i64,
    },
    Ping,
    GetTime,
    SetTime {
        time: Option<i64>,
    },
    Info,
    Shutdown {
        mode: Option<Vec<u8>>,
    },
    FileOpen {
        path: Vec<u8>,
        mode: Option<Vec<u8>>,
    },
    FileClose {
        handle: i64,
    },
    FileRead {
        handle: i64,
        count: Option<i64>,
    },
    FileWrite {
        handle: i64,
        buf_b64: Vec<u8>,
        count: Option<i64>,
    },
    FileSeek {
        handle: i64,
        offset: i64,
        whence: Whence,
    },
    FileFlush {
        handle: i64,
    },
    FsfreezeStatus,
    FsfreezeFreeze,
    FsfreezeFreezeList {
        mountpoints: Option<Vec<Vec<u8>>>,
    },
    FsfreezeThaw,
    Fstrim {
        minimum: Option<i64>,
    },
    SuspendDisk,
    SuspendRam,
    SuspendHybrid,
    NetworkGetInterfaces,
    GetVcpus,
    SetVcpus {
        vcpus: Vec<Vcpu>,
    },
    GetDisks,
    GetFsinfo,
    /// The password as sent (base64): a `Secret`, so no debug print of a call shows it.
    SetUserPassword {
        username: Vec<u8>,
        password: Secret,
        crypted: bool,
    },
    GetMemoryBlocks,
    SetMemoryBlocks {
        mem_blks: Vec<MemoryBlock>,
    },
    GetMemoryBlockInfo,
    ExecStatus {
        pid: i64,
    },
    Exec {
        path: Vec<u8>,
        arg: Option<Vec<Vec<u8>>>,
        env: Option<Vec<Vec<u8>>>,
        input_data: Option<Vec<u8>>,
        capture_output: Option<bool>,
    },
    GetHostName,
    GetUsers,
    GetTimezone,
    GetOsinfo,
    GetDevices,
    SshGetAuthorizedKeys {
        username: Vec<u8>,
    },
    SshAddAuthorizedKeys {
        username: Vec<u8>,
        keys: Vec<Vec<u8>>,
        reset: Option<bool>,
    },
    SshRemoveAuthorizedKeys {
        username: Vec<u8>,
        keys: Vec<Vec<u8>>,
    },
    GetDiskstats,
    GetCpustats,
}

impl Call {
    /// Moves `args` (checked against `command`'s schema row) into `command`'s variant. A
    /// required argument the check did not produce is a missing parameter, which only a
    /// builder that disagrees with its row could meet (the test below rules that out).
    pub fn build(command: Command, mut args: Args) -> Result<Call, AgentError> {
        Call::read(command, &mut args)
    }

    /// [`Call::build`], leaving what it did not read in `a` (for the test).
    fn read(command: Command, a: &mut Args) -> Result<Call, AgentError> {
        Ok(match command {
            Command::SyncDelimited => Call::SyncDelimited { id: a.int("id")? },
            Command::Sync => Call::Sync { id: a.int("id")? },
            Command::Ping => Call::Ping,
            Command::GetTime => Call::GetTime,
            Command::SetTime => Call::SetTime { time: a.opt_int("time") },
            Command::Info => Call::Info,
            Command::Shutdown => Call::Shutdown { mode: a.opt_str("mode") },
            Command::FileOpen => Call::FileOpen { path: a.str("path")?, mode: a.opt_str("mode") },
            Command::FileClose => Call::FileClose { handle: a.int("handle")? },
            Command::FileRead => Call::FileRead { handle: a.int("handle")?, count: a.opt_int("count") },
            Command::FileWrite => {
                Call::FileWrite { handle: a.int("handle")?, buf_b64: a.str("buf-b64")?, count: a.opt_int("count") }
            }
            Command::FileSeek => {
                Call::FileSeek { handle: a.int("handle")?, offset: a.int("offset")?, whence: a.whence("whence")? }
            }
            Command::FileFlush => Call::FileFlush { handle: a.int("handle")? },
            Command::FsfreezeStatus => Call::FsfreezeStatus,
            Command::FsfreezeFreeze => Call::FsfreezeFreeze,
            Command::FsfreezeFreezeList => Call::FsfreezeFreezeList { mountpoints: a.opt_str_list("mountpoints") },
            Command::FsfreezeThaw => Call::FsfreezeThaw,
            Command::Fstrim => Call::Fstrim { minimum: a.opt_int("minimum") },
            Command::SuspendDisk => Call::SuspendDisk,
            Command::SuspendRam => Call::SuspendRam,
            Command::SuspendHybrid => Call::SuspendHybrid,
            Command::NetworkGetInterfaces => Call::NetworkGetInterfaces,
            Command::GetVcpus => Call::GetVcpus,
            Command::SetVcpus => Call::SetVcpus { vcpus: a.vcpus("vcpus")? },
            Command::GetDisks => Call::GetDisks,
            Command::GetFsinfo => Call::GetFsinfo,
            Command::SetUserPassword => Call::SetUserPassword {
                username: a.str("username")?,
                password: Secret(a.str("password")?),
                crypted: a.bool("crypted")?,
            },
            Command::GetMemoryBlocks => Call::GetMemoryBlocks,
            Command::SetMemoryBlocks => Call::SetMemoryBlocks { mem_blks: a.memory_blocks("mem-blks")? },
            Command::GetMemoryBlockInfo => Call::GetMemoryBlockInfo,
            Command::ExecStatus => Call::ExecStatus { pid: a.int("pid")? },
            Command::Exec => Call::Exec {
                path: a.str("path")?,
                arg: a.opt_str_list("arg"),
                env: a.opt_str_list("env"),
                input_data: a.opt_str("input-data"),
                capture_output: a.opt_bool("capture-output"),
            },
            Command::GetHostName => Call::GetHostName,
            Command::GetUsers => Call::GetUsers,
            Command::GetTimezone => Call::GetTimezone,
            Command::GetOsinfo => Call::GetOsinfo,
            Command::GetDevices => Call::GetDevices,
            Command::SshGetAuthorizedKeys => Call::SshGetAuthorizedKeys { username: a.str("username")? },
            Command::SshAddAuthorizedKeys => Call::SshAddAuthorizedKeys {
                username: a.str("username")?,
                keys: a.str_list("keys")?,
                reset: a.opt_bool("reset"),
            },
            Command::SshRemoveAuthorizedKeys => {
                Call::SshRemoveAuthorizedKeys { username: a.str("username")?, keys: a.str_list("keys")? }
            }
            Command::GetDiskstats => Call::GetDiskstats,
            Command::GetCpustats => Call::GetCpustats,
        })
    }

    /// The command this call is of.
    pub fn command(&self) -> Command {
        match self {
            Call::SyncDelimited { .. } => Command::SyncDelimited,
            Call::Sync { .. } => Command::Sync,
            Call::Ping => Command::Ping,
            Call::GetTime => Command::GetTime,
            Call::SetTime { .. } => Command::SetTime,
            Call::Info => Command::Info,
            Call::Shutdown { .. } => Command::Shutdown,
            Call::FileOpen { .. } => Command::FileOpen,
            Call::FileClose { .. } => Command::FileClose,
            Call::FileRead { .. } => Command::FileRead,
            Call::FileWrite { .. } => Command::FileWrite,
            Call::FileSeek { .. } => Command::FileSeek,
            Call::FileFlush { .. } => Command::FileFlush,
            Call::FsfreezeStatus => Command::FsfreezeStatus,
            Call::FsfreezeFreeze => Command::FsfreezeFreeze,
            Call::FsfreezeFreezeList { .. } => Command::FsfreezeFreezeList,
            Call::FsfreezeThaw => Command::FsfreezeThaw,
            Call::Fstrim { .. } => Command::Fstrim,
            Call::SuspendDisk => Command::SuspendDisk,
            Call::SuspendRam => Command::SuspendRam,
            Call::SuspendHybrid => Command::SuspendHybrid,
            Call::NetworkGetInterfaces => Command::NetworkGetInterfaces,
            Call::GetVcpus => Command::GetVcpus,
            Call::SetVcpus { .. } => Command::SetVcpus,
            Call::GetDisks => Command::GetDisks,
            Call::GetFsinfo => Command::GetFsinfo,
            Call::SetUserPassword { .. } => Command::SetUserPassword,
            Call::GetMemoryBlocks => Command::GetMemoryBlocks,
            Call::SetMemoryBlocks { .. } => Command::SetMemoryBlocks,
            Call::GetMemoryBlockInfo => Command::GetMemoryBlockInfo,
            Call::ExecStatus { .. } => Command::ExecStatus,
            Call::Exec { .. } => Command::Exec,
            Call::GetHostName => Command::GetHostName,
            Call::GetUsers => Command::GetUsers,
            Call::GetTimezone => Command::GetTimezone,
            Call::GetOsinfo => Command::GetOsinfo,
            Call::GetDevices => Command::GetDevices,
            Call::SshGetAuthorizedKeys { .. } => Command::SshGetAuthorizedKeys,
            Call::SshAddAuthorizedKeys { .. } => Command::SshAddAuthorizedKeys,
            Call::SshRemoveAuthorizedKeys { .. } => Command::SshRemoveAuthorizedKeys,
            Call::GetDiskstats => Command::GetDiskstats,
            Call::GetCpustats => Command::GetCpustats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Dict, Value};
    use qga_policy::{Arg, ArgType};

    /// A value of each argument type that passes the schema check (exhaustive: a new type
    /// needs its sample before this test builds).
    fn sample(ty: ArgType) -> Value {
        let element =
            |id: &'static str| Value::Dict(Dict::new().with(id, Value::Int(1)).with("online", Value::Bool(true)));
        match ty {
            ArgType::Int => Value::Int(1),
            ArgType::Str => Value::str("x"),
            ArgType::Whence => Value::str("set"),
            ArgType::VcpuList => Value::List(vec![element("logical-id")]),
            ArgType::StrList => Value::List(vec![Value::str("/")]),
            ArgType::MemBlockList => Value::List(vec![element("phys-index")]),
            ArgType::Bool => Value::Bool(true),
        }
    }

    fn checked(command: Command, with: impl Fn(&Arg) -> bool) -> Args {
        let mut arguments = Dict::new();
        for arg in command.spec().args.iter().filter(|a| with(a)) {
            arguments.insert(arg.name.as_bytes(), sample(arg.ty));
        }
        crate::qmp::args::check(command.spec().args, Some(&arguments)).unwrap()
    }

    #[test]
    fn every_builder_reads_exactly_its_schema_rows_arguments_with_their_types() {
        for command in Command::all() {
            let schema: Vec<(&str, ArgType)> = command.spec().args.iter().map(|a| (a.name, a.ty)).collect();
            let mut args = checked(command, |_| true);
            let call = Call::read(command, &mut args).unwrap_or_else(|e| panic!("{}: {e:?}", command.name()));
            assert_eq!(call.command(), command);
            assert_eq!(args.asked, schema, "{} reads other arguments than its schema row declares", command.name());
            assert!(args.left().is_empty(), "{} leaves {:?} unread", command.name(), args.left());
        }
    }

    #[test]
    fn every_builder_takes_its_optional_arguments_as_absent() {
        for command in Command::all() {
            let args = checked(command, |a| !a.optional);
            let call = Call::build(command, args).unwrap_or_else(|e| panic!("{}: {e:?}", command.name()));
            assert_eq!(call.command(), command);
        }
    }
}
