//! `-D`: 7.2's text, byte for byte, and a dump that reads back to the same settings.

use super::*;

#[test]
fn dump_conf_action() {
    assert_eq!(action(run(&["-D"])), Action::DumpConf(default_resolved()));
    assert_eq!(action(run(&["--dump-conf", "-v"])), Action::DumpConf(Config { verbose: true, ..default_resolved() }));
}

#[test]
fn dump_of_defaults_is_7_2s_text() {
    let expected = "\
[general]
daemon=false
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
pidfile=/var/run/qemu-ga.pid
statedir=/var/run
verbose=false
retry-path=false
block-rpcs=
";
    assert_eq!(dump(&config(run(&[]))), expected);
    // A Config made elsewhere, path unresolved, dumps the same.
    assert_eq!(dump(&Config::default()), expected);
}

#[test]
fn dump_with_logfile_hook_and_blocks_has_7_2s_key_order() {
    let Action::DumpConf(c) = action(run(&["-D", "-b", "guest-ping,guest-info", "-F", "-l", "/x"])) else {
        panic!("not DumpConf")
    };
    // 7.2 prints "guest-info,guest-ping" (its list is built backwards); the keys and
    // their order are the same.
    assert_eq!(
        dump(&c),
        "\
[general]
daemon=false
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
logfile=/x
pidfile=/var/run/qemu-ga.pid
fsfreeze-hook=/etc/qemu/fsfreeze-hook
statedir=/var/run
verbose=false
retry-path=false
block-rpcs=guest-ping,guest-info
"
    );
}

#[test]
fn dump_adds_our_keys_after_7_2s() {
    let c = config(run(&["-a", "guest-ping,guest-sync", "--user", "qga", "--policy", "/p", "-vd"]));
    assert_eq!(
        dump(&c),
        "\
[general]
daemon=true
method=virtio-serial
path=/dev/virtio-ports/org.qemu.guest_agent.0
pidfile=/var/run/qemu-ga.pid
statedir=/var/run
verbose=true
retry-path=false
block-rpcs=
allow-rpcs=guest-ping,guest-sync
user=qga
policy=/p
"
    );
}

#[test]
fn dump_escapes_values_like_gkeyfile() {
    let c = config(run(&["-p", "  x\ty\\z", "-l", "/a b "]));
    let text = dump(&c);
    assert!(text.contains("path=\\s\\sx\ty\\\\z\n"), "{text}");
    assert!(text.contains("logfile=/a b \n"), "{text}");
}

/// The names of a config's lists with the sources a dumped file gives them.
fn as_reread(mut c: Config) -> Config {
    for r in &mut c.block_rpcs {
        r.source = SOURCE_CONFIG_BLOCK.to_string();
    }
    for r in &mut c.allow_rpcs {
        r.source = SOURCE_CONFIG_ALLOW.to_string();
    }
    c
}

#[test]
fn dump_read_back_as_config_gives_the_same_config() {
    let cases: &[&[&str]] = &[
        &[],
        &["-vdr"],
        &["-m", "isa-serial"],
        &["-m", "unix-listen", "-p", "/run/qga.sock"],
        &["-m", "vsock-listen", "-p", "3:1234", "-F"],
        &["-F/h", "-l", "/log", "-f", "/pid", "-t", "/state"],
        &["--fsfreeze-hook=", "-p", "", "-l", ""],
        &["-p", "  lead\tand trail  ", "-l", "back\\slash", "--user", " u "],
        &["-b", "guest-ping,guest-info", "--blacklist", "guest-exec", "-b", ""],
        &["-b", "a,,b,", "-a", ""],
        &["-a", "guest-ping", "-a", "guest-info,", "--policy", "/etc/p", "--user", "qga"],
    ];
    for args in cases {
        let Action::DumpConf(first) = action(run(&[&["-D"], *args].concat())) else { panic!("{args:?}") };
        let text = dump(&first);
        let again = config(with_conf(&[], &text));
        assert_eq!(again, as_reread(first.clone()), "{args:?}\n{text}");
        assert_eq!(dump(&again), text, "{args:?}");
    }
    let again = config(with_conf(&[], &dump(&config(with_conf(&[], FULL_CONF)))));
    assert_eq!(again, config(with_conf(&[], FULL_CONF)));
}
