"""Build the guest's initramfs: busybox, kernel modules, mke2fs, the agent and the test scripts.

Binaries are copied with the shared libraries ldd names, stored at the paths ldd prints, so
the dynamic loader finds them in the guest exactly as on the host.
"""

import re
import subprocess
from pathlib import Path

from . import hostenv, kmodules
from .cpio import CpioArchive

GUEST_DIR = Path(__file__).resolve().parent.parent / "guest"

# Applets never linked: /init and /sbin/shutdown are the suite's own scripts.
SKIPPED_APPLETS = {"init", "linuxrc", "shutdown"}

PASSWD = """root:x:0:0:root:/root:/bin/sh
qemu-ga-rs:x:990:990:qemu-ga-rs unprivileged front:/nonexistent:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
qgatest:x:1001:1001:account checks' test user:/home/qgatest:/bin/sh
"""
GROUP = """root:x:0:
qemu-ga-rs:x:990:
nogroup:x:65534:
qgatest:x:1001:
backup-readers:x:1002:nobody,qgatest
"""
# The account checks set passwords here (through the stand-in guest/chpasswd) and read them
# back; qgatest starts locked.
SHADOW = """root:*:19000:0:99999:7:::
qemu-ga-rs:!:19000::::::
nobody:!:19000::::::
qgatest:!:19000:0:99999:7:::
"""
# The test user's home; the checks give it to qgatest (the image's files are all root's).
TEST_HOME = "/home/qgatest"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
# The RTC keeps UTC (QEMU's -rtc base=utc); busybox hwclock reads this to know it.
ADJTIME = "0.0 0 0.0\n0\nUTC\n"


def shared_libraries(binary):
    """Paths of the shared libraries (and the ELF interpreter) a binary loads, per ldd."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if result.returncode != 0 or "not a dynamic executable" in result.stdout + result.stderr:
        return []
    libs = []
    for line in result.stdout.splitlines():
        line = line.strip()
        match = re.match(r"\S+ => (/\S+) \(0x", line) or re.match(r"(/\S+) \(0x", line)
        if match:
            libs.append(match.group(1))
        elif "=> not found" in line:
            raise hostenv.HostSetupError(f"{binary}: ldd cannot resolve {line}")
    return libs


def add_binary(archive, guest_path, host_path, perm=0o755):
    # Reading follows host symlinks (we want the real bytes); the image gets a plain file.
    archive.file(guest_path, Path(host_path).read_bytes(), perm)
    for lib in shared_libraries(host_path):
        if not archive.has(lib):
            archive.file(lib, Path(lib).read_bytes(), 0o755)


def add_busybox(archive, with_hwclock):
    busybox = hostenv.require_tool("busybox")
    add_binary(archive, "/bin/busybox", busybox)
    listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    for applet_path in listing.stdout.split():
        name = applet_path.rsplit("/", 1)[-1]
        if name in SKIPPED_APPLETS or name == "busybox":
            continue
        if name == "hwclock" and not with_hwclock:
            # qemu-ga-rs must set the RTC itself; only the reference agent gets hwclock.
            continue
        guest_path = "/" + applet_path
        if not archive.has(guest_path):
            archive.symlink(guest_path, "/bin/busybox")


def add_guest_scripts(archive):
    archive.file("/init", (GUEST_DIR / "init").read_bytes(), 0o755)
    archive.file("/sbin/shutdown", (GUEST_DIR / "shutdown").read_bytes(), 0o755)
    for name in ("control", "agent-supervisor"):
        archive.file(f"/usr/libexec/qga-test/{name}", (GUEST_DIR / name).read_bytes(), 0o755)
    archive.file("/usr/libexec/qga-test/lib.sh", (GUEST_DIR / "lib.sh").read_bytes(), 0o644)
    # Before busybox's applets: busybox has no chpasswd, this stand-in takes its place in
    # /usr/sbin, the first of the launcher's fixed program directories.
    archive.file("/usr/sbin/chpasswd", (GUEST_DIR / "chpasswd").read_bytes(), 0o755)


def add_system_files(archive):
    for directory in ("/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/root", "/var", "/etc/qemu"):
        archive.directory(directory)
    archive.directory("/tmp", 0o1777)
    archive.symlink("/var/run", "/run")
    # The kernel opens /dev/console for init's stdio before /init mounts devtmpfs.
    archive.char_device("/dev/console", 5, 1)
    archive.file("/etc/passwd", PASSWD)
    archive.file("/etc/group", GROUP)
    archive.file("/etc/shadow", SHADOW, 0o640)
    archive.directory(TEST_HOME, 0o755)
    archive.file("/etc/nsswitch.conf", NSSWITCH)
    archive.file("/etc/adjtime", ADJTIME)


def add_mke2fs(archive):
    mke2fs = Path("/usr/sbin/mke2fs") if Path("/usr/sbin/mke2fs").exists() else Path("/sbin/mke2fs")
    if not mke2fs.exists():
        raise hostenv.HostSetupError("mke2fs not found: install e2fsprogs")
    add_binary(archive, "/usr/sbin/mke2fs", mke2fs)
    if Path("/etc/mke2fs.conf").exists():
        archive.file("/etc/mke2fs.conf", Path("/etc/mke2fs.conf").read_bytes())


def add_modules(archive, release):
    names = []
    for filename, data in kmodules.module_set(release):
        archive.file(f"/lib/modules/{filename}", data)
        names.append(filename)
    archive.file("/etc/qga-test/modules", "\n".join(names) + "\n")


def add_agent(archive, agent):
    for guest_path, host_path in agent.binaries.items():
        add_binary(archive, guest_path, host_path)
    if agent.policy:
        archive.file(agent.policy[1], Path(agent.policy[0]).read_bytes())
    archive.file("/etc/qga-test/agent.conf", agent.agent_conf())


def build(agent, release, out_path, extra_files=None):
    """extra_files: {guest path: bytes or str}, added last (another suite's guest files, such
    as the libvirt suite's /etc/os-release); a path the base image already has is an error."""
    archive = CpioArchive()
    add_system_files(archive)
    add_guest_scripts(archive)
    add_busybox(archive, with_hwclock=agent.needs_hwclock)
    add_mke2fs(archive)
    add_modules(archive, release)
    add_agent(archive, agent)
    for guest_path, data in (extra_files or {}).items():
        if archive.has(guest_path):
            raise hostenv.HostSetupError(f"initramfs extra {guest_path} would replace a file of the base image")
        archive.file(guest_path, data)
    out_path = Path(out_path)
    out_path.write_bytes(archive.serialise())
    return out_path
