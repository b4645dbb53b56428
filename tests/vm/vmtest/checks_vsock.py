"""The vsock-listen transport, driven from the host through a user-space vsock device
(vhost-user-vsock-pci served by vhost-device-vsock, see vsock.py): the guest runs a second
agent, supervised like the first, with -m vsock-listen; to it the host is CID 2."""

import random
import time

from . import hostenv
from .checks_guest_view import expect_privilege_separation
from .checks_reconnect import delimited_sync_exactly
from .harness import CheckFailed, NotApplicable, check
from .qga import AgentError

VSOCK_PID_FILE = "/run/qga-test/vsock-agent.pid"
VSOCK_STARTS = "/run/qga-test/vsock-agent.starts"
VSOCK_HOLD = "/run/qga-test/vsock-agent.hold"
VSOCK_LOG = "/tmp/qga-vsock.log"


def read_only_commands():
    """The commands that change nothing in the guest: the allow lines of the shipped
    monitoring-only policy, which policy/tests/shipped.rs keeps equal to the command table's
    read-only rows (so a new read-only command is covered here without editing this file)."""
    text = (hostenv.REPO_ROOT / "policy" / "monitoring-only.policy").read_text()
    return [line.split()[1] for line in text.splitlines() if line.startswith("allow ")]


def _shape(value):
    """A reply's structure without the values that change from one call to the next: the keys
    of objects, the length of arrays, the JSON type of scalars."""
    if isinstance(value, dict):
        return {key: _shape(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def _vsock(ctx):
    client = ctx.guest.vsock_agent
    ctx.client = client
    return client


@check(boot="vsock")
def vsock_handshake_delimited_sync_then_sync(ctx):
    """A new host connection over vsock (CONNECT through the backend) does what libvirt does:
    0xFF + guest-sync-delimited answered behind 0xFF (only error lines before it), then
    guest-sync and guest-ping."""
    client = _vsock(ctx)
    client.connect()
    delimited_sync_exactly(ctx, client, random.randrange(1, 2**31))
    plain_id = random.randrange(1, 2**31)
    reply, raw = client.execute_raw(client.request_bytes("guest-sync", {"id": plain_id}))
    ctx.expect(reply == {"return": plain_id}, f"guest-sync over vsock should return {plain_id}; got {raw!r}")
    ctx.expect(not raw.startswith(b"\xff"), f"plain guest-sync reply must not carry 0xFF: {raw!r}")
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "guest-ping over vsock did not return {}")


@check(boot="vsock")
def vsock_answers_every_read_only_command_as_virtio_serial_does(ctx):
    """Every read-only command, asked over vsock and over virtio-serial of the same guest: the
    same error (class and text) or a reply of the same structure (keys, array lengths, types);
    guest-info identical (version and enabled commands)."""
    client = _vsock(ctx)
    client.handshake(timeout=60)
    names = read_only_commands()
    ctx.expect(len(names) >= 8, f"the monitoring-only policy lists too few commands: {names}")
    for name in names:
        args = {"id": random.randrange(1, 2**31)} if name in ("guest-sync", "guest-sync-delimited") else None
        over_vsock = client.execute(name, args)
        over_virtio = ctx.guest.agent.execute(name, args)
        if "error" in over_virtio or "error" in over_vsock:
            ctx.expect(over_vsock == over_virtio,
                       f"{name}: over vsock {over_vsock}, over virtio-serial {over_virtio}")
            continue
        ctx.expect(_shape(over_vsock["return"]) == _shape(over_virtio["return"]),
                   f"{name}: reply over vsock {over_vsock} is shaped unlike over virtio-serial {over_virtio}")
        if name in ("guest-info", "guest-sync", "guest-sync-delimited", "guest-fsfreeze-status"):
            ctx.expect(over_vsock == over_virtio, f"{name}: over vsock {over_vsock}, over virtio-serial {over_virtio}")
    ctx.note(f"{len(names)} read-only commands")


@check(boot="vsock")
def vsock_client_leaves_mid_request_and_the_next_client_is_served(ctx):
    """A client is served and leaves; the next one is served. Then a client sends half a
    request and leaves: the next client's first plain guest-sync is answered exactly, with no
    stray error (each connection starts with a clean parser: qemu-ga-rs's improvement, N/A for
    the reference, whose parser carries the half request over to the next client)."""
    client = _vsock(ctx)
    client.handshake(timeout=60)
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "guest-ping over vsock did not return {}")
    client.close()
    time.sleep(0.5)
    client.handshake(timeout=60)
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "the next vsock client's guest-ping did not return {}")
    if ctx.agent_spec.is_reference:
        raise NotApplicable("the next client is served; the rest is not applicable to the reference: "
                            "qemu-ga 7.2 keeps a client's partial request for the next client")
    client._send(b'{"execute": "guest-sync", "arguments": {"id": 7')
    time.sleep(0.5)
    client.close()
    time.sleep(0.5)
    client.connect()
    sync_id = random.randrange(1, 2**31)
    reply, raw = client.execute_raw(client.request_bytes("guest-sync", {"id": sync_id}))
    ctx.expect(reply == {"return": sync_id}, f"the next client's first guest-sync should return {sync_id}; got {raw!r}")
    ctx.expect(client.buffer == b"", f"stray bytes after the reply: {client.buffer!r}")
    delimited_sync_exactly(ctx, client, random.randrange(1, 2**31))
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "guest-ping over vsock did not return {}")


@check(boot="vsock")
def vsock_agent_restarted_by_its_supervisor_while_a_client_waits(ctx):
    """With a client connected, the vsock agent is killed: the client sees its connection end;
    while restarts are held, its connection attempts are refused (nobody listens); once the
    supervisor restarts the agent the same waiting client connects, handshakes and is served."""
    client = _vsock(ctx)
    client.handshake(timeout=60)
    starts = int(ctx.guest_sh(f"cat {VSOCK_STARTS}"))
    ctx.guest_sh(f". /usr/libexec/qga-test/lib.sh\ntouch {VSOCK_HOLD}\ncrash_tree $(cat {VSOCK_PID_FILE}) > /dev/null")
    try:
        deadline = time.monotonic() + 15
        try:
            while client._fill(deadline):
                pass
            raise CheckFailed("the client's vsock connection stayed open for 15 s after the agent was killed")
        except AgentError:
            pass   # the connection ended, as it must
        client.close()
        try:
            client.connect(timeout=2.0)
            raise CheckFailed("a vsock connection was accepted while the agent was down")
        except AgentError:
            pass   # refused while nobody listens
    finally:
        ctx.guest_sh(f"rm -f {VSOCK_HOLD}")
    client.connect(timeout=60)   # the client waited; the supervisor restarts the agent
    client.handshake(timeout=60)
    ctx.expect(ctx.call("guest-ping", client=client) == {}, "the restarted vsock agent did not answer guest-ping")
    now = int(ctx.guest_sh(f"cat {VSOCK_STARTS}"))
    ctx.expect(now == starts + 1, f"the supervisor started the vsock agent {now - starts} more times, not once")


@check(boot="vsock")
def vsock_agent_privileges_front_unprivileged_helper_separate(ctx):
    """The vsock agent's processes have the same privilege facts as the virtio-serial one's
    (see privilege_separation_front_unprivileged_helper_separate): the transport changes
    nothing in the sandbox."""
    client = _vsock(ctx)
    client.handshake(timeout=60)
    expect_privilege_separation(ctx, client, VSOCK_PID_FILE, VSOCK_LOG)
