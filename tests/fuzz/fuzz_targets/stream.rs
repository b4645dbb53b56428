//! The byte-stream framing: arbitrary bytes in arbitrary chunks -> messages.
//!
//! Input layout: byte 0's low nibble `k` is the number of chunk-size bytes that follow; each
//! chunk is `size + 1` bytes, the sizes used in turn (with `k == 0` the data is fed one byte at
//! a time). The rest of the input is the data.
//!
//! Invariants:
//! - the data fed in one piece and fed in chunks give the same message sequence;
//! - 0xFF resets: after a 0xFF the parser is in the same state whatever came before, so the
//!   messages of `A ++ 0xFF ++ B` are those of `A ++ 0xFF` followed by those `B` adds to a
//!   lone 0xFF;
//! - every error reply the writer produces is ASCII, ends with `}` and is valid JSON;
//! - every parsed value is written as ASCII and parses back to the same value (compared
//!   through the writer, with members sorted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qemu_ga_rs::json::{writer, Dict, Message, MessageParser, Value};
use qemu_ga_rs::qmp::AgentError;

fn messages(chunks: &[&[u8]]) -> Vec<Message> {
    let mut parser = MessageParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut |m| out.push(m));
    }
    out
}

fn written(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    writer::write(v, &mut out);
    out
}

/// The value with every object's members sorted: the writer's QDict order lists members of
/// one hash bucket newest first, so a write-parse-write cycle reverses them, as in QEMU. And
/// `-0.0` is written `-0` (`%.17g`), which parses back as the integer 0, as in QEMU.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Float(f) if *f == 0.0 => Value::Int(0),
        Value::List(l) => Value::List(l.iter().map(sorted).collect()),
        Value::Dict(d) => {
            let mut members: Vec<_> = d.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Dict::new();
            for (k, v) in members {
                out.insert(k, sorted(v));
            }
            Value::Dict(out)
        }
        other => other.clone(),
    }
}

fn has_non_finite(v: &Value) -> bool {
    match v {
        Value::Float(f) => !f.is_finite(),
        Value::List(l) => l.iter().any(has_non_finite),
        Value::Dict(d) => d.iter().any(|(_, v)| has_non_finite(v)),
        _ => false,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&head, rest)) = input.split_first() else { return };
    let k = ((head & 0x0F) as usize).min(rest.len());
    let (sizes, data) = rest.split_at(k);

    let whole = messages(&[data]);

    let mut chunks = Vec::new();
    let mut at = 0;
    let mut turn = 0;
    while at < data.len() {
        let size = if sizes.is_empty() { 1 } else { sizes[turn % sizes.len()] as usize + 1 };
        let end = (at + size).min(data.len());
        chunks.push(&data[at..end]);
        at = end;
        turn += 1;
    }
    let chunked = messages(&chunks);
    assert_eq!(whole, chunked, "chunking changed the messages");

    if let Some(ff) = data.iter().position(|&b| b == 0xFF) {
        let (a, b) = data.split_at(ff + 1);
        let mut expected = messages(&[a]);
        let lone = messages(&[&[0xFF]]).len();
        expected.extend(messages(&[&[0xFF], b]).into_iter().skip(lone));
        assert_eq!(whole, expected, "0xFF did not reset the parser");
    }

    // A bad message can cascade into a thousand identical errors: check each text once.
    let mut seen = std::collections::HashSet::new();
    for m in &whole {
        match m {
            Err(text) if !seen.insert(text) => {}
            Err(text) => {
                let e = AgentError::Json(text.clone());
                let error = Dict::new().with("class", Value::str(e.class().name())).with("desc", Value::Str(e.desc()));
                let reply = written(&Dict::new().with("error", error.into()).into());
                assert!(reply.is_ascii(), "non-ASCII error reply {:?}", String::from_utf8_lossy(&reply));
                assert_eq!(reply.last(), Some(&b'}'));
                serde_json::from_slice::<serde_json::Value>(&reply).expect("error reply is not JSON");
            }
            Ok(v) => {
                let text = written(v);
                assert!(text.is_ascii(), "non-ASCII output {:?}", String::from_utf8_lossy(&text));
                if has_non_finite(v) {
                    continue; // %.17g writes inf and nan, as QEMU does; they do not parse back.
                }
                // A trailing newline ends a top-level number or keyword.
                let again = messages(&[&text, b"\n"]);
                assert_eq!(
                    again.len(),
                    1,
                    "written value did not parse back as one message: {:?}",
                    String::from_utf8_lossy(&text)
                );
                let again = again[0].as_ref().expect("written value did not parse back");
                assert_eq!(written(&sorted(again)), written(&sorted(v)), "the written value parsed back differently");
            }
        }
    }
});
