//! What guest-set-user-password and guest-ssh-*-authorized-keys carry between the front and the
//! helper (and on, from the helper to its launcher): the bounds both sides check, the password
//! that never prints, and the checks 7.2 makes on the arguments, which the front makes first
//! (for 7.2's error texts) and the helper again (it trusts nothing the front says).

use crate::wire::{Dec, Enc, FrameError};

/// Longest user name carried: far over any real one (useradd allows 32 bytes).
pub const MAX_USERNAME: usize = 256;
/// Longest password carried (decoded; a crypt hash is ~110 bytes, yescrypt's included).
pub const MAX_PASSWORD: usize = 4096;
/// Most keys one request carries, and the longest key: an RSA-16384 key with a comment or an
/// OpenSSH certificate fits with room to spare. Together they fit one frame.
pub const MAX_KEYS: usize = 100;
pub const MAX_KEY_LEN: usize = 8192;
/// Largest authorized_keys file read back (get, add, remove): larger ones are refused, not
/// truncated.
pub const MAX_AUTHKEYS_FILE: usize = 256 * 1024;

// A tag, the user, the key list and the reset flag.
const LONGEST_KEYS_REQUEST: usize = 1 + (4 + MAX_USERNAME) + 4 + MAX_KEYS * (4 + MAX_KEY_LEN) + 1;
const _: () = assert!(LONGEST_KEYS_REQUEST <= crate::wire::MAX_FRAME);
// The longest keys reply: every line of the largest file, each at least a byte and a newline.
const _: () = assert!(1 + 4 + 4 * (MAX_AUTHKEYS_FILE / 2 + 1) + MAX_AUTHKEYS_FILE <= crate::wire::MAX_FRAME);

/// A password as decoded from the request. Its `Debug` never shows it, so no log line made
/// from a request, job or error can hold it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: the bytes do not linger in freed memory.
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into the vector's buffer.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// 7.2's check of a raw password: cut at its first NUL (7.2 handles it as a C string), and no
/// newline (it would end the chpasswd line and start another).
pub fn check_password(decoded: &[u8]) -> Result<&[u8], &'static str> {
    let raw = decoded.split(|&b| b == 0).next().unwrap_or_default();
    if raw.contains(&b'\n') {
        return Err("forbidden characters in raw password");
    }
    Ok(raw)
}

/// 7.2's check of the user name given to chpasswd: no newline and no ':'.
pub fn check_password_user(user: &[u8]) -> Result<(), &'static str> {
    if user.contains(&b'\n') || user.contains(&b':') {
        return Err("forbidden characters in username");
    }
    Ok(())
}

/// 7.2's check of one OpenSSH public key: not a comment, one line. The text is 7.2's (the key
/// is shown as given).
pub fn check_key(key: &[u8]) -> Result<(), Vec<u8>> {
    if key.first() == Some(&b'#') || key.contains(&b'\n') {
        let mut t = b"invalid OpenSSH public key: '".to_vec();
        t.extend_from_slice(key);
        t.push(b'\'');
        return Err(t);
    }
    Ok(())
}

/// The bounds of a key list, checked after 7.2's own checks (so its texts come first).
pub fn check_key_bounds(keys: &[Vec<u8>]) -> Result<(), String> {
    if keys.len() > MAX_KEYS {
        return Err(format!("too many keys: {} (at most {MAX_KEYS})", keys.len()));
    }
    if keys.iter().any(|k| k.len() > MAX_KEY_LEN) {
        return Err(format!("a key is longer than {MAX_KEY_LEN} bytes"));
    }
    Ok(())
}

pub(crate) fn enc_keys(e: &mut Enc, keys: &[Vec<u8>]) {
    e.u32(keys.len() as u32);
    for k in keys {
        e.bytes(k);
    }
}

pub(crate) fn dec_keys(d: &mut Dec<'_>, max: usize, max_len: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let n = d.count(max)?;
    let mut keys = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        keys.push(d.bytes(max_len)?);
    }
    Ok(keys)
}

pub(crate) fn dec_user(d: &mut Dec<'_>) -> Result<Vec<u8>, FrameError> {
    d.bytes(MAX_USERNAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_cut_at_nul_and_refused_with_a_newline() {
        assert_eq!(check_password(b"a:b"), Ok(&b"a:b"[..]));
        assert_eq!(check_password(b"ab\0\n"), Ok(&b"ab"[..]));
        assert_eq!(check_password(b"a\nb"), Err("forbidden characters in raw password"));
        assert_eq!(check_password_user(b"a:b"), Err("forbidden characters in username"));
        assert_eq!(check_password_user(b"a\n"), Err("forbidden characters in username"));
        assert!(check_password_user(b"alice").is_ok());
    }

    #[test]
    fn keys_that_are_comments_or_span_lines_are_refused_with_72s_text() {
        assert!(check_key(b"").is_ok());
        assert!(check_key(b"ssh-ed25519 AAAA x").is_ok());
        assert_eq!(check_key(b"#x").unwrap_err(), b"invalid OpenSSH public key: '#x'");
        assert_eq!(check_key(b"a\nb").unwrap_err(), b"invalid OpenSSH public key: 'a\nb'");
    }

    #[test]
    fn the_password_never_prints() {
        assert_eq!(format!("{:?}", Secret(b"hunter2".to_vec())), "Secret(..)");
    }
}
