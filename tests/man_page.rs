//! The man page documents the tables it describes: every row of `qemu-ga-rs.8`'s COMMANDS
//! list matches the catalogue (name, process, allowed while frozen, success-response), in
//! schema order, and nothing is missing or extra; every option of the option table is an entry
//! of OPTIONS and of `--help`, and every config key is an entry of CONFIGURATION FILE and is
//! written by `-D`.

use qemu_ga_rs::cli::table::{CONFIG_KEYS, OPTIONS};
use qemu_ga_rs::cli::{self, help};
use qemu_ga_rs::config::Action;
use qga_policy::{Process, TABLE};
use std::ffi::OsString;

fn man_page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/qemu-ga-rs.8")).expect("man page")
}

/// The tags of the `.TP` entries of one section, as plain text (`-m, --method=method`).
fn entry_tags(page: &str, section: &str) -> Vec<String> {
    let lines: Vec<&str> = page
        .lines()
        .skip_while(|l| *l != format!(".SH {section}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect();
    assert!(!lines.is_empty(), "no section {section}");
    lines
        .windows(2)
        .filter(|pair| pair[0].starts_with(".TP"))
        .map(|pair| plain(pair[1].split_once(' ').map_or("", |(_, rest)| rest)))
        .collect()
}

/// Roff text without escapes, font changes and quotes.
fn plain(roff: &str) -> String {
    let mut text = roff.replace("\\-", "-").replace("\\%", "");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text.replace('"', "")
}

/// Whether `text` holds `word` not run into a longer name (`--policy` is not in
/// `--check-policy`, `-b` is not in `-b2`).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let is_name = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        !is_name(before) && !is_name(after)
    })
}

#[test]
fn the_man_page_lists_exactly_the_command_table() {
    let page = man_page();
    let rows: Vec<Vec<String>> = page
        .lines()
        .skip_while(|l| !l.starts_with("COMMAND "))
        .skip(1)
        .take_while(|l| l.starts_with("\\%guest"))
        .map(|l| l.replace("\\%", "").replace("\\-", "-").split_whitespace().map(String::from).collect())
        .collect();
    let expected: Vec<Vec<String>> = TABLE
        .iter()
        .map(|s| {
            let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
            let process = match s.process {
                Process::Front => "front",
                Process::Helper => "helper",
            };
            vec![s.name.to_string(), process.to_string(), yes_no(s.allowed_while_frozen), yes_no(s.success_response)]
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn every_option_has_an_entry_in_the_man_page_and_in_help() {
    let tags = entry_tags(&man_page(), "OPTIONS");
    let help = help::text("0");
    for option in OPTIONS {
        let long = format!("--{}", option.long);
        let short = option.short.map(|c| format!("-{}", c as char));
        let documented =
            tags.iter().any(|tag| has_word(tag, &long) && short.as_ref().is_none_or(|short| has_word(tag, short)));
        assert!(documented, "{long} {short:?}: no OPTIONS entry in the man page; entries: {tags:#?}");
        let in_help = match &short {
            Some(short) if option.help.is_some() => help.contains(&format!("  {short}, {long}")),
            _ => has_word(&help, &long),
        };
        assert!(in_help, "{long} {short:?}: not in --help:\n{help}");
    }
}

#[test]
fn the_man_page_lists_exactly_the_config_keys() {
    let tags = entry_tags(&man_page(), "CONFIGURATION FILE");
    let mut documented: Vec<&str> = tags.iter().filter_map(|tag| tag.split_whitespace().next()).collect();
    let mut keys: Vec<&str> = CONFIG_KEYS.iter().map(|k| k.name).collect();
    documented.sort_unstable();
    keys.sort_unstable();
    assert_eq!(documented, keys);
}

#[test]
fn dump_conf_writes_every_key_but_the_deprecated_one() {
    let args: Vec<OsString> = [
        "-D",
        "-d",
        "-v",
        "-r",
        "-m",
        "isa-serial",
        "-p",
        "/dev/ttyS1",
        "-l",
        "/log",
        "-f",
        "/pid",
        "-F",
        "-t",
        "/state",
        "-b",
        "guest-exec",
        "-a",
        "guest-ping",
        "--user",
        "qga",
        "--policy",
        "/policy",
        "--audit=all",
        "--fsfreeze-timeout=600",
        "--audit-file=/audit",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let parsed = cli::parse_with_reader(&args, None, |_| Err(std::io::ErrorKind::NotFound.into())).expect("parses");
    let Action::DumpConf(config) = parsed.action else { panic!("not -D: {:?}", parsed.action) };
    let text = cli::dump(&config);
    let written: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split_once('=')).map(|(key, _)| key).collect();
    let expected: Vec<&str> = CONFIG_KEYS.iter().filter(|k| !k.deprecated).map(|k| k.name).collect();
    assert_eq!(written, expected, "{text}");
}
