//! Splits the token stream into messages, as QEMU's JSON streamer does: a message ends when the
//! brace and bracket counts return to zero (or one goes negative). It also enforces 7.2's
//! limits. After a limit or lexer error the message's tokens are dropped and what follows is
//! lexed as new input, so one bad message can produce a cascade of replies, exactly as 7.2.

use super::lexer::{Token, TokenKind};
use super::parser;
use super::value::Value;
use std::ops::ControlFlow;

/// Total bytes of all tokens of one message.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Tokens in one message.
pub const MAX_TOKEN_COUNT: usize = 2 << 20;
/// Braces plus brackets open at once.
pub const MAX_NESTING: i64 = 1024;

/// The result for one message: a value, or the error text of 7.2's parse error reply.
pub type Message = Result<Value, Vec<u8>>;

/// The request text buffer's capacity kept between requests: a 1 MiB guest-file-write (about
/// 1.4 MB of base64) grows it to under 3 MiB, and pieces of that size are the common case, so
/// they reuse one buffer; anything bigger is let go.
const INPUT_KEEP: usize = 4 << 20;

/// The tokens of the message being received.
#[derive(Default)]
pub struct Streamer {
    tokens: Vec<Token>,
    text: Vec<u8>,
    braces: i64,
    brackets: i64,
}

impl Streamer {
    /// Takes one token; when it completes a message, hands the message to `emit` and passes on
    /// what `emit` answers.
    pub fn token(
        &mut self,
        kind: TokenKind,
        text: &[u8],
        emit: &mut impl FnMut(Message) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match kind {
            TokenKind::LCurly => self.braces += 1,
            TokenKind::RCurly => self.braces -= 1,
            TokenKind::LSquare => self.brackets += 1,
            TokenKind::RSquare => self.brackets -= 1,
            TokenKind::Error => {
                // C string semantics: the text ends at the first NUL byte.
                let shown = text.split(|&b| b == 0).next().unwrap_or(&[]);
                let mut msg = b"JSON parse error, stray '".to_vec();
                msg.extend_from_slice(shown);
                msg.push(b'\'');
                return self.finish(Err(msg), emit);
            }
            _ => {}
        }
        if self.text.len() + text.len() + 1 > MAX_MESSAGE_SIZE {
            return self.finish(Err(b"JSON token size limit exceeded".to_vec()), emit);
        }
        if self.tokens.len() + 1 > MAX_TOKEN_COUNT {
            return self.finish(Err(b"JSON token count limit exceeded".to_vec()), emit);
        }
        if self.braces + self.brackets > MAX_NESTING {
            return self.finish(Err(b"JSON nesting depth limit exceeded".to_vec()), emit);
        }
        let start = self.text.len();
        self.text.extend_from_slice(text);
        self.tokens.push(Token { kind, start, end: self.text.len() });
        if (self.braces > 0 || self.brackets > 0) && self.braces >= 0 && self.brackets >= 0 {
            return ControlFlow::Continue(());
        }
        let result = parser::parse(&self.tokens, &self.text);
        self.finish(result, emit)
    }

    fn finish(&mut self, result: Message, emit: &mut impl FnMut(Message) -> ControlFlow<()>) -> ControlFlow<()> {
        self.braces = 0;
        self.brackets = 0;
        self.tokens.clear();
        self.text.clear();
        if self.text.capacity() > INPUT_KEEP {
            // Do not keep a 64 MiB buffer alive after one large request. Fresh buffers rather
            // than shrink_to: a buffer that grew past the allocator's mmap threshold is its own
            // mapping, and shrinking it keeps it one, so every later request that grows it
            // again would fault in fresh pages (about 350 per 1 MiB write) instead of reusing
            // the heap.
            self.text = Vec::with_capacity(1 << 16);
            self.tokens = Vec::with_capacity(1 << 12);
        }
        emit(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MessageParser;
    use super::*;

    fn run(input: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        MessageParser::new().feed(input, &mut |m| out.push(m));
        out
    }

    fn errors(input: &[u8]) -> Vec<Vec<u8>> {
        run(input).into_iter().map(|m| m.expect_err("expected an error")).collect()
    }

    fn err(s: &str) -> Message {
        Err(s.as_bytes().to_vec())
    }

    #[test]
    fn several_messages_in_one_feed_come_out_in_order() {
        let out = run(b"{\"a\":1}{\"b\":2} [3]");
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|m| m.is_ok()));
    }

    #[test]
    fn a_message_over_many_feeds_comes_out_once() {
        let mut p = MessageParser::new();
        let mut out = Vec::new();
        for b in b"{\"execute\":\"guest-ping\"}".iter() {
            p.feed(&[*b], &mut |m| out.push(m));
        }
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn ff_flushes_a_partial_message_with_one_error() {
        let out = errors(b"{\"execute\":\xff");
        assert_eq!(out, vec![b"JSON parse error, stray '\xff'".to_vec()]);
    }

    #[test]
    fn nesting_1024_passes_and_1025_fails_then_cascades() {
        let ok = format!("{}{}", "[".repeat(1024), "]".repeat(1024));
        assert!(run(ok.as_bytes())[0].is_ok());
        let bad = format!("{{\"id\":{}{}}}", "[".repeat(1024), "]".repeat(1024));
        let out = run(bad.as_bytes());
        assert_eq!(out[0], Err(b"JSON nesting depth limit exceeded".to_vec()));
        // Every stray closing bracket and the final brace are answered on their own.
        assert_eq!(out.len(), 1 + 1024 + 1);
        assert!(out[1..].iter().all(|m| m == &err("JSON parse error, expecting value")));
    }

    #[test]
    fn the_token_count_limit_is_2097152() {
        // {"id":[0,0,...]} with n zeros has 5 + 2n + 1 tokens... count exactly.
        let n = (MAX_TOKEN_COUNT - 6) / 2; // 5 + 2n - 1 + 2 <= limit
        let ok = format!("{{\"id\":[{}0]}}", "0,".repeat(n - 1));
        assert!(run(ok.as_bytes())[0].is_ok());
        let bad = format!("{{\"id\":[{}0]}}", "0,".repeat(n + 1));
        assert_eq!(run(bad.as_bytes())[0], Err(b"JSON token count limit exceeded".to_vec()));
    }

    #[test]
    fn a_nul_byte_ends_the_quoted_stray_text() {
        assert_eq!(errors(b"\"ab\x00cd"), vec![b"JSON parse error, stray '\"ab'".to_vec()]);
    }
}
