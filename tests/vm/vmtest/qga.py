"""A host-side guest-agent client speaking to the chardev socket QEMU wires to the guest port.

It behaves like libvirt and QEMU's own client: 0xFF plus guest-sync-delimited to flush the
agent's parser and find the start of the reply stream, then guest-sync, then one command at
a time. Every byte sent and received is kept in a transcript for failure reports.
"""

import json
import random
import socket
import time

from .unixsock import close_quietly, connect_retrying


class AgentError(Exception):
    """No usable reply: timeout, closed connection, garbage."""


class AgentClient:
    def __init__(self, path, name="agent", echo_tolerant=False):
        """echo_tolerant: skip lines that are not replies (a serial tty echoing our requests
        before the agent has set raw mode) instead of treating them as protocol errors."""
        self.path = str(path)
        self.name = name
        self.echo_tolerant = echo_tolerant
        self.sock = None
        self.buffer = b""
        self.transcript = []   # [(">>" | "<<", bytes)]
        self.last_request = None
        self.last_raw_reply = None

    # --- connection -------------------------------------------------------------------
    def connect(self, timeout=30.0):
        self.close()
        self.sock = connect_retrying(self.path, timeout)
        self.buffer = b""
        if self.sock is None:
            raise AgentError(f"cannot connect to {self.path}")

    def close(self):
        close_quietly(self.sock)
        self.sock = None

    def _send(self, data):
        self.transcript.append((">>", data))
        del self.transcript[:-40]
        self.last_request = data
        self.last_raw_reply = None
        try:
            self.sock.sendall(data)
        except OSError as err:
            raise AgentError(f"send failed: {err}") from err

    def _fill(self, deadline):
        """Read more bytes into the buffer; False on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError as err:
            raise AgentError(f"receive failed: {err}") from err
        if not chunk:
            raise AgentError("connection closed by QEMU")
        self.transcript.append(("<<", chunk))
        del self.transcript[:-40]
        self.buffer += chunk
        return True

    def _read_line(self, deadline):
        while b"\n" not in self.buffer:
            if not self._fill(deadline):
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line + b"\n"

    # --- handshake --------------------------------------------------------------------
    def sync_delimited(self, timeout):
        """0xFF + guest-sync-delimited; True once the 0xFF-prefixed reply with our id came.

        Anything before the 0xFF (including the agent's error about our own 0xFF, and stale
        replies) is discarded, as libvirt and QEMU's client do.
        """
        sync_id = random.randrange(1, 2**31)
        request = json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}})
        self._send(b"\xff" + request.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            while b"\xff" not in self.buffer:
                self.buffer = b""
                if not self._fill(deadline):
                    return False
            self.buffer = self.buffer[self.buffer.index(b"\xff") + 1:]
            line = self._read_line(deadline)
            if line is None:
                return False
            self.last_raw_reply = line
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("return") == sync_id:
                return True

    def sync(self, timeout):
        """Plain guest-sync, as libvirt sends once per channel open."""
        sync_id = random.randrange(1, 2**31)
        deadline = time.monotonic() + timeout
        request = json.dumps({"execute": "guest-sync", "arguments": {"id": sync_id}})
        self._send(request.encode() + b"\n")
        while True:
            line = self._read_line(deadline)
            if line is None:
                return False
            self.last_raw_reply = line
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("return") == sync_id:
                return True

    def handshake(self, timeout=90.0, attempt=4.0):
        """Retry the delimited sync until the agent answers, then confirm with guest-sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sock is None:
                self.connect(max(1.0, deadline - time.monotonic()))
            if self.sync_delimited(min(attempt, max(0.1, deadline - time.monotonic()))):
                if self.sync(min(15.0, max(1.0, deadline - time.monotonic()))):
                    return True
        raise AgentError(f"{self.name}: no answer to guest-sync-delimited/guest-sync within {timeout:.0f} s")

    # --- commands ---------------------------------------------------------------------
    def request_bytes(self, command, arguments=None, extra=None):
        request = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        if extra:
            request.update(extra)
        return json.dumps(request).encode() + b"\n"

    def execute_raw(self, data, timeout=30.0):
        """Send raw bytes, return (parsed reply, raw line). Raises AgentError on timeout."""
        self._send(data)
        deadline = time.monotonic() + timeout
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise AgentError(f"{self.name}: no reply within {timeout:.0f} s")
            self.last_raw_reply = line
            try:
                reply = json.loads(line.lstrip(b"\xff"))
            except ValueError:
                if self.echo_tolerant:
                    continue
                raise AgentError(f"{self.name}: reply is not JSON: {line!r}") from None
            if isinstance(reply, dict) and ("return" in reply or "error" in reply):
                return reply, line
            if not self.echo_tolerant:
                raise AgentError(f"{self.name}: unexpected message: {line!r}")

    def execute(self, command, arguments=None, timeout=30.0):
        reply, _ = self.execute_raw(self.request_bytes(command, arguments), timeout)
        return reply

    def execute_no_reply(self, command, arguments=None, quiet_for=3.0):
        """For success-response:no commands: send, then return any reply seen within
        quiet_for seconds (None means none came, which is what success looks like)."""
        self._send(self.request_bytes(command, arguments))
        deadline = time.monotonic() + quiet_for
        try:
            line = self._read_line(deadline)
        except AgentError:
            return None  # the guest went away (powerdown/reboot) before anything came back
        if line is None:
            return None
        self.last_raw_reply = line
        try:
            return json.loads(line)
        except ValueError:
            return {"unparsable": line.decode(errors="replace")}

    def transcript_tail(self, count=6):
        lines = []
        for direction, data in self.transcript[-count:]:
            lines.append(f"{direction} {data!r}")
        return lines
