"""A guest with a vsock device whose backend runs in user space, so the vsock-listen transport is
tested on hosts without /dev/vhost-vsock.

QEMU's vhost-user-vsock-pci hands the device to rust-vmm's vhost-device-vsock, which reads and
writes the guest's virtqueues in the guest's memory (so that memory is a shared memfd) and maps
guest vsock ports to one unix socket on the host: a host program connects to it, writes
`CONNECT <port>\\n`, reads `OK <port>\\n` once the guest accepted, and then has a byte stream to
the guest's port. To the guest the peer is the host, CID 2.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import hostenv
from .agent_under_test import VSOCK_CID, VSOCK_PORT
from .qga import AgentClient, AgentError
from .vm import Guest

BACKEND = "vhost-device-vsock"
# The version tests/vm/deps.sh installs: the newest published one; it builds with the project's
# toolchain and works with QEMU 7.2's vhost-user-vsock-pci.
BACKEND_VERSION = "0.3.0"
GUEST_MEMORY = "384M"   # vm.py's -m; the shared memory backend must be exactly that size


class BackendUnavailable(Exception):
    """vhost-device-vsock is not installed; the message says why and how to get it."""


def backend_path():
    """The installed backend, from PATH or cargo's install directory (where deps.sh puts it)."""
    candidates = [shutil.which(BACKEND)]
    cargo_home = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    candidates.append(str(Path(cargo_home) / "bin" / BACKEND))
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    why = ""
    build_log = hostenv.CACHE_DIR / f"{BACKEND}.log"
    if build_log.exists():
        tail = [line for line in build_log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        why = f"; its build failed: {' | '.join(tail)}"
    raise BackendUnavailable(
        f"{BACKEND} is not installed (not in PATH nor in {cargo_home}/bin): tests/vm/deps.sh builds it with "
        f"`cargo install --locked --version {BACKEND_VERSION} {BACKEND}`{why or ', which was not run or had no cargo'}")


class VsockGuest(Guest):
    """The suite's usual PVH guest plus a vhost-user-vsock-pci device served by the backend; the
    guest runs a second, supervised agent with -m vsock-listen on VSOCK_PORT."""

    def __init__(self, workdir, kernel, initrd, boot_kind, name, smp=2, accel="tcg"):
        super().__init__(workdir, kernel, initrd, boot_kind, name, smp=smp, accel=accel)
        self.backend_binary = backend_path()
        self.backend = None
        self.backend_log = self.workdir / "vhost-device-vsock.log"
        self.vsock_agent = None
        self.extra_args = [
            "-object", f"memory-backend-memfd,id=mem0,size={GUEST_MEMORY},share=on",
            "-numa", "node,memdev=mem0",
            "-chardev", f"socket,id=vhostvsock,path={self.sock('vhost-vsock')}",
            "-device", "vhost-user-vsock-pci,chardev=vhostvsock",
        ]

    def start(self):
        for stale in ("vhost-vsock", "vsock"):
            self.sock(stale).unlink(missing_ok=True)
        with open(self.backend_log, "wb") as log:
            self.backend = subprocess.Popen(
                [self.backend_binary, "--guest-cid", str(VSOCK_CID), "--socket", str(self.sock("vhost-vsock")),
                 "--uds-path", str(self.sock("vsock"))],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # QEMU connects to the backend's socket at start-up: it must exist first.
        deadline = time.monotonic() + 10
        while not self.sock("vhost-vsock").exists():
            if self.backend.poll() is not None or time.monotonic() > deadline:
                raise AgentError(f"{BACKEND} did not create its socket: {self.backend_log_tail()}")
            time.sleep(0.05)
        super().start()
        self.vsock_agent = VsockAgentClient(self.sock("vsock"), VSOCK_PORT, "vsock agent")

    def wait_until_up(self, timeout=120):
        super().wait_until_up(timeout)
        self.control.check(
            "mkdir -p /run/qga-vsock\n"
            "setsid /usr/libexec/qga-test/agent-supervisor vsock < /dev/null > /dev/null 2>&1 &\n", 10)
        self.vsock_agent.handshake(timeout=60)

    def stop(self):
        if self.vsock_agent:
            self.vsock_agent.close()
        super().stop()
        if self.backend and self.backend.poll() is None:
            os.killpg(self.backend.pid, signal.SIGTERM)
            try:
                self.backend.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.backend.pid, signal.SIGKILL)
                self.backend.wait()

    def backend_log_tail(self, count=10):
        try:
            lines = self.backend_log.read_text(errors="replace").splitlines()[-count:]
        except OSError:
            return "(no backend log)"
        return " | ".join(lines) or "(empty backend log)"


class VsockAgentClient(AgentClient):
    """An agent client whose connection is a host-side vsock stream through the backend's unix
    socket: connect, `CONNECT <port>`, `OK <port>`, then the agent's bytes.

    vhost-device-vsock 0.3.0 writes `OK` with `write_all(...).unwrap()`: a guest accepting after
    the host program closed its end could make that write fail and end the backend (and so the
    guest's vsock device). So a connection attempt is never abandoned while the guest may still
    accept it: the client waits for `OK` or for the backend to close the stream (the guest
    refused: nobody listens on the port yet). See tests/vm/README.md.
    """

    def __init__(self, uds_path, port, name="vsock agent"):
        super().__init__(uds_path, name)
        self.port = port

    def connect(self, timeout=30.0):
        self.close()
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                sock.sendall(f"CONNECT {self.port}\n".encode())
                answer = self._read_ok(sock)
            except OSError:
                answer = None
            if answer is not None:
                self.sock = sock
                self.buffer = answer
                return
            sock.close()
            if time.monotonic() > deadline:
                raise AgentError(f"{self.name}: the guest accepted no vsock connection on port {self.port} "
                                 f"within {timeout:.0f} s")
            time.sleep(0.2)

    def _read_ok(self, sock):
        """Bytes after `OK <port>\\n` once the guest accepted; None when the backend closed the
        stream (refused). Waits as long as the stream is open (see the class comment), bounded
        only by a generous limit: the guest answers a connection request at once."""
        sock.settimeout(60)
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        line, rest = data.split(b"\n", 1)
        if not line.startswith(b"OK "):
            raise AgentError(f"{self.name}: the vsock backend answered CONNECT with {line!r}")
        return rest
