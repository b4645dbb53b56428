//! guest-file-open with root's reach: the helper opens the file and hands the descriptor to the
//! unprivileged front. Compared with qemu-ga 7.2 on the same machine (allow-all: 7.2's meaning),
//! and, with path rules, the escapes the helper refuses: a symbolic link out of the allowed
//! directory, `..`, a FIFO, a path no rule allows (nothing is created).

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn open(c: &mut Client, path: &Path, mode: Option<&str>) -> Value {
    let mut args = json!({"path": path.to_str().unwrap()});
    if let Some(m) = mode {
        args["mode"] = json!(m);
    }
    c.cmd(&json!({"execute": "guest-file-open", "arguments": args}).to_string())
}

/// A root-only (0700) directory in `base`, as QEMU's own test-qga makes for the agent.
fn root_only(base: &Path) -> std::path::PathBuf {
    let d = base.join("root-only");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(d.join("existing"), b"seven72").unwrap();
    std::fs::create_dir(d.join("a-directory")).unwrap();
    d
}

#[test]
fn in_a_root_only_directory_every_mode_answers_as_7_2_does() {
    require_root();
    let reference = Reference::start();
    let agent = Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let (ref_dir, our_dir) = (root_only(reference.dir.path()), root_only(agent.dir.path()));
    let (mut theirs, mut ours) = (reference.connect(), agent.connect());
    let cases: &[(&str, Option<&str>)] = &[
        ("new-w", Some("w")),
        ("new-wb+", Some("wb+")),
        ("new-a", Some("a")),
        ("new-a+b", Some("a+b")),
        ("existing", None),
        ("existing", Some("r+")),
        ("existing", Some("a")),
        ("missing", Some("r")),
        ("missing", Some("r+")),
        ("no-dir/x", Some("w")),
        ("a-directory", Some("w")),
        ("existing/x", Some("r")),
        ("existing", Some("rw")),
        ("existing", Some("")),
    ];
    let mut compared = 0;
    for (name, mode) in cases {
        let t = open(&mut theirs, &ref_dir.join(name), *mode);
        let o = open(&mut ours, &our_dir.join(name), *mode);
        // Handles are numbered by each agent; errors name each agent's own path.
        let shape = |v: &Value, dir: &Path| match &v["return"] {
            Value::Number(_) => json!({"return": "a handle"}),
            _ => serde_json::from_str::<Value>(&v.to_string().replace(dir.to_str().unwrap(), "DIR")).unwrap(),
        };
        assert_eq!(shape(&o, &our_dir), shape(&t, &ref_dir), "{name} in mode {mode:?}");
        compared += 1;
    }
    assert_eq!(compared, cases.len());
    // The files they created: owner, mode and size alike.
    for name in ["new-w", "new-wb+", "new-a", "new-a+b"] {
        let (t, o) = (std::fs::metadata(ref_dir.join(name)).unwrap(), std::fs::metadata(our_dir.join(name)).unwrap());
        assert_eq!((o.uid(), o.gid(), o.len()), (t.uid(), t.gid(), t.len()), "{name}");
        assert_eq!(o.uid(), 0, "{name} belongs to root, as with 7.2");
        assert_eq!(o.mode() & 0o7777, 0o644, "{name}: qemu-ga-rs creates 0644");
    }
}

#[test]
fn written_through_a_helper_opened_descriptor_the_content_is_what_was_sent() {
    require_root();
    let agent = Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let dir = root_only(agent.dir.path());
    let mut c = agent.connect();
    let h = open(&mut c, &dir.join("data"), Some("w+"))["return"].as_i64().expect("a handle");
    let r = c.cmd(
        &json!({"execute": "guest-file-write", "arguments": {"handle": h, "buf-b64": "cm9vdCdzIHJlYWNo"}}).to_string(),
    );
    assert_eq!(r["return"]["count"], 12, "{r}");
    let r = c.cmd(
        &json!({"execute": "guest-file-seek", "arguments": {"handle": h, "offset": 0, "whence": "set"}}).to_string(),
    );
    assert_eq!(r["return"]["position"], 0, "{r}");
    let r = c.cmd(&json!({"execute": "guest-file-read", "arguments": {"handle": h}}).to_string());
    assert_eq!(r["return"]["buf-b64"], "cm9vdCdzIHJlYWNo", "{r}");
    assert_eq!(
        c.cmd(&json!({"execute": "guest-file-close", "arguments": {"handle": h}}).to_string()),
        json!({"return": {}})
    );
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), b"root's reach");
    // The helper keeps nothing open: the front holds the only descriptor, and closed it. The
    // helper closes its copy right after sending it, but may not have run again yet when the
    // front has already served the requests above (on a busy machine): allowed a moment.
    let held_by_helper = || -> Vec<_> {
        std::fs::read_dir(format!("/proc/{}/fd", agent.helper_pid))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.starts_with(&dir))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !held_by_helper().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let held = held_by_helper();
    assert!(held.is_empty(), "the helper holds {held:?}");
}

/// An agent whose only file rule is `allow guest-file-open path=DIR/drop/ access=read,write,create`
/// (every other command as the default policy has it).
fn with_drop_rule() -> (Agent, std::path::PathBuf) {
    let dir = TempDir::new();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let drop_dir = base.join("drop");
    std::fs::create_dir(&drop_dir).unwrap();
    std::fs::set_permissions(&drop_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let policy = base.join("files.policy");
    std::fs::write(
        &policy,
        format!("default allow\nallow guest-file-open path={}/ access=read,write,create\n", drop_dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let agent = Agent::start_in(dir, &["--policy", policy.to_str().unwrap()]);
    (agent, drop_dir)
}

#[test]
fn a_rule_lets_root_create_in_its_directory_and_refuses_every_way_out() {
    require_root();
    let (agent, drop_dir) = with_drop_rule();
    let base = drop_dir.parent().unwrap().to_path_buf();
    std::fs::create_dir(base.join("other")).unwrap();
    std::os::unix::fs::symlink(base.join("other"), drop_dir.join("out")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", drop_dir.join("hostname")).unwrap();
    nix::unistd::mkfifo(&drop_dir.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut c = agent.connect();

    let r = open(&mut c, &drop_dir.join("new"), Some("w"));
    assert!(r["return"].is_i64(), "{r}");
    let meta = std::fs::metadata(drop_dir.join("new")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o644));

    let refused = |c: &mut Client, path: &Path, mode: &str, why: &str| {
        let r = open(c, path, Some(mode));
        let text = format!("the policy does not allow guest-file-open '{}'{why}", path.display());
        assert_error(&r, "GenericError", &text);
    };
    let escape = " (a symbolic link or a way out of its directory)";
    refused(&mut c, &drop_dir.join("out/escaped"), "w", escape);
    refused(&mut c, &drop_dir.join("hostname"), "r", escape);
    refused(&mut c, &drop_dir.join("fifo"), "r", " (a device node, FIFO or socket)");
    let dotdot = Path::new(&format!("{}/../other/x", drop_dir.display())).to_path_buf();
    refused(&mut c, &dotdot, "w", " (not an absolute path without '.', '..' or '//')");
    refused(&mut c, &base.join("other/y"), "w", "");
    refused(&mut c, &drop_dir.join("new"), "a", " in this mode");
    assert_eq!(std::fs::read_dir(base.join("other")).unwrap().count(), 0, "nothing was created outside the rule");
}
