//! guest-get-host-name: the kernel's node name, asked of the kernel (uname) on every call, so
//! a changed host name shows at once, as in 7.2 (which avoids GLib's cached host name).

use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use nix::errno::Errno;
use std::os::unix::ffi::OsStrExt;

/// 7.2 asks `gethostname` for at most `sysconf(_SC_HOST_NAME_MAX)` bytes, 64 on Linux.
const HOST_NAME_MAX: usize = 64;

pub fn get_host_name() -> Result<Value, AgentError> {
    let uts = nix::sys::utsname::uname().map_err(|e| AgentError::os("cannot get hostname", e))?;
    let name = host_name_from_nodename(uts.nodename().as_bytes())?;
    Ok(Dict::new().with("host-name", Value::str(name)).into())
}

/// glibc's `gethostname(buf, 64)` fails with ENAMETOOLONG when the name and its NUL do not
/// fit, i.e. for a 64-byte node name (the longest Linux allows); 7.2 then answers that error.
fn host_name_from_nodename(nodename: &[u8]) -> Result<Vec<u8>, AgentError> {
    if nodename.len() + 1 > HOST_NAME_MAX {
        return Err(AgentError::os("cannot get hostname", Errno::ENAMETOOLONG));
    }
    Ok(nodename.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_of_up_to_63_bytes_is_the_host_name() {
        assert_eq!(host_name_from_nodename(b"vm").unwrap(), b"vm");
        assert_eq!(host_name_from_nodename(&[b'a'; 63]).unwrap(), vec![b'a'; 63]);
    }

    #[test]
    fn a_64_byte_node_name_fails_like_glibcs_gethostname() {
        let e = host_name_from_nodename(&[b'a'; 64]).unwrap_err();
        assert_eq!(e.desc(), b"cannot get hostname: File name too long");
    }
}
