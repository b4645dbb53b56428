//! The parser's tests, by what they show: the command line, the config file, and `-D`.

mod command_line;
mod config_file;
mod dump;

use super::*;
use crate::config::{Config, Method, NamedRpc, DEFAULT_FSFREEZE_HOOK};
use std::collections::HashMap;

/// Parses with the given files as the whole file system.
pub fn run_env(args: &[&str], env: Option<&str>, files: &[(&str, &str)]) -> Result<Parsed, CliError> {
    let files: HashMap<PathBuf, Vec<u8>> =
        files.iter().map(|(p, c)| (PathBuf::from(p), c.as_bytes().to_vec())).collect();
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    parse_with_reader(&args, env.map(Path::new), |p| {
        files.get(p).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    })
}

pub fn run(args: &[&str]) -> Result<Parsed, CliError> {
    run_env(args, None, &[])
}

/// Parses with `conf` as the default config file.
pub fn with_conf(args: &[&str], conf: &str) -> Result<Parsed, CliError> {
    run_env(args, None, &[(DEFAULT_CONFIG_FILE, conf)])
}

pub fn action(r: Result<Parsed, CliError>) -> Action {
    match r {
        Ok(p) => p.action,
        Err(e) => panic!("error: {e}"),
    }
}

pub fn config(r: Result<Parsed, CliError>) -> Config {
    match action(r) {
        Action::Run(c) => c,
        other => panic!("not Run: {other:?}"),
    }
}

pub fn error(r: Result<Parsed, CliError>) -> CliError {
    match r {
        Ok(p) => panic!("parsed: {:?}", p.action),
        Err(e) => e,
    }
}

pub fn rpc(name: &str, source: &str) -> NamedRpc {
    NamedRpc { name: name.to_string(), source: source.to_string() }
}

pub fn default_resolved() -> Config {
    Config { path: Some("/dev/virtio-ports/org.qemu.guest_agent.0".to_string()), ..Config::default() }
}

pub const FULL_CONF: &str = "\
# every key
[general]
daemon=true
method=isa-serial
path=/dev/ttyS3
logfile=/var/log/qga.log
pidfile=/run/qga.pid
fsfreeze-hook=/etc/hook
statedir=/var/lib/qga
verbose=1
retry-path=true
block-rpcs=guest-exec
allow-rpcs=guest-ping
user=qga
policy=/etc/qga.policy
audit=all
fsfreeze-timeout=600
audit-file=/var/log/qga-audit.log
";
