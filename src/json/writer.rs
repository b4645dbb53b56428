//! Serialises a [`Value`] the way qemu-ga 7.2 does: `{"a": 1, "b": [1, 2]}` spacing, ASCII-only
//! output with uppercase `\uXXXX` escapes (surrogate pairs beyond the BMP, U+FFFD for invalid
//! input), `%.17g` floats, and object members in QEMU's QDict hash order.

use super::base64_out;
use super::mutf8;
use super::qdict_order::qdict_order;
use super::swar;
use super::value::{Dict, Value};

/// Appends the JSON text of `v` to `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(*i, out),
        Value::UInt(u) => write_uint(*u, out),
        Value::Float(f) => write_g17(*f, out),
        Value::Str(s) => write_str(s, out),
        Value::Base64(b) => write_base64(b, out),
        Value::List(l) => {
            out.push(b'[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Dict(d) => write_dict(d, out),
        Value::WrittenObject(text) => out.extend_from_slice(text),
    }
}

fn write_dict(d: &Dict, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in qdict_order(d).enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_str(k, out);
        out.extend_from_slice(b": ");
        write(v, out);
    }
    out.push(b'}');
}

/// An integer in decimal, as `%" PRId64 "` prints it.
fn write_int(i: i64, out: &mut Vec<u8>) {
    if i < 0 {
        out.push(b'-');
    }
    write_uint(i.unsigned_abs(), out);
}

/// Decimal digits straight into `out`: replies carry many integers (ids, offsets, counters)
/// and the formatting machinery would allocate a string for each.
fn write_uint(mut u: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// A JSON string of the bytes `s` (modified UTF-8), escaped as 7.2 escapes it.
pub fn write_str(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    if all_plain(s) {
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut i = 0;
    while i < s.len() {
        // Plain printable ASCII needs no escaping: copy runs of it at once.
        let run = super::plain_run(&s[i..], word_has_special, |b| !is_plain(b));
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if i >= s.len() {
            break;
        }
        let (cp, n) = mutf8::decode(&s[i..]);
        i += n.max(1);
        match cp {
            Some(0x22) => out.extend_from_slice(b"\\\""),
            Some(0x5C) => out.extend_from_slice(b"\\\\"),
            Some(0x08) => out.extend_from_slice(b"\\b"),
            Some(0x0C) => out.extend_from_slice(b"\\f"),
            Some(0x0A) => out.extend_from_slice(b"\\n"),
            Some(0x0D) => out.extend_from_slice(b"\\r"),
            Some(0x09) => out.extend_from_slice(b"\\t"),
            Some(cp) if cp > 0xFFFF => {
                let c = cp - 0x10000;
                push_u(out, 0xD800 + (c >> 10));
                push_u(out, 0xDC00 + (c & 0x3FF));
            }
            Some(cp) if !(0x20..0x7F).contains(&cp) => push_u(out, cp),
            Some(cp) => out.push(cp as u8),
            None => push_u(out, 0xFFFD),
        }
    }
    out.push(b'"');
}

/// Printable ASCII other than `"` and `\\`: written as it is.
fn is_plain(b: u8) -> bool {
    (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\'
}

/// Whether any byte of a little-endian word is not [`is_plain`] (it may err towards yes).
fn word_has_special(x: u64) -> bool {
    swar::has_less(x, 0x20)
        || swar::has_high(x)
        || swar::has_byte(x, 0x7F)
        || swar::has_byte(x, b'"')
        || swar::has_byte(x, b'\\')
}

/// Whether `s` needs no escaping at all, a word at a time: nearly every string of a reply
/// (member names, host and user names, zone abbreviations) is short and plain, and a short
/// one would otherwise be tested byte by byte. The last partial word is padded with a plain
/// byte.
fn all_plain(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        if word_has_special(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            return false;
        }
    }
    let tail = words.remainder();
    let mut last = [b'a'; 8];
    last[..tail.len()].copy_from_slice(tail);
    !word_has_special(u64::from_le_bytes(last)) || tail.iter().all(|&b| is_plain(b))
}

/// Generous room for what follows a base64 string in a reply (`, "eof": false}}` and the line end).
const REPLY_TAIL: usize = 64;

/// The base64 alphabet and padding are printable ASCII other than `"` and `\\`: the encoding
/// goes into `out` as it is.
fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    // Room for the members and closing braces that follow too: otherwise a reply that is one
    // large string (guest-file-read) outgrows the reservation by its last few bytes and the
    // buffer doubles, past what the server keeps between replies.
    out.reserve(base64_out::encoded_len(bytes.len()).saturating_add(2 + REPLY_TAIL));
    out.push(b'"');
    base64_out::encode_into(bytes, out);
    out.push(b'"');
}

fn push_u(out: &mut Vec<u8>, cp: u32) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((cp >> shift) & 0xF) as usize]);
    }
}

/// C's `printf("%.17g", f)`.
pub fn format_g17(f: f64) -> String {
    let mut out = Vec::new();
    write_g17(f, &mut out);
    String::from_utf8(out).expect("ASCII")
}

/// [`format_g17`] written into `out`, through stack buffers rather than strings (users'
/// login times are floats, one per user): the formatting machinery gives the correctly rounded
/// digits, the rest is byte pushes.
fn write_g17(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        return out.extend_from_slice(if f.is_sign_negative() { b"-nan" } else { b"nan" });
    }
    if f.is_infinite() {
        return out.extend_from_slice(if f < 0.0 { b"-inf" } else { b"inf" });
    }
    const P: i32 = 17;
    let mut sci_buf = [0u8; NUMBER_ROOM];
    let sci = format_into(&mut sci_buf, format_args!("{:.*e}", (P - 1) as usize, f));
    let at_e = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let (mantissa, exp) = (&sci[..at_e], sci.get(at_e + 1..).unwrap_or_default());
    let exp: i32 = std::str::from_utf8(exp).ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    if !(-4..P).contains(&exp) {
        out.extend_from_slice(strip_zeros(mantissa));
        out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
        if exp.abs() < 10 {
            out.push(b'0');
        }
        write_uint(u64::from(exp.unsigned_abs()), out);
    } else {
        let mut fixed_buf = [0u8; NUMBER_ROOM];
        let fixed = format_into(&mut fixed_buf, format_args!("{:.*}", (P - 1 - exp) as usize, f));
        out.extend_from_slice(strip_zeros(fixed));
    }
}

/// Room for any number [`write_g17`] formats: at most a sign, 17 digits, a point and 20
/// fraction digits (an exponent of -4 in fixed notation), or the scientific form.
const NUMBER_ROOM: usize = 64;

/// The text of `args` in `buf`.
fn format_into<'b>(buf: &'b mut [u8; NUMBER_ROOM], args: std::fmt::Arguments<'_>) -> &'b [u8] {
    use std::io::Write;
    let mut rest = &mut buf[..];
    rest.write_fmt(args).expect("a formatted number fits its buffer");
    let used = NUMBER_ROOM - rest.len();
    &buf[..used]
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    if !s.contains(&b'.') {
        return s;
    }
    let s = &s[..s.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1)];
    s.strip_suffix(b".").unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_values_are_written_as_padded_standard_base64_strings() {
        assert_eq!(text(&Value::Base64(Vec::new())), "\"\"");
        assert_eq!(text(&Value::Base64(b"f".to_vec())), "\"Zg==\"");
        assert_eq!(text(&Value::Base64(b"fo".to_vec())), "\"Zm8=\"");
        assert_eq!(text(&Value::Base64(b"foo".to_vec())), "\"Zm9v\"");
        assert_eq!(text(&Value::Base64(vec![0xFB, 0xFF, 0xBF])), "\"+/+/\"");
        let all: Vec<u8> = (0..=255).collect();
        let d = Dict::new().with("buf-b64", Value::Base64(all.clone()));
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &all);
        assert_eq!(text(&d.into()), format!("{{\"buf-b64\": \"{encoded}\"}}"));
    }

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        write(v, &mut out);
        String::from_utf8(out).expect("writer output is ASCII")
    }

    #[test]
    fn reply_members_come_out_in_qemus_order() {
        let ok = Dict::new().with("return", Value::empty_dict()).with("id", Value::Int(1));
        assert_eq!(text(&ok.into()), r#"{"return": {}, "id": 1}"#);
        let err = Dict::new().with("error", Value::empty_dict()).with("id", Value::Int(9));
        assert_eq!(text(&err.into()), r#"{"id": 9, "error": {}}"#);
        let seek = Dict::new().with("position", Value::Int(6)).with("eof", Value::Bool(false));
        assert_eq!(text(&seek.into()), r#"{"eof": false, "position": 6}"#);
    }

    #[test]
    fn non_ascii_is_escaped_with_uppercase_hex_and_pairs() {
        let v = Value::Str("é😀\u{7f}/".as_bytes().to_vec());
        assert_eq!(text(&v), r#""\u00E9\uD83D\uDE00\u007F/""#);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_c0_80_is_nul() {
        assert_eq!(text(&Value::Str(vec![b'a', 0xFF, 0xC0, 0x80])), r#""a\uFFFD\u0000""#);
    }

    #[test]
    fn a_string_is_plain_exactly_when_no_byte_needs_escaping() {
        for len in 0..20 {
            for at in 0..len {
                for special in [0x00, 0x1F, b'"', b'\\', 0x7F, 0x80, 0xFF] {
                    let mut s = vec![b'x'; len];
                    assert!(all_plain(&s));
                    s[at] = special;
                    assert!(!all_plain(&s), "{s:?}");
                }
            }
        }
        assert!(all_plain(b" !#[]~ plain ASCII of any length, 0123456789"));
        assert_eq!(text(&Value::str("a\"b\\c\u{1}d")), r#""a\"b\\c\u0001d""#);
    }

    #[test]
    fn integers_print_like_printf() {
        for i in [0, 7, -7, 10, 123456, -100, i64::MAX, i64::MIN] {
            assert_eq!(text(&Value::Int(i)), i.to_string());
        }
        for u in [0, 9, 10, 1 << 63, u64::MAX] {
            assert_eq!(text(&Value::UInt(u)), u.to_string());
        }
    }

    #[test]
    fn floats_print_like_printf_g17() {
        assert_eq!(format_g17(1000.0), "1000");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(1e300), "1.0000000000000001e+300");
        assert_eq!(format_g17(-9223372036854775809.0), "-9.2233720368547758e+18");
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g17(f64::INFINITY), "inf");
        assert_eq!(format_g17(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_g17(0.0), "0");
        assert_eq!(format_g17(-0.0), "-0");
        assert_eq!(format_g17(1e-4), "0.0001");
        assert_eq!(format_g17(-1.2345678901234567e-4), "-0.00012345678901234567");
        assert_eq!(format_g17(1e16), "10000000000000000");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        assert_eq!(format_g17(-f64::MAX), "-1.7976931348623157e+308");
        assert_eq!(format_g17(1_700_000_000.25), "1700000000.25");
        assert_eq!(text(&Value::Float(100.25)), "100.25");
    }
}
