//! The list of filesystems that freeze, thaw and trim act on, built from the helper's own
//! `/proc/self/mountinfo` (never from the front) with qemu-ga 7.2's rules:
//!
//! - only entries with a device major number other than 0 (real block devices); btrfs reports
//!   major 0, so for btrfs the source device is stat'ed and kept only if it is a block device;
//! - the mount point and the source are decoded from the kernel's `\ooo` octal escapes;
//! - a device seen a second time (a bind mount of an already listed filesystem) is dropped, so
//!   one filesystem is frozen, thawed and trimmed once (the later 10.0 rule; 7.2 froze it
//!   twice and ignored the EBUSY).
//!
//! guest-fsfreeze-freeze-list picks mounts by mount point first, among every mount (a bind mount
//! or a second mount of a device is named as 7.2 names it), and drops repeated devices after:
//! [`read_mounts_named`].
//!
//! The list keeps mount order; freeze walks it backwards.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::libc;
use nix::sys::stat::{self, Mode, SFlag};

pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One filesystem to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dir: PathBuf,
    pub fstype: String,
    /// The block device (for btrfs the source device, as 7.2 lists it).
    pub major: u64,
    pub minor: u64,
    /// The mount's ID and its superblock's device as mountinfo gives them: what an opened
    /// mount point is checked against (see [`open_mount_point`]).
    pub mount_id: u64,
    pub sb_dev: (u64, u64),
}

impl Mount {
    /// The mount point as guest-visible text (not UTF-8 bytes become U+FFFD, as 7.2's JSON
    /// output does).
    pub fn display(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}

#[derive(Debug)]
pub enum MountsError {
    Read(Errno),
}

impl std::fmt::Display for MountsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountsError::Read(e) => write!(f, "failed to read {MOUNTINFO}: {}", e.desc()),
        }
    }
}

impl std::error::Error for MountsError {}

/// Reads and filters the helper's own mount table.
pub fn read_mounts() -> Result<Vec<Mount>, MountsError> {
    let text = read_mountinfo().map_err(|e| MountsError::Read(errno_of(&e)))?;
    Ok(parse_mountinfo(&text, block_device_numbers))
}

/// The mounts whose mount point is, byte for byte, one of `names` (7.2's `strcmp`), each
/// filesystem once (at its first matching mount), in mount order. The names are only
/// compared with the helper's own mount table: a name that is no mount point matches nothing.
pub fn read_mounts_named(names: &[Vec<u8>]) -> Result<Vec<Mount>, MountsError> {
    let text = read_mountinfo().map_err(|e| MountsError::Read(errno_of(&e)))?;
    Ok(select_named(all_mounts(&text, block_device_numbers), names))
}

/// [`read_mounts_named`] on a parsed table.
pub fn select_named(all: Vec<Mount>, names: &[Vec<u8>]) -> Vec<Mount> {
    use std::os::unix::ffi::OsStrExt;
    one_per_device(all.into_iter().filter(|m| names.iter().any(|n| n.as_slice() == m.dir.as_os_str().as_bytes())))
}

/// The errno behind an `io::Error` (EIO for the rare error that has none).
pub fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// The major:minor of `dev` if it is a block device (7.2's `dev_major_minor`, used for btrfs).
pub fn block_device_numbers(dev: &Path) -> Option<(u64, u64)> {
    let st = stat::stat(dev).ok()?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFBLK {
        Some((stat::major(st.st_rdev), stat::minor(st.st_rdev)))
    } else {
        None
    }
}

/// The helper's mount table in one or two reads. procfs reports the file's size as 0, so
/// `std::fs::read` would start with a 32-byte read and double from there (seven reads for a
/// typical table, on every guest-get-fsinfo); a table this size covers nearly every guest.
fn read_mountinfo() -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::with_capacity(16 << 10);
    std::fs::File::open(MOUNTINFO)?.read_to_end(&mut text)?;
    Ok(text)
}

/// Reads the helper's own mount table with 7.2's rules but every mount kept, bind mounts and
/// second mounts of one device included: guest-get-fsinfo lists them all, as 7.2 does.
pub fn read_all_mounts() -> Result<Vec<Mount>, MountsError> {
    let text = read_mountinfo().map_err(|e| MountsError::Read(errno_of(&e)))?;
    Ok(parse_mountinfo_keeping(&text, block_device_numbers, true))
}

/// Builds the list from mountinfo text; `block_dev` resolves a btrfs source device.
pub fn parse_mountinfo(text: &[u8], block_dev: impl FnMut(&Path) -> Option<(u64, u64)>) -> Vec<Mount> {
    one_per_device(all_mounts(text, block_dev).into_iter())
}

/// [`parse_mountinfo`], keeping a device's later mounts when `keep_repeats` is set (the storage
/// queries list bind mounts and repeated mounts as 7.2 does).
pub fn parse_mountinfo_keeping(
    text: &[u8],
    block_dev: impl FnMut(&Path) -> Option<(u64, u64)>,
    keep_repeats: bool,
) -> Vec<Mount> {
    let all = all_mounts(text, block_dev);
    if keep_repeats {
        all
    } else {
        one_per_device(all.into_iter())
    }
}

/// Keeps the first mount of each device.
fn one_per_device(mounts: impl Iterator<Item = Mount>) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts {
        if !out.iter().any(|o| o.major == m.major && o.minor == m.minor) {
            out.push(m);
        }
    }
    out
}

/// Every mount of a real block device, repeated devices included, in mount order.
fn all_mounts(text: &[u8], mut block_dev: impl FnMut(&Path) -> Option<(u64, u64)>) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(raw) = parse_line(line) else { continue };
        let (major, minor) = if raw.major != 0 {
            (raw.major, raw.minor)
        } else if raw.fstype == "btrfs" {
            match block_dev(Path::new(&OsString::from_vec(raw.source.clone()))) {
                Some(mm) => mm,
                None => continue,
            }
        } else {
            continue;
        };
        out.push(Mount {
            dir: PathBuf::from(OsString::from_vec(raw.dir)),
            fstype: raw.fstype,
            major,
            minor,
            mount_id: raw.mount_id,
            sb_dev: (raw.major, raw.minor),
        });
    }
    out
}

/// Opens a listed mount point for the freeze, thaw and trim ioctls and checks that what was
/// opened is still that mount's root. Between reading mountinfo and the open (a freeze or trim
/// loop over many filesystems takes a while) a path can be unmounted and replaced, e.g. by a
/// symlink or another mount: O_DIRECTORY and O_NOFOLLOW refuse a final symlink or anything not
/// a directory, and the mount ID (or, on kernels before 5.8, the device number) must match.
/// A mismatch is ESTALE: the listed filesystem is no longer there.
pub fn open_mount_point(m: &Mount) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = open(&m.dir, flags, Mode::empty())?;
    if is_that_mount(&fd, m)? {
        Ok(fd)
    } else {
        Err(Errno::ESTALE)
    }
}

fn is_that_mount(fd: &OwnedFd, m: &Mount) -> Result<bool, Errno> {
    // SAFETY: all zero bytes are a valid statx buffer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open, the path is a NUL-terminated empty string with AT_EMPTY_PATH, and
    // `stx` is a live buffer of the struct's size.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    if stx.stx_mask & libc::STATX_MNT_ID != 0 {
        let root_known = stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
        let is_root = stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
        return Ok(stx.stx_mnt_id == m.mount_id && (is_root || !root_known));
    }
    Ok((u64::from(stx.stx_dev_major), u64::from(stx.stx_dev_minor)) == m.sb_dev)
}

/// The fields of one mountinfo line that the list needs, decoded.
#[derive(Debug, PartialEq, Eq)]
struct RawEntry {
    mount_id: u64,
    major: u64,
    minor: u64,
    dir: Vec<u8>,
    fstype: String,
    source: Vec<u8>,
}

/// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
/// A line that does not have that shape is skipped (as 7.2's sscanf checks do).
fn parse_line(line: &[u8]) -> Option<RawEntry> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').filter(|f| !f.is_empty()).collect();
    if fields.len() < 6 {
        return None;
    }
    let mount_id = std::str::from_utf8(fields[0]).ok()?.parse().ok()?;
    fields[0].iter().all(u8::is_ascii_digit).then_some(())?;
    fields[1].iter().all(u8::is_ascii_digit).then_some(())?;
    let (major, minor) = parse_dev(fields[2])?;
    let sep = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let fstype = std::str::from_utf8(fields.get(sep + 1)?).ok()?.to_owned();
    let source = fields.get(sep + 2).map(|s| decode_octal(s)).unwrap_or_default();
    Some(RawEntry { mount_id, major, minor, dir: decode_octal(fields[4]), fstype, source })
}

fn parse_dev(f: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(f).ok()?;
    let (a, b) = s.split_once(':')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Undoes the kernel's escaping of mountinfo fields: `\\` is a backslash and `\ooo` (first
/// digit 0-3) is one byte; any other backslash is kept as it is.
pub fn decode_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
        } else if field.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let (Some(&d1 @ b'0'..=b'3'), Some(&d2 @ b'0'..=b'7'), Some(&d3 @ b'0'..=b'7')) =
            (field.get(i + 1), field.get(i + 2), field.get(i + 3))
        {
            out.push((d1 - b'0') * 64 + (d2 - b'0') * 8 + (d3 - b'0'));
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
28 27 252:2 / /boot rw,relatime shared:2 - ext4 /dev/vda2 rw
29 27 0:23 / /run rw,nosuid - tmpfs tmpfs rw
30 27 252:1 /srv /mnt/bind rw,relatime shared:1 - ext4 /dev/vda1 rw
31 27 0:45 / /home rw,relatime shared:3 - btrfs /dev/vdb rw,subvol=/home
32 27 0:46 / /data rw,relatime - btrfs /dev/vdc rw
33 27 0:47 / /var rw,relatime shared:4 - btrfs /dev/vdb rw,subvol=/var
34 27 8:16 / /mnt/with\\040space rw,relatime - xfs /dev/sdb rw
";

    fn fake_block(dev: &Path) -> Option<(u64, u64)> {
        match dev.to_str() {
            Some("/dev/vdb") => Some((252, 16)),
            _ => None, // e.g. a file-backed btrfs whose source is not a block device
        }
    }

    fn dirs(ms: &[Mount]) -> Vec<String> {
        ms.iter().map(Mount::display).collect()
    }

    #[test]
    fn keeps_real_block_devices_in_mount_order() {
        let ms = parse_mountinfo(SAMPLE.as_bytes(), fake_block);
        assert_eq!(dirs(&ms), ["/", "/boot", "/home", "/mnt/with space"]);
        assert_eq!((ms[0].major, ms[0].minor, ms[0].fstype.as_str()), (252, 1, "ext4"));
    }

    #[test]
    fn devmajor_zero_is_skipped_unless_btrfs_on_a_block_device() {
        let ms = parse_mountinfo(SAMPLE.as_bytes(), fake_block);
        assert!(!dirs(&ms).iter().any(|d| d == "/proc" || d == "/run" || d == "/data"));
        let home = ms.iter().find(|m| m.display() == "/home").unwrap();
        assert_eq!((home.major, home.minor), (252, 16));
    }

    #[test]
    fn a_device_seen_twice_is_listed_once_at_its_first_mount() {
        let ms = parse_mountinfo(SAMPLE.as_bytes(), fake_block);
        assert!(!dirs(&ms).contains(&"/mnt/bind".to_string()));
        // Two btrfs subvolumes of one device are one filesystem.
        assert!(!dirs(&ms).contains(&"/var".to_string()));
    }

    #[test]
    fn named_mounts_match_bind_mounts_by_name_and_keep_each_device_once() {
        let named = |names: &[&str]| {
            let names: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
            dirs(&select_named(all_mounts(SAMPLE.as_bytes(), fake_block), &names))
        };
        // A bind mount is found by its own name, though the full list shows its device at /.
        assert_eq!(named(&["/mnt/bind"]), ["/mnt/bind"]);
        // Both names of one device: the filesystem once, at its first mount.
        assert_eq!(named(&["/mnt/bind", "/"]), ["/"]);
        assert_eq!(named(&["/var", "/home"]), ["/home"]);
        // Names are compared exactly: no prefixes, no trailing slashes, no other spellings.
        assert!(named(&["/boot/", "/bo", "boot", "/proc", "/run", "/nonexistent", ""]).is_empty());
        assert_eq!(named(&["/mnt/with space"]), ["/mnt/with space"]);
        assert!(named(&[]).is_empty());
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(decode_octal(br"/a\040b"), b"/a b");
        assert_eq!(decode_octal(br"/tab\011nl\012"), b"/tab\tnl\n");
        assert_eq!(decode_octal(br"/back\134slash"), b"/back\\slash");
        assert_eq!(decode_octal(br"/double\\slash"), b"/double\\slash");
        assert_eq!(decode_octal(br"/high\377"), b"/high\xff");
    }

    #[test]
    fn malformed_escapes_are_kept_literally() {
        assert_eq!(decode_octal(br"/a\400"), br"/a\400");
        assert_eq!(decode_octal(br"/a\08"), br"/a\08");
        assert_eq!(decode_octal(br"/a\"), br"/a\");
        assert_eq!(decode_octal(br"/a\x"), br"/a\x");
    }

    #[test]
    fn non_utf8_mount_points_are_kept_as_bytes() {
        let ms = parse_mountinfo(b"40 27 8:1 / /mnt/\\377 rw - ext4 /dev/sda1 rw\n", |_| None);
        assert_eq!(ms[0].dir.as_os_str().to_owned().into_vec(), b"/mnt/\xff");
        assert_eq!(ms[0].display(), "/mnt/\u{fffd}");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "\
garbage
1 2 8:1 / /short
1 2 8:x / /a rw - ext4 /dev/a rw
1 2 8:1 / /nosep rw ext4 /dev/a rw
x 2 8:1 / /badid rw - ext4 /dev/a rw
1 2 8:2 / /nosource rw -  ext4
1 2 8:3 / /ok rw master:1 - ext4 /dev/b rw
";
        let ms = parse_mountinfo(text.as_bytes(), |_| None);
        assert_eq!(dirs(&ms), ["/nosource", "/ok"]);
    }

    #[test]
    fn the_separator_is_found_after_optional_fields() {
        let ms = parse_mountinfo(b"1 2 8:3 / /opt rw shared:1 master:2 - xfs /dev/b rw\n", |_| None);
        assert_eq!(ms[0].fstype, "xfs");
    }

    #[test]
    fn the_real_mount_table_parses() {
        // Read only: proves the live format is understood, whatever this machine mounts.
        assert!(read_mounts().is_ok());
    }

    fn root_mount() -> Mount {
        let text = std::fs::read(MOUNTINFO).unwrap();
        let line = text
            .split(|&b| b == b'\n')
            .filter_map(parse_line)
            .find(|e| e.dir == b"/")
            .expect("a mount on / in mountinfo");
        Mount {
            dir: "/".into(),
            fstype: line.fstype,
            major: line.major,
            minor: line.minor,
            mount_id: line.mount_id,
            sb_dev: (line.major, line.minor),
        }
    }

    #[test]
    fn a_listed_mount_point_opens_as_that_mount() {
        assert!(open_mount_point(&root_mount()).is_ok());
    }

    #[test]
    fn finding_9_a_mount_point_replaced_after_listing_is_not_opened() {
        let dir = std::env::temp_dir().join(format!("qga-helper-mount-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plain")).unwrap();
        std::os::unix::fs::symlink("/", dir.join("link")).unwrap();
        std::fs::write(dir.join("file"), b"").unwrap();
        let listed = root_mount();
        // The path now names a symlink (to the very filesystem that was listed, even).
        let as_link = Mount { dir: dir.join("link"), ..listed.clone() };
        // (O_NOFOLLOW with O_DIRECTORY: the kernel answers ENOTDIR for a final symlink.)
        let refused = open_mount_point(&as_link).err();
        assert!(matches!(refused, Some(Errno::ELOOP | Errno::ENOTDIR)), "{refused:?}");
        // A plain directory: not that mount's root.
        let as_dir = Mount { dir: dir.join("plain"), ..listed.clone() };
        assert_eq!(open_mount_point(&as_dir).err(), Some(Errno::ESTALE));
        // Not a directory at all (a FIFO or a device would be refused the same way).
        let as_file = Mount { dir: dir.join("file"), ..listed.clone() };
        assert_eq!(open_mount_point(&as_file).err(), Some(Errno::ENOTDIR));
        // Another mount now at the listed path.
        let other = Mount { mount_id: listed.mount_id + 1_000_000, ..listed };
        assert_eq!(open_mount_point(&other).err(), Some(Errno::ESTALE));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
