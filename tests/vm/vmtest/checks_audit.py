"""No guest left frozen, and the audit trail: checked from outside the agent (the guest's
writer on the frozen disk, the marker, the audit file read through the control port)."""

import time

from .checks_faults import _restarted
from .checks_storage import MARKER, FreezeWitness, freeze, thaw_quietly
from .harness import NotApplicable, check

# The helper: the front's child whose executable is qemu-ga-rs-helper (the launcher is the
# helper's own child, with the same executable).
HELPER_PID = """. /usr/libexec/qga-test/lib.sh
for pid in $(children_of $(agent_pid)); do
    [ "$(readlink /proc/$pid/exe)" = "$(dirname $(readlink /proc/$(agent_pid)/exe))/qemu-ga-rs-helper" ] && echo $pid
done
"""


@check(boot="pvh")
def helper_killed_while_frozen_is_thawed_by_the_launcher(ctx):
    """SIGKILL of the helper alone while frozen: the launcher (which outlives it, with full
    root and outside the filter) thaws at once: the writer on the frozen disk resumes within
    a second and the marker is gone; the restarted agent comes up thawed, and the launcher's
    record of the thaw is in the agent's log."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 has no helper")
    witness = FreezeWitness(ctx)
    witness.start()
    ok = False
    try:
        freeze(ctx)
        frozen_at = witness.uptime()
        time.sleep(max(0.0, 3.5 - (witness.uptime() - frozen_at)))
        helper = ctx.guest_sh(HELPER_PID).split()
        ctx.expect(len(helper) == 1, f"expected one helper process under the front; found {helper!r}")
        starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
        # The kill and the first uptime after it in one guest command: no host round trip
        # between them.
        killed_at = float(ctx.guest_sh(f"kill -KILL {helper[0]}; read up _ < /proc/uptime; echo $up"))
        time.sleep(2.0)
        rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
        ctx.expect(rc != 0, f"{MARKER} still exists after the helper was killed: nothing thawed")
        stamps = [float(x) for x in ctx.guest_sh(f"cat {witness.ticks}").split()]
        resumed = [s for s in stamps if s > killed_at]
        ctx.expect(resumed, f"the writer did not resume after the helper was killed at uptime {killed_at:.2f}")
        delay = resumed[0] - killed_at
        ctx.note(f"helper killed at uptime {killed_at:.2f}; the writer's first stamp after it {delay:.2f} s later")
        ctx.expect(delay < 1.0, f"the writer resumed {delay:.2f} s after the helper was killed (limit 1 s)")
        _restarted(ctx, starts_before)
        ctx.guest.agent.handshake(timeout=60)
        status = ctx.call("guest-fsfreeze-status")
        ctx.expect(status == "thawed", f"the restarted agent reads {status!r}, not \"thawed\"")
        # The launcher's record of its thaw reached the agent's log (the front relays the
        # helper side's pipe until it closes before it exits).
        found = ctx.guest_sh("grep -c 'launcher: the helper died while frozen: thawed' /tmp/qga.log || true").strip()
        ctx.expect(found not in ("", "0"), "the launcher's thaw record is not in the agent's log /tmp/qga.log")
        witness.verdict(frozen_at, killed_at)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)


AUDIT_LOG = "/tmp/qga-audit.log"
OPEN_PATH = "/mnt/data/files/audit-{tag}-{i}"


def _audit_lines(ctx):
    return ctx.guest_sh(f"cat {AUDIT_LOG} 2>/dev/null || true").splitlines()


def _field(line, key):
    """A record's value for key (quotes kept), or None."""
    for part in line.split(" "):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


def _pipelined_opens(ctx, tag, count):
    """Sends `count` guest-file-open requests in one write and reads every reply."""
    agent = ctx.guest.agent
    data = b"".join(agent.request_bytes("guest-file-open", {"path": OPEN_PATH.format(tag=tag, i=i), "mode": "w"})
                    for i in range(count))
    agent._send(data)
    deadline = time.monotonic() + 120
    for i in range(count):
        line = agent._read_line(deadline)
        ctx.expect(line is not None, f"no reply to pipelined request {i} of {count}")


@check(boot="pvh")
def audit_records_made_while_frozen_appear_after_thaw_in_order(ctx):
    """While frozen the audit file does not grow (records wait in the front's ring); after
    thaw it holds, in order: the freeze (allowed), three guest-file-open refused by the frozen
    rule with their paths, then the thaw. An allowed query (guest-fsfreeze-status) leaves no
    record by default."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 keeps no audit trail")
    ok = False
    try:
        before = len(_audit_lines(ctx))
        freeze(ctx)
        for i in range(3):
            ctx.call_expecting_error("guest-file-open", {"path": OPEN_PATH.format(tag="frozen", i=i), "mode": "w"},
                                     "CommandNotFound",
                                     "Command guest-file-open has been disabled: the agent is in frozen state")
        ctx.call("guest-fsfreeze-status")
        during = len(_audit_lines(ctx))
        ctx.expect(during == before, f"the audit file grew while frozen: {before} -> {during} lines")
        thawed = ctx.call("guest-fsfreeze-thaw")
        ctx.expect(isinstance(thawed, int) and thawed >= 1, f"thaw answered {thawed!r}")
        new = _audit_lines(ctx)[before:]
        commands = [_field(line, "command") for line in new]
        ctx.note(f"{len(new)} new record(s): {commands}")
        expected = (['"guest-fsfreeze-freeze"'] + ['"guest-file-open"'] * 3 + ['"guest-fsfreeze-thaw"'])
        ctx.expect(commands == expected, f"records after thaw: {commands}, expected {expected}")
        ctx.expect(_field(new[0], "decision") == "allowed" and _field(new[0], "outcome") == "ok", new[0])
        for i, line in enumerate(new[1:4]):
            ctx.expect(_field(line, "decision") == "refused" and _field(line, "rule") == "frozen",
                       f"a request refused while frozen is recorded as: {line}")
            ctx.expect(_field(line, "class") == "CommandNotFound", line)
            ctx.expect(_field(line, "arg.path") == f'"{OPEN_PATH.format(tag="frozen", i=i)}"', line)
        times = [float(_field(line, "time")) for line in new]
        ctx.expect(times == sorted(times), f"records out of order: {times}")
        ctx.expect(_field(new[4], "decision") == "allowed" and _field(new[4], "outcome") == "ok", new[4])
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)


@check(boot="pvh")
def audit_ring_overflow_keeps_the_newest_and_says_how_many_were_dropped(ctx):
    """1100 refused requests while frozen overflow the 1024-record ring: after thaw one record
    says how many were dropped (the freeze's and the oldest 76 requests': 77), then the newest
    1024 follow in order, from request 76 to request 1099."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 keeps no audit trail")
    count, ring = 1100, 1024
    ok = False
    try:
        before = len(_audit_lines(ctx))
        freeze(ctx)
        _pipelined_opens(ctx, "ring", count)
        ctx.call("guest-fsfreeze-thaw")
        new = _audit_lines(ctx)[before:]
        dropped = count + 1 - ring
        ctx.expect(len(new) >= ring + 2, f"expected {ring + 2} new records, got {len(new)}")
        ctx.expect(_field(new[0], "event") == "dropped-while-frozen" and _field(new[0], "count") == str(dropped),
                   f"the first record after thaw should report {dropped} dropped; got {new[0]!r}")
        paths = [_field(line, "arg.path") for line in new[1:ring + 1]]
        expected = [f'"{OPEN_PATH.format(tag="ring", i=i)}"' for i in range(count - ring, count)]
        ctx.expect(paths == expected, f"the ring's records are not requests {count - ring}..{count - 1} in order: "
                                      f"first {paths[:2]}, last {paths[-2:]}")
        ctx.expect(_field(new[ring + 1], "command") == '"guest-fsfreeze-thaw"', new[ring + 1])
        ctx.note(f"{count} requests while frozen; dropped record: {new[0]}")
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)


def _restart_agent_with_conf(ctx, conf):
    """Writes (or, with None, removes) the agent's default config file and restarts it."""
    if conf is None:
        ctx.guest_sh("rm -f /etc/qemu/qemu-ga.conf")
    else:
        ctx.guest_sh(f"mkdir -p /etc/qemu && printf '{conf}' > /etc/qemu/qemu-ga.conf")
    starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
    ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -TERM $(agent_pid)")
    _restarted(ctx, starts_before)
    ctx.guest.agent.handshake(timeout=60)


@check(boot="pvh")
def fsfreeze_time_limit_thaws_on_its_own(ctx):
    """With fsfreeze-timeout=4 (config file) a freeze the host never thaws ends by itself: the
    writer on the frozen disk resumes about 4 s after the freeze without any request, the
    marker is gone, guest-fsfreeze-status then reads "thawed", a later guest-fsfreeze-thaw
    answers 0, and the audit trail holds an event=fsfreeze-timeout record."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 has no freeze time limit")
    limit = 4
    _restart_agent_with_conf(ctx, f"[general]\\nfsfreeze-timeout={limit}\\n")
    witness = FreezeWitness(ctx)
    witness.start()
    ok = False
    try:
        freeze(ctx)
        frozen_at = witness.uptime()
        time.sleep(limit + 3.0)
        rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
        ctx.expect(rc != 0, f"{MARKER} still exists {limit + 3} s into a freeze limited to {limit} s")
        stamps = [float(x) for x in ctx.guest_sh(f"cat {witness.ticks}").split()]
        resumed = [s for s in stamps if s > frozen_at + 0.5]
        ctx.expect(resumed, f"the writer did not resume after the freeze at uptime {frozen_at:.2f}")
        after = resumed[0] - frozen_at
        ctx.note(f"freeze at uptime {frozen_at:.2f}; the writer resumed {after:.2f} s later (limit {limit} s)")
        ctx.expect(limit - 1.0 <= after <= limit + 2.0, f"the writer resumed {after:.2f} s after the freeze")
        status = ctx.call("guest-fsfreeze-status")
        ctx.expect(status == "thawed", f"guest-fsfreeze-status reads {status!r} after the time limit")
        thawed = ctx.call("guest-fsfreeze-thaw")
        ctx.expect(thawed == 0, f"guest-fsfreeze-thaw after the time limit answered {thawed!r}, not 0")
        events = [line for line in _audit_lines(ctx) if _field(line, "event") == "fsfreeze-timeout"]
        ctx.expect(events, "the audit trail has no event=fsfreeze-timeout record")
        log = ctx.guest_sh("grep -c 'fsfreeze-timeout: frozen for' /tmp/qga.log || true").strip()
        ctx.expect(log not in ("", "0"), "the agent's log does not say the time limit thawed")
        witness.verdict(frozen_at, frozen_at + limit)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)
        _restart_agent_with_conf(ctx, None)


@check(boot="pvh")
def audit_records_held_while_frozen_survive_a_sigkill_of_the_agent(ctx):
    """Records held while frozen are also in a spill file in the state directory (/run: a
    filesystem a freeze cannot reach). SIGKILL of the front while frozen (its helper then
    thaws): the restarted agent writes them out first, after one record saying they were
    recovered, in order: the freeze and two guest-file-open refused by the frozen rule."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 keeps no audit trail")
    ok = False
    try:
        before = len(_audit_lines(ctx))
        freeze(ctx)
        for i in range(2):
            ctx.call_expecting_error("guest-file-open", {"path": OPEN_PATH.format(tag="killed", i=i), "mode": "w"},
                                     "CommandNotFound",
                                     "Command guest-file-open has been disabled: the agent is in frozen state")
        during = len(_audit_lines(ctx))
        ctx.expect(during == before, f"the audit file grew while frozen: {before} -> {during} lines")
        starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
        ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -KILL $(agent_pid)")
        _restarted(ctx, starts_before)
        ctx.guest.agent.handshake(timeout=60)
        status = ctx.call("guest-fsfreeze-status")
        ctx.expect(status == "thawed", f"the restarted agent reads {status!r}, not \"thawed\"")
        new = _audit_lines(ctx)[before:]
        marks = [i for i, line in enumerate(new) if " event=held-records-recovered " in line]
        ctx.expect(marks, f"no held-records-recovered record after the restart; new records: {new}")
        held = new[marks[0] + 1:marks[0] + 4]
        commands = [_field(line, "command") for line in held]
        ctx.note(f"recovered: {new[marks[0]]}; then {commands}")
        expected = ['"guest-fsfreeze-freeze"', '"guest-file-open"', '"guest-file-open"']
        ctx.expect(commands == expected, f"records after the restart: {commands}, expected {expected}")
        for i, line in enumerate(held[1:]):
            ctx.expect(_field(line, "rule") == "frozen", line)
            ctx.expect(_field(line, "arg.path") == f'"{OPEN_PATH.format(tag="killed", i=i)}"', line)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)
