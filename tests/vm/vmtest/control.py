"""Client for the guest's control port (guest/control): run a shell script inside the guest
without going through the agent, and get its output and exit code."""

import base64
import random
import socket
import time

from .unixsock import close_quietly, connect_retrying


class ControlError(Exception):
    pass


class ControlClient:
    def __init__(self, path):
        self.path = str(path)
        self.sock = None
        self.buffer = b""
        self.last = None  # (script, rc, output) of the last command, for failure reports

    def connect(self, timeout=30.0):
        self.close()
        self.sock = connect_retrying(self.path, timeout)
        self.buffer = b""
        if self.sock is None:
            raise ControlError(f"cannot connect to control socket {self.path}")

    def close(self):
        close_quietly(self.sock)
        self.sock = None

    def _read_line(self, deadline):
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise ControlError("control connection closed by QEMU")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode(errors="replace")

    def run(self, script, timeout=30):
        """(exit code, output). Raises ControlError if no complete answer within timeout+10 s."""
        if self.sock is None:
            self.connect()
        request_id = "%08x" % random.randrange(2**32)
        encoded = base64.b64encode(script.encode()).decode()
        self.sock.sendall(f"{request_id} {int(timeout)} {encoded}\n".encode())
        deadline = time.monotonic() + timeout + 10
        begun, body = False, []
        while True:
            line = self._read_line(deadline)
            if line is None:
                self.last = (script, None, "(no answer)")
                raise ControlError(f"control port: no answer within {timeout + 10} s to: {script}")
            if line == f"__CTL_BEGIN__ {request_id}":
                begun, body = True, []
            elif begun and line.startswith(f"__CTL_END__ {request_id} "):
                rc = int(line.split()[-1])
                output = base64.b64decode("".join(body)).decode(errors="replace")
                self.last = (script, rc, output)
                return rc, output
            elif begun:
                body.append(line)
            # Anything else is the answer to an earlier, abandoned request: skip it.

    def check(self, script, timeout=30):
        """Run and insist on exit 0; returns the output."""
        rc, output = self.run(script, timeout)
        if rc != 0:
            raise ControlError(f"guest command failed (exit {rc}): {script}\n{output}")
        return output

    def wait_ready(self, timeout):
        """The control loop answers once /init has started it; retry until it does."""
        deadline = time.monotonic() + timeout
        self.connect(timeout)
        while True:
            try:
                rc, output = self.run("echo ready", timeout=5)
                if rc == 0 and output.strip() == "ready":
                    return
            except ControlError:
                pass
            if time.monotonic() > deadline:
                raise ControlError(f"guest control port not answering after {timeout} s")
