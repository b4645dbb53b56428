//! qemu-ga-rs: a hardened, privilege-separated QEMU guest agent.

use qemu_ga_rs::config::{self, Action};
use qemu_ga_rs::{cli, start};
use std::process::exit;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() {
    if let Err(e) = qemu_ga_rs::inherited_fds::close_inherited() {
        eprintln!("qemu-ga-rs: cannot close inherited descriptors: {}", e.desc());
        exit(start::EXIT_FAILURE);
    }
    let args = std::env::args_os().skip(1).collect();
    let parsed = match cli::parse_with_warnings(args, std::env::var_os("QGA_CONF")) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("qemu-ga-rs: {e}");
            if let Some(hint) = e.usage_hint("qemu-ga-rs") {
                eprintln!("{hint}");
            }
            exit(e.exit_code());
        }
    };
    for w in &parsed.warnings {
        eprintln!("qemu-ga-rs: warning: {w}");
    }
    match parsed.action {
        Action::Help => print!("{}", cli::help::text(VERSION)),
        Action::Version => println!("qemu-ga-rs {VERSION}"),
        Action::ListCommands => {
            for c in qga_policy::Command::all() {
                println!("{}", c.name());
            }
        }
        Action::DumpConf(config) => print!("{}", cli::dump(&config)),
        Action::CheckPolicy { config, file } => exit(check_policy(&config, file.as_deref())),
        Action::Run(config) => exit(start::run(config)),
    }
}

/// `--check-policy [FILE]`: the effective table, exit 0 only if the policy is valid.
fn check_policy(config: &config::Config, file: Option<&std::path::Path>) -> i32 {
    match start::effective_policy(config, file) {
        Ok(effective) => {
            println!("policy: {}", effective.origin());
            print!("{}", effective.render_table());
            for w in effective.warnings() {
                println!("warning: {w}");
            }
            0
        }
        Err(e) => {
            eprintln!("qemu-ga-rs: {e}");
            start::EXIT_FAILURE
        }
    }
}
