//! virtio-serial and isa-serial devices.

use nix::fcntl::OFlag;
use nix::sys::termios::{
    self, BaudRate, ControlFlags, InputFlags, LocalFlags, OutputFlags, SetArg, SpecialCharacterIndices,
};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// How often a missing device is looked for again.
const WAIT_INTERVAL: Duration = Duration::from_secs(1);

/// Opens a device non-blocking, waiting for it to appear (qemu-ga 7.2 exits unless `-r`).
/// A serial line is put into raw mode first thing, before its echo can garble the host's
/// bytes.
pub fn open_device(path: &str, serial: bool) -> io::Result<File> {
    let mut warned = false;
    loop {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).bits());
        match opts.open(path) {
            Ok(file) => {
                if serial {
                    make_raw(&file)?;
                }
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !warned {
                    crate::warning!("channel device {path} does not exist yet; waiting for it");
                    warned = true;
                }
                std::thread::sleep(WAIT_INTERVAL);
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("error opening channel '{path}': {e}"))),
        }
    }
}

/// 7.2's termios for isa-serial: raw, 38400 baud, one byte is a read.
fn make_raw(file: &File) -> io::Result<()> {
    let mut t = termios::tcgetattr(file)?;
    t.input_flags &= !(InputFlags::IGNBRK
        | InputFlags::BRKINT
        | InputFlags::IGNPAR
        | InputFlags::PARMRK
        | InputFlags::INPCK
        | InputFlags::ISTRIP
        | InputFlags::INLCR
        | InputFlags::IGNCR
        | InputFlags::ICRNL
        | InputFlags::IXON
        | InputFlags::IXOFF
        | InputFlags::IXANY
        | InputFlags::IMAXBEL);
    t.output_flags = OutputFlags::empty();
    t.local_flags = LocalFlags::empty();
    t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    // Both speeds at 38400, as cfsetspeed sets them: on Linux the speed is the CBAUD bits of
    // c_cflag. Set directly because glibc's cfsetspeed is a versioned symbol that a static
    // build cannot link.
    t.control_flags &= !ControlFlags::CBAUD;
    t.control_flags |= ControlFlags::from_bits_retain(BaudRate::B38400 as nix::libc::tcflag_t);
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcflush(file, termios::FlushArg::TCIFLUSH)?;
    termios::tcsetattr(file, SetArg::TCSANOW, &t)?;
    Ok(())
}
