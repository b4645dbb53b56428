//! qemu-ga-rs: a hardened, privilege-separated QEMU guest agent.

use qemu_ga_rs::config::{self, Action};
use qemu_ga_rs::{cli, start};
use qga_policy::record::SandboxRecord;
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
        Action::Run(config) => exit(start::run_with(config, parsed.config_file)),
    }
}

/// Whether a running agent (the last one started with this state directory, as its start-up
/// record says) could apply `policy` by a reload: the helper's own two checks on SIGHUP.
fn reload_verdict(config: &config::Config, policy: &qga_policy::Policy) -> String {
    let path = config.statedir.join(start::SANDBOX_RECORD);
    let record = std::fs::read_to_string(&path).ok().and_then(|text| SandboxRecord::parse(&text));
    let applies = "a running agent applies this policy on SIGHUP (systemctl reload)".to_string();
    match record {
        Some(started) => match started.reload_needs_restart(policy) {
            None => applies,
            Some(why) => format!("needs a restart: {why}"),
        },
        None if qga_policy::reload::needs_files(policy) => format!(
            "needs a restart unless the running agent started with file commands reaching as far ({} does not say)",
            path.display()
        ),
        None => applies,
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
            println!("reload: {}", reload_verdict(config, effective.policy()));
            0
        }
        Err(e) => {
            eprintln!("qemu-ga-rs: {e}");
            start::EXIT_FAILURE
        }
    }
}
