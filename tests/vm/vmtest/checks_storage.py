"""fsfreeze and fstrim, observed through a writer in the guest and the host's disk image."""

import random
import time

from .harness import CheckFailed, check

MARKER = "/run/qga/qga.state.isfrozen"
FROZEN_DESC = "Command guest-file-open has been disabled: the agent is in frozen state"

# A writer that stamps the guest's uptime into a file on the data disk five times a second.
# While the file system is frozen its write() blocks, so the stamps show a gap exactly as
# long as the freeze. Uptime, not the wall clock: other checks move the wall clock.
WRITER_START = """
rm -f {ticks}
setsid sh -c 'while :; do read up _ < /proc/uptime; echo "$up" >> {ticks}; sleep 0.2; done' > /dev/null 2>&1 &
echo $! > /run/qga-test/writer.pid
"""
WRITER_STOP = "kill $(cat /run/qga-test/writer.pid) 2>/dev/null; rm -f /run/qga-test/writer.pid; true"
UPTIME = "read up _ < /proc/uptime; echo $up"


class FreezeWitness:
    """Starts the writer, records the guest's uptime around the freeze, and judges the
    stamps afterwards."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.ticks = f"/mnt/data/ticks-{random.randrange(10**6)}"

    def start(self):
        self.ctx.guest_sh(WRITER_STOP)
        self.ctx.guest_sh(WRITER_START.format(ticks=self.ticks))
        time.sleep(1.5)

    def uptime(self):
        return float(self.ctx.guest_sh(UPTIME))

    def verdict(self, frozen_at, thawing_at):
        time.sleep(1.5)
        self.ctx.guest_sh(WRITER_STOP)
        stamps = [float(x) for x in self.ctx.guest_sh(f"cat {self.ticks}").split()]
        before = [s for s in stamps if s <= frozen_at]
        during = [s for s in stamps if frozen_at < s < thawing_at]
        after = [s for s in stamps if s >= thawing_at]
        summary = (f"freeze at uptime {frozen_at:.2f}, thaw requested at {thawing_at:.2f}; "
                   f"stamps before/during/after: {len(before)}/{len(during)}/{len(after)}")
        self.ctx.expect(thawing_at - frozen_at >= 3, f"the freeze window was too short to judge: {summary}")
        self.ctx.expect(len(before) >= 3, f"the writer was not running before the freeze: {summary}")
        # At most one stamp: taken just before its write() blocked on the frozen fs.
        self.ctx.expect(len(during) <= 1, f"the writer kept writing while frozen: {summary}; during={during}")
        self.ctx.expect(len(after) >= 3, f"the writer did not resume after thaw: {summary}")
        self.ctx.note(summary)


def expect_frozen_state(ctx):
    status = ctx.call("guest-fsfreeze-status")
    ctx.expect(status == "frozen", f"guest-fsfreeze-status should read \"frozen\"; got {status!r}")
    ctx.call_expecting_error("guest-file-open", {"path": "/mnt/data/files/while-frozen", "mode": "w"},
                             "CommandNotFound", FROZEN_DESC)
    ctx.expect(ctx.call("guest-ping") == {}, "guest-ping (allowlisted) failed while frozen")
    rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
    ctx.expect(rc == 0, f"{MARKER} does not exist while frozen")


def thaw_and_expect_thawed(ctx):
    thawed = ctx.call("guest-fsfreeze-thaw")
    ctx.expect(isinstance(thawed, int) and thawed >= 1, f"guest-fsfreeze-thaw should report >= 1 file system; got {thawed!r}")
    status = ctx.call("guest-fsfreeze-status")
    ctx.expect(status == "thawed", f"guest-fsfreeze-status should read \"thawed\" after thaw; got {status!r}")
    rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
    ctx.expect(rc != 0, f"{MARKER} still exists after thaw")
    handle = ctx.call("guest-file-open", {"path": "/mnt/data/files/after-thaw", "mode": "w"})
    ctx.call("guest-file-close", {"handle": handle})


def freeze(ctx):
    frozen = ctx.call("guest-fsfreeze-freeze", timeout=60)
    ctx.expect(isinstance(frozen, int) and frozen >= 1, f"guest-fsfreeze-freeze should freeze the data disk; got {frozen!r}")


def thaw_quietly(ctx):
    """Best effort so a failing freeze check does not leave the guest frozen for ever."""
    try:
        ctx.guest.agent.execute("guest-fsfreeze-thaw", timeout=20)
    except Exception:
        pass
    try:
        ctx.guest.control.run("busybox fsfreeze --unfreeze /mnt/data 2>/dev/null; " + WRITER_STOP, timeout=10)
    except Exception:
        pass


@check(boot="pvh")
def fsfreeze_blocks_writer_until_thaw(ctx):
    """After guest-fsfreeze-freeze a writer on the data disk blocks until thaw; status reads
    frozen then thawed; non-allowlisted commands are refused with 7.2's text; the isfrozen
    marker exists only while frozen."""
    witness = FreezeWitness(ctx)
    witness.start()
    ok = False
    try:
        freeze(ctx)
        frozen_at = witness.uptime()
        expect_frozen_state(ctx)
        time.sleep(max(0.0, 4.0 - (witness.uptime() - frozen_at)))
        thawing_at = witness.uptime()
        thaw_and_expect_thawed(ctx)
        witness.verdict(frozen_at, thawing_at)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)


@check(boot="pvh")
def fsfreeze_survives_agent_crash_and_restart(ctx):
    """Killing the agent (every process of it, with SIGKILL) while frozen and starting it
    again brings it up frozen: status frozen, commands refused, marker present, the writer
    still blocked; then thaw works."""
    witness = FreezeWitness(ctx)
    witness.start()
    ok = False
    try:
        freeze(ctx)
        frozen_at = witness.uptime()
        starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
        killed = ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; crash_tree $(agent_pid)").split()
        ctx.note(f"killed pids {' '.join(killed)}")
        deadline = time.monotonic() + 30
        while int(ctx.guest_sh("cat /run/qga-test/agent.starts")) == starts_before:
            if time.monotonic() > deadline:
                raise CheckFailed("the supervisor did not restart the agent within 30 s")
            time.sleep(0.5)
        ctx.guest.agent.handshake(timeout=60)
        expect_frozen_state(ctx)
        time.sleep(max(0.0, 4.0 - (witness.uptime() - frozen_at)))
        thawing_at = witness.uptime()
        thaw_and_expect_thawed(ctx)
        witness.verdict(frozen_at, thawing_at)
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)


@check(boot="pvh")
def fstrim_shrinks_host_disk_image(ctx):
    """After 16 MiB are written and deleted in the guest, guest-fstrim makes the host's
    sparse data image give the space back (discard=unmap punches holes)."""
    mib = 1 << 20
    ctx.guest_sh("dd if=/dev/urandom of=/mnt/data/trim-me bs=1M count=16 2>/dev/null && sync", timeout=120)
    written = ctx.guest.data_disk_allocated()
    ctx.guest_sh("rm /mnt/data/trim-me && sync")
    deleted = ctx.guest.data_disk_allocated()
    # ext4 is mounted without -o discard, so deleting alone must not free the image space;
    # otherwise the trim below would prove nothing.
    ctx.expect(written - deleted < 4 * mib,
               f"the image shrank by {(written - deleted) / mib:.1f} MiB on delete alone, before any trim")
    result = ctx.call("guest-fstrim", timeout=120)
    trimmed = ctx.guest.data_disk_allocated()
    ctx.note(f"image allocation {written / mib:.1f} -> {deleted / mib:.1f} -> {trimmed / mib:.1f} MiB")
    ctx.expect(deleted - trimmed >= 12 * mib,
               f"guest-fstrim freed only {(deleted - trimmed) / mib:.1f} MiB of the host image "
               f"({written / mib:.1f} MiB after writing, {deleted / mib:.1f} after delete, "
               f"{trimmed / mib:.1f} after trim); reply {result}")
    if isinstance(result, dict) and "paths" in result:
        data = [p for p in result["paths"] if p.get("path") == "/mnt/data"]
        ctx.expect(data and "error" not in data[0], f"guest-fstrim reports no success for /mnt/data: {result}")
