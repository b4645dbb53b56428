//! The files guest-get-users, -timezone and -osinfo read, held by the real agent: an answer
//! follows its file right after each change (the agent learns of changes from inotify, not by
//! asking on every request), and in the steady state the front makes no system call between
//! reading a request and writing its reply (strace of the running front).
//!
//! The agent is pointed at an os-release file of the test's own with `QGA_OS_RELEASE` (7.2's
//! variable for that): the guest's own files (/etc/localtime, utmp) are not written.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn os_release_id(c: &mut Client) -> Option<String> {
    let reply = c.cmd(r#"{"execute":"guest-get-osinfo"}"#);
    reply["return"]["id"].as_str().map(str::to_string)
}

/// A directory of the test's own that the demoted front can read and watch.
fn readable_dir() -> TempDir {
    TempDir::new()
}

fn rewrite_in_place(path: &Path, text: &str) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(text.as_bytes(), 0).unwrap();
    f.set_len(text.len() as u64).unwrap();
}

fn replace_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn with_the_real_filesystem_osinfo_follows_its_file_right_after_every_kind_of_change() {
    // A file command enabled: the front sees the guest's filesystem itself.
    let dir = readable_dir();
    let file = dir.path().join("os-release");
    std::fs::write(&file, "ID=one\n").unwrap();
    let agent = Agent::start_with_env(
        &["--policy", shipped_policy("allow-all").to_str().unwrap()],
        &[("QGA_OS_RELEASE", file.to_str().unwrap())],
    );
    let mut c = agent.connect();
    assert_eq!(os_release_id(&mut c).as_deref(), Some("one"));
    assert_eq!(os_release_id(&mut c).as_deref(), Some("one"));
    rewrite_in_place(&file, "ID=two\n");
    assert_eq!(os_release_id(&mut c).as_deref(), Some("two"), "rewritten in place");
    replace_by_rename(&file, "ID=three\n");
    assert_eq!(os_release_id(&mut c).as_deref(), Some("three"), "replaced by a rename");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(os_release_id(&mut c), None, "removed");
    std::fs::write(&file, "ID=back\n").unwrap();
    assert_eq!(os_release_id(&mut c).as_deref(), Some("back"), "created again");
    // Many changes in a row, each asked about at once.
    for i in 0..200 {
        let text = format!("ID=n{i}\n");
        if i % 2 == 0 {
            rewrite_in_place(&file, &text);
        } else {
            replace_by_rename(&file, &text);
        }
        assert_eq!(os_release_id(&mut c), Some(format!("n{i}")));
    }
}

#[test]
fn in_the_empty_view_osinfo_follows_its_file_rewritten_in_place() {
    // The default policy: the file is bound into the front's empty view, which holds its
    // inode; a rewrite in place is seen at once.
    let dir = readable_dir();
    let file = dir.path().join("os-release");
    std::fs::write(&file, "ID=one\n").unwrap();
    let agent = Agent::start_with_env(
        &["--policy", shipped_policy("default").to_str().unwrap()],
        &[("QGA_OS_RELEASE", file.to_str().unwrap())],
    );
    let mut c = agent.connect();
    assert_eq!(os_release_id(&mut c).as_deref(), Some("one"));
    for i in 0..100 {
        rewrite_in_place(&file, &format!("ID=v{i}\n"));
        assert_eq!(os_release_id(&mut c), Some(format!("v{i}")));
    }
}

const HELD_FILE_QUERIES: [&str; 3] =
    [r#"{"execute":"guest-get-users"}"#, r#"{"execute":"guest-get-timezone"}"#, r#"{"execute":"guest-get-osinfo"}"#];

/// strace attached to `pid`, writing to `out`; detached on drop.
struct Strace {
    child: std::process::Child,
}

impl Strace {
    fn attach(pid: u32, out: &Path) -> Strace {
        let child = Command::new("strace")
            .args(["-qq", "-s", "200", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace is installed (tests/vm/deps.sh installs it)");
        let deadline = Instant::now() + TIMEOUT;
        while proc_status(pid).and_then(|s| s.get("TracerPid").cloned()).is_none_or(|t| t == "0") {
            assert!(Instant::now() < deadline, "strace did not attach to the front");
            std::thread::sleep(Duration::from_millis(10));
        }
        Strace { child }
    }

    fn detach(mut self) {
        kill(self.child.id(), nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

/// For each request line of `trace` (a `read` that returned one of `requests`), the system
/// calls made before the next `write`.
fn calls_between_request_and_reply(trace: &str, requests: &[&str]) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = trace.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let escaped: Vec<String> = requests.iter().map(|r| r.replace('"', "\\\"")).collect();
        let Some(request) = escaped.iter().find(|r| line.starts_with("read(") && line.contains(r.as_str())) else {
            continue;
        };
        let between: Vec<String> =
            lines[i + 1..].iter().take_while(|l| !l.starts_with("write(")).map(|l| l.to_string()).collect();
        found.push((request.clone(), between));
    }
    found
}

#[test]
fn steady_state_users_timezone_and_osinfo_make_no_system_call_between_request_and_reply() {
    assert!(is_root(), "strace attaches to the front as root");
    let agent = Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()]);
    let mut c = agent.connect();
    // The first request of each resolves, watches and reads its files; the rest let the heap
    // settle.
    for _ in 0..10 {
        for request in HELD_FILE_QUERIES {
            c.cmd(request);
        }
    }
    let out = agent.path("strace.out");
    let strace = Strace::attach(agent.front_pid, &out);
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        for request in HELD_FILE_QUERIES {
            c.cmd(request);
        }
    }
    // A command that must make a call (the node name, asked on every request): proves the
    // trace sees calls between a request and its reply at all.
    c.cmd(r#"{"execute":"guest-get-host-name"}"#);
    strace.detach();
    let trace = std::fs::read_to_string(&out).unwrap();
    let seen = calls_between_request_and_reply(&trace, &HELD_FILE_QUERIES);
    for request in HELD_FILE_QUERIES {
        let n = seen.iter().filter(|(r, _)| *r == request.replace('"', "\\\"")).count();
        assert_eq!(n, ROUNDS, "{request} read {n} times in the trace:\n{trace}");
    }
    // The allocator may still grow or trim its heap now and then (brk, mmap...): a call that
    // serves memory, not the request, and not on every request.
    let is_memory =
        |call: &String| ["brk(", "mmap(", "munmap(", "mremap(", "madvise("].iter().any(|m| call.starts_with(m));
    for (request, between) in &seen {
        let other: Vec<&String> = between.iter().filter(|c| !is_memory(c)).collect();
        assert!(other.is_empty(), "{request}: system calls before the reply: {other:?}");
    }
    let with_memory_calls = seen.iter().filter(|(_, between)| !between.is_empty()).count();
    assert!(with_memory_calls <= 2, "{with_memory_calls} of {} requests made allocator calls:\n{trace}", seen.len());
    let host_name = calls_between_request_and_reply(&trace, &[r#"{"execute":"guest-get-host-name"}"#]);
    assert_eq!(host_name.len(), 1, "{trace}");
    assert!(host_name[0].1.iter().any(|l| l.starts_with("uname(")), "{host_name:?}");
}

/// Mounts undone, last first, on drop.
struct Mounts(Vec<std::path::PathBuf>);

impl Mounts {
    fn bind(&mut self, source: &Path, target: &Path) {
        nix::mount::mount(Some(source), target, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .expect("bind mount");
        self.0.push(target.to_owned());
    }

    fn unmount_last(&mut self) {
        let target = self.0.pop().unwrap();
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).expect("unmount");
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        while let Some(target) = self.0.pop() {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn with_the_real_filesystem_a_mount_over_a_directory_on_the_path_is_seen_at_once() {
    // A mount produces no inotify event: the front's mount table is watched instead.
    require_root();
    let dir = readable_dir();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("etc")).unwrap();
    std::fs::write(media.join("etc/os-release"), "ID=under\n").unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("os-release"), "ID=over\n").unwrap();
    // Shared, as systemd makes `/`: mounts under it reach the front's namespace.
    let mut mounts = Mounts(Vec::new());
    mounts.bind(&media, &media);
    nix::mount::mount(None::<&str>, &media, None::<&str>, nix::mount::MsFlags::MS_SHARED, None::<&str>)
        .expect("make shared");
    let file = media.join("etc/os-release");
    let agent = Agent::start_with_env(
        &["--policy", shipped_policy("allow-all").to_str().unwrap()],
        &[("QGA_OS_RELEASE", file.to_str().unwrap())],
    );
    let mut c = agent.connect();
    assert_eq!(os_release_id(&mut c).as_deref(), Some("under"));
    assert_eq!(os_release_id(&mut c).as_deref(), Some("under"));
    mounts.bind(&other, &media.join("etc"));
    assert_eq!(os_release_id(&mut c).as_deref(), Some("over"), "mounted over");
    assert_eq!(os_release_id(&mut c).as_deref(), Some("over"));
    mounts.unmount_last();
    assert_eq!(os_release_id(&mut c).as_deref(), Some("under"), "unmounted");
    // The mount table reports each change once: the loop does not spin on it afterwards.
    let before = cpu_ticks(agent.front_pid);
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_ticks(agent.front_pid) - before;
    assert!(spent <= 5, "the idle front used {spent} ticks of CPU in half a second");
    drop(c);
    drop(agent);
}

/// User and system time of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
