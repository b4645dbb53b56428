//! Bytes in, messages out: the lexer feeding the streamer, which hands each complete message
//! (parsed, or 7.2's error text) to the caller.

use super::lexer::Lexer;
use super::streamer::{Message, Streamer};
use std::ops::ControlFlow;

#[derive(Default)]
pub struct MessageParser {
    lexer: Lexer,
    streamer: Streamer,
}

impl MessageParser {
    pub fn new() -> MessageParser {
        MessageParser::default()
    }

    /// Feeds bytes; `emit` receives each complete message in order.
    pub fn feed(&mut self, bytes: &[u8], emit: &mut impl FnMut(Message)) {
        self.feed_until(bytes, &mut |message| {
            emit(message);
            ControlFlow::Continue(())
        });
    }

    /// Feeds bytes until `emit` asks to stop after a message; returns how many bytes were
    /// consumed. The caller feeds the rest later, as if the input had never been cut there.
    pub fn feed_until(&mut self, bytes: &[u8], emit: &mut impl FnMut(Message) -> ControlFlow<()>) -> usize {
        let streamer = &mut self.streamer;
        self.lexer.feed_until(bytes, &mut |kind, text| streamer.token(kind, text, emit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_fed_in_pieces_cut_after_each_message_gives_the_same_messages() {
        let input = b"{\"a\":1}{\"b\":[2,3]} 42]\"x\" [1]{'c':\xff}{}";
        let mut whole = Vec::new();
        MessageParser::new().feed(input, &mut |m| whole.push(m));
        let mut parser = MessageParser::new();
        let mut cut = Vec::new();
        let mut rest: &[u8] = input;
        while !rest.is_empty() {
            let n = parser.feed_until(rest, &mut |m| {
                cut.push(m);
                ControlFlow::Break(())
            });
            assert!(n > 0);
            rest = &rest[n..];
        }
        assert_eq!(cut, whole);
        assert!(whole.len() >= 7, "{whole:?}");
    }
}
