//! guest-exec's messages, shared by the front↔helper protocol and the helper↔launcher link:
//! the request as the host gave it (after the front's checks), the plan the helper makes of it
//! (what the launcher runs, after the policy re-check), and a program's status. Each field is
//! bounded; the frames that carry them are the only ones allowed past [`crate::MAX_FRAME`], up
//! to [`MAX_EXEC_FRAME`].

use crate::wire::{Dec, Enc, FrameError};

/// Output kept per captured stream: qemu-ga 7.2's own truncation point (GUEST_EXEC_MAX_OUTPUT).
pub const MAX_EXEC_OUTPUT: usize = 16 * 1024 * 1024;
/// The largest decoded input-data the helper accepts.
pub const MAX_EXEC_INPUT: usize = 16 * 1024 * 1024;
/// The bytes of path, arguments and environment together: Linux's own bound on exec's
/// arguments is about 2 MiB, so nothing a program could receive is refused for size.
pub const MAX_EXEC_ARGV: usize = 2 * 1024 * 1024;
/// Arguments or environment strings in one request.
pub const MAX_EXEC_WORDS: usize = 65536;
/// The bound of a frame carrying exec input or output.
pub const MAX_EXEC_FRAME: usize = 2 * MAX_EXEC_OUTPUT + MAX_EXEC_INPUT + MAX_EXEC_ARGV + 64 * 1024;
/// Programs started and not yet reported exited, at most: each holds up to twice its output
/// limit in its supervisor until guest-exec-status collects it.
pub const MAX_EXEC_PROGRAMS: usize = 64;

// The largest exec request or plan (a tag, the words with their length prefixes, the input,
// the flags, the limits) and the largest status fit the exec frame bound.
const _: () =
    assert!(1 + 4 + MAX_EXEC_ARGV + (2 * MAX_EXEC_WORDS + 1) * 4 + 2 * 4 + 4 + MAX_EXEC_INPUT + 64 <= MAX_EXEC_FRAME);
const _: () = assert!(1 + 1 + 1 + 4 + 2 * (4 + MAX_EXEC_OUTPUT + 1) <= MAX_EXEC_FRAME);

/// guest-exec's arguments, after the front's schema check and base64 decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub path: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    /// `NAME=VALUE` strings; `None`: the request gave no `env`.
    pub env: Option<Vec<Vec<u8>>>,
    /// The decoded input-data; `None`: none given (stdin is /dev/null).
    pub input: Option<Vec<u8>>,
    pub capture: bool,
}

impl ExecRequest {
    /// Whether path, arguments and environment fit [`MAX_EXEC_ARGV`] and [`MAX_EXEC_WORDS`], and
    /// the input [`MAX_EXEC_INPUT`]: the front refuses a request beyond them itself.
    pub fn within_bounds(&self) -> bool {
        let env = self.env.as_deref().unwrap_or(&[]);
        let bytes: usize = self.path.len() + self.args.iter().chain(env).map(Vec::len).sum::<usize>();
        bytes <= MAX_EXEC_ARGV
            && self.args.len() <= MAX_EXEC_WORDS
            && env.len() <= MAX_EXEC_WORDS
            && self.input.as_ref().map_or(0, Vec::len) <= MAX_EXEC_INPUT
    }

    pub(crate) fn encode(&self, e: &mut Enc) {
        e.bytes(&self.path);
        words(e, &self.args);
        e.opt(self.env.as_ref(), |e, env| words(e, env));
        e.opt(self.input.as_ref(), |e, i| e.bytes(i));
        e.bool(self.capture);
    }

    pub(crate) fn decode(d: &mut Dec) -> Result<ExecRequest, FrameError> {
        let path = d.bytes(MAX_EXEC_ARGV)?;
        let args = read_words(d)?;
        let env = match d.u8()? {
            0 => None,
            1 => Some(read_words(d)?),
            _ => return Err(FrameError::BadValue("optional environment")),
        };
        let input = match d.u8()? {
            0 => None,
            1 => Some(d.bytes(MAX_EXEC_INPUT)?),
            _ => return Err(FrameError::BadValue("optional input")),
        };
        let r = ExecRequest { path, args, env, input, capture: d.bool()? };
        if !r.within_bounds() {
            return Err(FrameError::BadValue("exec request size"));
        }
        Ok(r)
    }
}

fn words(e: &mut Enc, w: &[Vec<u8>]) {
    e.u32(w.len() as u32);
    for s in w {
        e.bytes(s);
    }
}

fn read_words(d: &mut Dec) -> Result<Vec<Vec<u8>>, FrameError> {
    let n = d.count(MAX_EXEC_WORDS)?;
    let mut v = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        v.push(d.bytes(MAX_EXEC_ARGV)?);
    }
    Ok(v)
}

/// How a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecEnd {
    Exited(i32),
    /// Killed by this signal (also a program past its time limit: SIGKILL).
    Signaled(i32),
}

/// One captured stream: what was kept (at most the limit) and whether more was dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    pub data: Vec<u8>,
    pub truncated: bool,
}

/// guest-exec-status's answer: `end` is `None` while the program runs (or its output is still
/// open); the streams are empty when nothing was captured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecStatus {
    pub end: Option<ExecEnd>,
    pub out: Captured,
    pub err: Captured,
}

impl ExecStatus {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut e = Enc(std::mem::take(out));
        self.encode(&mut e);
        *out = e.0;
    }

    pub fn decode_from(b: &[u8]) -> Result<ExecStatus, FrameError> {
        let mut d = Dec(b);
        let s = ExecStatus::decode(&mut d)?;
        d.finish()?;
        Ok(s)
    }

    pub(crate) fn encode(&self, e: &mut Enc) {
        match self.end {
            None => e.u8(0),
            Some(ExecEnd::Exited(c)) => {
                e.u8(1);
                e.i64(c as i64);
            }
            Some(ExecEnd::Signaled(s)) => {
                e.u8(2);
                e.i64(s as i64);
            }
        }
        for c in [&self.out, &self.err] {
            e.bytes(&c.data);
            e.bool(c.truncated);
        }
    }

    pub(crate) fn decode(d: &mut Dec) -> Result<ExecStatus, FrameError> {
        let code = |d: &mut Dec| -> Result<i32, FrameError> {
            i32::try_from(d.i64()?).map_err(|_| FrameError::BadValue("exit status"))
        };
        let end = match d.u8()? {
            0 => None,
            1 => Some(ExecEnd::Exited(code(d)?)),
            2 => Some(ExecEnd::Signaled(code(d)?)),
            _ => return Err(FrameError::BadValue("exec end")),
        };
        let mut captured = || -> Result<Captured, FrameError> {
            Ok(Captured { data: d.bytes(MAX_EXEC_OUTPUT)?, truncated: d.bool()? })
        };
        let out = captured()?;
        let err = captured()?;
        Ok(ExecStatus { end, out, err })
    }
}

/// What the launcher runs, as the helper decided it from the request and the policy's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecPlan {
    /// An absolute path, or a name looked up in the environment's PATH (7.2's
    /// G_SPAWN_SEARCH_PATH_FROM_ENVP) or, without one, the launcher's fixed directories.
    pub program: Vec<u8>,
    /// argv, argv[0] included (7.2: the path as given).
    pub argv: Vec<Vec<u8>>,
    /// The complete environment.
    pub env: Vec<Vec<u8>>,
    /// The user it runs as; `None`: root, as 7.2.
    pub user: Option<String>,
    pub input: Option<Vec<u8>>,
    pub capture: bool,
    /// Seconds; `None`: no limit (7.2).
    pub timeout: Option<u64>,
    /// Bytes kept per captured stream, at most [`MAX_EXEC_OUTPUT`].
    pub output_limit: u64,
}

impl ExecPlan {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut e = Enc(std::mem::take(out));
        e.bytes(&self.program);
        words(&mut e, &self.argv);
        words(&mut e, &self.env);
        e.opt(self.user.as_ref(), |e, u| e.str(u));
        e.opt(self.input.as_ref(), |e, i| e.bytes(i));
        e.bool(self.capture);
        e.u64(self.timeout.unwrap_or(0));
        e.u64(self.output_limit);
        *out = e.0;
    }

    pub fn decode_from(b: &[u8]) -> Result<ExecPlan, FrameError> {
        let mut d = Dec(b);
        let program = d.bytes(MAX_EXEC_ARGV)?;
        let argv = read_words(&mut d)?;
        let env = read_words(&mut d)?;
        let user = match d.u8()? {
            0 => None,
            1 => Some(d.str()?),
            _ => return Err(FrameError::BadValue("optional user")),
        };
        let input = match d.u8()? {
            0 => None,
            1 => Some(d.bytes(MAX_EXEC_INPUT)?),
            _ => return Err(FrameError::BadValue("optional input")),
        };
        let capture = d.bool()?;
        let timeout = match d.u64()? {
            0 => None,
            t => Some(t),
        };
        let output_limit = d.u64()?;
        if output_limit > MAX_EXEC_OUTPUT as u64 || argv.is_empty() {
            return Err(FrameError::BadValue("exec plan"));
        }
        d.finish()?;
        Ok(ExecPlan { program, argv, env, user, input, capture, timeout, output_limit })
    }
}

/// The frame bound for a payload starting with `tag` on a link where `large` tags carry exec
/// data: only those may exceed [`crate::MAX_FRAME`].
pub fn frame_bound(tag: u8, large: &[u8]) -> usize {
    if large.contains(&tag) {
        MAX_EXEC_FRAME
    } else {
        crate::MAX_FRAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_and_statuses_round_trip() {
        let plan = ExecPlan {
            program: b"/bin/sh".to_vec(),
            argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"exit 3".to_vec()],
            env: vec![b"PATH=/bin".to_vec()],
            user: Some("nobody".into()),
            input: Some(b"\0\xff".to_vec()),
            capture: true,
            timeout: Some(5),
            output_limit: 1024,
        };
        let mut b = Vec::new();
        plan.encode_into(&mut b);
        assert_eq!(ExecPlan::decode_from(&b).unwrap(), plan);
        let status = ExecStatus {
            end: Some(ExecEnd::Signaled(9)),
            out: Captured { data: b"x".to_vec(), truncated: true },
            err: Captured::default(),
        };
        let mut b = Vec::new();
        status.encode_into(&mut b);
        assert_eq!(ExecStatus::decode_from(&b).unwrap(), status);
        for cut in 0..b.len() {
            assert!(ExecStatus::decode_from(&b[..cut]).is_err());
        }
    }

    #[test]
    fn a_plan_over_the_output_bound_or_without_argv_is_refused() {
        let mut plan = ExecPlan {
            program: b"/bin/true".to_vec(),
            argv: vec![],
            env: vec![],
            user: None,
            input: None,
            capture: false,
            timeout: None,
            output_limit: 1,
        };
        let mut b = Vec::new();
        plan.encode_into(&mut b);
        assert!(ExecPlan::decode_from(&b).is_err());
        plan.argv = vec![b"true".to_vec()];
        plan.output_limit = MAX_EXEC_OUTPUT as u64 + 1;
        let mut b = Vec::new();
        plan.encode_into(&mut b);
        assert!(ExecPlan::decode_from(&b).is_err());
    }
}
