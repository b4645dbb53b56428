//! The front's end of the helper socket: one request out, one reply in, synchronously. The
//! helper bounds every operation's time (the freeze hook has a timeout), so a blocking call is
//! bounded too; if the helper is gone the link says so and the agent exits.

use crate::qmp::AgentError;
use qga_protocol::{read_frame, write_frame, FrameError, Reply, Request, MAX_FRAME};
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

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, request: &Request) -> Result<Reply, AgentError> {
        if self.lost.is_some() {
            return Err(lost_error());
        }
        let payload = request.encode();
        // The helper exits on a frame over its bound; the front refuses such a request itself
        // (protocol.rs keeps every bounded request within it, so this is a last line).
        if payload.len() > MAX_FRAME {
            return Err(AgentError::command(format!(
                "the request is too large for the privileged helper ({} bytes)",
                payload.len()
            )));
        }
        let result = write_frame(&mut self.socket, &payload)
            .map_err(FrameError::Io)
            .and_then(|()| read_frame(&mut self.socket))
            .and_then(|payload| Reply::decode(&payload));
        match result {
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.lost = Some(format!("privileged helper lost during {}: {e}", request.name()));
                Err(lost_error())
            }
        }
    }

    /// Asks the helper to thaw (if frozen) and exit, waiting at most `limit` for its answer so
    /// that a wedged helper cannot keep the agent from stopping.
    pub fn quit(&mut self, limit: std::time::Duration) -> Result<Reply, AgentError> {
        let _ = self.socket.set_read_timeout(Some(limit));
        self.call(&Request::Quit)
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

/// Turns the helper's reply to a request into the command's result: `Failed` carries the
/// guest-visible text; a reply of the wrong kind means the helper is broken.
pub fn expect<T>(reply: Reply, pick: impl FnOnce(Reply) -> Option<T>) -> Result<T, AgentError> {
    match reply {
        Reply::Failed { desc } => Err(AgentError::Command(desc.into_bytes())),
        other => pick(other)
            .ok_or_else(|| AgentError::command("internal error: unexpected reply from the privileged helper")),
    }
}
