//! Every error a request can produce, with its context, and the one place where errors become
//! QMP error classes and description texts (qemu-ga 7.2's exact wording).

use nix::errno::Errno;

/// QMP error classes qemu-ga 7.2 uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
}

impl ErrorClass {
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
        }
    }
}

/// A failed request.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentError {
    /// The JSON text did not parse; the text is the streamer's/parser's description.
    Json(Vec<u8>),
    InputNotObject,
    /// `execute` is not a string.
    ExecuteNotString,
    ArgumentsNotObject,
    /// A top-level member other than execute/arguments/id.
    UnexpectedMember(Vec<u8>),
    LacksExecute,
    CommandNotFound(Vec<u8>),
    /// Disabled by the effective policy.
    CommandDisabled(&'static str),
    /// Not on the freeze allowlist while filesystems are frozen.
    CommandFrozen(&'static str),
    MissingParameter(Vec<u8>),
    InvalidParameterType {
        path: Vec<u8>,
        expected: &'static str,
    },
    UnexpectedParameter(Vec<u8>),
    /// A value of the right JSON kind out of the schema type's range (QEMU's
    /// QERR_INVALID_PARAMETER_VALUE, e.g. a uint64 given as a float).
    InvalidParameterValue {
        path: Vec<u8>,
        expected: &'static str,
    },
    InvalidEnumValue {
        name: &'static str,
        value: Vec<u8>,
    },
    /// An argument value a command refuses, e.g. "value '-1' is invalid for argument count".
    InvalidValue {
        value: i64,
        argument: &'static str,
    },
    /// The policy's argument conditions refuse the request; the text says what was refused.
    PolicyRefused(String),
    /// A command failed; the text is the command family's description.
    Command(Vec<u8>),
    /// A command failed on a system call: "<what>: <strerror>".
    Os {
        what: Vec<u8>,
        errno: Errno,
    },
}

impl AgentError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AgentError::CommandNotFound(_) | AgentError::CommandDisabled(_) | AgentError::CommandFrozen(_) => {
                ErrorClass::CommandNotFound
            }
            _ => ErrorClass::GenericError,
        }
    }

    pub fn desc(&self) -> Vec<u8> {
        fn cat(parts: &[&[u8]]) -> Vec<u8> {
            parts.concat()
        }
        match self {
            AgentError::Json(t) => t.clone(),
            AgentError::InputNotObject => b"QMP input must be a JSON object".to_vec(),
            AgentError::ExecuteNotString => b"QMP input member 'execute' must be a string".to_vec(),
            AgentError::ArgumentsNotObject => b"QMP input member 'arguments' must be an object".to_vec(),
            AgentError::UnexpectedMember(k) => cat(&[b"QMP input member '", k, b"' is unexpected"]),
            AgentError::LacksExecute => b"QMP input lacks member 'execute'".to_vec(),
            AgentError::CommandNotFound(n) => cat(&[b"The command ", n, b" has not been found"]),
            AgentError::CommandDisabled(n) => format!("Command {n} has been disabled").into_bytes(),
            AgentError::CommandFrozen(n) => {
                format!("Command {n} has been disabled: the agent is in frozen state").into_bytes()
            }
            AgentError::MissingParameter(p) => cat(&[b"Parameter '", p, b"' is missing"]),
            AgentError::InvalidParameterType { path, expected } => {
                cat(&[b"Invalid parameter type for '", path, b"', expected: ", expected.as_bytes()])
            }
            AgentError::UnexpectedParameter(p) => cat(&[b"Parameter '", p, b"' is unexpected"]),
            AgentError::InvalidParameterValue { path, expected } => {
                cat(&[b"Parameter '", path, b"' expects ", expected.as_bytes()])
            }
            AgentError::InvalidEnumValue { name, value } => {
                cat(&[b"Parameter '", name.as_bytes(), b"' does not accept value '", value, b"'"])
            }
            AgentError::InvalidValue { value, argument } => {
                format!("value '{value}' is invalid for argument {argument}").into_bytes()
            }
            AgentError::PolicyRefused(t) => t.clone().into_bytes(),
            AgentError::Command(t) => t.clone(),
            AgentError::Os { what, errno } => cat(&[what, b": ", strerror(*errno).as_bytes()]),
        }
    }

    /// A command failure with a plain text.
    pub fn command(text: impl Into<Vec<u8>>) -> AgentError {
        AgentError::Command(text.into())
    }

    /// A command failure on a system call.
    pub fn os(what: impl Into<Vec<u8>>, errno: Errno) -> AgentError {
        AgentError::Os { what: what.into(), errno }
    }
}

/// The description as text (non-UTF-8 bytes shown as U+FFFD), for logs and `?`.
impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.desc()))
    }
}

impl std::error::Error for AgentError {}

/// The C library's text for an errno value, as qemu-ga prints it.
pub fn strerror(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    // std appends " (os error N)" to strerror_r's text.
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_and_unknown_commands_are_command_not_found() {
        assert_eq!(AgentError::CommandNotFound(b"x".to_vec()).class(), ErrorClass::CommandNotFound);
        assert_eq!(AgentError::CommandDisabled("guest-ping").class(), ErrorClass::CommandNotFound);
        assert_eq!(AgentError::CommandFrozen("guest-file-open").class(), ErrorClass::CommandNotFound);
        assert_eq!(AgentError::LacksExecute.class(), ErrorClass::GenericError);
    }

    #[test]
    fn an_agent_error_is_a_std_error_that_displays_its_description() {
        let e: Box<dyn std::error::Error> = Box::new(AgentError::UnexpectedParameter(b"x".to_vec()));
        assert_eq!(e.to_string(), "Parameter 'x' is unexpected");
    }

    #[test]
    fn texts_match_qemu_ga_7_2() {
        assert_eq!(AgentError::CommandDisabled("guest-ping").desc(), b"Command guest-ping has been disabled");
        assert_eq!(
            AgentError::CommandFrozen("guest-file-open").desc(),
            b"Command guest-file-open has been disabled: the agent is in frozen state"
        );
        assert_eq!(
            AgentError::os("failed to write to file", Errno::EBADF).desc(),
            b"failed to write to file: Bad file descriptor"
        );
    }
}
