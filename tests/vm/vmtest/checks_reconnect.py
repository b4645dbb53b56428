"""virtio-serial when the host side goes away and comes back (libvirtd restarting, a management
tool reopening the chardev): the agent keeps the port, its half-read request and its unsent
replies as qemu-ga 7.2 does, and costs no CPU while nobody is attached."""

import json
import random
import time

from .harness import NotApplicable, check

# utime + stime (clock ticks, USER_HZ) of the agent's processes, threads included: fields 14
# and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
CPU_TICKS_REPORT = r"""
. /usr/libexec/qga-test/lib.sh
total=0
for pid in $(process_tree $(agent_pid)); do
    set -- $(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null)
    [ $# -ge 13 ] && total=$((total + ${12} + ${13}))
done
echo $total
"""

RECONNECTS = 10
SYNCS = 50
IDLE_SECONDS = 8.0
# A spinning agent burns ~100 ticks a second (914 in 8 s measured); qemu-ga-rs sleeps (0).
# qemu-ga 7.2 wakes every 100 ms by design, ~36 ticks in 8 s under TCG: N/A for it.
IDLE_TICKS_LIMIT = 20


def delimited_sync_exactly(ctx, agent, sync_id, timeout=30.0):
    """0xFF + guest-sync-delimited: before the 0xFF only complete error lines (the agent's
    answer to our own 0xFF), after it exactly this id's reply and nothing more."""
    agent._send(b"\xff" + agent.request_bytes("guest-sync-delimited", {"id": sync_id}))
    deadline = time.monotonic() + timeout
    while b"\xff" not in agent.buffer:
        if not agent._fill(deadline):
            ctx.fail(f"guest-sync-delimited id {sync_id}: no 0xFF within {timeout:.0f} s; received {agent.buffer!r}")
    before, agent.buffer = agent.buffer.split(b"\xff", 1)
    for line in before.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            ctx.fail(f"guest-sync-delimited id {sync_id}: garbage before the 0xFF: {line!r}")
        ctx.expect(isinstance(parsed, dict) and "error" in parsed,
                   f"guest-sync-delimited id {sync_id}: a stray reply before the 0xFF: {line!r}")
    line = agent._read_line(deadline)
    agent.last_raw_reply = line
    ctx.expect(line is not None, f"guest-sync-delimited id {sync_id}: nothing after the 0xFF")
    ctx.expect(json.loads(line) == {"return": sync_id},
               f"guest-sync-delimited id {sync_id}: wrong reply after the 0xFF: {line!r}")
    ctx.expect(agent.buffer == b"", f"guest-sync-delimited id {sync_id}: stray bytes after the reply: {agent.buffer!r}")


@check(boot="pvh")
def host_reconnects_keep_the_half_read_request_then_50_delimited_syncs(ctx):
    """The host closes and reopens the chardev socket 10 times, each time in the middle of a
    guest-sync (the first half sent before, the rest after): the agent answers each with its
    id, as 7.2 does (a host going away is no reason to forget what it sent). Then 50
    0xFF + guest-sync-delimited in a row on one connection, each answered exactly."""
    agent = ctx.guest.agent
    agent.connect()
    agent.handshake(timeout=60)
    for round_no in range(RECONNECTS):
        sync_id = random.randrange(1, 2**31)
        request = agent.request_bytes("guest-sync", {"id": sync_id})
        half = len(request) // 2
        agent._send(request[:half])
        time.sleep(0.3)     # the first half reaches the agent's parser...
        agent.close()       # ...then the host side goes away, long enough for the agent to read
        time.sleep(0.7)     # end of file (the port's host-closed state), and comes back
        agent.connect()
        time.sleep(0.3)
        reply, raw = agent.execute_raw(request[half:], timeout=15)
        ctx.expect(reply == {"return": sync_id},
                   f"reconnect {round_no + 1}: the guest-sync split across it should return {sync_id}; got {raw!r}")
        ctx.expect(agent.buffer == b"", f"reconnect {round_no + 1}: stray bytes after the reply: {agent.buffer!r}")
    for _ in range(SYNCS):
        delimited_sync_exactly(ctx, agent, random.randrange(1, 2**31))
    ctx.note(f"{RECONNECTS} split requests answered across reconnects, {SYNCS} delimited syncs")


@check(boot="pvh")
def idle_agent_uses_no_cpu_while_no_host_is_connected(ctx):
    """With the host's chardev socket closed the guest port polls readable and HUP forever;
    the agent's processes together may use at most 20 clock ticks of CPU (utime + stime in
    /proc/PID/stat) in 8 s: a loop that reads end of file again and again would use ~800.
    Then the host reconnects and the agent answers. N/A for the reference, which polls."""
    agent = ctx.guest.agent
    agent.close()            # the host side goes away, as when libvirtd stops
    try:
        time.sleep(1.0)
        first = int(ctx.guest_sh(CPU_TICKS_REPORT))
        time.sleep(IDLE_SECONDS)
        ticks = int(ctx.guest_sh(CPU_TICKS_REPORT)) - first
    finally:
        agent.connect()
        agent.handshake(timeout=60)
    ctx.expect(ctx.call("guest-ping") == {}, "the agent does not answer after the host reconnected")
    if ctx.agent_spec.is_reference:
        raise NotApplicable(f"not applicable to the reference: qemu-ga 7.2 polls every 100 ms by design "
                            f"({ticks} CPU ticks in {IDLE_SECONDS:.0f} s)")
    ctx.note(f"{ticks} CPU ticks in {IDLE_SECONDS:.0f} s with no host")
    ctx.expect(ticks <= IDLE_TICKS_LIMIT,
               f"the agent used {ticks} CPU ticks in {IDLE_SECONDS:.0f} s with no host connected "
               f"(limit {IDLE_TICKS_LIMIT}): it spins instead of sleeping")
