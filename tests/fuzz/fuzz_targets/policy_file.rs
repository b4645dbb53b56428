//! The policy file parser, argument conditions included: arbitrary text -> `parse`.
//!
//! Invariants: no panic; a file that parses yields a verdict for every command; every
//! argument condition it accepted renders to a line (`Narrowing::to_line`) that the helper's
//! reading (the word splitter, then the conditions parser) turns back into the same conditions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qga_policy::{parse, split_words, Command, Narrowing};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = parse(text, "fuzz") else { return };
    for cmd in Command::all() {
        let _ = file.verdict(cmd);
    }
    for n in file.conditions() {
        let words = split_words(&n.to_line()).expect("a rendered line splits");
        assert_eq!(words[0], n.command.name());
        let again = Narrowing::parse(n.command, words[1..].to_vec()).expect("a rendered line parses");
        assert_eq!(again, n);
    }
});
