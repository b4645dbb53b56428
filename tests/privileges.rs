//! Privilege separation of the running agent, started as root: the front is an unprivileged
//! user with no capabilities and no_new_privs; the privileged work is a separate helper binary
//! holding exactly CAP_SYS_ADMIN, CAP_SYS_TIME and CAP_DAC_READ_SEARCH.
//!
//! CI runs these as root. Run as anyone else they fail (never pass vacuously).

mod common;

use common::*;
use std::collections::HashMap;

const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const CAP_SYS_TIME: u64 = 1 << 25;

fn field<'a>(status: &'a HashMap<String, String>, name: &str) -> &'a str {
    status.get(name).unwrap_or_else(|| panic!("/proc/PID/status has no {name}: {status:?}"))
}

fn caps(status: &HashMap<String, String>, name: &str) -> u64 {
    u64::from_str_radix(field(status, name), 16).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ids(status: &HashMap<String, String>, name: &str) -> Vec<u32> {
    field(status, name).split_whitespace().map(|v| v.parse().unwrap()).collect()
}

/// The agent with the allow-all policy, once its helper has finished starting: the front
/// serves as soon as it is up, while the helper may still be forking its launcher and probes,
/// joining the front's CPU and dropping privileges; its seccomp filter is its last step.
fn agent() -> Agent {
    require_root();
    let agent = Agent::start(&["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proc_status(agent.helper_pid).is_some_and(|st| field(&st, "Seccomp") != "2") {
        assert!(std::time::Instant::now() < deadline, "the helper never finished starting");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // And its two statfs probes, which narrow themselves after their fork (their filter last).
    let filtered = |pid: u32| proc_status(pid).is_some_and(|st| field(&st, "Seccomp") == "2");
    while children_of(agent.helper_pid).into_iter().filter(|&p| filtered(p)).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the statfs probes never finished starting");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    agent
}

#[test]
fn the_front_runs_unprivileged_with_no_capabilities_and_no_new_privs() {
    let agent = agent();
    let st = proc_status(agent.front_pid).expect("front status");
    let uids = ids(&st, "Uid");
    let gids = ids(&st, "Gid");
    assert_eq!(uids.len(), 4, "real, effective, saved, filesystem uid");
    assert!(uids.iter().all(|&u| u != 0), "front uids: {uids:?}");
    assert_eq!(gids.len(), 4);
    assert!(gids.iter().all(|&g| g != 0), "front gids: {gids:?}");
    let groups = field(&st, "Groups");
    assert!(groups.split_whitespace().all(|g| g != "0"), "supplementary groups: {groups}");
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(caps(&st, set), 0, "front {set}");
    }
    assert_eq!(field(&st, "NoNewPrivs"), "1");
    assert_eq!(field(&st, "Seccomp"), "2", "the front runs under its seccomp filter");
    let environ = std::fs::read(format!("/proc/{}/environ", agent.front_pid)).expect("front environ");
    assert!(
        environ.iter().all(|&b| b == 0),
        "the front's environment was not cleared: {:?}",
        String::from_utf8_lossy(&environ)
    );
    assert!(exe_of(agent.front_pid).unwrap().ends_with("qemu-ga-rs"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.front_pid)).expect("front limits");
    for name in ["Max processes", "Max core file size"] {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing"));
        let values: Vec<&str> = line[name.len()..].split_whitespace().take(2).collect();
        assert_eq!(values, ["0", "0"], "front {name}: {line}");
    }
}

#[test]
fn the_helper_is_a_separate_binary_with_exactly_three_capabilities_and_no_new_privs() {
    let agent = agent();
    assert_ne!(agent.helper_pid, agent.front_pid);
    let exe = exe_of(agent.helper_pid).expect("helper exe");
    assert_eq!(exe.file_name().unwrap(), HELPER_NAME, "helper exe {}", exe.display());
    assert_eq!(exe.parent(), std::path::Path::new(FRONT).parent(), "the helper is taken from the front's directory");
    let st = proc_status(agent.helper_pid).expect("helper status");
    let expected = CAP_SYS_ADMIN | CAP_SYS_TIME | CAP_DAC_READ_SEARCH;
    assert_eq!(expected, 0x2200004);
    assert_eq!(caps(&st, "CapEff"), expected, "helper CapEff {:#x}", caps(&st, "CapEff"));
    assert_eq!(caps(&st, "CapPrm") & !expected, 0, "helper CapPrm holds nothing more");
    assert_eq!(caps(&st, "CapAmb"), 0, "helper CapAmb");
    assert_eq!(field(&st, "NoNewPrivs"), "1");
    // The helper is the front's child, not the other way round.
    let front = proc_status(agent.front_pid).unwrap();
    assert_eq!(field(&st, "PPid"), agent.front_pid.to_string());
    assert_ne!(field(&front, "PPid"), agent.helper_pid.to_string());
}

#[test]
fn guest_file_open_reaches_what_root_reaches_through_the_helper_but_the_front_itself_cannot_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // allow-all: 7.2's meaning. The statedir is root's (0755); a file created there by
    // guest-file-open belongs to root with mode 0644, as with 7.2.
    let agent = agent();
    let mut c = agent.connect();
    let p = agent.path("created-by-helper");
    let r = c.cmd(
        &serde_json::json!({"execute": "guest-file-open", "arguments": {"path": p.to_str().unwrap(), "mode": "w"}})
            .to_string(),
    );
    assert!(r["return"].is_i64(), "{r}");
    let meta = std::fs::metadata(&p).expect("created");
    assert_eq!((meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777), (0, 0, 0o644));
    // The front's own uid still cannot create anything there: only the helper can.
    let (uid, _) = front_ids(agent.front_pid);
    assert_ne!(uid, 0);
    let script = format!("echo x > {}/by-front-uid && echo WROTE", agent.dir.path().display());
    let out = as_the_front(agent.front_pid, &script);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("WROTE"), "the front's uid wrote into root's directory");
    assert!(!agent.path("by-front-uid").exists());
    drop(agent);
}

#[test]
fn an_unknown_user_refuses_to_start() {
    require_root();
    let dir = TempDir::new();
    let out = start_to_exit(
        dir.path(),
        &["--policy", shipped_policy("allow-all").to_str().unwrap(), "--user", "qga-it-no-such-user"],
    );
    assert!(!out.status.success(), "started with an unknown --user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown user 'qga-it-no-such-user'"), "stderr: {stderr}");
}

/// The front's mounts as (mount point, mount options, filesystem type, super options).
fn front_mounts(pid: u32) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("front mountinfo");
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-").expect("separator");
            (f[4].to_owned(), f[5].to_owned(), f[sep + 1].to_owned(), f.get(sep + 3).unwrap_or(&"").to_string())
        })
        .collect()
}

/// The guest files the default policy's host queries read, bound read-only into the empty
/// view where they exist on this machine (the tests' own list).
fn query_files_here() -> Vec<&'static str> {
    ["/var/run/utmp", "/etc/localtime", "/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.is_file()))
        .collect()
}

fn is_read_only(options: &str) -> bool {
    options.split(',').any(|o| o == "ro")
}

#[test]
fn without_file_commands_the_front_sees_only_read_only_proc_and_sys() {
    require_root();
    let agent = Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()]);
    let root = format!("/proc/{}/root", agent.front_pid);
    let mut entries: Vec<String> = std::fs::read_dir(&root)
        .expect("front root")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let mut expected: Vec<String> = query_files_here()
        .iter()
        .map(|f| f.trim_start_matches('/').split('/').next().unwrap().to_string())
        .chain(["proc".to_string(), "sys".to_string()])
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(entries, expected, "the front's filesystem view");
    // Each query file holds what the guest's does, and nothing else of their directories is there.
    for file in query_files_here() {
        let seen = std::fs::read(format!("{root}{file}")).unwrap_or_else(|e| panic!("{file} in the view: {e}"));
        assert_eq!(seen, std::fs::read(file).unwrap(), "{file}");
    }
    if std::path::Path::new("/etc/localtime").exists() {
        let etc: Vec<_> = std::fs::read_dir(format!("{root}/etc")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(etc.len() <= 2, "more than the query files in the view's /etc: {etc:?}");
    }
    // The guest's own mount table is untouched.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(agent.dir.path().to_str().unwrap()), "the front's mounts leaked into the guest");
}

#[test]
fn finding_3_every_mount_of_the_empty_view_is_read_only_sys_submounts_included() {
    require_root();
    let agent = Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()]);
    let mounts = front_mounts(agent.front_pid);
    let mut points: Vec<&str> = mounts.iter().map(|m| m.0.as_str()).collect();
    points.sort();
    let mut expected = vec!["/", "/proc", "/sys"];
    expected.extend(query_files_here());
    expected.sort();
    assert_eq!(points, expected, "no submount of the guest's comes along: {mounts:?}");
    for (point, options, _, _) in &mounts {
        assert!(is_read_only(options), "{point} is writable: {options}");
    }
    // The guest's /sys has writable submounts (cgroup, securityfs...) or at least /sys itself:
    // none of them is reachable from the view.
    let sys = std::path::PathBuf::from(format!("/proc/{}/root/sys/fs/cgroup", agent.front_pid));
    if sys.is_dir() {
        assert_eq!(std::fs::read_dir(&sys).unwrap().count(), 0, "cgroup is not mounted in the view");
    }
}

/// The front's uid and gid (all four of each are the same).
fn front_ids(pid: u32) -> (u32, u32) {
    let st = proc_status(pid).expect("front status");
    (ids(&st, "Uid")[0], ids(&st, "Gid")[0])
}

/// (pid, id) for every uid and gid of every other running process.
fn ids_of_other_processes(except: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == except {
            continue;
        }
        let Some(st) = proc_status(pid) else { continue };
        for id in ids(&st, "Uid").into_iter().chain(ids(&st, "Gid")) {
            out.push((pid, id));
        }
    }
    out
}

#[test]
fn finding_3_the_front_shares_its_uid_with_no_account_and_no_other_process() {
    let agent = agent();
    let (uid, gid) = front_ids(agent.front_pid);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    match passwd.lines().find(|l| l.starts_with("qemu-ga-rs:")) {
        // The package's system user: its own by construction.
        Some(line) => assert_eq!(line.split(':').nth(2), Some(uid.to_string().as_str()), "{line}"),
        None => {
            assert!((61184..=65519).contains(&uid), "the dynamic uid {uid} is in the documented range");
            assert_eq!(uid, gid);
            for line in passwd.lines() {
                let f: Vec<&str> = line.split(':').collect();
                assert!(f.get(2) != Some(&uid.to_string().as_str()), "uid {uid} is an account: {line}");
            }
            let group = std::fs::read_to_string("/etc/group").unwrap();
            for line in group.lines() {
                assert!(line.split(':').nth(2) != Some(gid.to_string().as_str()), "gid {gid} is a group: {line}");
            }
        }
    }
    assert_ne!(uid, 65534, "never nobody");
    let sharing: Vec<_> =
        ids_of_other_processes(agent.front_pid).into_iter().filter(|&(_, id)| id == uid || id == gid).collect();
    assert!(sharing.is_empty(), "other processes with the front's uid or gid: {sharing:?}");
    // Not dumpable, explicitly: the kernel gives a non-dumpable process's /proc files to root.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{}/environ", agent.front_pid)).unwrap().uid();
    assert_eq!(owner, 0, "the front is dumpable: its /proc files belong to uid {owner}");
}

/// The front's dynamic id record in the agent's state directory.
const ID_RECORD: &str = "qga-rs.front-id";

fn without_the_dedicated_user() {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.lines().any(|l| l.starts_with("qemu-ga-rs:")),
        "this test needs a machine without the qemu-ga-rs user (the front then takes an id of its own)"
    );
}

#[test]
fn finding_3_a_restart_takes_back_the_recorded_id_and_the_helper_checks_it_against_every_process() {
    without_the_dedicated_user();
    let mut agent = agent();
    let (uid, _) = front_ids(agent.front_pid);
    let record = agent.path(ID_RECORD);
    assert_eq!(std::fs::read_to_string(&record).unwrap(), format!("{uid}\n"), "the first start records its id");
    let cmdline = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline(agent.helper_pid)).contains("--verify-front-id"),
        "a fresh choice read every process itself"
    );
    agent.restart();
    assert_eq!(front_ids(agent.front_pid).0, uid, "the restart runs as the recorded id");
    let args = String::from_utf8_lossy(&cmdline(agent.helper_pid)).replace('\0', " ");
    assert!(args.contains(&format!("--verify-front-id {uid}")), "the helper is told to check it: {args}");
    // Serving: the helper found no other process with the id.
    assert_eq!(agent.connect().cmd(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
}

#[test]
fn finding_3_a_recorded_id_another_process_took_meanwhile_stops_the_agent_and_is_forgotten() {
    without_the_dedicated_user();
    let mut agent = agent();
    let (uid, _) = front_ids(agent.front_pid);
    assert!(agent.terminate().success());
    // Another service now runs as that id (it is no account: only its process has it).
    let mut other = std::process::Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups", "--", "sleep", "60"])
        .spawn()
        .expect("a process of another service with the front's old id");
    let policy = shipped_policy("allow-all");
    let out = start_to_exit(agent.dir.path(), &["--policy", policy.to_str().unwrap()]);
    let _ = other.kill();
    let _ = other.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the agent stops: {stderr}");
    assert!(
        stderr.contains(&format!("the front's user id {uid}"))
            && stderr.contains(&format!("process {} (sleep)", other.id())),
        "the log names the id and the process: {stderr}"
    );
    assert!(!agent.path(ID_RECORD).exists(), "the record is forgotten");
    // The next start chooses afresh (reading every process itself) and records its choice.
    let fresh =
        Agent::start_in(std::mem::replace(&mut agent.dir, TempDir::new()), &["--policy", policy.to_str().unwrap()]);
    let (new_uid, _) = front_ids(fresh.front_pid);
    assert_eq!(std::fs::read_to_string(fresh.path(ID_RECORD)).unwrap(), format!("{new_uid}\n"));
}

/// Runs `script` with /bin/sh as the front's uid and gid inside the front's mount namespace:
/// what code running in the front could see.
fn as_the_front(front_pid: u32, script: &str) -> std::process::Output {
    let (uid, gid) = front_ids(front_pid);
    std::process::Command::new("nsenter")
        .args(["--target", &front_pid.to_string(), "--mount", "--setuid", &uid.to_string(), "--setgid"])
        .arg(gid.to_string())
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .expect("nsenter runs")
}

#[test]
fn finding_3_code_with_the_fronts_uid_cannot_see_or_reach_other_processes_through_proc() {
    // File commands on: the front keeps the real filesystem (the attack of the finding), so a
    // shell can run in its mount namespace. The shell lists /proc with a builtin loop, so it is
    // the only process of its own it could see, and it leaves itself out.
    let agent = agent();
    let mut other = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sleep", "30"])
        .env("SECRET_OF_ANOTHER_SERVICE", "x")
        .spawn()
        .expect("a process of another service (nobody)");
    let out = as_the_front(
        agent.front_pid,
        &format!(
            "for p in /proc/[0-9]*; do n=${{p#/proc/}}; [ \"$n\" = $$ ] || echo \"$n\"; done; \
             cat /proc/{other}/environ && echo READ-ENVIRON; \
             ls /proc/{other}/root/ && echo LISTED-ROOT; \
             ls /proc/1/root/ && echo LISTED-INIT-ROOT; \
             echo DONE",
            other = other.id()
        ),
    );
    let _ = other.kill();
    let _ = other.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("DONE"), "the shell did not run: {stdout}\n{stderr}");
    let visible: Vec<&str> = stdout.lines().filter(|l| l.bytes().all(|b| b.is_ascii_digit())).collect();
    assert!(visible.is_empty(), "processes visible to the front's uid: {visible:?}\n{stderr}");
    for attack in ["READ-ENVIRON", "LISTED-ROOT", "LISTED-INIT-ROOT"] {
        assert!(!stdout.contains(attack), "{attack}: {stdout}");
    }
    // And the front's /proc is a procfs of its own, read-only, hiding other processes.
    let proc_mount = front_mounts(agent.front_pid).into_iter().rfind(|m| m.0 == "/proc").expect("/proc");
    assert_eq!(proc_mount.2, "proc");
    assert!(is_read_only(&proc_mount.1), "{proc_mount:?}");
    assert!(proc_mount.3.contains("hidepid=invisible") || proc_mount.3.contains("hidepid=2"), "{proc_mount:?}");
}

#[test]
fn finding_3_the_empty_views_proc_hides_other_processes() {
    require_root();
    let agent = Agent::start(&["--policy", shipped_policy("default").to_str().unwrap()]);
    let proc_mount = front_mounts(agent.front_pid).into_iter().find(|m| m.0 == "/proc").expect("/proc");
    assert_eq!(proc_mount.2, "proc", "a procfs of its own, not a bind of the guest's");
    assert!(proc_mount.3.contains("hidepid=invisible") || proc_mount.3.contains("hidepid=2"), "{proc_mount:?}");
}

#[test]
fn with_file_commands_the_front_keeps_the_real_filesystem() {
    require_root();
    let agent = agent();
    assert!(std::path::Path::new(&format!("/proc/{}/root/etc", agent.front_pid)).is_dir());
}

/// A directory bind-mounted onto itself and made shared (as systemd makes `/`), so mounts under
/// it propagate to namespaces copied from this one; undone on drop.
struct SharedMountPoint(std::path::PathBuf);

impl SharedMountPoint {
    fn new(dir: &std::path::Path) -> SharedMountPoint {
        use nix::mount::{mount, MsFlags};
        std::fs::create_dir_all(dir.join("later")).unwrap();
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).expect("bind mount");
        let guard = SharedMountPoint(dir.to_owned());
        mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>).expect("make shared");
        guard
    }
}

impl Drop for SharedMountPoint {
    fn drop(&mut self) {
        use nix::mount::{umount2, MntFlags};
        let _ = umount2(&self.0.join("later"), MntFlags::MNT_DETACH);
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn with_file_commands_the_front_sees_a_filesystem_the_guest_mounts_after_it_started() {
    // The front's own /proc lives in a mount namespace of its own; the guest's later mounts
    // must still reach it, or guest-file-* would miss e.g. a disk mounted after boot.
    require_root();
    let dir = TempDir::new();
    let media = dir.path().join("media");
    let shared = SharedMountPoint::new(&media);
    let agent = Agent::start_in(dir, &["--policy", shipped_policy("allow-all").to_str().unwrap()]);
    let later = media.join("later");
    nix::mount::mount(Some("tmpfs"), &later, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=64k"))
        .expect("mount a tmpfs after the agent started");
    let file = later.join("hello");
    std::fs::write(&file, b"hi").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut c = agent.connect();
    let open = serde_json::json!({"execute": "guest-file-open", "arguments": {"path": file.to_str().unwrap()}});
    let r = c.cmd(&open.to_string());
    let handle = r["return"].as_i64().unwrap_or_else(|| panic!("the front does not see the later mount: {r}"));
    let r = c.cmd(&format!(r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle}}}}}"#));
    assert_eq!(r["return"]["buf-b64"], "aGk=", "{r}");
    drop(c);
    drop(shared);
    drop(agent);
}

/// The CPUs a process may run on, from its `Cpus_allowed_list` ("0-3,6").
fn allowed_cpus(pid: u32) -> Vec<usize> {
    let st = proc_status(pid).unwrap_or_else(|| panic!("no status for {pid}"));
    let mut cpus = Vec::new();
    for part in field(&st, "Cpus_allowed_list").split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.trim().parse::<usize>().unwrap()..=b.trim().parse::<usize>().unwrap());
    }
    cpus
}

#[test]
fn front_helper_and_statfs_probes_share_one_cpu_and_the_launcher_keeps_the_original_affinity() {
    let agent = agent();
    let original = allowed_cpus(std::process::id());
    assert!(original.len() >= 2, "needs a machine with at least 2 CPUs to prove anything; allowed here: {original:?}");
    let front = allowed_cpus(agent.front_pid);
    assert_eq!(front.len(), 1, "the front is kept to one CPU: {front:?}");
    assert!(original.contains(&front[0]), "the front's CPU {front:?} is one it was allowed");
    assert_eq!(allowed_cpus(agent.helper_pid), front, "the helper joins the front's CPU");
    let (launcher, probes) = helper_children(&agent);
    assert_eq!(launcher.len(), 1, "the helper has exactly one launcher: {launcher:?}");
    assert_eq!(probes.len(), 2, "and two statfs probes: {probes:?}");
    for probe in probes {
        // Each guest-get-fsinfo is a round trip to a probe: no cross-CPU wake-up for it.
        assert_eq!(allowed_cpus(probe), front, "statfs probe {probe} joins the helper's CPU");
    }
    assert_eq!(allowed_cpus(launcher[0]), original, "programs the launcher runs keep the agent's original affinity");
}

/// The helper's children: the launcher (full capabilities) and the statfs probes (not).
fn helper_children(agent: &Agent) -> (Vec<u32>, Vec<u32>) {
    children_of(agent.helper_pid)
        .into_iter()
        .partition(|&pid| caps(&proc_status(pid).expect("child status"), "CapEff") & CAP_SYS_ADMIN != 0)
}

#[test]
fn the_statfs_probes_keep_only_dac_read_search_under_their_own_filter() {
    let agent = agent();
    let (_, probes) = helper_children(&agent);
    assert_eq!(probes.len(), 2, "two probes");
    for pid in probes {
        let st = proc_status(pid).expect("probe status");
        assert_eq!(caps(&st, "CapEff"), CAP_DAC_READ_SEARCH, "probe {pid} CapEff");
        assert_eq!(caps(&st, "CapPrm"), CAP_DAC_READ_SEARCH, "probe {pid} CapPrm");
        assert_eq!(caps(&st, "CapBnd"), CAP_DAC_READ_SEARCH, "probe {pid} CapBnd");
        assert_eq!(caps(&st, "CapAmb") | caps(&st, "CapInh"), 0, "probe {pid}");
        assert_eq!(field(&st, "NoNewPrivs"), "1", "probe {pid}");
        assert_eq!(field(&st, "Seccomp"), "2", "probe {pid} runs under its seccomp filter");
        assert_eq!(fd_count(pid), 4, "probe {pid} holds stdin, stdout, stderr and its socket only");
    }
}

#[test]
fn a_query_file_is_bound_into_the_view_only_while_its_command_is_enabled() {
    require_root();
    let agent = Agent::start(&[
        "--policy",
        shipped_policy("default").to_str().unwrap(),
        "-b",
        "guest-get-osinfo,guest-get-timezone,guest-get-users",
    ]);
    let points: Vec<String> = front_mounts(agent.front_pid).into_iter().map(|m| m.0).collect();
    assert_eq!(points, ["/", "/proc", "/sys"], "query files of disabled commands were bound");
}

/// A process's scheduling policy (`/proc/PID/stat` field 41: 0 SCHED_OTHER, 5 SCHED_IDLE) and
/// its RLIMIT_NICE line of `/proc/PID/limits`, from the text of those two files.
fn scheduling(stat: &str, limits: &str) -> (u32, String) {
    let after_name = &stat[stat.rfind(')').expect("stat has a name") + 2..];
    let policy = after_name.split_whitespace().nth(41 - 3).expect("field 41").parse().unwrap();
    let nice = limits.lines().find(|l| l.starts_with("Max nice priority")).expect("the nice limit").to_string();
    (policy, nice.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn scheduling_of(pid: u32) -> (u32, String) {
    let read =
        |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_else(|e| panic!("{pid}/{f}: {e}"));
    scheduling(&read("stat"), &read("limits"))
}

#[test]
fn once_started_every_process_runs_under_the_normal_scheduler_with_the_nice_limit_it_was_given() {
    // The helper starts in the background of the front (SCHED_IDLE, and a raised RLIMIT_NICE
    // to leave it); left there, a busy guest would starve its privileged commands, and a
    // raised limit would reach the programs the launcher runs.
    let agent = agent();
    let (launcher, probes) = helper_children(&agent);
    let (_, original) = scheduling_of(std::process::id());
    let all: Vec<u32> = [agent.front_pid, agent.helper_pid].into_iter().chain(launcher).chain(probes).collect();
    // Each leaves the background by itself, as its own start-up ends: within seconds, on a
    // busy machine too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while all.iter().any(|&pid| scheduling_of(pid) != (0, original.clone())) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for pid in all {
        assert_eq!(scheduling_of(pid), (0, original.clone()), "process {pid}: (policy, nice limit)");
    }
    // And what the launcher runs.
    let mut c = agent.connect();
    let r = c.cmd(r#"{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","cat /proc/self/stat; echo @; cat /proc/self/limits"],"capture-output":true}}"#);
    let pid = r["return"]["pid"].as_i64().unwrap_or_else(|| panic!("guest-exec: {r}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let s = c.cmd(&format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#));
        if s["return"]["exited"] == true {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the program did not exit: {s}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    use base64::Engine;
    let out = base64::engine::general_purpose::STANDARD.decode(status["return"]["out-data"].as_str().unwrap()).unwrap();
    let out = String::from_utf8(out).unwrap();
    let (stat, limits) = out.split_once("@\n").expect("both files");
    assert_eq!(scheduling(stat, limits), (0, original), "a program the launcher runs");
}
