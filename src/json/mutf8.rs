//! QEMU's "modified UTF-8": UTF-8 where U+0000 is written C0 80, and where surrogates,
//! noncharacters, overlong forms and bytes 0xFE/0xFF are invalid. The parser decodes string
//! tokens with it and the writer re-encodes, replacing each invalid sequence by U+FFFD.

/// Decodes one code point from the start of `s`. Returns the code point (or `None` when the
/// sequence is invalid) and the number of bytes it spans; a missing continuation byte ends the
/// sequence before that byte.
pub fn decode(s: &[u8]) -> (Option<u32>, usize) {
    const MIN: [u32; 5] = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];
    let Some(&lead) = s.first() else { return (None, 0) };
    if lead < 0x80 {
        return (Some(lead as u32), 1);
    }
    if lead >= 0xFE || lead & 0x40 == 0 {
        return (None, 1); // impossible byte or stray continuation byte
    }
    let len = lead.leading_ones() as usize; // 2..=6
    let mut cp = (lead as u32) & (0x7F >> len);
    for i in 1..len {
        match s.get(i) {
            Some(&b) if b & 0xC0 == 0x80 => cp = (cp << 6) | (b as u32 & 0x3F),
            _ => return (None, i),
        }
    }
    let valid = is_valid(cp) && (cp >= MIN[len - 2] || (cp == 0 && len == 2));
    (valid.then_some(cp), len)
}

/// A code point QEMU accepts: in range, not a surrogate, not a noncharacter.
pub fn is_valid(cp: u32) -> bool {
    cp <= 0x10FFFF && !(0xFDD0..=0xFDEF).contains(&cp) && cp & 0xFFFE != 0xFFFE && !(0xD800..=0xDFFF).contains(&cp)
}

/// Appends the modified-UTF-8 encoding of a valid code point (`is_valid` must hold).
pub fn encode(cp: u32, out: &mut Vec<u8>) {
    match cp {
        0 => out.extend_from_slice(&[0xC0, 0x80]),
        1..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => {
            out.extend_from_slice(&[0xE0 | (cp >> 12) as u8, 0x80 | ((cp >> 6) & 0x3F) as u8, 0x80 | (cp & 0x3F) as u8])
        }
        _ => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c0_80_is_nul_and_other_overlongs_are_invalid() {
        assert_eq!(decode(&[0xC0, 0x80]), (Some(0), 2));
        assert_eq!(decode(&[0xC1, 0x81]), (None, 2));
        assert_eq!(decode(&[0xE0, 0x80, 0x80]), (None, 3));
    }

    #[test]
    fn surrogates_and_noncharacters_are_invalid() {
        assert_eq!(decode("\u{FFFD}".as_bytes()), (Some(0xFFFD), 3));
        assert_eq!(decode(&[0xED, 0xA0, 0x80]).0, None);
        assert_eq!(decode(&[0xEF, 0xBF, 0xBE]).0, None); // U+FFFE
        assert_eq!(decode(&[0xEF, 0xB7, 0x90]).0, None); // U+FDD0
    }

    #[test]
    fn a_missing_continuation_ends_the_sequence_before_the_bad_byte() {
        assert_eq!(decode(&[0xE2, 0x82, b'a']), (None, 2));
        assert_eq!(decode(&[0xFF]), (None, 1));
        assert_eq!(decode(&[0x80]), (None, 1));
    }

    #[test]
    fn encode_round_trips_through_decode() {
        for cp in [0u32, 0x41, 0x7FF, 0x800, 0xFFFD, 0x10000, 0x1F600, 0x10FFFD] {
            let mut b = Vec::new();
            encode(cp, &mut b);
            assert_eq!(decode(&b), (Some(cp), b.len()), "{cp:#x}");
        }
    }
}
