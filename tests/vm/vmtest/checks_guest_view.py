"""What the agent reports or touches in the guest, compared with what the guest itself shows:
network interfaces, guest-file-* on the data disk, the agent's own processes."""

import base64
import os
import re
import time

from .harness import NotApplicable, check
from .vm import GUEST_IPV4, GUEST_MAC

FILES_DIR = "/mnt/data/files"


@check(boot="pvh")
def network_interfaces_show_guest_nic(ctx):
    """guest-network-get-interfaces lists the NIC QEMU was given (its MAC from the command
    line) with the address /init configured, and loopback."""
    interfaces = ctx.call("guest-network-get-interfaces")
    by_mac = [i for i in interfaces if str(i.get("hardware-address", "")).lower() == GUEST_MAC]
    ctx.expect(len(by_mac) == 1, f"expected one interface with MAC {GUEST_MAC}; got {interfaces}")
    nic = by_mac[0]
    guest_name = ctx.guest_sh(f"grep -l -i {GUEST_MAC} /sys/class/net/*/address").strip().split("/")[-2]
    ctx.expect(nic.get("name") == guest_name,
               f"the agent names the NIC {nic.get('name')!r}, the guest's sysfs {guest_name!r}")
    addresses = {(a.get("ip-address-type"), a.get("ip-address"), a.get("prefix")) for a in nic.get("ip-addresses", [])}
    ctx.expect(("ipv4", GUEST_IPV4, 24) in addresses, f"{GUEST_IPV4}/24 missing from {nic}")
    loopback = [i for i in interfaces if i.get("name") == "lo"]
    ctx.expect(loopback and ("ipv4", "127.0.0.1", 8) in
               {(a.get("ip-address-type"), a.get("ip-address"), a.get("prefix")) for a in loopback[0].get("ip-addresses", [])},
               f"lo with 127.0.0.1/8 missing: {interfaces}")


def _guest_file_bytes(ctx, path):
    return base64.b64decode("".join(ctx.guest_sh(f"base64 {path}").split()))


@check(boot="pvh")
def file_commands_roundtrip_on_data_disk(ctx):
    """guest-file-open/write/read/seek/close on the ext4 data disk: bytes the agent writes are
    what the guest reads back, and bytes the guest wrote are what the agent reads."""
    payload = os.urandom(3000) + b"\x00\xff\n"
    agent_path = f"{FILES_DIR}/agent-written.bin"
    ctx.guest_sh(f"rm -f {agent_path}")
    handle = ctx.call("guest-file-open", {"path": agent_path, "mode": "w"})
    ctx.expect(isinstance(handle, int) and handle >= 1000, f"handles start at 1000; got {handle!r}")
    written = ctx.call("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(payload).decode()})
    ctx.expect(written.get("count") == len(payload), f"guest-file-write count {written} != {len(payload)}")
    ctx.call("guest-file-close", {"handle": handle})
    ctx.expect(_guest_file_bytes(ctx, agent_path) == payload, "the guest reads different bytes than the agent wrote")

    appended = b"appended tail\n"
    handle = ctx.call("guest-file-open", {"path": agent_path, "mode": "a"})
    ctx.call("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(appended).decode()})
    ctx.call("guest-file-flush", {"handle": handle})
    ctx.call("guest-file-close", {"handle": handle})
    ctx.expect(_guest_file_bytes(ctx, agent_path) == payload + appended, "append mode did not append")

    guest_payload = os.urandom(2048)
    guest_path = f"{FILES_DIR}/guest-written.bin"
    ctx.guest_sh(f"echo {base64.b64encode(guest_payload).decode()} | base64 -d > {guest_path} && sync")
    handle = ctx.call("guest-file-open", {"path": guest_path})   # mode defaults to "r"
    read = ctx.call("guest-file-read", {"handle": handle, "count": 65536})
    ctx.expect(base64.b64decode(read.get("buf-b64", "")) == guest_payload and read.get("count") == len(guest_payload),
               f"guest-file-read returned {read.get('count')} bytes that differ from what the guest wrote")
    position = ctx.call("guest-file-seek", {"handle": handle, "offset": 100, "whence": 0})
    ctx.expect(position.get("position") == 100, f"guest-file-seek to 100 gave {position}")
    read = ctx.call("guest-file-read", {"handle": handle, "count": 10})
    ctx.expect(base64.b64decode(read.get("buf-b64", "")) == guest_payload[100:110], f"read after seek gave {read}")
    ctx.call("guest-file-close", {"handle": handle})
    ctx.call_expecting_error("guest-file-read", {"handle": handle}, "GenericError",
                             f"handle '{handle}' has not been found")


def _status_fields(text, prefix):
    fields = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            key, _, value = line[len(prefix):].partition(":")
            fields[key.strip()] = value.strip()
    return fields


# PID_FILE: the supervisor's pid file of the agent looked at; LOG: that agent's log file.
PROCESS_REPORT = r"""
. /usr/libexec/qga-test/lib.sh
front=$(cat PID_FILE)
echo "front.pid: $front"
echo "front.exe: $(readlink /proc/$front/exe)"
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs|Seccomp):' /proc/$front/status | sed 's/^/front./'
echo "front.procmount: $(awk '$5 == "/proc"' /proc/$front/mountinfo | tail -n 1)"
echo "front.procowner: $(stat -c %u /proc/$front/environ)"
echo "front.landlock: $(grep -h 'helper: landlock' LOG | tail -n 1)"
# Scheduling policy (stat field 41, the 39th after the name) and RLIMIT_NICE (soft, hard).
sched() { sed 's/.*) //' /proc/$1/stat | awk '{print $39}'; }
nicelimit() { awk '/^Max nice priority/ {print $4, $5}' /proc/$1/limits; }
echo "front.sched: $(sched $front)"
echo "front.nicelimit: $(nicelimit $front)"
for helper in $(pids_by_exe qemu-ga-rs-helper); do
    echo "helper.pid: $helper"
    grep -E '^(PPid|Uid|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$helper/status | sed "s/^/helper.$helper./"
    echo "helper.$helper.sched: $(sched $helper)"
    echo "helper.$helper.nicelimit: $(nicelimit $helper)"
done
"""

# The serving helper's capabilities: CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN, CAP_SYS_TIME (the set
# helper/src/demote.rs documents), nothing else.
HELPER_CAPS = "0000000002200004"


@check(boot="pvh")
def privilege_separation_front_unprivileged_helper_separate(ctx):
    """Inside the guest the front (the process the service manager started) runs as the
    unprivileged qemu-ga-rs user with no capabilities, no_new_privs, not dumpable, under its
    seccomp filter and with a read-only /proc of its own that hides other processes, and the
    privileged helper is a separate process running qemu-ga-rs-helper with exactly
    CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN and CAP_SYS_TIME, no_new_privs, its Landlock ruleset
    (the guest's kernel has Landlock) and its seccomp filter; the helper's launcher (which runs
    shutdown, systemctl, pm-utils) is not under a filter."""
    expect_privilege_separation(ctx, ctx.guest.agent, "/run/qga-test/agent.pid", "/tmp/qga.log")


def expect_privilege_separation(ctx, client, pid_file, log):
    """The privilege facts of the supervised agent whose pid is in `pid_file`, after it
    answered guest-ping on `client` (see privilege_separation_front_unprivileged_helper_separate)."""
    process_report = PROCESS_REPORT.replace("PID_FILE", pid_file).replace("LOG", log)
    if ctx.agent_spec.is_reference:
        report = ctx.guest_sh(process_report)
        front = _status_fields(report, "front.")
        raise NotApplicable(f"not applicable to the reference: qemu-ga is one process, Uid {front.get('Uid')}, "
                            f"CapEff {front.get('CapEff')}")
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "the agent does not answer")
    report = ctx.guest_sh(process_report)
    front = _status_fields(report, "front.")
    ctx.note(f"front Uid {front.get('Uid')}")
    ctx.expect(front.get("exe", "").endswith("/qemu-ga-rs"), f"the supervised process is not qemu-ga-rs:\n{report}")
    uids = front.get("Uid", "").split()
    ctx.expect(len(uids) == 4 and all(u == "990" for u in uids),
               f"front should run as qemu-ga-rs (uid 990) in all of real/effective/saved/fs uid:\n{report}")
    gids = front.get("Gid", "").split()
    ctx.expect(len(gids) == 4 and "0" not in gids, f"front keeps gid 0:\n{report}")
    ctx.expect("0" not in front.get("Groups", "").split(), f"front keeps supplementary group 0:\n{report}")
    for cap in ("CapEff", "CapPrm", "CapAmb"):
        ctx.expect(int(front.get(cap, "1"), 16) == 0, f"front has {cap} {front.get(cap)}:\n{report}")
    ctx.expect(front.get("NoNewPrivs") == "1", f"front lacks no_new_privs:\n{report}")
    ctx.expect(front.get("Seccomp") == "2", f"front is not under a seccomp filter (Seccomp {front.get('Seccomp')}):\n{report}")
    # Not dumpable: the kernel gives a non-dumpable process's /proc files to root.
    ctx.expect(front.get("procowner") == "0", f"front is dumpable (its /proc files are not root's):\n{report}")
    proc_mount = front.get("procmount", "").split()
    ctx.expect(len(proc_mount) > 6 and proc_mount[proc_mount.index("-") + 1] == "proc"
               and "ro" in proc_mount[5].split(",")
               and re.search(r"hidepid=(2|invisible)", proc_mount[-1]) is not None,
               f"front's /proc is not a read-only procfs of its own hiding other processes:\n{report}")
    ctx.note(f"helper {front.get('landlock')}")
    ctx.expect("landlock enforced" in front.get("landlock", ""),
               f"the helper did not enforce its Landlock ruleset:\n{report}")
    helpers = re.findall(r"^helper\.pid: (\d+)$", report, re.M)
    ctx.expect(helpers, f"no qemu-ga-rs-helper process in the guest:\n{report}")
    ctx.expect(front.get("pid") not in helpers, f"front and helper are the same process:\n{report}")
    # Two processes run qemu-ga-rs-helper: the helper (child of the front) and its launcher
    # (child of the helper, forked before the helper drops privileges and applies its filter).
    by_pid = {pid: _status_fields(report, f"helper.{pid}.") for pid in helpers}
    serving = [pid for pid, f in by_pid.items() if f.get("PPid") == front.get("pid")]
    ctx.expect(len(serving) == 1, f"expected one helper whose parent is the front:\n{report}")
    if len(serving) != 1:
        return
    helper = by_pid[serving[0]]
    ctx.note(f"helper CapEff {helper.get('CapEff')} Seccomp {helper.get('Seccomp')}")
    ctx.expect(helper.get("Seccomp") == "2", f"helper is not under a seccomp filter (Seccomp {helper.get('Seccomp')}):\n{report}")
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        ctx.expect(helper.get(cap) == HELPER_CAPS, f"helper {cap} {helper.get(cap)} != {HELPER_CAPS}:\n{report}")
    ctx.expect(int(helper.get("CapAmb", "1"), 16) == 0, f"helper has CapAmb {helper.get('CapAmb')}:\n{report}")
    ctx.expect(helper.get("NoNewPrivs") == "1", f"helper lacks no_new_privs:\n{report}")
    # The helper's children: its launcher (no filter: what it starts must not inherit one) and
    # the statfs probes (guest-get-fsinfo), each under a filter of its own with only
    # CAP_DAC_READ_SEARCH.
    children = [pid for pid, f in by_pid.items() if f.get("PPid") == serving[0]]
    launchers = [pid for pid in children if by_pid[pid].get("Seccomp") == "0"]
    ctx.expect(len(launchers) == 1, f"expected one launcher (no seccomp filter) whose parent is the helper:\n{report}")
    for pid in (p for p in children if p not in launchers):
        probe = by_pid[pid]
        ctx.expect(probe.get("Seccomp") == "2" and probe.get("NoNewPrivs") == "1"
                   and probe.get("CapEff") == "0000000000000004",
                   f"helper child {pid} is neither the launcher nor a filtered statfs probe with only "
                   f"CAP_DAC_READ_SEARCH:\n{report}")
    # The helper starts in the background of the front (SCHED_IDLE, RLIMIT_NICE raised to leave
    # it): once started, every process is back under the normal policy with the front's limit.
    ctx.expect(front.get("sched") == "0", f"front's scheduling policy {front.get('sched')}:\n{report}")
    for pid in [serving[0]] + children:
        ctx.expect(by_pid[pid].get("sched") == "0" and by_pid[pid].get("nicelimit") == front.get("nicelimit"),
                   f"helper process {pid}: scheduling policy {by_pid[pid].get('sched')} (0: SCHED_OTHER), "
                   f"nice limit {by_pid[pid].get('nicelimit')} (the front's: {front.get('nicelimit')}):\n{report}")
    ctx.note(f"all {1 + len(children)} helper processes SCHED_OTHER, nice limit {front.get('nicelimit')}")
    # A seccomp kill is logged by the guest kernel as an audit record of type 1326 (audit is
    # built in and not disabled on the command line): none so far, from either process.
    kills = ctx.guest_sh("dmesg | grep 'type=1326' || true")
    ctx.expect(not kills.strip(), f"the guest kernel logged seccomp kills:\n{kills}")


WAKEUPS_REPORT = r"""
. /usr/libexec/qga-test/lib.sh
total=0
for pid in $(process_tree $(agent_pid)); do
    for task in /proc/$pid/task/*; do
        n=$(sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' $task/status 2>/dev/null)
        total=$((total + ${n:-0}))
    done
done
echo $total
"""


@check(boot="pvh")
def idle_agent_sleeps_while_no_host_is_connected(ctx):
    """With no host program on the chardev the guest's virtio port polls readable/HUP; the
    agent must sleep rather than wake ~10 times a second as 7.2 does. Measured as the
    voluntary context switches of all the agent's processes and threads over 10 s."""
    agent = ctx.guest.agent
    agent.close()            # the host side goes away, as when libvirtd stops
    try:
        time.sleep(1.0)
        first = int(ctx.guest_sh(WAKEUPS_REPORT))
        time.sleep(10.0)
        wakeups = int(ctx.guest_sh(WAKEUPS_REPORT)) - first
    finally:
        agent.connect()
        agent.handshake(timeout=60)
    ctx.expect(ctx.call("guest-ping") == {}, "the agent does not answer after the host reconnected")
    if ctx.agent_spec.is_reference:
        raise NotApplicable(f"not applicable to the reference: qemu-ga 7.2 polls every 100 ms by design "
                            f"({wakeups} wake-ups in 10 s)")
    ctx.note(f"{wakeups} wake-ups in 10 s")
    ctx.expect(wakeups <= 10, f"the idle agent woke {wakeups} times in 10 s with no host connected")
