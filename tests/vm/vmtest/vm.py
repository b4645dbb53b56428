"""One QEMU guest: its command line, its sockets, its console log and its data disk.

The guest is wired the way libvirt wires one: the agent's virtio-serial port
org.qemu.guest_agent.0 on a unix-socket chardev, plus (for the suite only) a second port
for the control loop, a second 16550 for the isa-serial transport, a QMP monitor, a sparse
raw data disk with discard=unmap, and a NIC with a fixed MAC.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

from . import hostenv
from .control import ControlClient
from .qga import AgentClient
from .qmp import QmpClient

GUEST_MAC = "52:54:00:51:67:a1"
GUEST_IPV4 = "10.0.2.15"
DATA_DISK_BYTES = 256 << 20
CONTROL_PORT_NAME = "org.qemu-ga-rs.test.0"


class Guest:
    def __init__(self, workdir, kernel, initrd, boot_kind, name, smp=2, accel="tcg"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kernel = kernel
        self.initrd = initrd
        self.boot_kind = boot_kind   # "pvh" (vmlinux) or "bzimage"
        self.name = name
        self.smp = smp
        self.accel = accel
        self.console_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        self.data_disk = self.workdir / "data.img"
        self.proc = None
        self.qmp = None
        self.agent = None
        self.serial_agent = None
        self.control = None
        self.started_at = None
        self.extra_args = []   # e.g. a vhost-vsock device for the vsock check

    def sock(self, name):
        return self.workdir / f"{name}.sock"

    def argv(self):
        cpu = "qemu64" if self.accel == "tcg" else "host"
        args = [
            hostenv.QEMU_BINARY,
            "-machine", "pc", "-accel", self.accel, "-cpu", cpu,
            "-smp", str(self.smp), "-m", "384",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-global", "PIIX4_PM.disable_s3=0",
            "-rtc", "base=utc",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd),
            "-append", "console=ttyS0 quiet mitigations=off",
            # COM1: console, captured to a file. COM2: the isa-serial agent transport.
            "-chardev", f"file,id=console,path={self.console_log}",
            "-serial", "chardev:console",
            "-chardev", f"socket,id=qgaserial,path={self.sock('qga-serial')},server=on,wait=off",
            "-serial", "chardev:qgaserial",
            "-chardev", f"socket,id=qmp,path={self.sock('qmp')},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=qga0,path={self.sock('qga')},server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
            "-chardev", f"socket,id=ctl0,path={self.sock('ctl')},server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=ctl0,name={CONTROL_PORT_NAME}",
            "-drive", f"file={self.data_disk},format=raw,if=none,id=data0,discard=unmap",
            "-device", "virtio-blk-pci,drive=data0",
            "-netdev", "user,id=net0,restrict=on",
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}",
        ]
        return args + self.extra_args

    def start(self):
        # A fresh sparse data disk per guest: the guest's /init makes ext4 on it.
        with open(self.data_disk, "wb") as disk:
            disk.truncate(DATA_DISK_BYTES)
        for stale in ("qmp", "qga", "ctl", "qga-serial"):
            self.sock(stale).unlink(missing_ok=True)
        self.console_log.write_bytes(b"")
        with open(self.qemu_log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        self.qmp = QmpClient(self.sock("qmp"), alive=self.running)
        self.agent = AgentClient(self.sock("qga"), "virtio-serial agent")
        self.agent.connect()
        self.control = ControlClient(self.sock("ctl"))

    def wait_until_up(self, timeout=120):
        """Up means: the control port answers and the agent completes the handshake."""
        self.control.wait_ready(timeout)
        remaining = max(10.0, timeout - (time.monotonic() - self.started_at))
        self.agent.handshake(timeout=remaining)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        for client in (self.agent, self.serial_agent, self.control, self.qmp):
            if client:
                client.close()
        if self.running():
            os.killpg(self.proc.pid, signal.SIGTERM)
            if self.wait_exit(10) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def console_tail(self, count=40):
        try:
            text = self.console_log.read_bytes().decode(errors="replace")
        except OSError:
            return ["(no console log)"]
        return text.replace("\r", "").splitlines()[-count:]

    def console_text(self):
        try:
            return self.console_log.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def qemu_log_tail(self, count=10):
        try:
            return self.qemu_log.read_text(errors="replace").splitlines()[-count:]
        except OSError:
            return []

    def data_disk_allocated(self):
        return os.stat(self.data_disk).st_blocks * 512
