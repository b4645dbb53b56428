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
    a second and the marker is gone; the restarted agent comes up thawed."""
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
        witness.verdict(frozen_at, killed_at)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)
