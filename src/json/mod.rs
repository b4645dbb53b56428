//! QEMU's JSON dialect: the byte-stream lexer, the message streamer with 7.2's limits, the
//! parser, the value model and the writer.

pub mod base64_out;
pub mod lexer;
pub mod message_parser;
pub mod mutf8;
pub mod parser;
pub mod qdict_order;
pub mod streamer;
pub mod value;
pub mod writer;

pub use message_parser::MessageParser;
pub use qdict_order::qdict_order;
pub use streamer::Message;
pub use value::{Dict, Value};

/// Length of the leading run of `s` with no byte for which `special` holds, eight bytes at a
/// time: `any_special` tells whether any byte of a little-endian 8-byte word is special (it
/// may only err towards yes). Large strings (base64 file data) are nearly all plain bytes.
#[inline]
pub(crate) fn plain_run(s: &[u8], any_special: impl Fn(u64) -> bool, special: impl Fn(u8) -> bool) -> usize {
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        if any_special(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    i + s[i..].iter().position(|&b| special(b)).unwrap_or(s.len() - i)
}

/// Word helpers for [`plain_run`]: a byte of `x` is zero / below `n` (n <= 128) / 0x80 or above.
pub(crate) mod swar {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    #[inline]
    pub fn has_zero(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }
    #[inline]
    pub fn has_byte(x: u64, b: u8) -> bool {
        has_zero(x ^ (ONES * b as u64))
    }
    #[inline]
    pub fn has_less(x: u64, n: u8) -> bool {
        x.wrapping_sub(ONES * n as u64) & !x & HIGHS != 0
    }
    #[inline]
    pub fn has_high(x: u64) -> bool {
        x & HIGHS != 0
    }
}
