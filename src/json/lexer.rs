//! The byte-level JSON lexer of QEMU's dialect, as qemu-ga 7.2 runs it (no `%` interpolation):
//! double- and single-quoted strings, lowercase keywords, RFC 8259 numbers. An invalid byte
//! ends the current token with an error (the byte included) and puts the lexer into recovery,
//! where it skips input until a structural character, a control character other than tab, or
//! one of the impossible UTF-8 bytes 0xFE/0xFF: that is how a client's 0xFF resynchronises it.

use std::cell::Cell;
use std::ops::ControlFlow;

/// Longest single token; a longer one is cut off and reported as an oversized token.
pub const MAX_TOKEN_SIZE: usize = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
    /// An invalid byte; the token text holds the bad token so far, the byte included.
    Error,
    /// A token longer than [`MAX_TOKEN_SIZE`] that was cut off.
    Oversized,
}

/// One token of a pending message: its kind and where its text lies in the message's text.
#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    /// After a leading `-`.
    Sign,
    /// A lone `0` (or `-0`).
    Zero,
    Digits,
    /// After the decimal point, before a digit.
    Mantissa,
    MantissaDigits,
    /// After `e`/`E`.
    ExpE,
    /// After the exponent's sign.
    ExpSign,
    ExpDigits,
    Keyword,
}

/// What one byte does in one state.
enum Step {
    /// Consume the byte and stay in or move to a state.
    Go(State),
    /// Consume the byte, which completes a token.
    Emit(TokenKind),
    /// The byte does not belong to the current token: emit it without the byte, then
    /// look at the byte again from the start state.
    EmitBefore(TokenKind),
    /// Back to the start state without consuming the byte (recovery found a sync point).
    Resync,
    /// Whitespace between tokens: consume and drop.
    Skip,
    /// Invalid: consume the byte into the error token.
    Fail,
}

fn is_string_byte(b: u8) -> bool {
    (0x20..=0xFD).contains(&b)
}

fn step(state: State, b: u8) -> Step {
    use State::*;
    use Step::*;
    match state {
        Start => match b {
            b'"' => Go(DqString),
            b'\'' => Go(SqString),
            b'0' => Go(Zero),
            b'1'..=b'9' => Go(Digits),
            b'-' => Go(Sign),
            b'{' => Emit(TokenKind::LCurly),
            b'}' => Emit(TokenKind::RCurly),
            b'[' => Emit(TokenKind::LSquare),
            b']' => Emit(TokenKind::RSquare),
            b',' => Emit(TokenKind::Comma),
            b':' => Emit(TokenKind::Colon),
            b'a'..=b'z' => Go(Keyword),
            b' ' | b'\t' | b'\r' | b'\n' => Skip,
            _ => Fail,
        },
        Recovery => match b {
            b'\t' => Go(Recovery),
            0x00..=0x1F | 0xFE | 0xFF | b'[' | b']' | b'{' | b'}' | b':' | b',' => Resync,
            _ => Go(Recovery),
        },
        DqString => match b {
            b'"' => Emit(TokenKind::String),
            b'\\' => Go(DqEscape),
            _ if is_string_byte(b) => Go(DqString),
            _ => Fail,
        },
        SqString => match b {
            b'\'' => Emit(TokenKind::String),
            b'\\' => Go(SqEscape),
            _ if is_string_byte(b) => Go(SqString),
            _ => Fail,
        },
        DqEscape if is_string_byte(b) => Go(DqString),
        SqEscape if is_string_byte(b) => Go(SqString),
        DqEscape | SqEscape => Fail,
        Sign => match b {
            b'0' => Go(Zero),
            b'1'..=b'9' => Go(Digits),
            _ => Fail,
        },
        Zero => match b {
            b'0'..=b'9' => Fail,
            b'.' => Go(Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        Digits => match b {
            b'0'..=b'9' => Go(Digits),
            b'e' | b'E' => Go(ExpE),
            b'.' => Go(Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        Mantissa => match b {
            b'0'..=b'9' => Go(MantissaDigits),
            _ => Fail,
        },
        MantissaDigits => match b {
            b'0'..=b'9' => Go(MantissaDigits),
            b'e' | b'E' => Go(ExpE),
            _ => EmitBefore(TokenKind::Float),
        },
        ExpE => match b {
            b'-' | b'+' => Go(ExpSign),
            b'0'..=b'9' => Go(ExpDigits),
            _ => Fail,
        },
        ExpSign => match b {
            b'0'..=b'9' => Go(ExpDigits),
            _ => Fail,
        },
        ExpDigits => match b {
            b'0'..=b'9' => Go(ExpDigits),
            _ => EmitBefore(TokenKind::Float),
        },
        Keyword => match b {
            b'a'..=b'z' => Go(Keyword),
            _ => EmitBefore(TokenKind::Keyword),
        },
    }
}

/// The lexer: feed it bytes, it hands complete tokens to a sink.
pub struct Lexer {
    state: State,
    token: Vec<u8>,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new()
    }
}

impl Lexer {
    pub fn new() -> Lexer {
        Lexer { state: State::Start, token: Vec::with_capacity(64) }
    }

    /// Feeds bytes; `sink(kind, text)` receives every token in order.
    pub fn feed(&mut self, bytes: &[u8], sink: &mut impl FnMut(TokenKind, &[u8])) {
        self.feed_until(bytes, &mut |kind, text| {
            sink(kind, text);
            ControlFlow::Continue(())
        });
    }

    /// Feeds bytes until the sink asks to stop; returns how many bytes were consumed. A stop
    /// takes effect once the byte being lexed is done (one byte can end two tokens: a number
    /// and the bracket after it), so the rest can be fed later as if never interrupted.
    pub fn feed_until(&mut self, bytes: &[u8], sink: &mut impl FnMut(TokenKind, &[u8]) -> ControlFlow<()>) -> usize {
        let stop = Cell::new(false);
        let mut sink = |kind: TokenKind, text: &[u8]| {
            if sink(kind, text).is_break() {
                stop.set(true);
            }
        };
        let mut i = 0;
        while i < bytes.len() && !stop.get() {
            // Fast path: the body of a string is most of a large request.
            if matches!(self.state, State::DqString | State::SqString) {
                let quote = if self.state == State::DqString { b'"' } else { b'\'' };
                let room = MAX_TOKEN_SIZE + 1 - self.token.len().min(MAX_TOKEN_SIZE + 1);
                let rest = &bytes[i..bytes.len().min(i + room)];
                // Stops at the quote, a backslash, a control byte or 0xFE/0xFF; the word test
                // also stops at any byte >= 0x80 and the byte loop sorts those out.
                let n = super::plain_run(
                    rest,
                    |x| {
                        use super::swar::*;
                        has_less(x, 0x20) || has_high(x) || has_byte(x, quote) || has_byte(x, b'\\')
                    },
                    |b| b == quote || b == b'\\' || !is_string_byte(b),
                );
                if n > 0 {
                    self.token.extend_from_slice(&rest[..n]);
                    i += n;
                    self.check_size(&mut sink);
                    continue;
                }
            }
            self.feed_byte(bytes[i], &mut sink);
            i += 1;
        }
        i
    }

    fn feed_byte(&mut self, b: u8, sink: &mut impl FnMut(TokenKind, &[u8])) {
        loop {
            match step(self.state, b) {
                Step::Go(s) => {
                    self.token.push(b);
                    self.state = s;
                }
                Step::Emit(kind) => {
                    self.token.push(b);
                    sink(kind, &self.token);
                    self.token.clear();
                    self.state = State::Start;
                }
                Step::EmitBefore(kind) => {
                    sink(kind, &self.token);
                    self.token.clear();
                    self.state = State::Start;
                    continue;
                }
                Step::Resync => {
                    self.state = State::Start;
                    continue;
                }
                Step::Skip => {}
                Step::Fail => {
                    self.token.push(b);
                    sink(TokenKind::Error, &self.token);
                    self.token.clear();
                    self.state = State::Recovery;
                }
            }
            break;
        }
        if self.state == State::Recovery {
            // Recovery skips bytes; it never builds a token.
            self.token.clear();
        }
        self.check_size(sink);
    }

    /// A single token may not grow without bound: cut it off and report it.
    fn check_size(&mut self, sink: &mut impl FnMut(TokenKind, &[u8])) {
        if self.token.len() > MAX_TOKEN_SIZE {
            sink(TokenKind::Oversized, &self.token);
            self.token.clear();
            self.state = State::Start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(input: &[u8]) -> Vec<(TokenKind, String)> {
        let mut out = Vec::new();
        Lexer::new().feed(input, &mut |k, t| out.push((k, String::from_utf8_lossy(t).into_owned())));
        out
    }

    #[test]
    fn numbers_end_at_the_next_non_digit_which_is_lexed_again() {
        use TokenKind::*;
        assert_eq!(
            lex(b"[12,-0,1.5e+3]"),
            vec![
                (LSquare, "[".into()),
                (Integer, "12".into()),
                (Comma, ",".into()),
                (Integer, "-0".into()),
                (Comma, ",".into()),
                (Float, "1.5e+3".into()),
                (RSquare, "]".into())
            ]
        );
    }

    #[test]
    fn a_bare_number_stays_pending_until_a_delimiter() {
        assert!(lex(b"42").is_empty());
        assert_eq!(lex(b"42\n"), vec![(TokenKind::Integer, "42".into())]);
    }

    #[test]
    fn single_quoted_strings_are_strings() {
        assert_eq!(lex(b"'a\"b'"), vec![(TokenKind::String, "'a\"b'".into())]);
    }

    #[test]
    fn ff_inside_a_string_is_an_error_carrying_the_partial_token() {
        assert_eq!(lex(b"\"gue\xff"), vec![(TokenKind::Error, "\"gue\u{fffd}".into())]);
    }

    #[test]
    fn recovery_skips_to_the_next_structural_character() {
        use TokenKind::*;
        assert_eq!(lex(b"TRUE{"), vec![(Error, "T".into()), (LCurly, "{".into())]);
    }

    #[test]
    fn a_second_ff_during_recovery_is_a_second_error() {
        use TokenKind::*;
        assert_eq!(lex(b"\xff\xff"), vec![(Error, "\u{fffd}".into()), (Error, "\u{fffd}".into())]);
    }

    #[test]
    fn leading_zero_followed_by_digit_is_an_error() {
        assert_eq!(lex(b"01"), vec![(TokenKind::Error, "01".into())]);
    }

    #[test]
    fn a_control_character_inside_a_string_is_an_error() {
        assert_eq!(lex(b"\"a\nb\""), vec![(TokenKind::Error, "\"a\n".into())]);
    }

    #[test]
    fn input_split_anywhere_lexes_the_same() {
        let input: &[u8] = b"{'execute': \"guest-sync\", \"arguments\": {\"id\": -12.5e3}} [true, null]\n";
        let whole = lex(input);
        for cut in 0..input.len() {
            let mut out = Vec::new();
            let mut lx = Lexer::new();
            let mut sink = |k, t: &[u8]| out.push((k, String::from_utf8_lossy(t).into_owned()));
            lx.feed(&input[..cut], &mut sink);
            lx.feed(&input[cut..], &mut sink);
            assert_eq!(out, whole, "cut at {cut}");
        }
    }
}
