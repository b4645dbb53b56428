"""Guest facts: os-release, host name, time zone and logged-in users, each put into the guest
before the agent starts and compared with what the guest itself shows (its files read back
through the control port, its own `hostname`, `date`, `uname` and `who`).

The agent runs here with the guest-file-* commands blocked in its config file, so qemu-ga-rs's
front has its empty filesystem view and sees only the read-only binds of the files these
commands read; the reference reads the guest's files directly.

These checks share one guest with checks_storage_info.py (FACTS_KIND): it has a second
virtio disk, with a serial and two partitions, that only the storage checks use."""

import base64
import struct
from pathlib import Path

from .checks_audit import _restart_agent_with_conf
from .harness import check, own_guest

FACTS_KIND = "pvh-facts"
FACTS_SERIAL = "qga-facts"
FACTS_DISK_ID = "qgafacts0"
FACTS_DISK_BYTES = 96 << 20
# Partition 1 holds ext4 (the fsinfo and disks checks), partition 2 the hung mount.
PARTITIONS = [(2048, 64 << 11), (2048 + (64 << 11), (FACTS_DISK_BYTES >> 9) - 2048 - (64 << 11) - 8)]

FILE_COMMANDS = ("guest-file-open", "guest-file-close", "guest-file-read", "guest-file-write",
                 "guest-file-seek", "guest-file-flush")
NO_FILE_COMMANDS_CONF = "[general]\\nblock-rpcs=" + ",".join(FILE_COMMANDS) + "\\n"

ZONE = "Asia/Kolkata"          # +05:30 all year: the offset does not depend on the date
ZONE_FILE = Path("/usr/share/zoneinfo") / ZONE
HOST_NAME = "qga-facts-guest"
USR_LIB_OS_RELEASE = ('NAME="Facts Linux"\nID=factslinux\nPRETTY_NAME="Facts Linux 3.1 (usr lib)"\n'
                      'VERSION="3.1 (usr lib)"\nVERSION_ID=3.1\nVARIANT="Base Variant"\nVARIANT_ID=base\n')
ETC_OS_RELEASE = ('NAME="Etc Linux"\nID=etclinux\nPRETTY_NAME="Etc Linux 9 (etc)"\nVERSION="9 (etc)"\n'
                  'VERSION_ID=9\nVARIANT="Server Edition"\nVARIANT_ID=server\n')
OS_RELEASE_KEYS = {"ID": "id", "NAME": "name", "PRETTY_NAME": "pretty-name", "VERSION": "version",
                   "VERSION_ID": "version-id", "VARIANT": "variant", "VARIANT_ID": "variant-id"}

# Logged-in users as login(1) and sshd record them: two sessions of one user (the earliest
# login counts) and one of another, plus records that are not user sessions.
UTMP_PATH = "/run/utmp"        # /var/run is a link to /run in the guest, as on Debian
USER_PROCESS, LOGIN_PROCESS, BOOT_TIME = 7, 6, 2
UTMP_RECORDS = [
    (BOOT_TIME, 0, "~", "~~", "reboot", 1700000000, 0),
    (USER_PROCESS, 401, "ttyS0", "S0", "alice", 1700000100, 250000),
    (USER_PROCESS, 402, "pts/0", "ts/0", "bob", 1700000200, 500000),
    (LOGIN_PROCESS, 403, "tty2", "2", "LOGIN", 1700000300, 0),
    (USER_PROCESS, 404, "pts/1", "ts/1", "alice", 1700000050, 750000),
]


def utmp_record(kind, pid, line, ident, user, sec, usec):
    """One x86-64 glibc `struct utmp` (384 bytes)."""
    return struct.pack("<hxxi32s4s32s256shhiii16s20x", kind, pid, line.encode(),
                       ident.encode(), user.encode(), b"", 0, 0, 0, sec, usec, b"")


def parse_utmp(data):
    """(type, user, tv_sec, tv_usec) of every record, as the guest's file holds them."""
    records = []
    for offset in range(0, len(data) - 383, 384):
        kind, = struct.unpack_from("<h", data, offset)
        user = data[offset + 44:offset + 76].split(b"\0")[0].decode()
        sec, usec = struct.unpack_from("<ii", data, offset + 340)
        records.append((kind, user, sec, usec))
    return records


def partition_table():
    """An MBR with the PARTITIONS (type 0x83), so the guest's kernel shows vdX1 and vdX2."""
    mbr = bytearray(512)
    for index, (start, sectors) in enumerate(PARTITIONS):
        mbr[446 + 16 * index:462 + 16 * index] = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0x83,
                                                              b"\xfe\xff\xff", start, sectors)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def facts_guest(ctx):
    def extra_args(workdir):
        image = workdir / "facts.img"
        with open(image, "wb") as disk:
            disk.write(partition_table())
            disk.truncate(FACTS_DISK_BYTES)
        return ["-drive", f"file={image},format=raw,if=none,id=facts0",
                "-device", f"virtio-blk-pci,drive=facts0,id={FACTS_DISK_ID},serial={FACTS_SERIAL}"]
    return own_guest(ctx, FACTS_KIND, extra_args)


def guest_file(ctx, path):
    return base64.b64decode("".join(ctx.guest_sh(f"base64 {path}").split()))


def put_guest_file(ctx, path, data):
    encoded = base64.b64encode(data).decode()
    ctx.guest_sh(f"mkdir -p {Path(path).parent} && echo {encoded} | base64 -d > {path}.new && mv {path}.new {path}")


def parse_os_release(text):
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def expect_os_release(ctx, path):
    """guest-get-osinfo carries the os-release fields of `path` (read back from the guest) and
    the guest kernel's uname."""
    info = ctx.call("guest-get-osinfo")
    wanted = {field: parse_os_release(guest_file(ctx, path).decode())[key] for key, field in OS_RELEASE_KEYS.items()}
    uname = ctx.guest_sh("uname -r; uname -v; uname -m").split("\n")
    wanted.update({"kernel-release": uname[0], "kernel-version": uname[1], "machine": uname[2]})
    ctx.expect(info == wanted, f"guest-get-osinfo disagrees with the guest's {path} and uname:\n"
                               f"  agent {info}\n  guest {wanted}")


@check(boot="none")
def guest_facts_match_the_guests_own_files_and_tools(ctx):
    """Put into the guest before the agent starts: /usr/lib/os-release (no /etc/os-release), a
    host name, /etc/localtime linked to Asia/Kolkata and a utmp with two sessions of one user, one of
    another and records that are no sessions. guest-get-osinfo is that os-release plus the
    guest's uname; guest-get-host-name is the guest's `hostname`; guest-get-timezone is the
    zone and offset the guest's `date` shows; guest-get-users is each user of a USER_PROCESS
    record once, in file order, with the earliest login time, the users the guest's `who`
    lists. Then an /etc/os-release, written before a restart, overrides /usr/lib's. (qemu-ga-rs's
    front reads these through its empty view: the guest runs from its initramfs, whose root
    cannot be pivoted away, which the view handles.)"""
    facts_guest(ctx)
    rc, _ = ctx.guest_sh_rc("test -e /etc/os-release")
    ctx.expect(rc != 0, "the base guest already has an /etc/os-release; this check needs it absent")
    put_guest_file(ctx, "/usr/lib/os-release", USR_LIB_OS_RELEASE.encode())
    # As Debian has it: /etc/localtime a link to the zone's file (GLib, which 7.2 uses, takes
    # the zone from the link).
    put_guest_file(ctx, str(ZONE_FILE), ZONE_FILE.read_bytes())
    ctx.guest_sh(f"ln -sf {ZONE_FILE} /etc/localtime")
    put_guest_file(ctx, UTMP_PATH, b"".join(utmp_record(*r) for r in UTMP_RECORDS))
    ctx.guest_sh(f"hostname {HOST_NAME}")
    try:
        _restart_agent_with_conf(ctx, NO_FILE_COMMANDS_CONF)
        refused = ctx.guest.agent.execute("guest-file-open", {"path": "/etc/os-release"})
        ctx.expect("error" in refused, f"guest-file-open should be blocked by the config file; got {refused}")
        if not ctx.agent_spec.is_reference:
            # The front's root is its empty view: the guest's programs are not in it.
            view = ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; root=/proc/$(agent_pid)/root; "
                                "test -e $root/bin/busybox && echo guest-root; ls -A $root")
            ctx.expect("guest-root" not in view and "proc" in view.split(),
                       f"qemu-ga-rs's front should see its empty view, not the guest's root: {view.split()}")

        expect_os_release(ctx, "/usr/lib/os-release")

        name = ctx.call("guest-get-host-name")
        guest_name = ctx.guest_sh("hostname").strip()
        ctx.expect(guest_name == HOST_NAME, f"the guest's hostname reads {guest_name!r}, not {HOST_NAME!r}")
        ctx.expect(name == {"host-name": guest_name}, f"guest-get-host-name {name} != the guest's {guest_name!r}")

        zone = ctx.call("guest-get-timezone")
        abbreviation, numeric = ctx.guest_sh("date +'%Z %z'").split()
        sign = -1 if numeric[0] == "-" else 1
        offset = sign * (int(numeric[1:3]) * 3600 + int(numeric[3:5]) * 60)
        ctx.expect((abbreviation, offset) == ("IST", 19800),
                   f"the guest's date shows {abbreviation} {numeric} for {ZONE}, not IST +0530")
        ctx.expect(zone == {"zone": abbreviation, "offset": offset},
                   f"guest-get-timezone {zone} != the guest's date: {abbreviation} {numeric}")

        users = ctx.call("guest-get-users")
        records = [r for r in parse_utmp(guest_file(ctx, UTMP_PATH)) if r[0] == USER_PROCESS]
        wanted = []
        for _, user, sec, usec in records:
            login = sec + usec / 1e6
            known = [u for u in wanted if u["user"] == user]
            if known:
                known[0]["login-time"] = min(known[0]["login-time"], login)
            else:
                wanted.append({"user": user, "login-time": login})
        ctx.expect(len(wanted) == 2, f"the guest's utmp does not hold the records written: {records}")
        ctx.expect(users == wanted, f"guest-get-users disagrees with the guest's utmp:\n  agent {users}\n  utmp  {wanted}")
        who = sorted({line.split()[0] for line in ctx.guest_sh("who").splitlines() if line.strip()})
        ctx.expect(who == sorted(u["user"] for u in users), f"the guest's who lists {who}; the agent {users}")
        ctx.note(f"{len(users)} users, zone {abbreviation} {offset}, host {guest_name}")

        # /etc/os-release overrides /usr/lib/os-release; read when the agent starts.
        put_guest_file(ctx, "/etc/os-release", ETC_OS_RELEASE.encode())
        _restart_agent_with_conf(ctx, NO_FILE_COMMANDS_CONF)
        expect_os_release(ctx, "/etc/os-release")
    finally:
        ctx.guest_sh(f"rm -f /etc/os-release /usr/lib/os-release /etc/localtime {ZONE_FILE} {UTMP_PATH}")
        _restart_agent_with_conf(ctx, None)
