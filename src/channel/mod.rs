//! The channel to the host. A device (virtio-serial, isa-serial) is one descriptor kept for
//! the agent's life; a listening socket (unix-listen, vsock-listen) serves one client at a
//! time. Everything is opened before the front gives up root.

mod device;
mod listen;

pub use device::open_device;
pub use listen::{accept, listen_unix, listen_vsock};

use crate::config::Method;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

/// An open channel.
pub enum Channel {
    /// A character device; `virtio` selects virtio-serial's no-host handling.
    Device { file: File, virtio: bool },
    /// A listening socket.
    Listener { socket: OwnedFd },
}

/// Opens the channel for `method` at `path` (the method's default when `None`). A missing
/// device is waited for.
pub fn open(method: Method, path: Option<&str>) -> io::Result<Channel> {
    let path = path.or(method.default_path());
    let need_path = || io::Error::new(io::ErrorKind::InvalidInput, format!("{} needs a path (-p)", method.name()));
    match method {
        Method::VirtioSerial => {
            Ok(Channel::Device { file: open_device(path.ok_or_else(need_path)?, false)?, virtio: true })
        }
        Method::IsaSerial => {
            Ok(Channel::Device { file: open_device(path.ok_or_else(need_path)?, true)?, virtio: false })
        }
        Method::UnixListen => Ok(Channel::Listener { socket: listen_unix(path.ok_or_else(need_path)?)? }),
        Method::VsockListen => Ok(Channel::Listener { socket: listen_vsock(path.ok_or_else(need_path)?)? }),
    }
}
