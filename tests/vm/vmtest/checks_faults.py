"""Faults while frozen: whichever way the front goes, the guest's file systems do not stay
frozen, and the agent restarts cleanly. (qemu-ga 7.2 is one process that ignores SIGTERM
while frozen and cannot thaw after SIGKILL: these are qemu-ga-rs's improvements.)"""

import time

from .checks_storage import MARKER, FreezeWitness, freeze, thaw_quietly
from .harness import CheckFailed, NotApplicable, check


def _restarted(ctx, starts_before, timeout=30):
    deadline = time.monotonic() + timeout
    while int(ctx.guest_sh("cat /run/qga-test/agent.starts")) == starts_before:
        if time.monotonic() > deadline:
            raise CheckFailed(f"the supervisor did not restart the agent within {timeout} s")
        time.sleep(0.5)


def _expect_thawed_after_fault(ctx, witness, frozen_at, fault_at, what):
    """The writer resumed right after the fault, the marker is gone, and the restarted agent
    comes up thawed and serves file commands."""
    time.sleep(2.0)
    rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
    ctx.expect(rc != 0, f"{MARKER} still exists after {what}: the helper did not thaw")
    ctx.guest.agent.handshake(timeout=60)
    status = ctx.call("guest-fsfreeze-status")
    ctx.expect(status == "thawed", f"after {what} the restarted agent reads {status!r}, not \"thawed\"")
    handle = ctx.call("guest-file-open", {"path": "/mnt/data/files/after-fault", "mode": "w"})
    ctx.call("guest-file-close", {"handle": handle})
    # The writer was blocked from the freeze to the fault and wrote again after it.
    witness.verdict(frozen_at, fault_at)


def _fault_while_frozen(ctx, signal, what):
    if ctx.agent_spec.is_reference:
        raise NotApplicable(f"not applicable to the reference: qemu-ga 7.2 {what} leaves the guest frozen by design")
    witness = FreezeWitness(ctx)
    witness.start()
    ok = False
    try:
        freeze(ctx)
        frozen_at = witness.uptime()
        time.sleep(max(0.0, 3.5 - (witness.uptime() - frozen_at)))
        starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
        fault_at = witness.uptime()
        ctx.guest_sh(f". /usr/libexec/qga-test/lib.sh; kill -{signal} $(agent_pid)")
        _restarted(ctx, starts_before)
        exit_line = ctx.guest_sh("grep 'exited with status' /run/qga-test/supervisor.log | tail -n 1 || true")
        ctx.note(f"{what}: {exit_line.strip()}")
        _expect_thawed_after_fault(ctx, witness, frozen_at, fault_at, what)
        ok = True
        return exit_line
    finally:
        if not ok:
            thaw_quietly(ctx)


@check(boot="pvh")
def front_killed_while_frozen_is_thawed_by_the_helper(ctx):
    """SIGKILL of the front while frozen: the helper notices at once, thaws every file system
    and exits; the agent restarts thawed."""
    _fault_while_frozen(ctx, "KILL", "SIGKILL of the front while frozen")


@check(boot="pvh")
def sigterm_while_frozen_thaws_then_exits_0(ctx):
    """SIGTERM while frozen: the agent thaws first, then exits 0 (qemu-ga 7.2 ignores the
    signal and stays frozen)."""
    exit_line = _fault_while_frozen(ctx, "TERM", "SIGTERM while frozen")
    ctx.expect(exit_line.strip().endswith("exited with status 0"),
               f"the agent should exit 0 after SIGTERM while frozen; supervisor says: {exit_line.strip()!r}")
