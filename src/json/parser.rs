//! Parses one message's tokens into a [`Value`], with 7.2's error texts. Only the first error
//! of a message is reported ("JSON parse error, <what>").

use super::lexer::{Token, TokenKind};
use super::mutf8;
use super::value::{Dict, Value};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

type Result<T> = std::result::Result<T, Vec<u8>>;

fn error(what: &str) -> Vec<u8> {
    format!("JSON parse error, {what}").into_bytes()
}

struct Cursor<'a> {
    tokens: &'a [Token],
    text: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.pos).copied()
    }
    fn pop(&mut self) -> Option<Token> {
        let t = self.peek();
        self.pos += 1;
        t
    }
    fn text(&self, t: Token) -> &'a [u8] {
        &self.text[t.start..t.end]
    }
}

/// Parses a complete message.
pub fn parse(tokens: &[Token], text: &[u8]) -> Result<Value> {
    let mut c = Cursor { tokens, text, pos: 0 };
    value(&mut c)
}

fn value(c: &mut Cursor) -> Result<Value> {
    let Some(t) = c.peek() else { return Err(error("premature EOI")) };
    match t.kind {
        TokenKind::LCurly => object(c),
        TokenKind::LSquare => array(c),
        TokenKind::Integer | TokenKind::Float | TokenKind::String | TokenKind::Keyword => {
            c.pop();
            literal(c.text(t), t.kind)
        }
        _ => Err(error("expecting value")),
    }
}

fn object(c: &mut Cursor) -> Result<Value> {
    c.pop(); // '{'
    let mut dict = Dict::new();
    let Some(t) = c.peek() else { return Err(error("premature EOI")) };
    if t.kind == TokenKind::RCurly {
        c.pop();
        return Ok(Value::Dict(dict));
    }
    let mut keys = KeySet::default();
    pair(c, &mut dict, &mut keys)?;
    loop {
        let Some(t) = c.pop() else { return Err(error("premature EOI")) };
        match t.kind {
            TokenKind::RCurly => return Ok(Value::Dict(dict)),
            TokenKind::Comma => pair(c, &mut dict, &mut keys)?,
            _ => return Err(error("expected separator in dict")),
        }
    }
}

fn pair(c: &mut Cursor, dict: &mut Dict, keys: &mut KeySet) -> Result<()> {
    let Some(t) = c.peek() else { return Err(error("premature EOI")) };
    let key = match request_member(c.text(t), t.kind) {
        Some(name) => {
            c.pop();
            Key::Name(name)
        }
        None => {
            let Value::Str(key) = value(c)? else { return Err(error("key is not a string in object")) };
            Key::Sent(key)
        }
    };
    let Some(colon) = c.pop() else { return Err(error("premature EOI")) };
    if colon.kind != TokenKind::Colon {
        return Err(error("missing : in object pair"));
    }
    let v = value(c)?;
    let key_bytes = match &key {
        Key::Name(name) => name.as_bytes(),
        Key::Sent(key) => key.as_slice(),
    };
    if keys.contains(dict, key_bytes) {
        return Err(error("duplicate key"));
    }
    match key {
        Key::Name(name) => dict.insert_name(name, v),
        Key::Sent(key) => dict.insert(key, v),
    }
    Ok(())
}

/// An object member's name: one of [`REQUEST_MEMBERS`], or decoded from the token.
enum Key {
    Name(&'static str),
    Sent(Vec<u8>),
}

/// The member names of a request, which every request has: not copied into a string of
/// their own when a token is exactly one of them.
const REQUEST_MEMBERS: [&str; 3] = ["execute", "arguments", "id"];

/// The request member name a string token spells as it is (quotes included, either kind);
/// None for anything else, which is decoded the general way.
fn request_member(token: &[u8], kind: TokenKind) -> Option<&'static str> {
    if kind != TokenKind::String || token.len() < 2 {
        return None;
    }
    let body = &token[1..token.len() - 1];
    REQUEST_MEMBERS.into_iter().find(|name| name.as_bytes() == body)
}

/// Finds duplicate keys in time linear in an object's size: a small object is searched, a
/// large one remembers its keys' hashes (keyed per process, so a client cannot choose
/// colliding keys) and searches only on a hash match.
#[derive(Default)]
struct KeySet {
    /// Made when the object outgrows searching; small objects cost nothing.
    hashes: Option<(RandomState, HashSet<u64>)>,
}

/// Objects up to this many members are searched member by member.
const SEARCHED_MEMBERS: usize = 16;

impl KeySet {
    /// Whether `dict` already has `key`; remembers `key` as now present.
    fn contains(&mut self, dict: &Dict, key: &[u8]) -> bool {
        if dict.len() < SEARCHED_MEMBERS {
            return dict.contains_key(key);
        }
        let (state, hashes) = self.hashes.get_or_insert_with(|| {
            let state = RandomState::new();
            let hashes = dict.iter().map(|(k, _)| state.hash_one(k)).collect();
            (state, hashes)
        });
        !hashes.insert(state.hash_one(key)) && dict.contains_key(key)
    }
}

fn array(c: &mut Cursor) -> Result<Value> {
    c.pop(); // '['
    let mut list = Vec::new();
    let Some(t) = c.peek() else { return Err(error("premature EOI")) };
    if t.kind == TokenKind::RSquare {
        c.pop();
        return Ok(Value::List(list));
    }
    list.push(value(c)?);
    loop {
        let Some(t) = c.pop() else { return Err(error("premature EOI")) };
        match t.kind {
            TokenKind::RSquare => return Ok(Value::List(list)),
            TokenKind::Comma => list.push(value(c)?),
            _ => return Err(error("expected separator in list")),
        }
    }
}

fn literal(text: &[u8], kind: TokenKind) -> Result<Value> {
    match kind {
        TokenKind::String => string(text).map(Value::Str),
        TokenKind::Keyword => match text {
            b"true" => Ok(Value::Bool(true)),
            b"false" => Ok(Value::Bool(false)),
            b"null" => Ok(Value::Null),
            _ => {
                let mut e = error("invalid keyword '");
                e.extend_from_slice(text);
                e.push(b'\'');
                Err(e)
            }
        },
        // The lexer only builds number tokens from ASCII.
        _ => {
            let s = std::str::from_utf8(text).unwrap_or("0");
            if kind == TokenKind::Integer {
                if let Ok(i) = s.parse::<i64>() {
                    return Ok(Value::Int(i));
                }
                if !s.starts_with('-') {
                    if let Ok(u) = s.parse::<u64>() {
                        return Ok(Value::UInt(u));
                    }
                }
            }
            Ok(Value::Float(s.parse::<f64>().unwrap_or(f64::NAN)))
        }
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    let h = s.get(..4)?;
    let mut v = 0;
    for &b in h {
        v = (v << 4) | (b as char).to_digit(16)?;
    }
    Some(v)
}

/// Decodes a string token (quotes included) into modified UTF-8.
fn string(tok: &[u8]) -> Result<Vec<u8>> {
    let quote = tok[0];
    let body = &tok[1..tok.len() - 1];
    debug_assert_eq!(tok[tok.len() - 1], quote);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        // Copy runs of plain ASCII at once.
        let run = super::plain_run(
            &body[i..],
            |x| super::swar::has_high(x) || super::swar::has_byte(x, b'\\'),
            |b| b == b'\\' || b >= 0x80,
        );
        out.extend_from_slice(&body[i..i + run]);
        i += run;
        if i >= body.len() {
            break;
        }
        if body[i] != b'\\' {
            match mutf8::decode(&body[i..]) {
                (Some(cp), n) => {
                    mutf8::encode(cp, &mut out);
                    i += n;
                }
                (None, _) => return Err(error("invalid UTF-8 sequence in string")),
            }
            continue;
        }
        let begin = i;
        let Some(&esc) = body.get(i + 1) else { return Err(error("invalid escape sequence in string")) };
        i += 2;
        let simple = match esc {
            b'"' => Some(b'"'),
            b'\'' => Some(b'\''),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0C),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(error("invalid escape sequence in string")),
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let mut cp = hex4(&body[i..]).map(|v| v as i64).unwrap_or(-1);
        i += 4;
        if (0xD800..=0xDBFF).contains(&cp) && body.get(i) == Some(&b'\\') && body.get(i + 1) == Some(&b'u') {
            match hex4(&body[(i + 2).min(body.len())..]) {
                Some(t) if (0xDC00..=0xDFFF).contains(&t) => {
                    cp = (0x10000 + ((cp & 0x3FF) << 10)) | (t as i64 & 0x3FF);
                    i += 6;
                }
                _ => cp = -1,
            }
        }
        if cp < 0 || !mutf8::is_valid(cp as u32) {
            // QEMU quotes the escape as written (from the token, so a short escape may run on
            // into the closing quote).
            let end = (1 + i).min(tok.len());
            let mut e = error("");
            e.extend_from_slice(&tok[1 + begin..end]);
            e.extend_from_slice(b" is not a valid Unicode character");
            return Err(e);
        }
        mutf8::encode(cp as u32, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::lexer::Lexer;
    use super::*;

    /// Parses one whole message given as text (a number needs a delimiter after it).
    fn parse_bytes(input: &[u8]) -> Result<Value> {
        let mut tokens = Vec::new();
        let mut text = Vec::new();
        Lexer::new().feed(input, &mut |kind, t| {
            tokens.push(Token { kind, start: text.len(), end: text.len() + t.len() });
            text.extend_from_slice(t);
        });
        parse(&tokens, &text)
    }

    fn one(input: &str) -> std::result::Result<Value, String> {
        parse_bytes(input.as_bytes()).map_err(|e| String::from_utf8_lossy(&e).into_owned())
    }

    #[test]
    fn error_texts_match_qemu() {
        let cases = [
            ("{\"a\":1,}", "JSON parse error, expecting value"),
            ("{\"a\" 1}", "JSON parse error, missing : in object pair"),
            ("{\"a\":1 \"b\":2}", "JSON parse error, expected separator in dict"),
            ("[1 2]", "JSON parse error, expected separator in list"),
            ("{\"a\":1,\"a\":2}", "JSON parse error, duplicate key"),
            ("{1:2}", "JSON parse error, key is not a string in object"),
            ("[xyz]", "JSON parse error, invalid keyword 'xyz'"),
            ("]", "JSON parse error, expecting value"),
            ("[\"\\q\"]", "JSON parse error, invalid escape sequence in string"),
            ("[\"\\uD800\"]", "JSON parse error, \\uD800 is not a valid Unicode character"),
            ("[\"\\uD800\\u0041\"]", "JSON parse error, \\uD800 is not a valid Unicode character"),
        ];
        for (input, want) in cases {
            assert_eq!(one(input), Err(want.to_string()), "{input}");
        }
    }

    #[test]
    fn request_member_names_parse_like_any_other_key() {
        let mut want = Dict::new();
        want.insert(b"execute".to_vec(), Value::str("guest-ping"));
        want.insert(b"id".to_vec(), Value::Int(1));
        want.insert(b"ids".to_vec(), Value::Null);
        want.insert(b"arguments".to_vec(), Value::empty_dict());
        for input in [
            r#"{"execute":"guest-ping","id":1,"ids":null,"arguments":{}}"#,
            r#"{'execute':'guest-ping','id':1,'ids':null,'arguments':{}}"#,
            r#"{"\u0065xecute":"guest-ping","i\u0064":1,"ids":null,"arguments":{}}"#,
        ] {
            assert_eq!(one(input), Ok(Value::Dict(want.clone())), "{input}");
        }
        assert_eq!(one(r#"{"id":1,'id':2}"#), Err("JSON parse error, duplicate key".to_string()));
        assert_eq!(one(r#"{"execute" "x"}"#), Err("JSON parse error, missing : in object pair".to_string()));
    }

    #[test]
    fn integers_keep_their_kind() {
        assert_eq!(one("[-0]"), Ok(Value::List(vec![Value::Int(0)])));
        assert_eq!(one("[9223372036854775808]"), Ok(Value::List(vec![Value::UInt(1 << 63)])));
        assert_eq!(one("[-9223372036854775809]"), Ok(Value::List(vec![Value::Float(-9223372036854775809.0)])));
        assert_eq!(one("[1e3]"), Ok(Value::List(vec![Value::Float(1000.0)])));
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode() {
        let v = one("['\\u00e9\\uD83D\\uDE00\\'\\n\\u0000']").unwrap();
        let mut want = "é😀'\n".as_bytes().to_vec();
        want.extend_from_slice(&[0xC0, 0x80]);
        assert_eq!(v, Value::List(vec![Value::Str(want)]));
    }

    #[test]
    fn invalid_utf8_inside_a_string_is_a_parse_error() {
        assert_eq!(parse_bytes(b"[\"\x80\"]"), Err(b"JSON parse error, invalid UTF-8 sequence in string".to_vec()));
    }
}
