"""A QMP client that records every event, so checks can wait for and print them."""

import json
import socket
import threading
import time
import queue


class QmpError(Exception):
    pass


class QmpClient:
    def __init__(self, path, connect_timeout=30.0, alive=lambda: True):
        self.events = []            # [(host monotonic time, event dict)]
        self._events_cond = threading.Condition()
        self._replies = queue.Queue()
        self._lock = threading.Lock()
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if not alive():
                    raise QmpError("QEMU exited before its QMP socket came up (see QEMU stderr)")
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP socket {path}")
                time.sleep(0.1)
        self._file = self.sock.makefile("rb")
        greeting = json.loads(self._file.readline())
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting}")
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.command("qmp_capabilities")

    def _read_loop(self):
        try:
            for line in self._file:
                message = json.loads(line)
                if "event" in message:
                    with self._events_cond:
                        self.events.append((time.monotonic(), message))
                        self._events_cond.notify_all()
                else:
                    self._replies.put(message)
        except (OSError, ValueError):
            pass
        finally:
            self._replies.put(None)
            with self._events_cond:
                self._events_cond.notify_all()

    def command(self, name, arguments=None, timeout=30.0):
        request = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        with self._lock:
            try:
                self.sock.sendall(json.dumps(request).encode() + b"\n")
            except OSError as err:
                raise QmpError(f"QMP {name}: {err}") from err
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise QmpError(f"QMP {name}: no reply within {timeout} s") from None
        if reply is None:
            raise QmpError(f"QMP {name}: connection closed (QEMU exited?)")
        if "error" in reply:
            raise QmpError(f"QMP {name}: {reply['error']}")
        return reply["return"]

    def mark(self):
        """An index into the event log: wait_event(since=mark) ignores older events."""
        with self._events_cond:
            return len(self.events)

    def events_since(self, since, name=None):
        with self._events_cond:
            return [e for _, e in self.events[since:] if name is None or e["event"] == name]

    def wait_event(self, name, since, timeout):
        deadline = time.monotonic() + timeout
        with self._events_cond:
            while True:
                for _, event in self.events[since:]:
                    if event["event"] == name:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    return None
                self._events_cond.wait(min(remaining, 0.5))

    def event_log_tail(self, count=15):
        with self._events_cond:
            return [json.dumps(e) for _, e in self.events[-count:]]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
