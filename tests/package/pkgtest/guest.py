"""One QEMU guest booting a Debian root file system with systemd as PID 1.

The kernel is the host's Debian kernel (the uncompressed vmlinux, booted through QEMU's PVH
entry, as in tests/vm); a small initramfs loads the modules needed to reach the root disk
and switches to systemd. The guest-agent port has a device id, so QMP can unplug it and
plug it back; a second port carries the suite's control loop.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

from vmtest import hostenv, initramfs
from vmtest.control import ControlClient
from vmtest.cpio import CpioArchive
from vmtest.qga import AgentClient, AgentError
from vmtest.qmp import QmpClient

GUEST_DIR = Path(__file__).resolve().parent.parent / "guest"
AGENT_PORT = "org.qemu.guest_agent.0"
AGENT_PORT_ID = "qgaport"
CONTROL_PORT = "org.qemu-ga-rs.test.0"


def build_initramfs(release, out_path):
    archive = CpioArchive()
    for directory in ("/proc", "/sys", "/dev", "/newroot"):
        archive.directory(directory)
    archive.char_device("/dev/console", 5, 1)
    archive.file("/init", (GUEST_DIR / "init").read_bytes(), 0o755)
    initramfs.add_busybox(archive, with_hwclock=False)
    initramfs.add_modules(archive, release)
    Path(out_path).write_bytes(archive.serialise())
    return Path(out_path)


def agent_port_device_args():
    """device_add arguments of the guest-agent port (also its -device on the command line)."""
    return {"driver": "virtserialport", "bus": "vser0.0", "chardev": "qga0", "name": AGENT_PORT, "id": AGENT_PORT_ID}


class Guest:
    def __init__(self, workdir, kernel, initrd, disk, name, accel="tcg"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kernel, self.initrd, self.disk, self.name, self.accel = kernel, initrd, Path(disk), name, accel
        self.console_log = self.workdir / f"{name}-console.log"
        self.qemu_log = self.workdir / f"{name}-qemu.log"
        self.proc = self.qmp = self.agent = self.control = None
        self.started_at = None

    def sock(self, what):
        return self.workdir / f"{self.name}-{what}.sock"

    def argv(self):
        port = ",".join(f"{k}={v}" for k, v in agent_port_device_args().items() if k != "driver")
        return [
            hostenv.QEMU_BINARY, "-machine", "pc", "-accel", self.accel,
            "-cpu", "qemu64" if self.accel == "tcg" else "host",
            "-smp", "2", "-m", "512", "-nodefaults", "-no-user-config", "-display", "none",
            "-rtc", "base=utc",
            # S3 offered, so guest-suspend-ram has something to do.
            "-global", "PIIX4_PM.disable_s3=0",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd),
            # No "quiet": the console then shows systemd's own shutdown messages.
            "-append", "console=ttyS0 mitigations=off systemd.show_status=1",
            "-chardev", f"file,id=console,path={self.console_log}", "-serial", "chardev:console",
            "-chardev", f"socket,id=qmp,path={self.sock('qmp')},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=qga0,path={self.sock('qga')},server=on,wait=off",
            "-device", f"virtserialport,{port}",
            "-chardev", f"socket,id=ctl0,path={self.sock('ctl')},server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=ctl0,name={CONTROL_PORT}",
            "-drive", f"file={self.disk},format=raw,if=none,id=root0,discard=unmap",
            "-device", "virtio-blk-pci,drive=root0",
        ]

    def start(self):
        for what in ("qmp", "qga", "ctl"):
            self.sock(what).unlink(missing_ok=True)
        self.console_log.write_bytes(b"")
        with open(self.qemu_log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        self.qmp = QmpClient(self.sock("qmp"), alive=self.running)
        self.agent = AgentClient(self.sock("qga"), "guest agent")
        self.agent.connect()
        self.control = ControlClient(self.sock("ctl"))

    def wait_first_answer(self, timeout=240):
        """Seconds from QEMU's start to the agent's first complete handshake. Attempts are
        short so the figure is not rounded up to a long retry interval. While no agent has
        the port open QEMU stops reading the chardev, so a send can time out: then start
        again on a fresh connection."""
        deadline = self.started_at + timeout
        while True:
            try:
                self.agent.handshake(timeout=max(1.0, deadline - time.monotonic()), attempt=0.5)
                return time.monotonic() - self.started_at
            except AgentError:
                if time.monotonic() >= deadline or not self.running():
                    raise
                self.agent.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        for client in (self.agent, self.control, self.qmp):
            if client:
                client.close()
        if self.running():
            os.killpg(self.proc.pid, signal.SIGTERM)
            if self.wait_exit(10) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def console_text(self):
        try:
            return self.console_log.read_bytes().decode(errors="replace").replace("\r", "")
        except OSError:
            return ""

    def console_tail(self, count=40):
        return self.console_text().splitlines()[-count:]

    def disk_allocated(self):
        return os.stat(self.disk).st_blocks * 512
