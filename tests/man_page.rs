//! The man page's command table is the command table: every row of `qemu-ga-rs.8`'s COMMANDS
//! list matches the catalogue (name, process, allowed while frozen, success-response), in
//! schema order, and nothing is missing or extra.

use qga_policy::{Process, TABLE};

#[test]
fn the_man_page_lists_exactly_the_command_table() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/qemu-ga-rs.8")).expect("man page");
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
