//! The command table: the one place that says which commands exist, what arguments they take,
//! which process runs them, whether they may run while filesystems are frozen and whether they
//! answer on success. Dispatch, guest-info, policy validation, the helper's re-check, the man
//! page list and the tests all read it; nothing else lists commands.

/// Which process carries a command out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// The unprivileged front (parsing, queries, file access as the front's user).
    Front,
    /// The privileged helper (freeze, trim, power, vcpus, memory blocks, time).
    Helper,
}

/// The type of one argument, as the QMP input visitor checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    Int,
    Str,
    /// `guest-file-seek`'s whence: an integer or one of "set", "cur", "end".
    Whence,
    /// `guest-set-vcpus`' list of `GuestLogicalProcessor`.
    VcpuList,
    /// A list of strings (`guest-fsfreeze-freeze-list`'s mount points).
    StrList,
    /// `guest-set-memory-blocks`' list of `GuestMemoryBlock`.
    MemBlockList,
    /// A boolean (`guest-set-user-password`'s crypted, `guest-ssh-add-authorized-keys`' reset,
    /// `guest-exec`'s capture-output: a bool in 7.2's schema).
    Bool,
}

/// One argument of a command's `data` in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub ty: ArgType,
    pub optional: bool,
}

const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, optional: false }
}
const fn opt(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, optional: true }
}

/// Every command qemu-ga-rs knows, in qemu-ga 7.2's schema (registration) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    SyncDelimited,
    Sync,
    Ping,
    GetTime,
    SetTime,
    Info,
    Shutdown,
    FileOpen,
    FileClose,
    FileRead,
    FileWrite,
    FileSeek,
    FileFlush,
    FsfreezeStatus,
    FsfreezeFreeze,
    FsfreezeFreezeList,
    FsfreezeThaw,
    Fstrim,
    SuspendDisk,
    SuspendRam,
    SuspendHybrid,
    NetworkGetInterfaces,
    GetVcpus,
    SetVcpus,
    GetDisks,
    GetFsinfo,
    SetUserPassword,
    GetMemoryBlocks,
    SetMemoryBlocks,
    GetMemoryBlockInfo,
    ExecStatus,
    Exec,
    GetHostName,
    GetUsers,
    GetTimezone,
    GetOsinfo,
    GetDevices,
    SshGetAuthorizedKeys,
    SshAddAuthorizedKeys,
    SshRemoveAuthorizedKeys,
    GetDiskstats,
    GetCpustats,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    pub command: Command,
    pub name: &'static str,
    pub args: &'static [Arg],
    pub process: Process,
    pub allowed_while_frozen: bool,
    pub success_response: bool,
    /// Changes nothing in the guest: what a monitoring-only policy may allow.
    pub read_only: bool,
}

use ArgType::*;
use Process::*;

macro_rules! row {
    ($cmd:ident, $name:literal, [$($arg:expr),*], $proc:ident, frozen: $fz:literal, reply: $sr:literal, ro: $ro:literal) => {
        CommandSpec {
            command: Command::$cmd,
            name: $name,
            args: &[$($arg),*],
            process: $proc,
            allowed_while_frozen: $fz,
            success_response: $sr,
            read_only: $ro,
        }
    };
}

/// The table, in schema order. `Command as usize` indexes it.
pub const TABLE: [CommandSpec; 42] = [
    row!(SyncDelimited, "guest-sync-delimited", [req("id", Int)], Front, frozen: true, reply: true, ro: true),
    row!(Sync, "guest-sync", [req("id", Int)], Front, frozen: true, reply: true, ro: true),
    row!(Ping, "guest-ping", [], Front, frozen: true, reply: true, ro: true),
    row!(GetTime, "guest-get-time", [], Front, frozen: false, reply: true, ro: true),
    row!(SetTime, "guest-set-time", [opt("time", Int)], Helper, frozen: false, reply: true, ro: false),
    row!(Info, "guest-info", [], Front, frozen: true, reply: true, ro: true),
    row!(Shutdown, "guest-shutdown", [opt("mode", Str)], Helper, frozen: false, reply: false, ro: false),
    row!(FileOpen, "guest-file-open", [req("path", Str), opt("mode", Str)], Helper, frozen: false, reply: true, ro: false),
    row!(FileClose, "guest-file-close", [req("handle", Int)], Front, frozen: false, reply: true, ro: false),
    row!(FileRead, "guest-file-read", [req("handle", Int), opt("count", Int)], Front, frozen: false, reply: true, ro: false),
    row!(FileWrite, "guest-file-write", [req("handle", Int), req("buf-b64", Str), opt("count", Int)], Front, frozen: false, reply: true, ro: false),
    row!(FileSeek, "guest-file-seek", [req("handle", Int), req("offset", Int), req("whence", Whence)], Front, frozen: false, reply: true, ro: false),
    row!(FileFlush, "guest-file-flush", [req("handle", Int)], Front, frozen: false, reply: true, ro: false),
    row!(FsfreezeStatus, "guest-fsfreeze-status", [], Front, frozen: true, reply: true, ro: true),
    row!(FsfreezeFreeze, "guest-fsfreeze-freeze", [], Helper, frozen: false, reply: true, ro: false),
    row!(FsfreezeFreezeList, "guest-fsfreeze-freeze-list", [opt("mountpoints", StrList)], Helper, frozen: false, reply: true, ro: false),
    row!(FsfreezeThaw, "guest-fsfreeze-thaw", [], Helper, frozen: true, reply: true, ro: false),
    row!(Fstrim, "guest-fstrim", [opt("minimum", Int)], Helper, frozen: false, reply: true, ro: false),
    row!(SuspendDisk, "guest-suspend-disk", [], Helper, frozen: false, reply: false, ro: false),
    row!(SuspendRam, "guest-suspend-ram", [], Helper, frozen: false, reply: false, ro: false),
    row!(SuspendHybrid, "guest-suspend-hybrid", [], Helper, frozen: false, reply: false, ro: false),
    row!(NetworkGetInterfaces, "guest-network-get-interfaces", [], Front, frozen: false, reply: true, ro: true),
    row!(GetVcpus, "guest-get-vcpus", [], Front, frozen: false, reply: true, ro: true),
    row!(SetVcpus, "guest-set-vcpus", [req("vcpus", VcpuList)], Helper, frozen: false, reply: true, ro: false),
    row!(GetDisks, "guest-get-disks", [], Helper, frozen: false, reply: true, ro: true),
    row!(GetFsinfo, "guest-get-fsinfo", [], Helper, frozen: false, reply: true, ro: true),
    row!(SetUserPassword, "guest-set-user-password", [req("username", Str), req("password", Str), req("crypted", Bool)], Helper, frozen: false, reply: true, ro: false),
    row!(GetMemoryBlocks, "guest-get-memory-blocks", [], Front, frozen: false, reply: true, ro: true),
    row!(SetMemoryBlocks, "guest-set-memory-blocks", [req("mem-blks", MemBlockList)], Helper, frozen: false, reply: true, ro: false),
    row!(GetMemoryBlockInfo, "guest-get-memory-block-info", [], Front, frozen: false, reply: true, ro: true),
    row!(ExecStatus, "guest-exec-status", [req("pid", Int)], Helper, frozen: false, reply: true, ro: false),
    row!(Exec, "guest-exec", [req("path", Str), opt("arg", StrList), opt("env", StrList), opt("input-data", Str), opt("capture-output", Bool)], Helper, frozen: false, reply: true, ro: false),
    row!(GetHostName, "guest-get-host-name", [], Front, frozen: false, reply: true, ro: true),
    row!(GetUsers, "guest-get-users", [], Front, frozen: false, reply: true, ro: true),
    row!(GetTimezone, "guest-get-timezone", [], Front, frozen: false, reply: true, ro: true),
    row!(GetOsinfo, "guest-get-osinfo", [], Front, frozen: false, reply: true, ro: true),
    row!(GetDevices, "guest-get-devices", [], Front, frozen: false, reply: true, ro: true),
    // Reading a user's keys changes nothing, but it is account data: not for monitoring.
    row!(SshGetAuthorizedKeys, "guest-ssh-get-authorized-keys", [req("username", Str)], Helper, frozen: false, reply: true, ro: false),
    row!(SshAddAuthorizedKeys, "guest-ssh-add-authorized-keys", [req("username", Str), req("keys", StrList), opt("reset", Bool)], Helper, frozen: false, reply: true, ro: false),
    row!(SshRemoveAuthorizedKeys, "guest-ssh-remove-authorized-keys", [req("username", Str), req("keys", StrList)], Helper, frozen: false, reply: true, ro: false),
    row!(GetDiskstats, "guest-get-diskstats", [], Front, frozen: false, reply: true, ro: true),
    row!(GetCpustats, "guest-get-cpustats", [], Front, frozen: false, reply: true, ro: true),
];

/// Commands qemu-ga 7.2 registers on Linux (guest-info lists them) but disables at start-up
/// whatever its options say, because it has no Linux implementation: no policy can enable
/// them (see [`crate::Policy`]), and calling one answers "Command ... has been disabled".
pub const UNAVAILABLE_ON_LINUX: &[Command] = &[Command::GetDevices];

/// Number of commands.
pub const COUNT: usize = TABLE.len();

impl Command {
    /// Every command, in schema order.
    pub fn all() -> impl DoubleEndedIterator<Item = Command> + ExactSizeIterator {
        TABLE.iter().map(|s| s.command)
    }

    pub fn spec(self) -> &'static CommandSpec {
        &TABLE[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<Command> {
        Command::from_name_bytes(name.as_bytes())
    }

    /// [`Command::from_name`] for a name as the host sent it, which need not be UTF-8 (no
    /// command's name matches bytes that are not): no validation pass before the lookup.
    pub fn from_name_bytes(name: &[u8]) -> Option<Command> {
        TABLE.iter().find(|s| s.name.as_bytes() == name).map(|s| s.command)
    }

    /// False for the commands of [`UNAVAILABLE_ON_LINUX`].
    pub fn available(self) -> bool {
        !UNAVAILABLE_ON_LINUX.contains(&self)
    }

    /// Index into per-command arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_index_matches_enum_discriminant() {
        for (i, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.command as usize, i, "{}", spec.name);
        }
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        for spec in TABLE.iter() {
            assert_eq!(Command::from_name(spec.name), Some(spec.command));
        }
        assert_eq!(Command::from_name("guest-get-load"), None);
        assert_eq!(Command::from_name_bytes(b"guest-ping"), Some(Command::Ping));
        assert_eq!(Command::from_name_bytes(b"guest-ping\xff"), None);
        assert_eq!(Command::from_name_bytes(b"guest-pin"), None);
    }

    #[test]
    fn only_guest_get_devices_is_unavailable_on_linux() {
        let unavailable: Vec<_> = Command::all().filter(|c| !c.available()).map(|c| c.name()).collect();
        assert_eq!(unavailable, ["guest-get-devices"]);
    }

    #[test]
    fn freeze_allowlist_is_qemu_gas_six() {
        let frozen: Vec<_> = TABLE.iter().filter(|s| s.allowed_while_frozen).map(|s| s.name).collect();
        assert_eq!(
            frozen,
            [
                "guest-sync-delimited",
                "guest-sync",
                "guest-ping",
                "guest-info",
                "guest-fsfreeze-status",
                "guest-fsfreeze-thaw"
            ]
        );
    }

    #[test]
    fn only_shutdown_and_suspend_are_silent_on_success() {
        let silent: Vec<_> = TABLE.iter().filter(|s| !s.success_response).map(|s| s.name).collect();
        assert_eq!(silent, ["guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid"]);
    }

    #[test]
    fn helper_runs_exactly_the_privileged_commands() {
        let helper: Vec<_> = TABLE.iter().filter(|s| s.process == Process::Helper).map(|s| s.name).collect();
        assert_eq!(
            helper,
            [
                "guest-set-time",
                "guest-shutdown",
                "guest-file-open",
                "guest-fsfreeze-freeze",
                "guest-fsfreeze-freeze-list",
                "guest-fsfreeze-thaw",
                "guest-fstrim",
                "guest-suspend-disk",
                "guest-suspend-ram",
                "guest-suspend-hybrid",
                "guest-set-vcpus",
                "guest-get-disks",
                "guest-get-fsinfo",
                "guest-set-user-password",
                "guest-set-memory-blocks",
                "guest-exec-status",
                "guest-exec",
                "guest-ssh-get-authorized-keys",
                "guest-ssh-add-authorized-keys",
                "guest-ssh-remove-authorized-keys"
            ]
        );
    }
}
