"""The unix-socket plumbing the host-side clients share (the agent client, the control port):
QEMU creates a chardev's socket as it starts, so a client retries until it is there."""

import socket
import time


def connect_retrying(path, timeout):
    """A stream socket connected to `path`, tried every 0.1 s; None if it still refuses after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)


def close_quietly(sock):
    """Closes `sock` if there is one; a socket already broken is not an error."""
    if sock:
        try:
            sock.close()
        except OSError:
            pass
