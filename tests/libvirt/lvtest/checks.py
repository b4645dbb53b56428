"""The checks: each drives the agent through virsh, as a libvirt user would, and compares what
virsh reports with the guest's real state read through the control port (never through the
agent), the host's disk image, QEMU's RTC or libvirt's view of the domain.

A check names the agent commands libvirt needs for it; when the agent under test does not
list one of them as enabled in guest-info, the check is NOT RUN (never passed).
"""

import base64
import calendar
import json
import struct
import time
from dataclasses import dataclass

from .domain import key_values

DAY = 86400
MIB = 1 << 20

# The guest's extra files (added to the real-guest suite's initramfs): an os-release and a
# time zone that are not the defaults, so the agent's answers can be told from its fallbacks.
OS_RELEASE = """PRETTY_NAME="QGA Libvirt Test Linux 11.2 (lvtest)"
NAME="QGA Libvirt Test Linux"
VERSION_ID="11.2"
VERSION="11.2 (lvtest)"
ID=qgalvtest
VARIANT="libvirt suite"
VARIANT_ID=lvsuite
"""
# As Debian sets a zone: /etc/localtime and its name in /etc/timezone (GLib, and so 7.2, needs
# the name when /etc/localtime is not a symbolic link into the zoneinfo tree, and else says UTC).
TIMEZONE = "Asia/Kolkata"   # +05:30, IST, no daylight saving time
LOCALTIME_SOURCE = f"/usr/share/zoneinfo/{TIMEZONE}"
HOSTNAME = "lvtest-guest"


class CheckFailed(Exception):
    pass


class NotRun(Exception):
    pass


class NotApplicable(Exception):
    pass


@dataclass
class Check:
    name: str
    func: object
    needs: tuple      # agent commands libvirt uses for it
    doc: str
    virsh_option: tuple = None   # (virsh command, option) the check needs virsh to have


REGISTRY = []


def check(*needs, virsh_option=None):
    def register(func):
        REGISTRY.append(Check(func.__name__, func, needs, (func.__doc__ or "").strip(), virsh_option))
        return func
    return register


class Context:
    def __init__(self, domain, virsh, agent_label):
        self.dom = domain
        self.virsh = virsh
        self.agent_label = agent_label
        self.notes = []

    def expect(self, condition, message):
        if not condition:
            raise CheckFailed(message)

    def sh(self, script, timeout=30):
        return self.dom.guest(script, timeout)

    def vs(self, *argv, **kwargs):
        return self.virsh.run(*argv, **kwargs)

    def guest_epoch(self):
        return int(self.sh("date +%s").strip())

    def rtc_epoch(self):
        """QEMU's RTC, through libvirt's monitor passthrough (the guest cannot fake this)."""
        out = self.vs("qemu-monitor-command", self.dom.name,
                      '{"execute":"qom-get","arguments":{"path":"/machine","property":"rtc-time"}}')
        tm = json.loads(out)["return"]
        return calendar.timegm((tm["tm_year"] + 1900, tm["tm_mon"] + 1, tm["tm_mday"],
                                tm["tm_hour"], tm["tm_min"], tm["tm_sec"], 0, 0, 0))


def _fields(text, prefix):
    return {k: v for k, v in key_values(text).items() if k.startswith(prefix)}


@check("guest-ping", "guest-info")
def agent_command_ping_and_info(ctx):
    """virsh qemu-agent-command: guest-ping returns {}; guest-info lists guest-ping enabled and
    its version is the one the agent binary in the guest reports for itself."""
    ctx.expect(ctx.virsh.agent(ctx.dom.name, "guest-ping") == {}, "guest-ping did not return {}")
    info = ctx.virsh.agent(ctx.dom.name, "guest-info")
    ping = [c for c in info["supported_commands"] if c["name"] == "guest-ping"]
    ctx.expect(ping and ping[0]["enabled"], f"guest-info does not list guest-ping enabled: {ping}")
    # The running agent's own binary, found from its pid in the guest (not through the agent).
    argv0 = ctx.sh("tr '\\0' ' ' < /proc/$(cat /run/qga-test/agent.pid)/cmdline").split()[0]
    own = ctx.sh(f"{argv0} --version 2>&1 || true")
    ctx.expect(info["version"] in own, f"guest-info version {info['version']!r} is not in {argv0} --version: {own!r}")
    ctx.notes.append(f"version {info['version']}, {len(info['supported_commands'])} commands")


@check("guest-get-time")
def domtime_reads_the_guest_clock(ctx):
    """virsh domtime agrees with the guest's own date (within 2 s)."""
    reported = int(key_values(ctx.vs("domtime", ctx.dom.name))["Time"])
    actual = ctx.guest_epoch()
    ctx.expect(abs(reported - actual) <= 2, f"virsh domtime says {reported}, the guest's date says {actual}")


@check("guest-get-osinfo")
def guestinfo_os_matches_os_release_and_uname(ctx):
    """virsh guestinfo --os: every field is the guest's /etc/os-release or uname's."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--os"), "os.")
    release = {}
    for line in ctx.sh("cat /etc/os-release").splitlines():
        key, _, value = line.partition("=")
        release[key] = value.strip('"')
    uname = ctx.sh("uname -r; uname -v; uname -m").splitlines()
    expected = {"os.id": release["ID"], "os.name": release["NAME"], "os.pretty-name": release["PRETTY_NAME"],
                "os.version": release["VERSION"], "os.version-id": release["VERSION_ID"],
                "os.variant": release["VARIANT"], "os.variant-id": release["VARIANT_ID"],
                "os.kernel-release": uname[0], "os.kernel-version": uname[1], "os.machine": uname[2]}
    ctx.expect(got == expected, f"virsh guestinfo --os: {got}\nexpected from the guest: {expected}")


@check("guest-get-host-name")
def guestinfo_hostname_follows_the_guest(ctx):
    """virsh guestinfo --hostname reports the name the guest was just given (hostname(1))."""
    ctx.sh(f"hostname {HOSTNAME}")
    actual = ctx.sh("hostname").strip()
    got = key_values(ctx.vs("guestinfo", ctx.dom.name, "--hostname")).get("hostname")
    ctx.expect(got == actual == HOSTNAME, f"virsh says {got!r}, the guest's hostname is {actual!r}")


@check("guest-get-timezone")
def guestinfo_timezone_matches_guest_localtime(ctx):
    """virsh guestinfo --timezone: the zone abbreviation and offset the guest's date(1) shows
    for its /etc/localtime (India: IST, +05:30)."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--timezone"), "timezone.")
    name, offset = ctx.sh("date +'%Z %z'").split()
    seconds = (1 if offset[0] == "+" else -1) * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60)
    expected = {"timezone.name": name, "timezone.offset": str(seconds)}
    ctx.expect(seconds == 19800, f"the guest's date shows {offset}: /etc/localtime did not take")
    ctx.expect(got == expected, f"virsh guestinfo --timezone: {got}, the guest's date: {expected}")


def _utmp_record(user, line, login_s, login_us):
    """One glibc x86-64 struct utmp (384 bytes) of type USER_PROCESS."""
    record = struct.pack("<hxxi32s4s32s256shhiii16s20s", 7, 1, line.encode(), line[-4:].encode(),
                         user.encode(), b"lvtest-host", 0, 0, 0, login_s, login_us, b"", b"")
    assert len(record) == 384
    return record


@check("guest-get-users")
def guestinfo_users_lists_the_utmp_login(ctx):
    """virsh guestinfo --user: the one login the guest's utmp holds (written there through the
    control port, and what the guest's who(1) shows), with its login time in milliseconds."""
    login_s, login_us = int(time.time()) - 3600, 250000
    record = base64.b64encode(_utmp_record("lvtester", "pts/7", login_s, login_us)).decode()
    ctx.sh(f"echo {record} | base64 -d > /run/utmp")
    try:
        who = ctx.sh("who").split()
        ctx.expect(who[:2] == ["lvtester", "pts/7"], f"the guest's who does not show the login: {who}")
        got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--user"), "user.")
        expected_ms = login_s * 1000 + login_us // 1000
        ctx.expect(got.get("user.count") == "1" and got.get("user.0.name") == "lvtester",
                   f"virsh guestinfo --user: {got}")
        ctx.expect(abs(int(got.get("user.0.login-time", "0")) - expected_ms) <= 1,
                   f"login time {got.get('user.0.login-time')} ms, utmp says {expected_ms}")
    finally:
        ctx.sh("rm -f /run/utmp")


def _guest_block_mounts(ctx):
    """{mountpoint: (device, fstype)} for the guest's mounts of block devices."""
    mounts = {}
    for line in ctx.sh("cat /proc/mounts").splitlines():
        device, mountpoint, fstype = line.split()[:3]
        if device.startswith("/dev/"):
            mounts[mountpoint] = (device, fstype)
    return mounts


@check("guest-get-fsinfo")
def guestinfo_filesystem_matches_guest_mounts_and_statfs(ctx):
    """virsh guestinfo --filesystem: the guest's block-device mounts (ext4 on vda at
    /mnt/data), their sizes as statfs gives them, and the disk's libvirt alias vda."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--filesystem"), "fs.")
    mounts = _guest_block_mounts(ctx)
    count = int(got.get("fs.count", "-1"))
    reported = {got.get(f"fs.{i}.mountpoint"): i for i in range(count)}
    ctx.expect(set(reported) == set(mounts), f"mount points {sorted(reported)}, the guest has {sorted(mounts)}: {got}")
    i = reported["/mnt/data"]
    ctx.expect(got.get(f"fs.{i}.fstype") == "ext4" and got.get(f"fs.{i}.name") == "vda",
               f"/mnt/data reported as {got.get(f'fs.{i}.name')} {got.get(f'fs.{i}.fstype')}")
    ctx.expect(got.get(f"fs.{i}.disk.0.alias") == "vda", f"disk alias {got.get(f'fs.{i}.disk.0.alias')}, expected vda")
    # 7.2: used = (blocks - bfree) * frsize, total = used + bavail * frsize.
    frsize, blocks, bfree, bavail = map(int, ctx.sh("sync; stat -f -c '%S %b %f %a' /mnt/data").split())
    used, total = (blocks - bfree) * frsize, (blocks - bfree + bavail) * frsize
    ctx.expect(got.get(f"fs.{i}.used-bytes") == str(used) and got.get(f"fs.{i}.total-bytes") == str(total),
               f"sizes used {got.get(f'fs.{i}.used-bytes')} total {got.get(f'fs.{i}.total-bytes')}, "
               f"statfs gives used {used} total {total}")


@check("guest-get-fsinfo")
def domfsinfo_lists_the_data_disk(ctx):
    """virsh domfsinfo: one row per guest block mount: /mnt/data, vda, ext4, target vda."""
    rows = [line.split() for line in ctx.vs("domfsinfo", ctx.dom.name).splitlines()[2:] if line.strip()]
    mounts = _guest_block_mounts(ctx)
    ctx.expect(sorted(r[0] for r in rows) == sorted(mounts), f"domfsinfo rows {rows}, the guest mounts {mounts}")
    ctx.expect(["/mnt/data", "vda", "ext4", "vda"] in rows, f"no row '/mnt/data vda ext4 vda' in {rows}")


@check("guest-get-disks")
def guestinfo_disk_matches_guest_block_devices(ctx):
    """virsh guestinfo --disk: the guest's block devices from /sys/block, vda with its
    libvirt alias and serial."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--disk"), "disk.")
    devices = set("/dev/" + d for d in ctx.sh("ls /sys/block").split())
    count = int(got.get("disk.count", "-1"))
    names = {got.get(f"disk.{i}.name"): i for i in range(count)}
    ctx.expect(set(names) == devices, f"disks {sorted(names)}, the guest's /sys/block has {sorted(devices)}: {got}")
    i = names["/dev/vda"]
    ctx.expect(got.get(f"disk.{i}.partition") == "no" and got.get(f"disk.{i}.alias") == "vda",
               f"/dev/vda: partition {got.get(f'disk.{i}.partition')}, alias {got.get(f'disk.{i}.alias')}")
    # 7.2 takes the serial from udev's database, which this guest (no udev) does not have:
    # a serial is optional, but one that is reported must be the disk's.
    serial = ctx.sh("cat /sys/block/vda/serial").strip()
    ctx.expect(serial == "lvtest-data", f"the guest's sysfs gives vda the serial {serial!r}, not the domain's")
    reported = got.get(f"disk.{i}.serial")
    ctx.expect(reported in (None, serial), f"serial {reported!r}, the guest's sysfs says {serial!r}")
    if reported is None:
        ctx.notes.append("no serial reported")


def _guest_addresses(ctx):
    """{(ifname, mac): {"addr/prefix", ...}} for IPv4, from the guest's ip(8) and sysfs."""
    result = {}
    for line in ctx.sh("ip -o -4 addr show").splitlines():
        parts = line.split()
        name, cidr = parts[1], parts[3]
        mac = ctx.sh(f"cat /sys/class/net/{name}/address").strip()
        result.setdefault((name, mac), set()).add(cidr)
    return result


@check("guest-network-get-interfaces")
def domifaddr_agent_matches_guest_addresses(ctx):
    """virsh domifaddr --source agent --full: every IPv4 address of the guest (ip -4 addr),
    on the interface and MAC the guest's sysfs gives, eth0's MAC being the domain's."""
    out = ctx.vs("domifaddr", ctx.dom.name, "--source", "agent", "--full")
    got = {}
    for line in out.splitlines()[2:]:
        parts = line.split()
        if len(parts) == 4 and parts[2] == "ipv4":
            got.setdefault((parts[0], parts[1]), set()).add(parts[3])
    expected = _guest_addresses(ctx)
    ctx.expect(got == expected, f"domifaddr (IPv4): {got}\nthe guest: {expected}")
    ctx.expect(("eth0", "52:54:00:51:67:a1") in got, f"eth0 with the domain's MAC missing: {got}")


@check("guest-network-get-interfaces")
def guestinfo_interface_matches_guest_addresses(ctx):
    """virsh guestinfo --interface: names, MACs and IPv4 addresses as the guest has them."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--interface"), "if.")
    reported = {}
    for i in range(int(got.get("if.count", "0"))):
        key = (got.get(f"if.{i}.name"), got.get(f"if.{i}.hwaddr"))
        for j in range(int(got.get(f"if.{i}.addr.count", "0"))):
            if got.get(f"if.{i}.addr.{j}.type") == "ipv4":
                reported.setdefault(key, set()).add(f"{got[f'if.{i}.addr.{j}.addr']}/{got[f'if.{i}.addr.{j}.prefix']}")
    expected = _guest_addresses(ctx)
    ctx.expect(reported == expected, f"guestinfo --interface (IPv4): {reported}\nthe guest: {expected}")


@check("guest-get-load", virsh_option=("guestinfo", "--load"))
def guestinfo_load_matches_proc_loadavg(ctx):
    """virsh guestinfo --load: the guest's /proc/loadavg. N/A with a virsh that has no --load
    (libvirt before 11.0, such as Debian 12's 9.0): that client cannot ask."""
    got = _fields(ctx.vs("guestinfo", ctx.dom.name, "--load"), "load.")
    actual = [float(x) for x in ctx.sh("cat /proc/loadavg").split()[:3]]
    reported = [float(got.get(f"load.{k}", "nan")) for k in ("1m", "5m", "15m")]
    ctx.expect(all(abs(a - b) < 0.5 for a, b in zip(actual, reported)), f"load {reported}, the guest {actual}")


def _cpu1_online(ctx):
    return ctx.sh("cat /sys/devices/system/cpu/cpu1/online").strip()


def _online_cpus(ctx):
    return ctx.sh("cat /sys/devices/system/cpu/online").strip()


@check("guest-get-vcpus")
def guestvcpus_matches_guest_sysfs(ctx):
    """virsh guestvcpus: vcpus 0-1, online as the guest's /sys/devices/system/cpu/online,
    offlinable what has an online file (cpu1 only)."""
    got = key_values(ctx.vs("guestvcpus", ctx.dom.name))
    offlinable = ",".join(c for c in ("0", "1") if ctx.sh(f"test -e /sys/devices/system/cpu/cpu{c}/online && echo y "
                                                           "|| echo n").strip() == "y")
    expected = {"vcpus": "0-1", "online": _online_cpus(ctx), "offlinable": offlinable}
    ctx.expect(got == expected, f"virsh guestvcpus: {got}, the guest's sysfs: {expected}")


@check("guest-get-vcpus", "guest-set-vcpus")
def setvcpus_guest_takes_cpu1_offline_and_back(ctx):
    """virsh setvcpus --guest 1 takes cpu1 offline in the guest (sysfs), 2 brings it back;
    guestvcpus --disable/--enable on cpu1 do the same."""
    try:
        ctx.vs("setvcpus", ctx.dom.name, "1", "--guest")
        ctx.expect(_online_cpus(ctx) == "0", f"after setvcpus --guest 1 the guest has {_online_cpus(ctx)} online")
        ctx.vs("setvcpus", ctx.dom.name, "2", "--guest")
        ctx.expect(_online_cpus(ctx) == "0-1", f"after setvcpus --guest 2 the guest has {_online_cpus(ctx)} online")
        ctx.vs("guestvcpus", ctx.dom.name, "--cpulist", "1", "--disable")
        ctx.expect(_cpu1_online(ctx) == "0", "guestvcpus --cpulist 1 --disable left cpu1 online")
        ctx.vs("guestvcpus", ctx.dom.name, "--cpulist", "1", "--enable")
        ctx.expect(_cpu1_online(ctx) == "1", "guestvcpus --cpulist 1 --enable left cpu1 offline")
    finally:
        ctx.sh("echo 1 > /sys/devices/system/cpu/cpu1/online")


def _start_writer(ctx, tag):
    """A writer on the data disk, in the background: it marks done once its write returns."""
    ctx.sh(f"rm -f /run/qga-test/{tag}.done; "
           f"( echo {tag} > /mnt/data/{tag} && echo ok > /run/qga-test/{tag}.done ) > /dev/null 2>&1 &")


def _writer_done(ctx, tag, wait):
    deadline = time.monotonic() + wait
    while True:
        if ctx.sh(f"test -e /run/qga-test/{tag}.done && echo y || echo n").strip() == "y":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)


def _freeze_then_thaw(ctx, freeze_argv, tag):
    out = ctx.vs("domfsfreeze", ctx.dom.name, *freeze_argv)
    try:
        ctx.expect("Froze 1 filesystem(s)" in out, f"domfsfreeze said {out.strip()!r}; the guest has one data mount")
        status = ctx.virsh.agent(ctx.dom.name, "guest-fsfreeze-status")
        ctx.expect(status == "frozen", f"guest-fsfreeze-status {status!r} while frozen")
        _start_writer(ctx, tag)
        ctx.expect(not _writer_done(ctx, tag, 2), "a write to /mnt/data completed while libvirt said it was frozen")
    finally:
        thawed = ctx.vs("domfsthaw", ctx.dom.name, check=False)
    ctx.expect("Thawed 1 filesystem(s)" in thawed, f"domfsthaw said {thawed.strip()!r}")
    ctx.expect(_writer_done(ctx, tag, 10), "the blocked write did not complete after domfsthaw")
    ctx.expect(ctx.sh(f"cat /mnt/data/{tag}").strip() == tag, "the written file does not hold what was written")


@check("guest-fsfreeze-freeze", "guest-fsfreeze-thaw", "guest-fsfreeze-status")
def domfsfreeze_blocks_a_writer_until_domfsthaw(ctx):
    """virsh domfsfreeze: a write to the guest's data disk blocks (2 s) until virsh domfsthaw,
    then completes."""
    _freeze_then_thaw(ctx, [], "freeze-all")


@check("guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fsfreeze-status")
def domfsfreeze_mountpoint_blocks_a_writer_until_domfsthaw(ctx):
    """virsh domfsfreeze --mountpoint /mnt/data: as above, through guest-fsfreeze-freeze-list."""
    _freeze_then_thaw(ctx, ["--mountpoint", "/mnt/data"], "freeze-list")


def _allocated(ctx):
    return ctx.dom.disk.stat().st_blocks * 512


@check("guest-fstrim")
def domfstrim_gives_space_back_to_the_host_image(ctx):
    """16 MiB written and deleted in the guest: deleting frees nothing in the host's sparse
    image, virsh domfstrim frees at least 12 MiB of it (discard='unmap')."""
    ctx.sh("dd if=/dev/urandom of=/mnt/data/trim-me bs=1M count=16 2>/dev/null && sync", timeout=120)
    written = _allocated(ctx)
    ctx.sh("rm /mnt/data/trim-me && sync")
    deleted = _allocated(ctx)
    ctx.expect(written - deleted < 4 * MIB, f"the image shrank {(written - deleted) / MIB:.1f} MiB on delete alone")
    ctx.vs("domfstrim", ctx.dom.name, timeout=180)
    trimmed = _allocated(ctx)
    ctx.notes.append(f"image {written / MIB:.1f} -> {deleted / MIB:.1f} -> {trimmed / MIB:.1f} MiB")
    ctx.expect(deleted - trimmed >= 12 * MIB, f"domfstrim freed only {(deleted - trimmed) / MIB:.1f} MiB")


@check("guest-set-time", "guest-get-time")
def domtime_set_sync_and_now_move_the_guest_clock_and_rtc(ctx):
    """virsh domtime --time (a day ahead) moves the guest's date and QEMU's RTC; with the guest
    clock put 3 days off behind the agent's back, domtime --sync brings it back to the RTC;
    domtime --now puts both back to the host's time."""
    try:
        target = int(time.time()) + DAY
        ctx.vs("domtime", ctx.dom.name, "--time", str(target))
        set_at = time.monotonic()
        ctx.expect(abs(ctx.guest_epoch() - target) <= 3, f"guest date {ctx.guest_epoch()}, set to {target}")
        rtc = ctx.rtc_epoch()
        ctx.expect(abs(rtc - (target + time.monotonic() - set_at)) <= 5, f"QEMU's RTC {rtc}, expected about {target}")
        ctx.sh(f"date -s @{int(time.time()) - 3 * DAY} > /dev/null")
        ctx.vs("domtime", ctx.dom.name, "--sync")
        guest, rtc = ctx.guest_epoch(), ctx.rtc_epoch()
        ctx.expect(abs(guest - rtc) <= 3, f"after --sync the guest's date is {guest}, QEMU's RTC {rtc}")
    finally:
        ctx.vs("domtime", ctx.dom.name, "--now", check=False)
    now = time.time()
    guest, rtc = ctx.guest_epoch(), ctx.rtc_epoch()
    ctx.expect(abs(guest - now) <= 3 and abs(rtc - now) <= 5, f"after --now: guest {guest}, RTC {rtc}, host {now:.0f}")


def _boot_id(ctx):
    return ctx.sh("cat /proc/sys/kernel/random/boot_id").strip()


@check("guest-shutdown")
def reboot_mode_agent_boots_the_guest_again(ctx):
    """virsh reboot --mode agent: the guest boots again (new boot id, the data disk mounted
    as it was, not re-made), the domain stays running, and the agent answers libvirt."""
    before = _boot_id(ctx)
    ctx.sh("echo token > /mnt/data/reboot-token && sync")
    ctx.vs("reboot", ctx.dom.name, "--mode", "agent")
    started = time.monotonic()
    deadline = started + 120
    while True:
        try:
            ctx.dom.control.wait_ready(10)
            if _boot_id(ctx) != before:
                break
        except Exception:   # the port goes away while the guest resets
            pass
        ctx.expect(time.monotonic() < deadline, "no new boot within 120 s of virsh reboot --mode agent")
        time.sleep(1)
    ctx.dom.wait_agent(90)
    ctx.expect(ctx.dom.running(), f"domain state after reboot: {ctx.dom.state()}")
    ctx.expect(ctx.sh("cat /run/qga-test/data-disk").strip() == "existing", "the data disk was re-made after reboot")
    ctx.expect(ctx.sh("cat /mnt/data/reboot-token").strip() == "token", "the token written before reboot is gone")
    ctx.notes.append(f"rebooted in {time.monotonic() - started:.1f} s")


@check("guest-shutdown")
def shutdown_mode_agent_powers_the_guest_off(ctx):
    """virsh shutdown --mode agent: the guest runs its /sbin/shutdown -P (its console says so)
    and libvirt sees the domain shut off by the guest."""
    ctx.vs("shutdown", ctx.dom.name, "--mode", "agent")
    deadline = time.monotonic() + 90
    while ctx.dom.state() != "shut off":
        ctx.expect(time.monotonic() < deadline, f"domain still {ctx.dom.state()} 90 s after shutdown --mode agent")
        time.sleep(1)
    reason = ctx.vs("domstate", ctx.dom.name, "--reason").strip()
    ctx.expect(reason == "shut off (shutdown)", f"domstate --reason: {reason!r}")
    console = "\n".join(ctx.dom.console_tail(200))
    ctx.expect("qga-test: shutdown -h -P +0" in console, "the guest's console shows no 'shutdown -h -P +0'")
