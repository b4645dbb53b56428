//! The front's end of the helper socket: one request out, one reply in, synchronously. The
//! helper bounds every operation's time (the freeze hook has a timeout), so a blocking call is
//! bounded too; if the helper is gone the link says so and the agent exits.

use crate::qmp::AgentError;
use nix::errno::Errno;
use qga_protocol::ask::{self, Ask, Asking};
use qga_protocol::fdpass::read_frame_with_fds;
use qga_protocol::{write_frame, FrameError, OpenMode, Reply, Request, EXEC_TAGS, MAX_EXEC_FRAME, MAX_FRAME};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

pub struct HelperLink {
    socket: UnixStream,
    /// Why the helper is gone, once it is.
    lost: Option<String>,
}

impl HelperLink {
    pub fn new(socket: UnixStream) -> HelperLink {
        HelperLink { socket, lost: None }
    }

    /// Sends a request of kind `K` and waits for its answer, which carries no descriptor. The
    /// helper's failure is the command's error, with the helper's text.
    pub fn ask<K: Ask>(&mut self, asking: Asking<K>) -> Result<K::Answer, AgentError> {
        let request = asking.into_request();
        let (reply, fds) = self.exchange(&request)?;
        if !fds.is_empty() || reply == Reply::FileOpened {
            return Err(self.broken(&request, "a descriptor with a reply that takes none"));
        }
        answer::<K>(reply)
    }

    /// guest-file-open by the helper: the open file, or the errno the open failed with.
    /// `FileOpened` must come with exactly one descriptor, every other reply with none;
    /// anything else is a helper that misbehaves, and the agent stops.
    pub fn open_file(&mut self, path: &[u8], mode: OpenMode) -> Result<Result<std::fs::File, Errno>, AgentError> {
        let request = ask::file_open(path.to_vec(), mode).into_request();
        let (reply, mut fds) = self.exchange(&request)?;
        let opened = reply == Reply::FileOpened;
        match (opened, fds.len()) {
            (true, 1) => {}
            (true, _) => return Err(self.broken(&request, "an open file without exactly one descriptor")),
            (false, 0) => {}
            (false, _) => return Err(self.broken(&request, "a descriptor with a reply that takes none")),
        }
        Ok(answer::<ask::FileOpen>(reply)?.map(|()| std::fs::File::from(fds.remove(0))).map_err(Errno::from_raw))
    }

    /// Marks the helper broken (it sent what it never should) and says so; any descriptor it
    /// sent is closed as the caller drops it.
    fn broken(&mut self, request: &Request, what: &str) -> AgentError {
        self.lost = Some(format!("privileged helper misbehaved during {}: it sent {what}", request.name()));
        lost_error()
    }

    /// One request out, one reply in, with whatever descriptors came with the reply.
    fn exchange(&mut self, request: &Request) -> Result<(Reply, Vec<OwnedFd>), AgentError> {
        if self.lost.is_some() {
            return Err(lost_error());
        }
        let payload = request.encode();
        // The helper exits on a frame over its bound; the front refuses such a request itself
        // (protocol.rs keeps every bounded request within it, so this is a last line).
        let bound = if EXEC_TAGS.contains(&payload[0]) { MAX_EXEC_FRAME } else { MAX_FRAME };
        if payload.len() > bound {
            return Err(AgentError::command(format!(
                "the request is too large for the privileged helper ({} bytes)",
                payload.len()
            )));
        }
        let result = write_frame(&mut self.socket, &payload)
            .map_err(FrameError::Io)
            .and_then(|()| {
                read_frame_with_fds(&mut self.socket, |tag| qga_protocol::exec::frame_bound(tag, &EXEC_TAGS))
            })
            .and_then(|got| {
                if got.truncated {
                    return Err(FrameError::BadValue("descriptor count (control data truncated)"));
                }
                Reply::decode(&got.payload).map(|r| (r, got.fds))
            });
        match result {
            Ok(answer) => Ok(answer),
            Err(e) => {
                self.lost = Some(format!("privileged helper lost during {}: {e}", request.name()));
                Err(lost_error())
            }
        }
    }

    /// Asks the helper to thaw (if frozen) and exit, waiting at most `limit` for its answer so
    /// that a wedged helper cannot keep the agent from stopping.
    pub fn quit(&mut self, limit: std::time::Duration) -> Result<(), AgentError> {
        let _ = self.socket.set_read_timeout(Some(limit));
        self.ask(ask::quit())
    }

    /// Why the helper is gone, if it is.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Marks the helper gone (its socket hung up while idle).
    pub fn mark_lost(&mut self, why: String) {
        self.lost.get_or_insert(why);
    }

    pub fn socket(&self) -> &UnixStream {
        &self.socket
    }
}

fn lost_error() -> AgentError {
    AgentError::command("the privileged helper has exited; the agent is stopping")
}

/// The one place a reply becomes a command's result: the answer of its kind, `Failed` as the
/// command's error with the helper's guest-visible text, and a reply of another kind (a broken
/// helper) as an internal error.
fn answer<K: Ask>(reply: Reply) -> Result<K::Answer, AgentError> {
    match ask::answer::<K>(reply) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(desc)) => Err(AgentError::Command(desc.into_bytes())),
        Err(_) => Err(AgentError::command("internal error: unexpected reply from the privileged helper")),
    }
}
