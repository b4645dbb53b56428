//! The `-h` text: 7.2's layout and wording, with the options 7.2 lacks and the defaults
//! filled in from `config`, so the text cannot drift from what the parser does.

use crate::config::{Method, DEFAULT_CONFIG_FILE, DEFAULT_FSFREEZE_HOOK, DEFAULT_POLICY_FILE};

/// The help text; `version` is the agent's own version.
pub fn text(version: &str) -> String {
    let defaults = crate::config::Config::default();
    let virtio = Method::VirtioSerial.default_path().unwrap_or("");
    let isa = Method::IsaSerial.default_path().unwrap_or("");
    let pidfile = defaults.pidfile.display();
    let statedir = defaults.statedir.display();
    format!(
        "\
Usage: qemu-ga-rs [-m <method> -p <path>] [<options>]
qemu-ga-rs {version}, a privilege-separated QEMU Guest Agent

  -m, --method      transport method: one of unix-listen, virtio-serial,
                    isa-serial, or vsock-listen (virtio-serial is the default)
  -p, --path        device/socket path (the default for virtio-serial is:
                    {virtio},
                    the default for isa-serial is:
                    {isa}).
                    Socket addresses for vsock-listen are written as
                    <cid>:<port>.
  -l, --logfile     set logfile path, logs to stderr by default
  -f, --pidfile     specify pidfile (default is {pidfile})
  -F, --fsfreeze-hook
                    enable fsfreeze hook. Accepts an optional argument that
                    specifies script to run on freeze/thaw. Script will be
                    called with 'freeze'/'thaw' arguments accordingly.
                    (default is {DEFAULT_FSFREEZE_HOOK})
                    If using -F with an argument, do not follow -F with a
                    space.
                    (for example: -F/var/run/fsfreezehook.sh)
  -t, --statedir    specify dir to store state information (absolute paths
                    only, default is {statedir})
  -v, --verbose     log extra debugging information
  -V, --version     print version information and exit
  -d, --daemonize   become a daemon
  -b, --block-rpcs  comma-separated list of RPCs to disable (no spaces,
                    use \"help\" to list available RPCs);
                    --blacklist is a deprecated alias
  -a, --allow-rpcs  comma-separated list of RPCs to enable, all others are
                    disabled (use \"help\" to list available RPCs);
                    -b wins over -a
  -c, --config      configuration file to use (default is $QGA_CONF if set,
                    else {DEFAULT_CONFIG_FILE}; a file named with -c
                    must exist)
  -D, --dump-conf   dump a qemu-ga config file based on current config
                    options / command-line parameters to stdout
  -r, --retry-path  attempt re-opening path if it's unavailable or closed
                    due to an error which may be recoverable in the future
                    (virtio-serial driver re-install, serial device hot
                    plug/unplug, etc.)
      --user        unprivileged user that serves the host (default is
                    qemu-ga-rs if that user exists, else a uid of its own)
      --policy      policy file deciding which RPCs are enabled (default is
                    {DEFAULT_POLICY_FILE}; without it the shipped
                    default policy applies)
      --check-policy[=FILE]
                    check a policy file (FILE, or the one configured; also
                    accepted as a separate word not starting with '-'),
                    print which RPCs are enabled and why, and exit
      --seccomp-log debugging only: system calls outside the sandbox's
                    allowlists are logged by the kernel instead of
                    killing the agent
      --no-sandbox  profiling only (e.g. under valgrind): no seccomp
                    filters at all; never use it in production
  -h, --help        display this help and exit

The config file is a key file with a [general] group and the keys daemon,
method, path, logfile, pidfile, fsfreeze-hook, statedir, verbose,
retry-path, block-rpcs, allow-rpcs, user and policy; the command line
overrides it, and the RPC lists of both are combined.
"
    )
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
    fn help_lines_fit_80_columns() {
        for line in text("0.1.0").lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }
}
