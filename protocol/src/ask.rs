//! Typed calls on the helper link: the answer a request gets follows from the request.
//!
//! [`Request`] and [`Reply`] are the wire's vocabulary; this module pairs them. Each kind of
//! request is a type implementing [`Ask`], whose `Answer` is what the helper answers it with
//! when it succeeds, and an [`Asking<K>`] is a request of kind `K`, made only by the
//! constructors below (one per request). The front sends an `Asking<K>` and gets `K::Answer`
//! back: [`answer`] reads a reply as `K`'s, and a reply of another kind comes back as itself,
//! for the link to treat as the protocol violation it is, in one place. The helper's handler
//! for a request returns `Result<K::Answer, String>`, which [`reply`] turns into the one reply
//! that carries it (or `Failed` with the guest-visible text). So a handler can neither receive
//! nor give another request's reply: the types would not match.

use std::marker::PhantomData;

use crate::accounts::Secret;
use crate::exec::{ExecRequest, ExecStatus as ProgramStatus};
use crate::messages::{
    MemoryBlockResult, MemoryBlockState, OpenMode, Reply, Request, ShutdownMode, SuspendMode, TrimResult, VcpuState,
};
use crate::storage::{DiskInfo, FsInfo};
use qga_policy::Policy;

/// One kind of request and the reply that answers it.
pub trait Ask {
    /// What the helper answers a request of this kind with when it succeeds.
    type Answer;
    /// The reply that carries `answer`.
    fn reply(answer: Self::Answer) -> Reply;
    /// The answer a reply of this kind carries, or the reply itself when it is of another kind.
    fn answer(reply: Reply) -> Result<Self::Answer, Reply>;
}

/// A request of kind `K`: what the front sends, knowing what it gets back.
#[derive(Debug)]
pub struct Asking<K> {
    request: Request,
    kind: PhantomData<K>,
}

impl<K: Ask> Asking<K> {
    fn new(request: Request) -> Asking<K> {
        Asking { request, kind: PhantomData }
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn into_request(self) -> Request {
        self.request
    }
}

/// The helper's reply to a request of kind `K`: its answer, or the failure text (the error the
/// guest sees).
pub fn reply<K: Ask>(result: Result<K::Answer, String>) -> Reply {
    match result {
        Ok(answer) => K::reply(answer),
        Err(desc) => Reply::Failed { desc },
    }
}

/// What a reply to a request of kind `K` says: its answer or the helper's failure text; `Err`
/// with the reply itself when it is of another kind (a broken helper).
pub fn answer<K: Ask>(reply: Reply) -> Result<Result<K::Answer, String>, Reply> {
    match reply {
        Reply::Failed { desc } => Ok(Err(desc)),
        other => K::answer(other).map(Ok),
    }
}

/// Freeze and Thaw: how many filesystems were frozen or thawed, and whether the helper holds
/// filesystems frozen after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreezeCount {
    pub count: i64,
    pub frozen: bool,
}

/// A reload's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The new effective policy, already in force in the helper.
    Applied(Policy),
    /// Nothing changed: `restart` when the file is valid but needs a wider front sandbox than
    /// the one it started with; `reason` says why.
    Refused { restart: bool, reason: String },
}

/// The account commands' answer when the user is not in the guest's passwd file (the front
/// words the error, with the name as the host sent it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchUser;

/// Declares a kind: its answer type, the reply built from an answer, and the replies read back
/// as one (every other reply is of another kind).
macro_rules! kind {
    ($(#[$doc:meta])* $kind:ident -> $answer:ty {
        $a:pat => $reply:expr;
        $($pat:pat => $value:expr),+ $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $kind;

        impl Ask for $kind {
            type Answer = $answer;
            fn reply(answer: $answer) -> Reply {
                let $a = answer;
                $reply
            }
            fn answer(reply: Reply) -> Result<$answer, Reply> {
                match reply {
                    $($pat => Ok($value),)+
                    other => Err(other),
                }
            }
        }
    };
}

kind!(
    /// The helper's own freeze state.
    FreezeStatus -> bool { frozen => Reply::FreezeState { frozen }; Reply::FreezeState { frozen } => frozen }
);
kind!(
    /// guest-fsfreeze-freeze and -freeze-list.
    Freeze -> FreezeCount {
        c => Reply::FreezeCount { count: c.count, frozen: c.frozen };
        Reply::FreezeCount { count, frozen } => FreezeCount { count, frozen }
    }
);
kind!(
    /// guest-fsfreeze-thaw.
    Thaw -> FreezeCount {
        c => Reply::FreezeCount { count: c.count, frozen: c.frozen };
        Reply::FreezeCount { count, frozen } => FreezeCount { count, frozen }
    }
);
kind!(
    /// guest-fstrim: per-filesystem results.
    Trim -> Vec<TrimResult> { paths => Reply::Trimmed { paths }; Reply::Trimmed { paths } => paths }
);
kind!(
    /// guest-shutdown (silent on success).
    Shutdown -> () { () => Reply::Done; Reply::Done => () }
);
kind!(
    /// guest-suspend-*.
    Suspend -> () { () => Reply::Done; Reply::Done => () }
);
kind!(
    /// guest-set-vcpus: how many processors were processed.
    SetVcpus -> i64 { count => Reply::VcpusSet { count }; Reply::VcpusSet { count } => count }
);
kind!(
    /// guest-set-memory-blocks: one result per block given, in order.
    SetMemoryBlocks -> Vec<MemoryBlockResult> {
        results => Reply::MemoryBlocksSet { results };
        Reply::MemoryBlocksSet { results } => results
    }
);
kind!(
    /// guest-set-time.
    SetTime -> () { () => Reply::Done; Reply::Done => () }
);
kind!(
    /// The front is exiting: the helper thawed (if frozen) and exits after answering.
    Quit -> () { () => Reply::Done; Reply::Done => () }
);
kind!(
    /// SIGHUP: the policy the helper re-read, or why nothing changed.
    Reload -> Reloaded {
        r => match r {
            Reloaded::Applied(policy) => Reply::Reloaded { policy },
            Reloaded::Refused { restart, reason } => Reply::ReloadRefused { restart, reason },
        };
        Reply::Reloaded { policy } => Reloaded::Applied(policy),
        Reply::ReloadRefused { restart, reason } => Reloaded::Refused { restart, reason },
    }
);
kind!(
    /// guest-get-fsinfo, in 7.2's reply order.
    GetFsinfo -> Vec<FsInfo> {
        filesystems => Reply::Fsinfo { filesystems };
        Reply::Fsinfo { filesystems } => filesystems
    }
);
kind!(
    /// guest-get-disks, in 7.2's reply order.
    GetDisks -> Vec<DiskInfo> { disks => Reply::Disks { disks }; Reply::Disks { disks } => disks }
);
kind!(
    /// guest-exec: the started program's pid.
    Exec -> i64 { pid => Reply::ExecStarted { pid }; Reply::ExecStarted { pid } => pid }
);
kind!(
    /// guest-exec-status.
    ExecStatus -> ProgramStatus { status => Reply::ExecStatus(status); Reply::ExecStatus(status) => status }
);
kind!(
    /// guest-set-user-password.
    SetUserPassword -> () { () => Reply::Done; Reply::Done => () }
);
kind!(
    /// guest-ssh-get-authorized-keys: the keys in 7.2's reply order.
    SshGetKeys -> Result<Vec<Vec<u8>>, NoSuchUser> {
        r => match r {
            Ok(keys) => Reply::Keys { keys },
            Err(NoSuchUser) => Reply::NoSuchUser,
        };
        Reply::Keys { keys } => Ok(keys),
        Reply::NoSuchUser => Err(NoSuchUser),
    }
);
kind!(
    /// guest-ssh-add-authorized-keys.
    SshAddKeys -> Result<(), NoSuchUser> {
        r => match r {
            Ok(()) => Reply::Done,
            Err(NoSuchUser) => Reply::NoSuchUser,
        };
        Reply::Done => Ok(()),
        Reply::NoSuchUser => Err(NoSuchUser),
    }
);
kind!(
    /// guest-ssh-remove-authorized-keys.
    SshRemoveKeys -> Result<(), NoSuchUser> {
        r => match r {
            Ok(()) => Reply::Done,
            Err(NoSuchUser) => Reply::NoSuchUser,
        };
        Reply::Done => Ok(()),
        Reply::NoSuchUser => Err(NoSuchUser),
    }
);
kind!(
    /// guest-file-open: `Ok` when the file is open (its descriptor travels with the reply, and
    /// the link takes exactly one with it), else the errno the open failed with.
    FileOpen -> Result<(), i32> {
        r => match r {
            Ok(()) => Reply::FileOpened,
            Err(errno) => Reply::FileOpenFailed { errno },
        };
        Reply::FileOpened => Ok(()),
        Reply::FileOpenFailed { errno } => Err(errno),
    }
);

// One constructor per request: the only way to make an `Asking`, so each request is paired
// with its kind here and nowhere else.

pub fn freeze_status() -> Asking<FreezeStatus> {
    Asking::new(Request::FreezeStatus)
}

pub fn freeze() -> Asking<Freeze> {
    Asking::new(Request::Freeze)
}

/// guest-fsfreeze-freeze-list shares guest-fsfreeze-freeze's answer (and the helper's path).
pub fn freeze_list(mountpoints: Option<Vec<Vec<u8>>>) -> Asking<Freeze> {
    Asking::new(Request::FreezeList { mountpoints })
}

pub fn thaw() -> Asking<Thaw> {
    Asking::new(Request::Thaw)
}

pub fn trim(minimum: i64) -> Asking<Trim> {
    Asking::new(Request::Trim { minimum })
}

pub fn shutdown(mode: ShutdownMode) -> Asking<Shutdown> {
    Asking::new(Request::Shutdown { mode })
}

pub fn suspend(mode: SuspendMode) -> Asking<Suspend> {
    Asking::new(Request::Suspend { mode })
}

pub fn set_vcpus(vcpus: Vec<VcpuState>) -> Asking<SetVcpus> {
    Asking::new(Request::SetVcpus { vcpus })
}

pub fn set_memory_blocks(blocks: Vec<MemoryBlockState>) -> Asking<SetMemoryBlocks> {
    Asking::new(Request::SetMemoryBlocks { blocks })
}

pub fn set_time(time_ns: Option<i64>) -> Asking<SetTime> {
    Asking::new(Request::SetTime { time_ns })
}

pub fn quit() -> Asking<Quit> {
    Asking::new(Request::Quit)
}

pub fn reload() -> Asking<Reload> {
    Asking::new(Request::Reload)
}

pub fn get_fsinfo() -> Asking<GetFsinfo> {
    Asking::new(Request::GetFsinfo)
}

pub fn get_disks() -> Asking<GetDisks> {
    Asking::new(Request::GetDisks)
}

pub fn exec(request: ExecRequest) -> Asking<Exec> {
    Asking::new(Request::Exec(request))
}

pub fn exec_status(pid: i64) -> Asking<ExecStatus> {
    Asking::new(Request::ExecStatus { pid })
}

pub fn set_user_password(user: Vec<u8>, password: Secret, crypted: bool) -> Asking<SetUserPassword> {
    Asking::new(Request::SetUserPassword { user, password, crypted })
}

pub fn ssh_get_keys(user: Vec<u8>) -> Asking<SshGetKeys> {
    Asking::new(Request::SshGetKeys { user })
}

pub fn ssh_add_keys(user: Vec<u8>, keys: Vec<Vec<u8>>, reset: bool) -> Asking<SshAddKeys> {
    Asking::new(Request::SshAddKeys { user, keys, reset })
}

pub fn ssh_remove_keys(user: Vec<u8>, keys: Vec<Vec<u8>>) -> Asking<SshRemoveKeys> {
    Asking::new(Request::SshRemoveKeys { user, keys })
}

pub fn file_open(path: Vec<u8>, mode: OpenMode) -> Asking<FileOpen> {
    Asking::new(Request::FileOpen { path, mode })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ReplyTag;

    /// Every answer goes out as a reply that reads back as the same answer, and no reply is
    /// taken by a kind it does not belong to.
    fn round_trips<K: Ask>(answers: Vec<K::Answer>, tags: &[ReplyTag])
    where
        K::Answer: Clone + PartialEq + std::fmt::Debug,
    {
        for a in answers {
            let r = reply::<K>(Ok(a.clone()));
            assert!(tags.contains(&r.tag()), "{r:?}");
            assert_eq!(answer::<K>(Reply::decode(&r.encode()).unwrap()).unwrap(), Ok(a));
        }
        assert_eq!(answer::<K>(reply::<K>(Err("no".into()))).unwrap(), Err("no".to_string()));
        for other in [Reply::VcpusSet { count: 1 }, Reply::Done, Reply::NoSuchUser, Reply::FileOpened] {
            if !tags.contains(&other.tag()) {
                assert!(answer::<K>(other).is_err());
            }
        }
    }

    #[test]
    fn each_kind_answers_with_its_own_replies_only() {
        use ReplyTag as T;
        round_trips::<FreezeStatus>(vec![true, false], &[T::FreezeState]);
        let c = FreezeCount { count: 2, frozen: true };
        round_trips::<Freeze>(vec![c], &[T::FreezeCount]);
        round_trips::<Thaw>(vec![FreezeCount { count: 0, frozen: false }], &[T::FreezeCount]);
        round_trips::<Trim>(vec![vec![TrimResult::Failed { path: "/".into(), error: "e".into() }]], &[T::Trimmed]);
        round_trips::<Shutdown>(vec![()], &[T::Done]);
        round_trips::<Suspend>(vec![()], &[T::Done]);
        round_trips::<SetVcpus>(vec![3], &[T::VcpusSet]);
        round_trips::<SetMemoryBlocks>(vec![vec![]], &[T::MemoryBlocksSet]);
        round_trips::<SetTime>(vec![()], &[T::Done]);
        round_trips::<Quit>(vec![()], &[T::Done]);
        round_trips::<Reload>(
            vec![
                Reloaded::Applied(Policy::allow_all()),
                Reloaded::Refused { restart: true, reason: "policy:1: x".into() },
            ],
            &[T::Reloaded, T::ReloadRefused],
        );
        round_trips::<GetFsinfo>(vec![vec![]], &[T::Fsinfo]);
        round_trips::<GetDisks>(vec![vec![]], &[T::Disks]);
        round_trips::<Exec>(vec![42], &[T::ExecStarted]);
        round_trips::<ExecStatus>(vec![ProgramStatus::default()], &[T::ExecStatus]);
        round_trips::<SetUserPassword>(vec![()], &[T::Done]);
        round_trips::<SshGetKeys>(vec![Ok(vec![b"k".to_vec()]), Err(NoSuchUser)], &[T::Keys, T::NoSuchUser]);
        round_trips::<SshAddKeys>(vec![Ok(()), Err(NoSuchUser)], &[T::Done, T::NoSuchUser]);
        round_trips::<SshRemoveKeys>(vec![Ok(()), Err(NoSuchUser)], &[T::Done, T::NoSuchUser]);
        round_trips::<FileOpen>(vec![Ok(()), Err(13)], &[T::FileOpened, T::FileOpenFailed]);
    }

    #[test]
    fn each_constructor_makes_its_own_request() {
        use crate::messages::RequestTag as T;
        let tags = [
            freeze_status().into_request().tag(),
            freeze().into_request().tag(),
            freeze_list(None).into_request().tag(),
            thaw().into_request().tag(),
            trim(0).into_request().tag(),
            shutdown(ShutdownMode::Halt).into_request().tag(),
            suspend(SuspendMode::Ram).into_request().tag(),
            set_vcpus(vec![]).into_request().tag(),
            set_memory_blocks(vec![]).into_request().tag(),
            set_time(None).into_request().tag(),
            quit().into_request().tag(),
            reload().into_request().tag(),
            get_fsinfo().into_request().tag(),
            get_disks().into_request().tag(),
            exec(ExecRequest { path: b"true".to_vec(), args: vec![], env: None, input: None, capture: false })
                .into_request()
                .tag(),
            exec_status(1).into_request().tag(),
            set_user_password(b"u".to_vec(), Secret(b"p".to_vec()), false).into_request().tag(),
            ssh_get_keys(b"u".to_vec()).into_request().tag(),
            ssh_add_keys(b"u".to_vec(), vec![], false).into_request().tag(),
            ssh_remove_keys(b"u".to_vec(), vec![]).into_request().tag(),
            file_open(b"/x".to_vec(), OpenMode::Read).into_request().tag(),
        ];
        // Every request has a constructor.
        for t in T::ALL {
            assert!(tags.contains(t), "no constructor makes {t:?}");
        }
    }
}
