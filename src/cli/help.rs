//! The `-h` text: 7.2's layout and wording, with the options 7.2 lacks, rendered from the
//! option table with the defaults filled in from `config`, so the text cannot drift from what
//! the parser does.

use super::table::{CONFIG_KEYS, OPTIONS};
use crate::config::{Config, Method, DEFAULT_CONFIG_FILE, DEFAULT_FSFREEZE_HOOK, DEFAULT_POLICY_FILE};

/// The column where descriptions start; a longer option label gets a line of its own.
const DESCRIPTION_COLUMN: usize = 20;
/// The width the closing paragraph is wrapped to.
const PARAGRAPH_WIDTH: usize = 76;

/// The help text; `version` is the agent's own version.
pub fn text(version: &str) -> String {
    let mut out = format!(
        "Usage: qemu-ga-rs [-m <method> -p <path>] [<options>]\n\
         qemu-ga-rs {version}, a privilege-separated QEMU Guest Agent\n\n"
    );
    for option in OPTIONS {
        let Some(help) = &option.help else { continue };
        let mut label = match option.short {
            Some(c) => format!("  -{}, --{}", c as char, option.long),
            None => format!("      --{}", option.long),
        };
        label.push_str(help.arg_hint);
        if label.len() < DESCRIPTION_COLUMN {
            out.push_str(&format!("{label:DESCRIPTION_COLUMN$}"));
        } else {
            out.push_str(&format!("{label}\n{:DESCRIPTION_COLUMN$}", ""));
        }
        let text = with_defaults(help.text);
        out.push_str(&text.replace('\n', &format!("\n{:DESCRIPTION_COLUMN$}", "")));
        out.push('\n');
    }
    let keys: Vec<&str> = CONFIG_KEYS.iter().filter(|k| !k.deprecated).map(|k| k.name).collect();
    let (last, first) = keys.split_last().map_or((&"", &[][..]), |(l, f)| (l, f));
    out.push('\n');
    out.push_str(&wrap(&format!(
        "The config file is a key file with a [general] group and the keys {} and {last}; the command line \
         overrides it, and the RPC lists of both are combined.",
        first.join(", ")
    )));
    out
}

/// Fills in the `{name}` placeholders of the table's help texts.
fn with_defaults(text: &str) -> String {
    let defaults = Config::default();
    [
        ("{virtio-serial-path}", Method::VirtioSerial.default_path().unwrap_or("")),
        ("{isa-serial-path}", Method::IsaSerial.default_path().unwrap_or("")),
        ("{pidfile}", &defaults.pidfile.to_string_lossy()),
        ("{statedir}", &defaults.statedir.to_string_lossy()),
        ("{fsfreeze-hook}", DEFAULT_FSFREEZE_HOOK),
        ("{config-file}", DEFAULT_CONFIG_FILE),
        ("{policy-file}", DEFAULT_POLICY_FILE),
    ]
    .iter()
    .fold(text.to_string(), |text, (placeholder, value)| text.replace(placeholder, value))
}

/// Wraps words greedily to [`PARAGRAPH_WIDTH`] columns, each line ending in a newline.
fn wrap(paragraph: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in paragraph.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > PARAGRAPH_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_option() {
        let t = text("1.2.3");
        for opt in [
            "-m, --method",
            "-p, --path",
            "-l, --logfile",
            "-f, --pidfile",
            "-F, --fsfreeze-hook",
            "-t, --statedir",
            "-v, --verbose",
            "-V, --version",
            "-d, --daemonize",
            "-b, --block-rpcs",
            "--blacklist",
            "-a, --allow-rpcs",
            "-c, --config",
            "-D, --dump-conf",
            "-r, --retry-path",
            "--user",
            "--policy",
            "--check-policy",
            "-h, --help",
        ] {
            assert!(t.contains(opt), "{opt} missing");
        }
        assert!(t.contains("qemu-ga-rs 1.2.3"));
    }

    #[test]
    fn help_shows_the_defaults() {
        let t = text("0");
        for default in [
            "/dev/virtio-ports/org.qemu.guest_agent.0",
            "/dev/ttyS0",
            "/var/run/qemu-ga.pid",
            "default is /var/run)",
            DEFAULT_FSFREEZE_HOOK,
            DEFAULT_CONFIG_FILE,
            DEFAULT_POLICY_FILE,
        ] {
            assert!(t.contains(default), "{default} missing");
        }
    }

    #[test]
    fn every_placeholder_is_filled_in() {
        assert!(!text("0").contains('{'), "{}", text("0"));
    }

    #[test]
    fn help_lines_fit_80_columns() {
        for line in text("0.1.0").lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }
}
