//! Byte-string searches in reply lines.

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

pub(crate) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).trim_end().to_string()
}

/// The integer after `"key": ` in a reply (replies are written `"key": value`).
pub(crate) fn int_after(line: &[u8], key: &[u8]) -> Option<i64> {
    // A file-read reply is mostly base64: look only at its ends.
    let tail = line.len().saturating_sub(100);
    let at = match find(&line[..line.len().min(100)], key) {
        Some(i) => i,
        None => tail + find(&line[tail..], key)?,
    } + key.len();
    let digits: Vec<u8> = line[at..]
        .iter()
        .skip_while(|&&b| b == b':' || b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}
