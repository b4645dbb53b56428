"""The package checks, each seen from outside the agent: systemd's and the kernel's view
through the control port, QMP events and QEMU's RTC, the host's disk image."""

import re
import time

from vmtest.checks_guest_view import HELPER_CAPS, PROCESS_REPORT, _status_fields
from vmtest.control import ControlError

from .guest import AGENT_PORT_ID, agent_port_device_args

UNIT = "qemu-ga-rs.service"
DEVICE_UNIT = "dev-virtio\\x2dports-org.qemu.guest_agent.0.device"
FREEZE_MARKER = "/run/qga.state.isfrozen"   # the default state directory, /var/run
TICKS = "/var/tmp/pkg-test-ticks"


class StepFailed(Exception):
    pass


class Steps:
    """Assertions and guest access shared by the checks of one booted guest."""

    def __init__(self, guest, log):
        self.guest = guest
        self.log = log

    def expect(self, condition, message):
        if not condition:
            raise StepFailed(message)

    def sh(self, script, timeout=60):
        try:
            return self.guest.control.check(script, timeout)
        except ControlError as err:
            raise StepFailed(str(err)) from None

    def sh_rc(self, script, timeout=60):
        try:
            return self.guest.control.run(script, timeout)
        except ControlError as err:
            raise StepFailed(str(err)) from None

    def call(self, command, arguments=None, timeout=60):
        reply = self.guest.agent.execute(command, arguments, timeout)
        self.expect("return" in reply, f"{command} failed: {reply}")
        return reply["return"]

    def unit(self, *props):
        out = self.sh(f"systemctl show {UNIT} " + " ".join(f"-p {p}" for p in props))
        # systemctl show quotes unit names that hold escapes and doubles their backslashes.
        return {key: value.replace('"', "").replace("\\\\", "\\")
                for key, value in (line.split("=", 1) for line in out.splitlines() if "=" in line)}

    def wait_unit(self, state, timeout=60, changed_from_pid=None):
        deadline = time.monotonic() + timeout
        while True:
            props = self.unit("ActiveState", "SubState", "MainPID", "NRestarts")
            pid_ok = changed_from_pid is None or props.get("MainPID") not in ("0", changed_from_pid)
            if props.get("ActiveState") == state and pid_ok:
                return props
            if time.monotonic() > deadline:
                raise StepFailed(f"{UNIT} not {state} within {timeout} s: {props}")
            time.sleep(0.5)

    def reconnect_agent(self, timeout=60):
        self.guest.agent.close()
        self.guest.agent.handshake(timeout=timeout, attempt=1.0)


# --- started by the device, not by anybody -------------------------------------------------
def started_by_the_port(s):
    props = s.unit("ActiveState", "SubState", "MainPID", "UnitFileState", "WantedBy", "BindsTo")
    s.expect(props["ActiveState"] == "active" and props["SubState"] == "running", f"{UNIT} is not running: {props}")
    # Nothing enabled it: the unit has no [Install] section; the port's device unit wants it
    # (udev's SYSTEMD_WANTS lands on the device's own unit, whose alias the unit binds to).
    s.expect(props["UnitFileState"] == "static", f"{UNIT} should be static (started only by udev): {props}")
    s.expect(DEVICE_UNIT in props["BindsTo"], f"{UNIT} is not bound to the port's device unit: {props}")
    wanted_by = [u for u in props["WantedBy"].split() if u.endswith(".device")]
    s.expect(len(wanted_by) == 1, f"{UNIT} should be wanted by one device unit: {props}")
    sysfs = s.sh(f"systemctl show -p SysFSPath --value '{wanted_by[0]}'").strip()
    port = s.sh(f"cat {sysfs}/name").strip()
    s.expect(port == "org.qemu.guest_agent.0", f"{UNIT} is wanted by {wanted_by[0]} ({sysfs}), port {port!r}")
    # Started once in this boot (this suite never runs systemctl start; a start by hand
    # would be a second record after a stop).
    jobs = s.sh(f"journalctl -b -o cat _PID=1 | grep -c 'Started {UNIT}' || true").strip()
    s.expect(jobs == "1", f"{UNIT} should have been started exactly once in this boot, journal says {jobs}")
    return f"active, static, wanted by the device of {port} ({sysfs.rsplit('/', 1)[-1]}), bound to {DEVICE_UNIT}"


# --- the three processes --------------------------------------------------------------------
def three_processes_with_their_privileges(s):
    s.expect(s.call("guest-ping") == {}, "the agent does not answer guest-ping")
    main_pid = s.unit("MainPID")["MainPID"]
    # lib.sh's agent_pid reads this file; here the agent's pid is systemd's MainPID.
    s.sh(f"echo {main_pid} > /run/qga-test/agent.pid")
    # The agent looked at is systemd's main process (the pid file above); the helper's Landlock
    # line is checked from the journal in start_record_in_the_journal.
    report = s.sh(PROCESS_REPORT.replace("PID_FILE", "/run/qga-test/agent.pid").replace("LOG", "/dev/null"))
    uid = s.sh("id -u qemu-ga-rs").strip()
    front = _status_fields(report, "front.")
    s.expect(front.get("exe") == "/usr/sbin/qemu-ga-rs", f"systemd's main process is not /usr/sbin/qemu-ga-rs:\n{report}")
    s.expect(front.get("Uid", "").split() == [uid] * 4, f"front should run as qemu-ga-rs (uid {uid}):\n{report}")
    s.expect("0" not in front.get("Gid", "").split() and "0" not in front.get("Groups", "").split(),
             f"front keeps group 0:\n{report}")
    for cap in ("CapEff", "CapPrm", "CapAmb", "CapInh"):
        s.expect(int(front.get(cap, "1"), 16) == 0, f"front has {cap} {front.get(cap)}:\n{report}")
    s.expect(front.get("NoNewPrivs") == "1" and front.get("Seccomp") == "2", f"front lacks no_new_privs or seccomp:\n{report}")
    helpers = re.findall(r"^helper\.pid: (\d+)$", report, re.M)
    by_pid = {pid: _status_fields(report, f"helper.{pid}.") for pid in helpers}
    serving = [pid for pid, f in by_pid.items() if f.get("PPid") == main_pid]
    s.expect(len(serving) == 1, f"expected one helper whose parent is the front:\n{report}")
    helper = by_pid[serving[0]]
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        s.expect(helper.get(cap) == HELPER_CAPS, f"helper {cap} {helper.get(cap)} != {HELPER_CAPS}:\n{report}")
    s.expect(helper.get("NoNewPrivs") == "1" and helper.get("Seccomp") == "2", f"helper lacks no_new_privs or seccomp:\n{report}")
    # The helper's children: its launcher and the statfs probes of guest-get-fsinfo (those keep
    # only CAP_DAC_READ_SEARCH).
    children = [pid for pid, f in by_pid.items() if f.get("PPid") == serving[0]]
    launchers = [pid for pid in children if by_pid[pid].get("CapEff") != "0000000000000004"]
    s.expect(len(launchers) == 1, f"expected one launcher whose parent is the helper:\n{report}")
    launcher = by_pid[launchers[0]]
    # Under systemd every process of the unit carries the unit's filters (SystemCallFilter=
    # and friends); the front and the helper each add exactly one of their own, the
    # launcher none (it was forked before the helper's).
    filters = {}
    for who, pid in (("front", main_pid), ("helper", serving[0]), ("launcher", launchers[0])):
        filters[who] = int(s.sh(f"sed -n 's/^Seccomp_filters:[[:space:]]*//p' /proc/{pid}/status").strip())
    s.expect(filters["front"] == filters["helper"] == filters["launcher"] + 1,
             f"seccomp filters: {filters} (expected the unit's on all three, plus one on front and helper)")
    # The launcher has what the unit's bounding set allows, no more.
    s.expect(int(launcher.get("CapBnd", "0"), 16) & ~0x02200004 & ~0x1c0 == 0,
             f"the launcher's bounding set exceeds the unit's CapabilityBoundingSet:\n{report}")
    cgroup = s.sh(f"cat /proc/{serving[0]}/cgroup /proc/{launchers[0]}/cgroup")
    s.expect(cgroup.count(f"/system.slice/{UNIT}") == 2, f"helper and launcher are not in the unit's cgroup:\n{cgroup}")
    kills = s.sh("journalctl -k -b | grep 'type=1326' || true")
    s.expect(not kills.strip(), f"the guest kernel logged seccomp kills:\n{kills}")
    return (f"front uid {uid} caps 0, helper {HELPER_CAPS}, launcher CapBnd {launcher.get('CapBnd')}; "
            f"seccomp filters {filters}; all in {UNIT}'s cgroup")


def start_record_in_the_journal(s):
    out = s.sh(f"journalctl -b -u {UNIT} -o short-monotonic --no-pager")
    s.expect(f"Started {UNIT}" in out, f"no start record of {UNIT} in the journal:\n{out}")
    # The agent's own records (qemu-ga's slog, "guest-ping called") reach the journal through
    # syslog, from inside the sandbox.
    s.call("guest-ping")
    deadline = time.monotonic() + 10
    while True:
        own = s.sh("journalctl -b -t qemu-ga-rs -o cat --no-pager | tail -n 5")
        if "guest-ping called" in own:
            break
        s.expect(time.monotonic() < deadline, f"the agent's records do not reach the journal:\n{out}\n{own}")
        time.sleep(1)
    # The unit's system call filter must let the helper narrow itself with Landlock: with the
    # LSM active the helper says it is enforced; only a kernel without it may leave it out.
    lsm = s.sh("cat /sys/kernel/security/lsm 2>/dev/null; true")
    ll = s.sh("journalctl -b -u {} -o cat --no-pager | grep -m1 'helper: landlock' ; true".format(UNIT)).strip()
    if "landlock" in lsm.split(","):
        s.expect("landlock enforced" in ll, f"Landlock is active in the guest ({lsm.strip()}) but the helper says: {ll!r}")
    else:
        s.expect("Operation not supported" in ll, f"Landlock is not active ({lsm.strip()}); the helper says: {ll!r}")
    started = [line for line in out.splitlines() if f"Started {UNIT}" in line][-1].strip()
    return f"{started}; {ll}"


# --- freeze under the sandbox, and a crash while frozen --------------------------------------
def _writer_start(s):
    s.sh(f"rm -f {TICKS}; setsid sh -c 'while :; do read up _ < /proc/uptime; echo $up >> {TICKS}; sleep 0.2; done' "
         "> /dev/null 2>&1 & echo $! > /run/qga-test/writer.pid")
    # Writing before the freeze starts, so a stop in its lines means the freeze.
    s.sh(f"for i in $(seq 50); do [ $(wc -l < {TICKS} 2>/dev/null || echo 0) -ge 3 ] && exit 0; sleep 0.2; done; exit 1")


def _ticks(s):
    return int(s.sh(f"wc -l < {TICKS}").strip())


def _writer_stop(s):
    s.sh_rc("kill $(cat /run/qga-test/writer.pid) 2>/dev/null; true", timeout=10)


def _expect_frozen_writer(s, what):
    time.sleep(1.0)
    before = _ticks(s)
    time.sleep(2.0)
    after = _ticks(s)
    s.expect(after - before <= 1, f"{what}: the writer on the root file system wrote {after - before} lines while frozen")


def _expect_writer_runs(s, what):
    before = _ticks(s)
    time.sleep(2.0)
    after = _ticks(s)
    s.expect(after - before >= 3, f"{what}: the writer did not resume ({after - before} lines in 2 s)")


def freeze_and_thaw(s):
    _writer_start(s)
    try:
        count = s.call("guest-fsfreeze-freeze")
        s.expect(isinstance(count, int) and count >= 1, f"guest-fsfreeze-freeze froze {count!r} file systems")
        _expect_frozen_writer(s, "after guest-fsfreeze-freeze")
        s.expect(s.call("guest-fsfreeze-status") == "frozen", "status is not frozen")
        s.expect(s.sh_rc(f"test -e {FREEZE_MARKER}")[0] == 0, f"{FREEZE_MARKER} missing while frozen")
        thawed = s.call("guest-fsfreeze-thaw")
        s.expect(thawed == count, f"thawed {thawed!r}, froze {count}")
        _expect_writer_runs(s, "after guest-fsfreeze-thaw")
        s.expect(s.call("guest-fsfreeze-status") == "thawed", "status is not thawed")
    finally:
        s.guest.agent.execute("guest-fsfreeze-thaw", timeout=30)
        _writer_stop(s)
    return f"{count} file system(s) frozen and thawed; the writer stopped and resumed"


def audit_records_in_the_journal(s):
    """The audit trail of the installed agent reaches the journal (syslog, authpriv.notice,
    tag qemu-ga-rs-audit) from inside the unit's sandbox: the freeze and thaw just made, and a
    request the shipped policy refuses (guest-exec is off by default)."""
    refused = s.guest.agent.execute("guest-exec", {"path": "/bin/true"}, timeout=30)
    s.expect("error" in refused, f"the shipped policy let guest-exec through: {refused}")
    want = [
        ('command="guest-fsfreeze-freeze"', "decision=allowed", "outcome=ok"),
        ('command="guest-fsfreeze-thaw"', "decision=allowed", "outcome=ok"),
        ('command="guest-exec"', "decision=refused", "rule=policy"),
    ]
    deadline = time.monotonic() + 15
    while True:
        # SYSLOG_FACILITY=10 is authpriv: the records must not land in a facility anyone reads.
        out = s.sh("journalctl -b -t qemu-ga-rs-audit SYSLOG_FACILITY=10 PRIORITY=5 -o cat --no-pager; true")
        lines = out.splitlines()
        missing = [w for w in want if not any(all(f in line.split(" ") for f in w) for line in lines)]
        if not missing:
            break
        s.expect(time.monotonic() < deadline, f"audit records missing from the journal: {missing}\n{out}")
        time.sleep(1)
    exec_line = [line for line in lines if 'command="guest-exec"' in line][-1]
    return f"{len(lines)} audit record(s) at authpriv.notice, e.g. {exec_line}"


def front_sigkill_restarted_by_systemd_and_thawed(s):
    before = s.unit("MainPID", "NRestarts")
    _writer_start(s)
    try:
        s.expect(s.call("guest-fsfreeze-freeze") >= 1, "nothing frozen")
        _expect_frozen_writer(s, "before the kill")
        s.sh(f"kill -KILL {before['MainPID']}")
        after = s.wait_unit("active", timeout=60, changed_from_pid=before["MainPID"])
        s.expect(int(after["NRestarts"]) == int(before["NRestarts"]) + 1,
                 f"NRestarts {before['NRestarts']} -> {after['NRestarts']}: not restarted by systemd")
        # The helper saw its front go and thawed: the writer runs again, the marker is gone.
        _expect_writer_runs(s, "after SIGKILL of the front")
        s.expect(s.sh_rc(f"test -e {FREEZE_MARKER}")[0] != 0, f"{FREEZE_MARKER} left behind")
        s.reconnect_agent()
        s.expect(s.call("guest-fsfreeze-status") == "thawed", "the restarted agent is not thawed")
    finally:
        s.guest.agent.execute("guest-fsfreeze-thaw", timeout=30)
        _writer_stop(s)
    return f"MainPID {before['MainPID']} -> {after['MainPID']}, NRestarts {after['NRestarts']}, guest thawed"


HOOK_SCRIPT = "/etc/qemu/fsfreeze-hook.d/pkg-test"
HOOK_CONF = "/etc/qemu/qemu-ga.conf"


def freeze_hook_runs_from_qemu_guest_agent_paths(s):
    """The opt-in of a qemu-guest-agent user: fsfreeze-hook=/etc/qemu/fsfreeze-hook in
    /etc/qemu/qemu-ga.conf, scripts in /etc/qemu/fsfreeze-hook.d. The hook runs, from the
    launcher inside the unit's sandbox, around freeze and thaw."""
    s.sh(f"printf '#!/bin/sh\\necho \"pkg-test hook $1\"\\necho $1 > /run/pkg-test-hook.$1\\n' > {HOOK_SCRIPT} "
         f"&& chmod 755 {HOOK_SCRIPT} && printf '[general]\\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\\n' > {HOOK_CONF} "
         "&& rm -f /run/pkg-test-hook.* /var/log/qga-fsfreeze-hook.log")
    try:
        before = s.unit("MainPID")["MainPID"]
        s.sh(f"systemctl restart {UNIT}")   # a configuration change, as an administrator applies it
        s.wait_unit("active", timeout=60, changed_from_pid=before)
        s.reconnect_agent()
        s.expect(s.call("guest-fsfreeze-freeze") >= 1, "nothing frozen")
        s.expect(s.sh_rc("test -e /run/pkg-test-hook.freeze")[0] == 0, "the hook did not run with freeze")
        s.call("guest-fsfreeze-thaw")
        s.expect(s.sh_rc("test -e /run/pkg-test-hook.thaw")[0] == 0, "the hook did not run with thaw")
        log = s.sh("cat /var/log/qga-fsfreeze-hook.log")
        for expected in (f"execute {HOOK_SCRIPT} freeze", f"execute {HOOK_SCRIPT} thaw", "pkg-test hook freeze",
                         "pkg-test hook thaw", f"{HOOK_SCRIPT} finished with status=0"):
            s.expect(expected in log, f"the hook's log lacks {expected!r}:\n{log}")
    finally:
        s.guest.agent.execute("guest-fsfreeze-thaw", timeout=30)
        s.sh_rc(f"rm -f {HOOK_SCRIPT} {HOOK_CONF}")
    return "fsfreeze-hook.d script ran with freeze and thaw; /var/log/qga-fsfreeze-hook.log records both"


# --- clock, processors, trim ----------------------------------------------------------------
def _guest_epoch(s):
    return int(s.sh("date +%s").strip())


def set_time_moves_clock_and_rtc(s):
    qmp = s.guest.qmp
    mark = qmp.mark()
    target = (_guest_epoch(s) + 86400) * 10**9
    try:
        s.expect(s.call("guest-set-time", {"time": target}) == {}, "guest-set-time did not return {}")
        moved = _guest_epoch(s) - target // 10**9
        s.expect(abs(moved) < 30, f"the guest clock is {moved} s off the time set")
        event = qmp.wait_event("RTC_CHANGE", mark, 10)
        s.expect(event is not None, "no QMP RTC_CHANGE: the hardware clock was not set")
        offset = event["data"]["offset"]
        s.expect(80000 < offset < 92000, f"RTC_CHANGE offset {offset}, expected about 86400")
    finally:
        s.guest.agent.execute("guest-set-time", {"time": time.time_ns()}, timeout=30)
    return f"clock and RTC one day ahead (RTC_CHANGE offset {offset}), then restored"


def set_vcpus_offline_and_online(s):
    s.expect(s.call("guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": False}]}) == 1, "cpu1 not offlined")
    s.expect(s.sh("cat /sys/devices/system/cpu/cpu1/online").strip() == "0", "sysfs says cpu1 is online")
    s.expect(s.call("guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": True}]}) == 1, "cpu1 not onlined")
    s.expect(s.sh("cat /sys/devices/system/cpu/online").strip() == "0-1", "cpu1 did not come back")
    return "cpu1 offline, then online (sysfs agrees)"


def fstrim_shrinks_the_image(s):
    s.sh("dd if=/dev/urandom of=/var/tmp/pkg-test-trim bs=1M count=16 status=none && sync")
    s.sh("rm /var/tmp/pkg-test-trim && sync")
    time.sleep(1)
    before = s.guest.disk_allocated()
    result = s.call("guest-fstrim", timeout=120)
    after = s.guest.disk_allocated()
    paths = result.get("paths", [])
    s.expect(paths and all("error" not in p for p in paths), f"guest-fstrim reported: {result}")
    freed = (before - after) >> 20
    s.expect(freed >= 12, f"guest-fstrim freed {freed} MiB of the host image (expected >= 12): {result}")
    return f"{freed} MiB freed in the host's image; paths {[p.get('path') for p in paths]}"


def sandbox_leaves_sysfs_power_and_rtc_writable(s):
    """What suspend's kernel fallback and set-time need, looked at inside the unit's own
    mount namespace (access(2) reports EROFS for a read-only mount)."""
    pid = s.unit("MainPID")["MainPID"]
    helper = s.sh(f"for c in /proc/[0-9]*/stat; do read p _ _ pp _ < $c; [ $pp = {pid} ] && echo $p; done; true").split()
    s.expect(helper, "no helper process")
    out = s.sh(f"nsenter -t {helper[0]} -m sh -c 'test -w /sys/power/state && test -w /sys/devices/system/cpu/cpu1/online "
               "&& test -w /dev/rtc0 && echo writable'")
    s.expect(out.strip() == "writable", f"inside the unit's mount namespace: {out}")
    return "/sys/power/state, cpu1/online and /dev/rtc0 writable in the unit's namespace"


# --- the port unplugged and plugged back ----------------------------------------------------
def port_unplug_stops_plug_starts(s):
    qmp = s.guest.qmp
    before = s.unit("MainPID")["MainPID"]
    mark = qmp.mark()
    qmp.command("device_del", {"id": AGENT_PORT_ID})
    s.expect(qmp.wait_event("DEVICE_DELETED", mark, 30) is not None, "no DEVICE_DELETED for the port")
    stopped = s.wait_unit("inactive", timeout=60)
    s.expect(s.sh_rc("test -e /dev/virtio-ports/org.qemu.guest_agent.0")[0] != 0, "the port link is still there")
    gone = s.sh(f"kill -0 {before} 2>/dev/null && echo alive || echo gone").strip()
    s.expect(gone == "gone", f"the agent process {before} survived the unplug")
    qmp.command("device_add", agent_port_device_args())
    started = s.wait_unit("active", timeout=60, changed_from_pid=before)
    s.reconnect_agent()
    s.expect(s.call("guest-ping") == {}, "no answer after the port came back")
    return f"unplug: {UNIT} {stopped['ActiveState']}; plug: active again, MainPID {before} -> {started['MainPID']}"


# --- package life cycle ----------------------------------------------------------------------
POLICY = "/etc/qemu-ga-rs/policy"
EDIT = "deny guest-fstrim"


def _command_enabled(s, name):
    for cmd in s.call("guest-info")["supported_commands"]:
        if cmd["name"] == name:
            return cmd["enabled"]
    raise StepFailed(f"{name} missing from guest-info")


def upgrade_keeps_edited_policy(s, upgrade_deb_in_guest, new_version):
    s.sh(f"printf '\\n# edited by the administrator\\n{EDIT}\\n' >> {POLICY}")
    edited = s.sh(f"sha256sum {POLICY}").split()[0]
    before = s.unit("MainPID")["MainPID"]
    out = s.sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -y {upgrade_deb_in_guest} 2>&1", timeout=300)
    version = s.sh("dpkg-query -W -f '${Version}' qemu-ga-rs").strip()
    s.expect(version == new_version, f"installed version {version}, expected {new_version}:\n{out}")
    s.expect(s.sh(f"sha256sum {POLICY}").split()[0] == edited, f"the upgrade changed the edited {POLICY}:\n{out}")
    leftovers = s.sh("ls /etc/qemu-ga-rs/").split()
    s.expect(leftovers == ["policy"], f"/etc/qemu-ga-rs holds {leftovers}")
    after = s.wait_unit("active", timeout=60, changed_from_pid=before)
    s.reconnect_agent()
    s.expect(_command_enabled(s, "guest-fstrim") is False, "the restarted agent does not use the edited policy")
    return f"{version} installed, MainPID {before} -> {after['MainPID']}, edited policy kept and in force"


def shutdown_through_systemd(s):
    qmp = s.guest.qmp
    mark = qmp.mark()
    reply = s.guest.agent.execute_no_reply("guest-shutdown", quiet_for=3.0)
    s.expect(reply is None, f"guest-shutdown answered {reply}")
    event = qmp.wait_event("SHUTDOWN", mark, 120)
    s.expect(event is not None and event["data"].get("guest") is True, f"no guest SHUTDOWN event: {event}")
    s.expect(s.guest.wait_exit(30) is not None, "QEMU did not exit after the guest powered off")
    console = s.guest.console_text()
    for sign in ("System Power Off", "systemd-shutdown", "Power down"):
        s.expect(sign in console, f"the console does not show systemd's shutdown ({sign!r} missing)")
    return "QMP SHUTDOWN (guest), console: systemd reached System Power Off, systemd-shutdown powered down"


def suspend_ram_through_systemd(s):
    """guest-suspend-ram: the launcher's `systemctl suspend`, under the unit's sandbox, puts
    the guest to sleep. (With this PVH-booted kernel QEMU's wake-up cold-boots the guest
    rather than resuming it, see tests/vm; the agent then comes back by itself.)"""
    qmp = s.guest.qmp
    mark = qmp.mark()
    reply = s.guest.agent.execute_no_reply("guest-suspend-ram", quiet_for=3.0)
    s.expect(reply is None, f"guest-suspend-ram answered {reply}")
    s.expect(qmp.wait_event("SUSPEND", mark, 60) is not None, "no QMP SUSPEND: the guest did not go to sleep")
    status = qmp.command("query-status")["status"]
    s.expect(status == "suspended", f"query-status says {status!r}")
    console = s.guest.console_text()
    s.expect("PM: suspend entry" in console, "the guest kernel did not log a suspend entry")
    mark = qmp.mark()
    qmp.command("system_wakeup")
    s.expect(qmp.wait_event("WAKEUP", mark, 30) is not None, "no QMP WAKEUP")
    s.guest.agent.close()
    s.guest.agent.handshake(timeout=180, attempt=1.0)
    s.guest.control.wait_ready(60)
    return "QMP SUSPEND, query-status suspended, guest kernel: PM: suspend entry; agent back after wake-up"


def apt_remove_stops_purge_removes_conffile(s):
    s.expect(s.unit("ActiveState")["ActiveState"] == "active", f"{UNIT} not active after the reboot")
    pid = s.unit("MainPID")["MainPID"]
    s.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y qemu-ga-rs", timeout=300)
    state = s.sh(f"systemctl show -p ActiveState -p LoadState {UNIT}")
    s.expect("ActiveState=inactive" in state, f"after apt-get remove: {state}")
    s.expect(s.sh(f"kill -0 {pid} 2>/dev/null && echo alive || echo gone").strip() == "gone", "the agent still runs")
    s.expect(s.sh_rc(f"test -e {POLICY}")[0] == 0, "remove (not purge) deleted the conffile")
    s.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y qemu-ga-rs", timeout=300)
    s.expect(s.sh_rc(f"test -e {POLICY}")[0] != 0, f"purge left {POLICY}")
    status = s.sh("dpkg-query -W -f '${db:Status-Abbrev}' qemu-ga-rs 2>&1 || true").strip()
    s.expect(status in ("", "un") or "no packages found" in status, f"dpkg still knows the package after purge: {status}")
    return f"remove: service inactive, pid {pid} gone, policy kept; purge: {POLICY} gone"
