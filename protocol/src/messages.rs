//! The closed protocol between the front and the privileged helper.
//!
//! One request enum, one reply enum, no catch-all arms. Every frame is a little-endian `u32`
//! payload length followed by the payload; the payload is a one-byte tag and the variant's
//! fields in a fixed binary layout. Decoding is strict: an unknown tag, a field out of its
//! range, a length over the bound or a byte left over is a [`FrameError`], and the helper exits
//! on any of them without answering (it never gives the front an error to probe with).

use qga_policy::{Command, Narrowing, Policy, COUNT};
use std::io::{self, Read, Write};

use crate::accounts::{dec_keys, dec_user, enc_keys, Secret, MAX_AUTHKEYS_FILE, MAX_KEYS, MAX_KEY_LEN, MAX_PASSWORD};
pub use crate::exec::{
    Captured, ExecEnd, ExecPlan, ExecRequest, ExecStatus, MAX_EXEC_FRAME, MAX_EXEC_OUTPUT, MAX_EXEC_PROGRAMS,
};
use crate::storage::{DiskInfo, FsInfo};
use crate::wire::{Dec, Enc};
pub use crate::wire::{FrameError, MAX_FRAME, MAX_STR};

/// Largest `SetVcpus` list the helper accepts (Linux's NR_CPUS upper bound is 8192).
pub const MAX_VCPUS: usize = 8192;
/// Largest `SetMemoryBlocks` list the helper accepts: 4 TiB of 128 MiB blocks, 64 TiB of 2 GiB
/// blocks (x86's block size on large machines).
pub const MAX_MEMORY_BLOCKS: usize = 32768;
/// Largest number of mount points `FreezeList` carries. Each is at most
/// [`MAX_MOUNTPOINT_LEN`] bytes: PATH_MAX, the longest path the kernel takes (a longer one
/// cannot have been given to mount(2) by that name).
pub const MAX_MOUNTPOINTS: usize = 128;
pub const MAX_MOUNTPOINT_LEN: usize = 4096;
/// Longest guest-file-open path the helper accepts: PATH_MAX less its NUL, the longest the
/// kernel takes (a longer one is refused by the front with 7.2's ENAMETOOLONG).
pub const MAX_FILE_PATH: usize = 4095;

// The largest request the helper accepts (a SetVcpus list of MAX_VCPUS: tag, count, then an
// i64 and a bool each) fits in a frame, so a request the front checked is never refused for its
// size. SetVcpus is the only request whose size the helper bounds.
const _: () = assert!(1 + 4 + MAX_VCPUS * (8 + 1) <= MAX_FRAME);
// The same for the other lists: a SetMemoryBlocks list (a u64 and a bool each), a FreezeList
// (a flag, a count, then a length and the bytes each), and the longest per-block reply (a u64,
// the response, the flag and the error code each).
const _: () = assert!(1 + 4 + MAX_MEMORY_BLOCKS * (8 + 1) <= MAX_FRAME);
const _: () = assert!(1 + 1 + 4 + MAX_MOUNTPOINTS * (4 + MAX_MOUNTPOINT_LEN) <= MAX_FRAME);
const _: () = assert!(1 + 4 + MAX_MEMORY_BLOCKS * (8 + 1 + 1 + 8) <= MAX_FRAME);

crate::wire_codes! {
    /// The tag of each request: the first byte of its payload.
    pub enum RequestTag {
        FreezeStatus = 1,
        Freeze = 2,
        Thaw = 3,
        Trim = 4,
        Shutdown = 5,
        Suspend = 6,
        SetVcpus = 7,
        SetTime = 8,
        Quit = 9,
        GetFsinfo = 30,
        GetDisks = 31,
        FreezeList = 40,
        SetMemoryBlocks = 41,
        Reload = 60,
        // exec's block (70-79)
        Exec = 70,
        ExecStatus = 71,
        // files (80-89)
        FileOpen = 80,
        // accounts (90-99)
        SetUserPassword = 90,
        SshGetKeys = 91,
        SshAddKeys = 92,
        SshRemoveKeys = 93,
    }
}

crate::wire_codes! {
    /// The tag of each reply: the first byte of its payload.
    pub enum ReplyTag {
        FreezeState = 1,
        FreezeCount = 2,
        Trimmed = 3,
        VcpusSet = 4,
        Done = 5,
        Failed = 6,
        Fsinfo = 30,
        Disks = 31,
        MemoryBlocksSet = 40,
        Reloaded = 60,
        ReloadRefused = 61,
        // exec's block (70-79)
        ExecStarted = 70,
        ExecStatus = 71,
        // files (80-89)
        FileOpened = 80,
        FileOpenFailed = 81,
        // accounts (90-99)
        Keys = 90,
        NoSuchUser = 91,
    }
}

crate::wire_codes! {
    /// `guest-shutdown` modes (the codes are the helper's and the launcher's frames').
    pub enum ShutdownMode {
        Powerdown = 0,
        Halt = 1,
        Reboot = 2,
    }
}

impl From<ShutdownMode> for qga_policy::rules::ShutdownMode {
    /// The mode as a policy's `mode=` names it.
    fn from(m: ShutdownMode) -> Self {
        match m {
            ShutdownMode::Powerdown => qga_policy::rules::ShutdownMode::Powerdown,
            ShutdownMode::Halt => qga_policy::rules::ShutdownMode::Halt,
            ShutdownMode::Reboot => qga_policy::rules::ShutdownMode::Reboot,
        }
    }
}

crate::wire_codes! {
    /// `guest-suspend-*` modes (the codes are the helper's and the launcher's frames').
    pub enum SuspendMode {
        Disk = 0,
        Ram = 1,
        Hybrid = 2,
    }
}

crate::wire_codes! {
    /// guest-file-open's mode: 7.2's fopen table, whose `b` variants open the same way.
    pub enum OpenMode {
        /// `r`, `rb`
        Read = 0,
        /// `w`, `wb`
        Write = 1,
        /// `a`, `ab`
        Append = 2,
        /// `r+`, `rb+`, `r+b`
        ReadPlus = 3,
        /// `w+`, `wb+`, `w+b`
        WritePlus = 4,
        /// `a+`, `ab+`, `a+b`
        AppendPlus = 5,
    }
}

impl OpenMode {
    /// The mode strings 7.2 accepts; anything else is its "invalid file open mode".
    pub fn parse(mode: &[u8]) -> Option<OpenMode> {
        Some(match mode {
            b"r" | b"rb" => OpenMode::Read,
            b"w" | b"wb" => OpenMode::Write,
            b"a" | b"ab" => OpenMode::Append,
            b"r+" | b"rb+" | b"r+b" => OpenMode::ReadPlus,
            b"w+" | b"wb+" | b"w+b" => OpenMode::WritePlus,
            b"a+" | b"ab+" | b"a+b" => OpenMode::AppendPlus,
            _ => return None,
        })
    }

    /// 7.2's open flags for the mode (access, create, truncate, append), without the flags
    /// every open adds (non-blocking, no controlling terminal, close-on-exec).
    pub fn flags(self) -> nix::fcntl::OFlag {
        use nix::fcntl::OFlag;
        match self {
            OpenMode::Read => OFlag::O_RDONLY,
            OpenMode::Write => OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
            OpenMode::Append => OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND,
            OpenMode::ReadPlus => OFlag::O_RDWR,
            OpenMode::WritePlus => OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_TRUNC,
            OpenMode::AppendPlus => OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_APPEND,
        }
    }

    /// The rights a policy rule must grant for the mode: a mode that may create needs
    /// `create`, writing at the end only needs `append`, any other writing `write`.
    pub fn access(self) -> qga_policy::rules::Access {
        let (read, write, append, create) = match self {
            OpenMode::Read => (true, false, false, false),
            OpenMode::Write => (false, true, false, true),
            OpenMode::Append => (false, false, true, true),
            OpenMode::ReadPlus => (true, true, false, false),
            OpenMode::WritePlus => (true, true, false, true),
            OpenMode::AppendPlus => (true, false, true, true),
        };
        qga_policy::rules::Access { read, write, append, create }
    }
}

/// One `GuestLogicalProcessor` of `guest-set-vcpus`, after the front's type checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuState {
    pub logical_id: i64,
    pub online: bool,
}

/// One `GuestMemoryBlock` of `guest-set-memory-blocks`, after the front's type checks
/// (`can-offline` is ignored on input, as 7.2 does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBlockState {
    pub phys_index: u64,
    pub online: bool,
}

crate::wire_codes! {
    /// `GuestMemoryBlockResponseType`, in the schema's order.
    pub enum MemoryBlockResponse {
        Success = 0,
        NotFound = 1,
        OperationNotSupported = 2,
        OperationFailed = 3,
    }
}

impl MemoryBlockResponse {
    /// The schema's name, as the reply shows it.
    pub fn name(self) -> &'static str {
        match self {
            MemoryBlockResponse::Success => "success",
            MemoryBlockResponse::NotFound => "not-found",
            MemoryBlockResponse::OperationNotSupported => "operation-not-supported",
            MemoryBlockResponse::OperationFailed => "operation-failed",
        }
    }
}

/// One `GuestMemoryBlockResponse`: the block as given, the response and, when 7.2 sets it, the
/// errno of the step that decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBlockResult {
    pub phys_index: u64,
    pub response: MemoryBlockResponse,
    pub error_code: Option<i64>,
}

/// A request from the front. Each variant is one privileged operation; there is no generic one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Report the helper's own freeze state (no side effect).
    FreezeStatus,
    /// guest-fsfreeze-freeze: run the hook with `freeze`, then freeze every filesystem.
    Freeze,
    /// guest-fsfreeze-freeze-list: as Freeze, limited to the helper's own mounts whose mount
    /// point is byte for byte one of `mountpoints` (all of them when absent). The strings are
    /// only compared, never opened.
    FreezeList { mountpoints: Option<Vec<Vec<u8>>> },
    /// guest-fsfreeze-thaw: thaw every filesystem, then run the hook with `thaw`.
    Thaw,
    /// guest-fstrim with the minimum extent length (0 when not given).
    Trim { minimum: i64 },
    /// guest-shutdown.
    Shutdown { mode: ShutdownMode },
    /// guest-suspend-disk / -ram / -hybrid.
    Suspend { mode: SuspendMode },
    /// guest-set-vcpus.
    SetVcpus { vcpus: Vec<VcpuState> },
    /// guest-set-memory-blocks.
    SetMemoryBlocks { blocks: Vec<MemoryBlockState> },
    /// guest-set-time: with a time in ns since the epoch, set the system clock and the RTC;
    /// without, set the system clock from the RTC.
    SetTime { time_ns: Option<i64> },
    /// The front is exiting on SIGTERM/SIGINT: thaw if frozen, answer, and exit.
    Quit,
    /// The front got SIGHUP: re-read the policy file and the config file's lists, and answer
    /// with the new enabled set or why nothing changed. It carries nothing: what the policy
    /// says is read by the helper alone, never taken from the front.
    Reload,
    /// guest-get-fsinfo: every mounted filesystem with its disks and (unless its statfs does
    /// not return in time) its sizes.
    GetFsinfo,
    /// guest-get-disks: every block device, its partitions and dependencies.
    GetDisks,
    // exec's block (tags 70-79).
    /// guest-exec: start a program (after the helper's own policy check).
    Exec(ExecRequest),
    /// guest-exec-status: a started program's status; reported exited, it is forgotten.
    ExecStatus { pid: i64 },
    // ---- accounts (tags 90-99) ----
    /// guest-set-user-password: the user name and the raw password as 7.2 checks them (base64
    /// decoded, cut at NUL, no newline; no ':' or newline in the name).
    SetUserPassword { user: Vec<u8>, password: Secret, crypted: bool },
    /// guest-ssh-get-authorized-keys.
    SshGetKeys { user: Vec<u8> },
    /// guest-ssh-add-authorized-keys (`reset`: replace the file's keys).
    SshAddKeys { user: Vec<u8>, keys: Vec<Vec<u8>>, reset: bool },
    /// guest-ssh-remove-authorized-keys.
    SshRemoveKeys { user: Vec<u8>, keys: Vec<Vec<u8>> },
    // ---- files (tags 80-89) ----
    /// guest-file-open: open `path` (absolute or, without path rules, as 7.2 takes it) in
    /// `mode`, beneath the directory of the policy rule that allows it, and hand the descriptor
    /// back with [`Reply::FileOpened`]. At most [`MAX_FILE_PATH`] bytes, no NUL.
    FileOpen { path: Vec<u8>, mode: OpenMode },
}

/// One filesystem's result of guest-fstrim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrimResult {
    Trimmed { path: String, minimum: i64, trimmed: i64 },
    Failed { path: String, error: String },
}

/// The helper's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// FreezeStatus: whether the helper holds filesystems frozen.
    FreezeState { frozen: bool },
    /// Freeze / Thaw: number of filesystems frozen or thawed; `frozen` is the state after.
    FreezeCount { count: i64, frozen: bool },
    /// Trim: per-filesystem results.
    Trimmed { paths: Vec<TrimResult> },
    /// SetVcpus: number of processors processed.
    VcpusSet { count: i64 },
    /// SetMemoryBlocks: one result per block given, in order.
    MemoryBlocksSet { results: Vec<MemoryBlockResult> },
    /// Shutdown / Suspend / SetTime / Quit succeeded.
    Done,
    /// The operation failed; the text is the guest-visible error description.
    Failed { desc: String },
    /// Reload: the new effective policy, already in force in the helper: the enabled set and
    /// the argument conditions (each as its command and words, which the front parses again
    /// with the policy file's own parser; the helper keeps and checks its own copy).
    Reloaded { policy: Policy },
    /// Reload: nothing changed. `restart` when the file is valid but needs a wider front
    /// sandbox than the one it started with; `reason` says why (with file:line when invalid).
    ReloadRefused { restart: bool, reason: String },
    /// GetFsinfo: in 7.2's reply order.
    Fsinfo { filesystems: Vec<FsInfo> },
    /// GetDisks: in 7.2's reply order.
    Disks { disks: Vec<DiskInfo> },
    // exec's block (tags 70-79).
    /// Exec: the program runs with this pid.
    ExecStarted { pid: i64 },
    /// ExecStatus.
    ExecStatus(ExecStatus),
    /// SshGetKeys: the keys in 7.2's reply order.
    Keys { keys: Vec<Vec<u8>> },
    /// SshGetKeys / SshAddKeys / SshRemoveKeys: the user is not in the guest's passwd file (the
    /// front words the error, with the name as the host sent it).
    NoSuchUser,
    // ---- files (tags 80-89) ----
    /// FileOpen: the open descriptor travels with this frame (SCM_RIGHTS, exactly one); the
    /// payload carries nothing else.
    FileOpened,
    /// FileOpen: the open failed with this errno (the front words it as 7.2 does).
    FileOpenFailed { errno: i32 },
}

/// The tags of the requests and replies that carry exec input or output: the only frames
/// allowed past [`MAX_FRAME`], up to [`MAX_EXEC_FRAME`].
pub const EXEC_TAGS: [u8; 2] = [RequestTag::Exec.code(), ReplyTag::ExecStatus.code()];

impl Request {
    /// The tag its payload starts with.
    pub fn tag(&self) -> RequestTag {
        match self {
            Request::FreezeStatus => RequestTag::FreezeStatus,
            Request::Freeze => RequestTag::Freeze,
            Request::FreezeList { .. } => RequestTag::FreezeList,
            Request::Thaw => RequestTag::Thaw,
            Request::Trim { .. } => RequestTag::Trim,
            Request::Shutdown { .. } => RequestTag::Shutdown,
            Request::Suspend { .. } => RequestTag::Suspend,
            Request::SetVcpus { .. } => RequestTag::SetVcpus,
            Request::SetMemoryBlocks { .. } => RequestTag::SetMemoryBlocks,
            Request::SetTime { .. } => RequestTag::SetTime,
            Request::Quit => RequestTag::Quit,
            Request::Reload => RequestTag::Reload,
            Request::GetFsinfo => RequestTag::GetFsinfo,
            Request::GetDisks => RequestTag::GetDisks,
            Request::Exec(_) => RequestTag::Exec,
            Request::ExecStatus { .. } => RequestTag::ExecStatus,
            Request::SetUserPassword { .. } => RequestTag::SetUserPassword,
            Request::SshGetKeys { .. } => RequestTag::SshGetKeys,
            Request::SshAddKeys { .. } => RequestTag::SshAddKeys,
            Request::SshRemoveKeys { .. } => RequestTag::SshRemoveKeys,
            Request::FileOpen { .. } => RequestTag::FileOpen,
        }
    }

    /// The payload (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(16));
        e.u8(self.tag().code());
        match self {
            Request::FreezeStatus => {}
            Request::Freeze => {}
            Request::Thaw => {}
            Request::Trim { minimum } => {
                e.i64(*minimum);
            }
            Request::Shutdown { mode } => {
                e.u8(mode.code());
            }
            Request::Suspend { mode } => {
                e.u8(mode.code());
            }
            Request::SetVcpus { vcpus } => {
                e.u32(vcpus.len() as u32);
                for v in vcpus {
                    e.i64(v.logical_id);
                    e.bool(v.online);
                }
            }
            Request::SetTime { time_ns } => e.opt(*time_ns, |e, t| e.i64(t)),
            Request::Quit => {}
            Request::Reload => {}
            Request::FreezeList { mountpoints } => e.opt(mountpoints.as_ref(), |e, list| {
                e.u32(list.len() as u32);
                for m in list {
                    e.bytes(m);
                }
            }),
            Request::SetMemoryBlocks { blocks } => {
                e.u32(blocks.len() as u32);
                for b in blocks {
                    e.u64(b.phys_index);
                    e.bool(b.online);
                }
            }
            Request::GetFsinfo => {}
            Request::GetDisks => {}
            Request::Exec(r) => {
                r.encode(&mut e);
            }
            Request::ExecStatus { pid } => {
                e.i64(*pid);
            }
            Request::SetUserPassword { user, password, crypted } => {
                e.bytes(user);
                e.bytes(&password.0);
                e.bool(*crypted);
            }
            Request::SshGetKeys { user } => {
                e.bytes(user);
            }
            Request::SshAddKeys { user, keys, reset } => {
                e.bytes(user);
                enc_keys(&mut e, keys);
                e.bool(*reset);
            }
            Request::SshRemoveKeys { user, keys } => {
                e.bytes(user);
                enc_keys(&mut e, keys);
            }
            Request::FileOpen { path, mode } => {
                e.bytes(path);
                e.u8(mode.code());
            }
        }
        e.0
    }

    pub fn decode(payload: &[u8]) -> Result<Request, FrameError> {
        let mut d = Dec(payload);
        let tag = d.u8()?;
        let req = match RequestTag::from_code(tag).ok_or(FrameError::UnknownTag(tag))? {
            RequestTag::FreezeStatus => Request::FreezeStatus,
            RequestTag::Freeze => Request::Freeze,
            RequestTag::Thaw => Request::Thaw,
            RequestTag::Trim => Request::Trim { minimum: d.i64()? },
            RequestTag::Shutdown => Request::Shutdown {
                mode: ShutdownMode::from_code(d.u8()?).ok_or(FrameError::BadValue("shutdown mode"))?,
            },
            RequestTag::Suspend => {
                Request::Suspend { mode: SuspendMode::from_code(d.u8()?).ok_or(FrameError::BadValue("suspend mode"))? }
            }
            RequestTag::SetVcpus => {
                let n = d.count(MAX_VCPUS)?;
                let mut vcpus = Vec::with_capacity(n);
                for _ in 0..n {
                    vcpus.push(VcpuState { logical_id: d.i64()?, online: d.bool()? });
                }
                Request::SetVcpus { vcpus }
            }
            RequestTag::SetTime => Request::SetTime {
                time_ns: match d.u8()? {
                    0 => None,
                    1 => Some(d.i64()?),
                    _ => return Err(FrameError::BadValue("optional time")),
                },
            },
            RequestTag::Quit => Request::Quit,
            RequestTag::Reload => Request::Reload,
            RequestTag::FreezeList => Request::FreezeList {
                mountpoints: match d.u8()? {
                    0 => None,
                    1 => {
                        let n = d.count(MAX_MOUNTPOINTS)?;
                        let mut list = Vec::with_capacity(n);
                        for _ in 0..n {
                            list.push(d.bytes(MAX_MOUNTPOINT_LEN)?);
                        }
                        Some(list)
                    }
                    _ => return Err(FrameError::BadValue("optional mount point list")),
                },
            },
            RequestTag::SetMemoryBlocks => {
                let n = d.count(MAX_MEMORY_BLOCKS)?;
                let mut blocks = Vec::with_capacity(n);
                for _ in 0..n {
                    blocks.push(MemoryBlockState { phys_index: d.u64()?, online: d.bool()? });
                }
                Request::SetMemoryBlocks { blocks }
            }
            RequestTag::GetFsinfo => Request::GetFsinfo,
            RequestTag::GetDisks => Request::GetDisks,
            RequestTag::Exec => Request::Exec(ExecRequest::decode(&mut d)?),
            RequestTag::ExecStatus => Request::ExecStatus { pid: d.i64()? },
            RequestTag::SetUserPassword => Request::SetUserPassword {
                user: dec_user(&mut d)?,
                password: Secret(d.bytes(MAX_PASSWORD)?),
                crypted: d.bool()?,
            },
            RequestTag::SshGetKeys => Request::SshGetKeys { user: dec_user(&mut d)? },
            RequestTag::SshAddKeys => Request::SshAddKeys {
                user: dec_user(&mut d)?,
                keys: dec_keys(&mut d, MAX_KEYS, MAX_KEY_LEN)?,
                reset: d.bool()?,
            },
            RequestTag::SshRemoveKeys => {
                Request::SshRemoveKeys { user: dec_user(&mut d)?, keys: dec_keys(&mut d, MAX_KEYS, MAX_KEY_LEN)? }
            }
            RequestTag::FileOpen => {
                let path = d.bytes(MAX_FILE_PATH)?;
                if path.is_empty() || path.contains(&0) {
                    return Err(FrameError::BadValue("file path"));
                }
                Request::FileOpen {
                    path,
                    mode: OpenMode::from_code(d.u8()?).ok_or(FrameError::BadValue("file open mode"))?,
                }
            }
        };
        d.finish()?;
        Ok(req)
    }
}

impl Reply {
    /// The tag its payload starts with.
    pub fn tag(&self) -> ReplyTag {
        match self {
            Reply::FreezeState { .. } => ReplyTag::FreezeState,
            Reply::FreezeCount { .. } => ReplyTag::FreezeCount,
            Reply::Trimmed { .. } => ReplyTag::Trimmed,
            Reply::VcpusSet { .. } => ReplyTag::VcpusSet,
            Reply::MemoryBlocksSet { .. } => ReplyTag::MemoryBlocksSet,
            Reply::Done => ReplyTag::Done,
            Reply::Failed { .. } => ReplyTag::Failed,
            Reply::Reloaded { .. } => ReplyTag::Reloaded,
            Reply::ReloadRefused { .. } => ReplyTag::ReloadRefused,
            Reply::Fsinfo { .. } => ReplyTag::Fsinfo,
            Reply::Disks { .. } => ReplyTag::Disks,
            Reply::ExecStarted { .. } => ReplyTag::ExecStarted,
            Reply::ExecStatus(_) => ReplyTag::ExecStatus,
            Reply::Keys { .. } => ReplyTag::Keys,
            Reply::NoSuchUser => ReplyTag::NoSuchUser,
            Reply::FileOpened => ReplyTag::FileOpened,
            Reply::FileOpenFailed { .. } => ReplyTag::FileOpenFailed,
        }
    }

    /// The payload (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(16));
        e.u8(self.tag().code());
        match self {
            Reply::FreezeState { frozen } => {
                e.bool(*frozen);
            }
            Reply::FreezeCount { count, frozen } => {
                e.i64(*count);
                e.bool(*frozen);
            }
            Reply::Trimmed { paths } => {
                e.u32(paths.len() as u32);
                for p in paths {
                    match p {
                        TrimResult::Trimmed { path, minimum, trimmed } => {
                            e.u8(0);
                            e.str(path);
                            e.i64(*minimum);
                            e.i64(*trimmed);
                        }
                        TrimResult::Failed { path, error } => {
                            e.u8(1);
                            e.str(path);
                            e.str(error);
                        }
                    }
                }
            }
            Reply::VcpusSet { count } => {
                e.i64(*count);
            }
            Reply::Done => {}
            Reply::Failed { desc } => {
                e.str(desc);
            }
            Reply::Reloaded { policy } => {
                let enabled: Vec<Command> = policy.enabled_commands().collect();
                e.u32(enabled.len() as u32);
                for c in enabled {
                    e.u32(c.index() as u32);
                }
                // In file order (the first rule that allows wins). The words come from a policy
                // file of at most 64 KiB, so the frame stays far below MAX_FRAME.
                let conditions = policy.conditions();
                e.u32(conditions.len() as u32);
                for n in conditions {
                    e.u32(n.command.index() as u32);
                    e.u32(n.words.len() as u32);
                    for w in &n.words {
                        e.str(w);
                    }
                }
            }
            Reply::ReloadRefused { restart, reason } => {
                e.bool(*restart);
                e.str(reason);
            }
            Reply::MemoryBlocksSet { results } => {
                e.u32(results.len() as u32);
                for r in results {
                    e.u64(r.phys_index);
                    e.u8(r.response.code());
                    e.opt(r.error_code, |e, c| e.i64(c));
                }
            }
            Reply::Fsinfo { filesystems } => {
                crate::storage::encode_fsinfo(&mut e, filesystems);
            }
            Reply::Disks { disks } => {
                crate::storage::encode_disks(&mut e, disks);
            }
            Reply::ExecStarted { pid } => {
                e.i64(*pid);
            }
            Reply::ExecStatus(status) => {
                status.encode(&mut e);
            }
            Reply::Keys { keys } => {
                enc_keys(&mut e, keys);
            }
            Reply::NoSuchUser => {}
            Reply::FileOpened => {}
            Reply::FileOpenFailed { errno } => {
                e.u32(*errno as u32);
            }
        }
        e.0
    }
}

/// A reload reply's argument conditions: no policy file holds more lines or words than it has
/// bytes, and each line is parsed again by the policy parser (a line it refuses, or one with no
/// words, is a malformed frame).
fn decode_conditions(d: &mut Dec<'_>) -> Result<Vec<Narrowing>, FrameError> {
    let most = qga_policy::file::MAX_FILE_SIZE as usize;
    let n = d.count(most)?;
    let mut conditions = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let i = d.u32()? as usize;
        let command = Command::all().nth(i).ok_or(FrameError::BadValue("command index"))?;
        let count = d.count(most)?;
        if count == 0 {
            return Err(FrameError::BadValue("conditions"));
        }
        let mut words = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            words.push(d.str()?);
        }
        conditions.push(Narrowing::parse(command, words).map_err(|_| FrameError::BadValue("conditions"))?);
    }
    Ok(conditions)
}

impl Reply {
    pub fn decode(payload: &[u8]) -> Result<Reply, FrameError> {
        let mut d = Dec(payload);
        let tag = d.u8()?;
        let reply = match ReplyTag::from_code(tag).ok_or(FrameError::UnknownTag(tag))? {
            ReplyTag::FreezeState => Reply::FreezeState { frozen: d.bool()? },
            ReplyTag::FreezeCount => Reply::FreezeCount { count: d.i64()?, frozen: d.bool()? },
            ReplyTag::Trimmed => {
                let n = d.count(MAX_FRAME / 16)?;
                let mut paths = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    paths.push(match d.u8()? {
                        0 => TrimResult::Trimmed { path: d.str()?, minimum: d.i64()?, trimmed: d.i64()? },
                        1 => TrimResult::Failed { path: d.str()?, error: d.str()? },
                        _ => return Err(FrameError::BadValue("trim result")),
                    });
                }
                Reply::Trimmed { paths }
            }
            ReplyTag::VcpusSet => Reply::VcpusSet { count: d.i64()? },
            ReplyTag::Done => Reply::Done,
            ReplyTag::Failed => Reply::Failed { desc: d.str()? },
            ReplyTag::Reloaded => {
                // Table indexes, each once, in increasing order: one encoding per policy.
                let n = d.count(COUNT)?;
                let mut enabled = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = d.u32()? as usize;
                    let c = Command::all().nth(i).ok_or(FrameError::BadValue("command index"))?;
                    // A command no policy can enable (guest-get-devices on Linux) is never sent;
                    // taking it would give one policy two encodings.
                    if !c.available() {
                        return Err(FrameError::BadValue("command index"));
                    }
                    if enabled.last().is_some_and(|last: &Command| last.index() >= i) {
                        return Err(FrameError::BadValue("command order"));
                    }
                    enabled.push(c);
                }
                Reply::Reloaded { policy: Policy::only(enabled).with_conditions(decode_conditions(&mut d)?) }
            }
            ReplyTag::ReloadRefused => Reply::ReloadRefused { restart: d.bool()?, reason: d.str()? },
            ReplyTag::MemoryBlocksSet => {
                let n = d.count(MAX_MEMORY_BLOCKS)?;
                let mut results = Vec::with_capacity(n);
                for _ in 0..n {
                    let phys_index = d.u64()?;
                    let response =
                        MemoryBlockResponse::from_code(d.u8()?).ok_or(FrameError::BadValue("memory block response"))?;
                    let error_code = match d.u8()? {
                        0 => None,
                        1 => Some(d.i64()?),
                        _ => return Err(FrameError::BadValue("optional error code")),
                    };
                    results.push(MemoryBlockResult { phys_index, response, error_code });
                }
                Reply::MemoryBlocksSet { results }
            }
            ReplyTag::Fsinfo => Reply::Fsinfo { filesystems: crate::storage::decode_fsinfo(&mut d)? },
            ReplyTag::Disks => Reply::Disks { disks: crate::storage::decode_disks(&mut d)? },
            ReplyTag::ExecStarted => Reply::ExecStarted { pid: d.i64()? },
            ReplyTag::ExecStatus => Reply::ExecStatus(ExecStatus::decode(&mut d)?),
            ReplyTag::Keys => Reply::Keys { keys: dec_keys(&mut d, MAX_AUTHKEYS_FILE / 2 + 1, MAX_AUTHKEYS_FILE)? },
            ReplyTag::NoSuchUser => Reply::NoSuchUser,
            ReplyTag::FileOpened => Reply::FileOpened,
            ReplyTag::FileOpenFailed => match d.u32()? as i32 {
                // An errno is a small positive number; anything else is a broken helper.
                errno @ 1..=4095 => Reply::FileOpenFailed { errno },
                _ => return Err(FrameError::BadValue("errno")),
            },
        };
        d.finish()?;
        Ok(reply)
    }
}

/// Writes one frame (length prefix and payload) in a single write. Only a frame with one of
/// [`EXEC_TAGS`] may exceed [`MAX_FRAME`] (up to [`MAX_EXEC_FRAME`]): the reader refuses
/// anything else.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_EXEC_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame too long"));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one front↔helper message frame: at most [`MAX_FRAME`], or [`MAX_EXEC_FRAME`] for a
/// payload whose tag is one of [`EXEC_TAGS`].
pub fn read_message_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    read_frame_with(r, |tag| crate::exec::frame_bound(tag, &EXEC_TAGS))
}

/// Reads one frame's payload of at most [`MAX_FRAME`] bytes.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    read_frame_with(r, |_| MAX_FRAME)
}

/// Reads one frame's payload, its bound chosen by its first byte (the tag) before anything
/// beyond it is allocated. EOF before the first byte is [`FrameError::Closed`]; EOF inside a
/// frame is [`FrameError::Truncated`].
pub fn read_frame_with(r: &mut impl Read, bound: impl Fn(u8) -> usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_EXEC_FRAME.max(MAX_FRAME) {
        return Err(FrameError::TooLong(n));
    }
    let mut payload = vec![0u8; n.min(1)];
    read_exact(r, &mut payload)?;
    if let Some(&tag) = payload.first() {
        if n > bound(tag) {
            return Err(FrameError::TooLong(n));
        }
    }
    payload.resize(n, 0);
    read_exact(r, &mut payload[n.min(1)..])?;
    Ok(payload)
}

fn read_exact(r: &mut impl Read, payload: &mut [u8]) -> Result<(), FrameError> {
    let n = payload.len();
    let mut got = 0;
    while got < n {
        match r.read(&mut payload[got..]) {
            Ok(0) => return Err(FrameError::Truncated),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(())
}

impl Request {
    /// A short name for logs (never the arguments, which may be large).
    pub fn name(&self) -> &'static str {
        match (self.command(), self) {
            (Some(c), _) => c.name(),
            (None, Request::Quit) => "quit",
            (None, Request::Reload) => "policy reload",
            (None, _) => "freeze status",
        }
    }

    /// The schema command this request carries out, for the policy re-check; `None` for the
    /// protocol's own requests, which every policy permits.
    pub fn command(&self) -> Option<qga_policy::Command> {
        use qga_policy::Command as C;
        match self {
            Request::FreezeStatus | Request::Quit | Request::Reload => None,
            Request::Freeze => Some(C::FsfreezeFreeze),
            Request::FreezeList { .. } => Some(C::FsfreezeFreezeList),
            Request::Thaw => Some(C::FsfreezeThaw),
            Request::Trim { .. } => Some(C::Fstrim),
            Request::Shutdown { .. } => Some(C::Shutdown),
            Request::Suspend { mode: SuspendMode::Disk } => Some(C::SuspendDisk),
            Request::Suspend { mode: SuspendMode::Ram } => Some(C::SuspendRam),
            Request::Suspend { mode: SuspendMode::Hybrid } => Some(C::SuspendHybrid),
            Request::SetVcpus { .. } => Some(C::SetVcpus),
            Request::SetMemoryBlocks { .. } => Some(C::SetMemoryBlocks),
            Request::SetTime { .. } => Some(C::SetTime),
            Request::GetFsinfo => Some(C::GetFsinfo),
            Request::GetDisks => Some(C::GetDisks),
            Request::Exec(_) => Some(C::Exec),
            Request::ExecStatus { .. } => Some(C::ExecStatus),
            Request::SetUserPassword { .. } => Some(C::SetUserPassword),
            Request::SshGetKeys { .. } => Some(C::SshGetAuthorizedKeys),
            Request::SshAddKeys { .. } => Some(C::SshAddAuthorizedKeys),
            Request::SshRemoveKeys { .. } => Some(C::SshRemoveAuthorizedKeys),
            Request::FileOpen { .. } => Some(C::FileOpen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_request() -> Vec<Request> {
        vec![
            Request::FreezeStatus,
            Request::Freeze,
            Request::Thaw,
            Request::Trim { minimum: -5 },
            Request::Shutdown { mode: ShutdownMode::Reboot },
            Request::Suspend { mode: SuspendMode::Hybrid },
            Request::SetVcpus { vcpus: vec![VcpuState { logical_id: 1, online: false }] },
            Request::SetTime { time_ns: Some(1_700_000_000_000_000_000) },
            Request::SetTime { time_ns: None },
            Request::Quit,
            Request::Reload,
            Request::FreezeList { mountpoints: None },
            Request::FreezeList { mountpoints: Some(vec![]) },
            Request::FreezeList { mountpoints: Some(vec![b"/".to_vec(), b"/mnt/\xc0\x80\xff".to_vec()]) },
            Request::SetMemoryBlocks {
                blocks: vec![
                    MemoryBlockState { phys_index: u64::MAX, online: false },
                    MemoryBlockState { phys_index: 3, online: true },
                ],
            },
            Request::GetFsinfo,
            Request::GetDisks,
            Request::Exec(ExecRequest {
                path: b"/bin/sh".to_vec(),
                args: vec![b"-c".to_vec(), b"exit 3".to_vec()],
                env: Some(vec![b"A=\xc0\x80".to_vec()]),
                input: Some(vec![0, 255]),
                capture: true,
            }),
            Request::Exec(ExecRequest { path: b"true".to_vec(), args: vec![], env: None, input: None, capture: false }),
            Request::ExecStatus { pid: -1 },
            Request::SetUserPassword { user: b"alice".to_vec(), password: Secret(b"p:w".to_vec()), crypted: false },
            Request::SshGetKeys { user: b"\xc0\x80".to_vec() },
            Request::SshAddKeys {
                user: b"alice".to_vec(),
                keys: vec![b"ssh-ed25519 AAAA a".to_vec(), vec![]],
                reset: true,
            },
            Request::SshAddKeys { user: b"alice".to_vec(), keys: vec![], reset: false },
            Request::SshRemoveKeys { user: b"alice".to_vec(), keys: vec![b"k".to_vec()] },
            Request::FileOpen { path: b"/var/backup/x\xff".to_vec(), mode: OpenMode::AppendPlus },
            Request::FileOpen { path: b"relative".to_vec(), mode: OpenMode::Read },
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for r in every_request() {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
    }

    fn every_reply() -> Vec<Reply> {
        vec![
            Reply::FreezeState { frozen: true },
            Reply::FreezeCount { count: 3, frozen: true },
            Reply::Trimmed {
                paths: vec![
                    TrimResult::Trimmed { path: "/".into(), minimum: 0, trimmed: 42 },
                    TrimResult::Failed { path: "/boot".into(), error: "EIO".into() },
                ],
            },
            Reply::VcpusSet { count: 2 },
            Reply::Done,
            Reply::Failed { desc: "no".into() },
            Reply::Reloaded { policy: Policy::only([Command::Ping, Command::Info]) },
            Reply::Reloaded { policy: Policy::only([]) },
            Reply::Reloaded { policy: Policy::allow_all() },
            Reply::Reloaded {
                policy: Policy::only([Command::Shutdown, Command::FileOpen]).with_conditions(vec![
                    Narrowing::parse(Command::FileOpen, vec!["path=/etc/hostname".into(), "access=read".into()])
                        .unwrap(),
                    Narrowing::parse(Command::Shutdown, vec!["mode=reboot,powerdown".into()]).unwrap(),
                    Narrowing::parse(Command::FileOpen, vec!["path=/srv/a b/\"q\"".into()]).unwrap(),
                ]),
            },
            Reply::ReloadRefused { restart: true, reason: "policy:3: no".into() },
            Reply::ExecStarted { pid: 42 },
            Reply::ExecStatus(ExecStatus::default()),
            Reply::ExecStatus(ExecStatus {
                end: Some(ExecEnd::Exited(3)),
                out: Captured { data: b"out\n".to_vec(), truncated: false },
                err: Captured { data: vec![0; 10], truncated: true },
            }),
            Reply::Keys { keys: vec![b"ssh-rsa AAAA b".to_vec(), b"x".to_vec()] },
            Reply::Keys { keys: vec![] },
            Reply::NoSuchUser,
            Reply::MemoryBlocksSet {
                results: vec![
                    MemoryBlockResult { phys_index: 1, response: MemoryBlockResponse::Success, error_code: None },
                    MemoryBlockResult {
                        phys_index: u64::MAX,
                        response: MemoryBlockResponse::NotFound,
                        error_code: Some(2),
                    },
                    MemoryBlockResult {
                        phys_index: 7,
                        response: MemoryBlockResponse::OperationNotSupported,
                        error_code: Some(0),
                    },
                    MemoryBlockResult {
                        phys_index: 8,
                        response: MemoryBlockResponse::OperationFailed,
                        error_code: Some(16),
                    },
                ],
            },
            Reply::FileOpened,
            Reply::FileOpenFailed { errno: 13 },
            Reply::Fsinfo { filesystems: vec![] },
            Reply::Disks { disks: vec![] },
        ]
    }

    #[test]
    fn every_reply_round_trips() {
        for r in every_reply() {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn every_tag_and_mode_code_is_declared_once_and_round_trips() {
        use crate::codes::assert_codes;
        assert_codes(RequestTag::ALL, RequestTag::code, RequestTag::from_code);
        assert_codes(ReplyTag::ALL, ReplyTag::code, ReplyTag::from_code);
        assert_codes(ShutdownMode::ALL, ShutdownMode::code, ShutdownMode::from_code);
        assert_codes(SuspendMode::ALL, SuspendMode::code, SuspendMode::from_code);
        assert_codes(OpenMode::ALL, OpenMode::code, OpenMode::from_code);
        assert_codes(MemoryBlockResponse::ALL, MemoryBlockResponse::code, MemoryBlockResponse::from_code);
        assert_codes(BusType::ALL, BusType::code, BusType::from_code);
    }

    /// The round trips above exercise every tag, and a payload starts with its message's tag.
    #[test]
    fn every_request_and_reply_tag_is_sent_and_leads_its_payload() {
        let requests = every_request();
        for tag in RequestTag::ALL {
            assert!(requests.iter().any(|r| r.tag() == *tag), "no request with {tag:?}");
        }
        for r in requests {
            assert_eq!(r.encode()[0], r.tag().code(), "{r:?}");
        }
        let replies = every_reply();
        for tag in ReplyTag::ALL {
            assert!(replies.iter().any(|r| r.tag() == *tag), "no reply with {tag:?}");
        }
        for r in replies {
            assert_eq!(r.encode()[0], r.tag().code(), "{r:?}");
        }
    }

    #[test]
    fn a_file_open_path_is_bounded_nonempty_and_without_nul_and_an_errno_is_small() {
        let ok = Request::FileOpen { path: vec![b'a'; MAX_FILE_PATH], mode: OpenMode::Write };
        assert_eq!(Request::decode(&ok.encode()).unwrap(), ok);
        for path in [vec![b'a'; MAX_FILE_PATH + 1], vec![], b"/a\0b".to_vec()] {
            let r = Request::FileOpen { path, mode: OpenMode::Read };
            assert!(Request::decode(&r.encode()).is_err(), "{r:?}");
        }
        assert!(Request::decode(&[80, 1, 0, 0, 0, b'/', 6]).is_err(), "mode 6");
        for errno in [0i32, -1, 4096] {
            let mut b = vec![81];
            b.extend_from_slice(&(errno as u32).to_le_bytes());
            assert!(Reply::decode(&b).is_err(), "errno {errno}");
        }
    }

    #[test]
    fn the_open_modes_are_7_2s_table_with_their_rights() {
        use nix::fcntl::OFlag;
        for (text, mode) in [
            ("r", OpenMode::Read),
            ("rb", OpenMode::Read),
            ("w", OpenMode::Write),
            ("wb", OpenMode::Write),
            ("a", OpenMode::Append),
            ("ab", OpenMode::Append),
            ("r+", OpenMode::ReadPlus),
            ("rb+", OpenMode::ReadPlus),
            ("r+b", OpenMode::ReadPlus),
            ("w+", OpenMode::WritePlus),
            ("wb+", OpenMode::WritePlus),
            ("w+b", OpenMode::WritePlus),
            ("a+", OpenMode::AppendPlus),
            ("ab+", OpenMode::AppendPlus),
            ("a+b", OpenMode::AppendPlus),
        ] {
            assert_eq!(OpenMode::parse(text.as_bytes()), Some(mode), "{text}");
            let (flags, access) = (mode.flags(), mode.access());
            assert_eq!(access.create, flags.contains(OFlag::O_CREAT), "{text}");
            assert_eq!(access.append, flags.contains(OFlag::O_APPEND), "{text}");
            let acc = flags & OFlag::O_ACCMODE;
            assert_eq!(access.read, acc != OFlag::O_WRONLY, "{text}");
            assert_eq!(access.write, acc != OFlag::O_RDONLY && !access.append, "{text}");
        }
        for bad in ["rw", "", "x", "r+x", "R", "wx"] {
            assert_eq!(OpenMode::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_truncated_request_is_refused() {
        for r in every_request() {
            let b = r.encode();
            for cut in 0..b.len() {
                assert!(Request::decode(&b[..cut]).is_err(), "{r:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = Request::Freeze.encode();
        b.push(0);
        assert!(matches!(Request::decode(&b), Err(FrameError::TrailingBytes(1))));
    }

    #[test]
    fn unknown_tags_and_values_are_refused() {
        assert!(matches!(Request::decode(&[0]), Err(FrameError::UnknownTag(0))));
        assert!(matches!(Request::decode(&[200]), Err(FrameError::UnknownTag(200))));
        assert!(Request::decode(&[5, 3]).is_err());
        assert!(Request::decode(&[8, 2]).is_err());
        let mut b = vec![7];
        b.extend_from_slice(&((MAX_VCPUS + 1) as u32).to_le_bytes());
        assert!(Request::decode(&b).is_err());
        let mut b = vec![7, 1, 0, 0, 0];
        b.extend_from_slice(&1i64.to_le_bytes());
        b.push(2);
        assert!(Request::decode(&b).is_err(), "boolean 2");
    }

    #[test]
    fn a_reload_answer_naming_a_command_no_policy_can_enable_is_refused() {
        // Found by the helper_frames fuzz target: it decoded, but re-encoded without the command.
        let devices = Command::GetDevices.index() as u32;
        let mut b = vec![60];
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&devices.to_le_bytes());
        assert!(matches!(Reply::decode(&b), Err(FrameError::BadValue("command index"))));
    }

    #[test]
    fn the_longest_vcpu_list_the_helper_accepts_fits_a_frame_and_decodes() {
        let vcpus = vec![VcpuState { logical_id: i64::MAX, online: true }; MAX_VCPUS];
        let r = Request::SetVcpus { vcpus };
        let payload = r.encode();
        assert!(payload.len() <= MAX_FRAME);
        assert_eq!(Request::decode(&payload).unwrap(), r);
    }

    #[test]
    fn a_reload_request_carries_nothing_and_a_reload_answer_is_one_encoding() {
        // Whatever a compromised front appends to a reload request is refused, not read.
        assert!(matches!(Request::decode(&[60, 1]), Err(FrameError::TrailingBytes(1))));
        let index = |i: u32| i.to_le_bytes();
        let reply = |ids: &[u32]| {
            let mut b = vec![60];
            b.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for &i in ids {
                b.extend_from_slice(&index(i));
            }
            b.extend_from_slice(&0u32.to_le_bytes());
            b
        };
        assert!(Reply::decode(&reply(&[0, 2])).is_ok());
        assert!(Reply::decode(&reply(&[2, 0])).is_err(), "out of order");
        assert!(Reply::decode(&reply(&[1, 1])).is_err(), "twice");
        assert!(Reply::decode(&reply(&[COUNT as u32])).is_err(), "past the table");
        let mut too_many = vec![60];
        too_many.extend_from_slice(&(COUNT as u32 + 1).to_le_bytes());
        assert!(Reply::decode(&too_many).is_err(), "more than the table");
    }

    #[test]
    fn a_reload_answers_conditions_are_parsed_again_and_a_malformed_one_is_refused() {
        let shutdown = Command::Shutdown.index() as u32;
        let answer = |words: &[&str]| {
            let mut b = vec![60];
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&shutdown.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&shutdown.to_le_bytes());
            b.extend_from_slice(&(words.len() as u32).to_le_bytes());
            for w in words {
                b.extend_from_slice(&(w.len() as u32).to_le_bytes());
                b.extend_from_slice(w.as_bytes());
            }
            b
        };
        let Ok(Reply::Reloaded { policy }) = Reply::decode(&answer(&["mode=reboot"])) else { panic!() };
        assert_eq!(policy.conditions()[0].to_line(), "guest-shutdown \"mode=reboot\"");
        assert!(matches!(Reply::decode(&answer(&["mode=off"])), Err(FrameError::BadValue("conditions"))));
        assert!(matches!(Reply::decode(&answer(&["size=1"])), Err(FrameError::BadValue("conditions"))));
        assert!(matches!(Reply::decode(&answer(&[])), Err(FrameError::BadValue("conditions"))));
        let mut b = answer(&["mode=reboot"]);
        let at = 1 + 4 + 4;
        b[at..at + 4].copy_from_slice(&(qga_policy::file::MAX_FILE_SIZE as u32 + 1).to_le_bytes());
        assert!(Reply::decode(&b).is_err(), "more lines than a policy file has bytes");
    }

    #[test]
    fn the_longest_memory_block_and_mount_point_lists_fit_a_frame_and_decode() {
        let blocks = vec![MemoryBlockState { phys_index: u64::MAX, online: true }; MAX_MEMORY_BLOCKS];
        let r = Request::SetMemoryBlocks { blocks };
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        let r = Request::FreezeList { mountpoints: Some(vec![vec![b'x'; MAX_MOUNTPOINT_LEN]; MAX_MOUNTPOINTS]) };
        assert!(r.encode().len() <= MAX_FRAME);
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        let one =
            MemoryBlockResult { phys_index: 1, response: MemoryBlockResponse::OperationFailed, error_code: Some(1) };
        let r = Reply::MemoryBlocksSet { results: vec![one; MAX_MEMORY_BLOCKS] };
        assert!(r.encode().len() <= MAX_FRAME);
        assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn lists_and_strings_over_their_bounds_are_refused() {
        let over = |tag: u8, n: usize| {
            let mut b = vec![tag];
            if tag == 40 {
                b.push(1);
            }
            b.extend_from_slice(&(n as u32).to_le_bytes());
            Request::decode(&b)
        };
        assert!(matches!(over(41, MAX_MEMORY_BLOCKS + 1), Err(FrameError::BadValue("list length"))));
        assert!(matches!(over(40, MAX_MOUNTPOINTS + 1), Err(FrameError::BadValue("list length"))));
        let mut b = vec![40, 1, 1, 0, 0, 0];
        b.extend_from_slice(&((MAX_MOUNTPOINT_LEN + 1) as u32).to_le_bytes());
        b.extend(std::iter::repeat_n(b'x', MAX_MOUNTPOINT_LEN + 1));
        assert!(matches!(Request::decode(&b), Err(FrameError::BadValue("byte string length"))));
        assert!(Request::decode(&[40, 2]).is_err(), "flag 2");
        let mut b = vec![40, 1, 0, 0, 0];
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(4);
        assert!(Reply::decode(&b).is_err(), "response code 4");
    }

    #[test]
    fn account_requests_over_their_bounds_are_refused() {
        let full = Request::SshAddKeys {
            user: vec![b'u'; crate::accounts::MAX_USERNAME],
            keys: vec![vec![b'k'; MAX_KEY_LEN]; MAX_KEYS],
            reset: false,
        };
        assert!(full.encode().len() <= MAX_FRAME);
        assert_eq!(Request::decode(&full.encode()).unwrap(), full);
        let too_many = Request::SshRemoveKeys { user: b"u".to_vec(), keys: vec![vec![]; MAX_KEYS + 1] };
        assert!(matches!(Request::decode(&too_many.encode()), Err(FrameError::BadValue("list length"))));
        let too_long = Request::SshRemoveKeys { user: b"u".to_vec(), keys: vec![vec![b'k'; MAX_KEY_LEN + 1]] };
        assert!(Request::decode(&too_long.encode()).is_err());
        let long_user = Request::SshGetKeys { user: vec![b'u'; crate::accounts::MAX_USERNAME + 1] };
        assert!(Request::decode(&long_user.encode()).is_err());
        let long_password = Request::SetUserPassword {
            user: b"u".to_vec(),
            password: Secret(vec![b'p'; MAX_PASSWORD + 1]),
            crypted: true,
        };
        assert!(Request::decode(&long_password.encode()).is_err());
    }

    #[test]
    fn an_oversized_length_prefix_is_refused_before_reading_the_payload() {
        let mut b = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 16]);
        assert!(matches!(read_frame(&mut &b[..]), Err(FrameError::TooLong(_))));
    }

    #[test]
    fn eof_at_a_boundary_is_closed_and_inside_a_frame_is_truncated() {
        assert!(matches!(read_frame(&mut &[][..]), Err(FrameError::Closed)));
        assert!(matches!(read_frame(&mut &[1, 0][..]), Err(FrameError::Truncated)));
        assert!(matches!(read_frame(&mut &[2, 0, 0, 0, 1][..]), Err(FrameError::Truncated)));
    }

    // ---- guest-get-fsinfo and guest-get-disks ----

    use crate::storage::{BusType, DiskAddress, PciAddress, MAX_DISKS, MAX_MOUNTS};

    fn address() -> DiskAddress {
        DiskAddress {
            pci: PciAddress { domain: 0, bus: 0, slot: 5, function: 0 },
            bus_type: BusType::Virtio,
            bus: 0,
            target: 0,
            unit: 0,
            serial: Some("QGA-SERIAL".into()),
            dev: Some("/dev/vdb1".into()),
        }
    }

    #[test]
    fn fsinfo_and_disks_replies_round_trip() {
        let fs = Reply::Fsinfo {
            filesystems: vec![
                FsInfo {
                    name: "vdb1".into(),
                    mountpoint: "/mnt".into(),
                    fstype: "ext4".into(),
                    sizes: Some((u64::MAX, 7)),
                    disks: vec![address()],
                },
                FsInfo {
                    name: "0:42".into(),
                    mountpoint: "/x".into(),
                    fstype: "fuse".into(),
                    sizes: None,
                    disks: vec![],
                },
            ],
        };
        let disks = Reply::Disks {
            disks: vec![
                DiskInfo {
                    name: "/dev/vdb".into(),
                    partition: false,
                    dependencies: Some(vec![]),
                    address: Some(address()),
                    alias: None,
                },
                DiskInfo {
                    name: "/dev/dm-0".into(),
                    partition: false,
                    dependencies: Some(vec!["/dev/vdb1".into()]),
                    address: None,
                    alias: Some("vg-lv".into()),
                },
                DiskInfo { name: "/dev/vdb1".into(), partition: true, dependencies: None, address: None, alias: None },
            ],
        };
        for r in [fs, disks] {
            let b = r.encode();
            assert!(b.len() <= MAX_FRAME);
            assert_eq!(Reply::decode(&b).unwrap(), r);
            for cut in 0..b.len() {
                assert!(Reply::decode(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn lists_over_their_bound_and_unknown_bus_types_are_refused() {
        let mut b = vec![30];
        b.extend_from_slice(&((MAX_MOUNTS + 1) as u32).to_le_bytes());
        assert!(Reply::decode(&b).is_err());
        let mut b = vec![31];
        b.extend_from_slice(&((MAX_DISKS + 1) as u32).to_le_bytes());
        assert!(Reply::decode(&b).is_err());
        let r = Reply::Disks {
            disks: vec![DiskInfo {
                name: "a".into(),
                partition: false,
                dependencies: None,
                address: Some(address()),
                alias: None,
            }],
        };
        let mut b = r.encode();
        // tag, count, name (4 + 1), partition, deps tag, address tag, four PCI fields: the bus type.
        let at = 1 + 4 + 5 + 1 + 1 + 1 + 32;
        assert_eq!(b[at], 2);
        b[at] = 9;
        assert!(Reply::decode(&b).is_err());
    }
}
