//! QEMU's JSON dialect: the byte-stream lexer, the message streamer with 7.2's limits, the
//! parser, the value model and the writer.

pub mod lexer;
pub mod mutf8;
pub mod parser;
pub mod streamer;
pub mod value;
pub mod writer;

pub use streamer::{Message, MessageParser};
pub use value::{Dict, Value};
