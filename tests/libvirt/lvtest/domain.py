"""The test guest as a libvirt domain, and virsh.

The domain is the real-guest suite's guest (tests/vm: same kernel, same initramfs with the
agent under test inside, same init) described in libvirt's XML instead of a QEMU command line:
TCG, 2 vCPUs, a virtio-serial channel org.qemu.guest_agent.0 whose socket libvirt owns, a
second channel for the suite's control port (its way into the guest that does not go through
the agent), a sparse raw data disk with discard=unmap, a user-network NIC with a fixed MAC,
and the console in a file.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from xml.sax.saxutils import escape

from vmtest.control import ControlClient, ControlError
from vmtest.vm import CONTROL_PORT_NAME, DATA_DISK_BYTES, GUEST_MAC

DOMAIN_XML = """<domain type='{domtype}'>
  <name>{name}</name>
  <memory unit='MiB'>384</memory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet mitigations=off</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
      <serial>lvtest-data</serial>
    </disk>
    <interface type='user'>
      <mac address='{mac}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='{control}'/>
      <target type='virtio' name='{control_port}'/>
    </channel>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class VirshError(Exception):
    def __init__(self, argv, result):
        self.argv = argv
        self.result = result
        super().__init__(f"virsh {' '.join(argv)} failed (exit {result.returncode}): "
                         f"{(result.stderr or result.stdout).strip()}")


class Virsh:
    def __init__(self, uri):
        self.uri = uri
        self.transcript = []   # (argv, rc, stdout, stderr), for failure reports

    def run(self, *argv, timeout=90, check=True):
        result = subprocess.run(["virsh", "-c", self.uri, *argv], capture_output=True, text=True, timeout=timeout)
        self.transcript.append((argv, result.returncode, result.stdout, result.stderr))
        del self.transcript[:-12]
        if check and result.returncode != 0:
            raise VirshError(argv, result)
        return result.stdout

    def agent(self, domain, command, arguments=None, timeout=30):
        """virsh qemu-agent-command; the parsed "return" value."""
        request = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        out = self.run("qemu-agent-command", domain, json.dumps(request), "--timeout", str(timeout))
        return json.loads(out)["return"]


def key_values(text):
    """'key : value' lines (virsh guestinfo, guestvcpus) as a dict."""
    values = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            values[key.strip()] = value.strip()
    return values


class Domain:
    def __init__(self, virsh, workdir, name, kernel, initrd, accel="tcg"):
        self.virsh = virsh
        self.workdir = Path(workdir) / "guest"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.kernel = kernel
        self.initrd = initrd
        self.domtype = "qemu" if accel == "tcg" else "kvm"
        self.disk = self.workdir / "data.img"
        self.console_log = self.workdir / "console.log"
        self.control_sock = self.workdir / "ctl.sock"
        self.control = ControlClient(self.control_sock)
        self.boots = []   # seconds from start to ready, per boot

    def xml(self):
        return DOMAIN_XML.format(
            domtype=self.domtype, name=escape(self.name), kernel=escape(str(self.kernel)),
            initrd=escape(str(self.initrd)), emulator="/usr/bin/qemu-system-x86_64",
            disk=escape(str(self.disk)), mac=GUEST_MAC, console=escape(str(self.console_log)),
            control=escape(str(self.control_sock)), control_port=CONTROL_PORT_NAME)

    def define(self):
        path = self.workdir / "domain.xml"
        path.write_text(self.xml())
        self.virsh.run("define", str(path))

    def start(self, timeout=120):
        """A fresh data disk and console, then boot until the control port and the agent answer."""
        self.control.close()
        with open(self.disk, "wb") as disk:
            disk.truncate(DATA_DISK_BYTES)
        self.console_log.write_bytes(b"")
        started = time.monotonic()
        self.virsh.run("start", self.name)
        self.wait_ready(started, timeout)

    def wait_ready(self, started, timeout=120):
        self.control.wait_ready(timeout)
        self.wait_agent(timeout - (time.monotonic() - started))
        self.boots.append(time.monotonic() - started)

    def wait_agent(self, timeout):
        """libvirt reports the agent connected once the guest opens the port; then it must answer."""
        deadline = time.monotonic() + max(timeout, 10)
        while True:
            result = subprocess.run(["virsh", "-c", self.virsh.uri, "qemu-agent-command", self.name,
                                     '{"execute":"guest-ping"}', "--timeout", "5"],
                                    capture_output=True, text=True, timeout=60)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ControlError(f"the agent did not answer libvirt within {timeout:.0f} s: {result.stderr.strip()}")
            time.sleep(0.5)

    def state(self):
        return self.virsh.run("domstate", self.name).strip()

    def running(self):
        return self.state() == "running"

    def guest(self, script, timeout=30):
        """Run a shell script in the guest through the control port; its output (exit 0 required)."""
        return self.control.check(script, timeout)

    def destroy(self):
        self.control.close()
        if self.virsh.run("domstate", self.name, check=False).strip() not in ("shut off", ""):
            self.virsh.run("destroy", self.name, check=False)

    def kill_leftover_qemu(self):
        """If libvirtd died before it could destroy the guest, its QEMU is found by the unique name."""
        marker = f"guest={self.name},".encode()
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                try:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                except OSError:
                    pass

    def console_tail(self, count=30):
        try:
            return self.console_log.read_bytes().decode(errors="replace").replace("\r", "").splitlines()[-count:]
        except OSError:
            return ["(no console log)"]
