"""Transports: the libvirt-style handshake on virtio-serial, isa-serial (vsock: checks_vsock.py)."""

import json
import random
import time

from .harness import check
from .qga import AgentClient

SERIAL_AGENT_START = """
. /etc/qga-test/agent.conf
mkdir -p /run/qga-serial
setsid $AGENT_SERIAL < /dev/null > /tmp/qga-serial.stdio 2>&1 &
echo $! > /run/qga-test/serial-agent.pid
"""
SERIAL_AGENT_STOP = """
. /usr/libexec/qga-test/lib.sh
pid=$(cat /run/qga-test/serial-agent.pid 2>/dev/null) || exit 0
for p in $(process_tree "$pid"); do kill -TERM "$p" 2>/dev/null; done
sleep 1
for p in $(process_tree "$pid"); do kill -KILL "$p" 2>/dev/null; done
true
"""


@check(boot="pvh")
def handshake_delimited_sync_then_sync(ctx):
    """A new host connection does what libvirt and QEMU's client do: 0xFF plus
    guest-sync-delimited (the reply to it, and only it, is prefixed with 0xFF), then a plain
    guest-sync, then commands."""
    agent = ctx.guest.agent
    agent.connect()   # a brand-new host connection, as after a libvirtd restart
    sync_id = random.randrange(1, 2**31)
    agent._send(b"\xff" + agent.request_bytes("guest-sync-delimited", {"id": sync_id}))
    deadline = time.monotonic() + 30
    seen = b""
    while b"\xff" not in seen:
        if not agent._fill(deadline):
            ctx.fail(f"no 0xFF-delimited reply within 30 s; received {agent.buffer!r}")
        seen = agent.buffer
    before, after = seen.split(b"\xff", 1)
    # Whatever precedes the sentinel must be complete error lines (7.2 answers our own 0xFF
    # with a parse error), never a half reply.
    for line in before.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            ctx.fail(f"garbage before the 0xFF sentinel: {line!r}")
        ctx.expect("error" in parsed, f"unexpected message before the 0xFF sentinel: {line!r}")
    agent.buffer = after
    line = agent._read_line(deadline)
    agent.last_raw_reply = line
    ctx.expect(line is not None, "the 0xFF sentinel was not followed by a reply line")
    ctx.expect(json.loads(line) == {"return": sync_id},
               f"guest-sync-delimited should return {sync_id}; raw reply after 0xFF: {line!r}")
    ctx.expect(b"\xff" not in agent.buffer, f"stray 0xFF after the delimited reply: {agent.buffer!r}")

    plain_id = random.randrange(1, 2**31)
    reply, raw = agent.execute_raw(agent.request_bytes("guest-sync", {"id": plain_id}))
    ctx.expect(reply == {"return": plain_id}, f"guest-sync should return {plain_id}; got {raw!r}")
    ctx.expect(not raw.startswith(b"\xff"), f"plain guest-sync reply must not carry 0xFF: {raw!r}")
    ping = ctx.call("guest-ping")
    ctx.expect(ping == {}, f"guest-ping should return {{}}; got {ping!r}")


@check(boot="pvh")
def isa_serial_transport_handshake_and_commands(ctx):
    """An agent on a second 16550 (-m isa-serial -p /dev/ttyS1) passes the handshake (even
    though the tty echoes until the agent sets raw mode) and answers commands."""
    guest = ctx.guest
    virtio_version = ctx.call("guest-info")["version"]
    ctx.guest_sh(SERIAL_AGENT_STOP)
    ctx.guest_sh(SERIAL_AGENT_START)
    serial = AgentClient(guest.sock("qga-serial"), "isa-serial agent", echo_tolerant=True)
    guest.serial_agent = serial
    ctx.client = serial
    try:
        serial.connect()
        serial.handshake(timeout=60, attempt=3)
        ctx.expect(ctx.call("guest-ping", client=serial) == {}, "guest-ping over isa-serial did not return {}")
        info = ctx.call("guest-info", client=serial)
        ctx.expect(info.get("version") == virtio_version,
                   f"guest-info over isa-serial reports version {info.get('version')!r}, virtio-serial {virtio_version!r}")
        names = {c["name"] for c in info.get("supported_commands", [])}
        ctx.expect("guest-get-time" in names, f"guest-info over isa-serial lists no guest-get-time: {sorted(names)}")
        agent_ns = ctx.call("guest-get-time", client=serial)
        guest_s = int(ctx.guest_sh("date +%s"))
        ctx.expect(abs(agent_ns / 1e9 - guest_s) < 10,
                   f"guest-get-time over isa-serial says {agent_ns / 1e9:.0f}, the guest's date {guest_s}")
        echo_id = random.randrange(1, 2**31)
        ctx.expect(ctx.call("guest-sync", {"id": echo_id}, client=serial) == echo_id, "guest-sync over isa-serial")
    finally:
        serial.close()
        ctx.guest_sh(SERIAL_AGENT_STOP)
