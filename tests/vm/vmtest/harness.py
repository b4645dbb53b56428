"""Check registry, guest sharing between checks, results and failure reports."""

import json
import time
import traceback
from dataclasses import dataclass

from . import hostenv
from .control import ControlError
from .qga import AgentError
from .qmp import QmpError
from .vm import Guest
from .vsock import BackendUnavailable, VsockGuest

PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "PASS", "FAIL", "NOT RUN", "N/A"


class CheckFailed(Exception):
    pass


class CheckNotRun(Exception):
    """The check could not run on this host; never counted as passed."""


class GuestUnavailable(Exception):
    """The guest this check needs could not be booted."""


class NotApplicable(Exception):
    """The property does not exist in the agent under test (e.g. privilege separation in
    the reference qemu-ga); only allowed where the check says so."""


@dataclass
class Check:
    name: str
    boot: str          # "pvh" (shared main guest), "bzimage" (suspend guest), "vsock" or "none"
    func: object
    doc: str


REGISTRY = []


def check(boot):
    def register(func):
        REGISTRY.append(Check(func.__name__, boot, func, (func.__doc__ or "").strip()))
        return func
    return register


class Context:
    """What a check gets: the guest, the agent under test, and assertion helpers that make
    failure messages carry the request and the raw reply."""

    def __init__(self, guest, agent_spec, pool=None):
        self.guest = guest
        self.pool = pool
        self.agent_spec = agent_spec
        self.client = guest.agent if guest else None   # the client whose transcript to report
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    def fail(self, message):
        raise CheckFailed(message)

    def expect(self, condition, message):
        if not condition:
            raise CheckFailed(message)

    def call(self, command, arguments=None, timeout=60.0, client=None):
        """Execute and insist on success; returns the "return" value."""
        client = client or self.guest.agent
        self.client = client
        reply = client.execute(command, arguments, timeout)
        if "return" not in reply:
            raise CheckFailed(f"{command} failed: {json.dumps(reply)}")
        return reply["return"]

    def call_expecting_error(self, command, arguments, error_class, desc, timeout=60.0):
        self.client = self.guest.agent
        reply = self.guest.agent.execute(command, arguments, timeout)
        error = reply.get("error")
        if not error:
            raise CheckFailed(f"{command} should have been refused with {error_class} \"{desc}\"; got {json.dumps(reply)}")
        if error.get("class") != error_class or error.get("desc") != desc:
            raise CheckFailed(
                f"{command} refused with the wrong error:\n  expected {error_class} \"{desc}\"\n"
                f"  got      {error.get('class')} \"{error.get('desc')}\""
            )
        return error

    def guest_sh(self, script, timeout=30):
        """Run a shell script in the guest through the control port; insist on exit 0."""
        try:
            return self.guest.control.check(script, timeout)
        except ControlError as err:
            raise CheckFailed(str(err)) from None

    def guest_sh_rc(self, script, timeout=30):
        try:
            return self.guest.control.run(script, timeout)
        except ControlError as err:
            raise CheckFailed(str(err)) from None


class GuestPool:
    """Keeps one guest per boot kind and reuses it while it stays healthy. A check that
    fails, or leaves the guest dead or unresponsive, gets the next check a fresh guest."""

    def __init__(self, agent_spec, release, initrd, workroot, accel):
        self.agent_spec = agent_spec
        self.release = release
        self.initrd = initrd
        self.workroot = workroot
        self.accel = accel
        self.guests = {}
        self.counter = 0
        self.boot_seconds = []
        self.broken = {}          # boot kind -> the check during which it failed to come up
        self.current_check = None

    def _kernel(self, kind):
        if kind in ("pvh", "vsock"):
            return hostenv.vmlinux_path(self.release)
        return hostenv.bzimage_path(self.release)

    def _new_guest(self, kind):
        """The "vsock" guest is a PVH guest with a user-space vsock device (vsock.py)."""
        workdir = self.workroot / f"{self.counter:02d}-{kind}"
        if kind == "vsock":
            try:
                return VsockGuest(workdir, self._kernel(kind), self.initrd, "pvh", kind, accel=self.accel)
            except BackendUnavailable as why:
                raise CheckNotRun(str(why)) from None
        return Guest(workdir, self._kernel(kind), self.initrd, kind, kind, accel=self.accel)

    def healthy(self, guest):
        if not guest.running():
            return False
        try:
            guest.control.run("true", timeout=5)
            return guest.agent.handshake(timeout=15)
        except (ControlError, AgentError, OSError):
            return False

    def get(self, kind):
        if kind in self.broken:
            raise GuestUnavailable(f"the {kind} guest did not come up earlier (see {self.broken[kind]}); "
                                   "not booting it again")
        guest = self.guests.get(kind)
        if guest and self.healthy(guest):
            return guest
        if guest:
            guest.stop()
        self.counter += 1
        guest = self._new_guest(kind)
        started = time.monotonic()
        self.guests[kind] = guest   # registered first, so a failed start still gets reported
        try:
            guest.start()
            guest.wait_until_up(timeout=90)
        except Exception:
            # One boot that never comes up is enough evidence; booting again for every
            # remaining check would only blow the time budget.
            self.broken[kind] = self.current_check
            raise
        self.boot_seconds.append((kind, time.monotonic() - started))
        return guest

    def discard(self, kind):
        guest = self.guests.pop(kind, None)
        if guest:
            guest.stop()

    def stop_all(self):
        for kind in list(self.guests):
            self.discard(kind)


def own_guest(ctx, kind, extra_args, timeout=150):
    """A guest of the check's own kind (extra devices only some checks need), kept in the pool
    (and stopped with it) so the next check of that kind reuses it while it stays healthy.
    `extra_args(workdir)` makes what the guest needs on the host and returns QEMU arguments
    added to the common command line."""
    pool = ctx.pool
    guest = pool.guests.get(kind)
    if guest and pool.healthy(guest):
        ctx.guest, ctx.client = guest, guest.agent
        return guest
    if guest:
        pool.discard(kind)
    pool.counter += 1
    workdir = pool.workroot / f"{pool.counter:02d}-{kind}"
    guest = Guest(workdir, hostenv.vmlinux_path(pool.release), pool.initrd, "pvh", kind, accel=pool.accel)
    guest.extra_args = extra_args(workdir)
    pool.guests[kind] = guest   # registered first, so a failed start still gets reported
    ctx.guest = guest
    started = time.monotonic()
    guest.start()
    guest.wait_until_up(timeout=timeout)
    pool.boot_seconds.append((kind, time.monotonic() - started))
    ctx.client = guest.agent
    return guest


def _agent_logs(guest):
    """The agent's own stderr and log file, read through the control port if it still works."""
    if not guest.running() or guest.control is None or guest.control.sock is None:
        return []
    saved = guest.control.last   # keep the failing command for the report
    try:
        rc, output = guest.control.run(
            "for f in /tmp/agent.stdio /tmp/qga.log; do [ -s $f ] && echo \"== $f\" && tail -n 12 $f; done; true",
            timeout=5)
    except Exception:
        return []
    finally:
        guest.control.last = saved
    if not output.strip():
        return []
    return ["  agent stderr/log in the guest:"] + ["    | " + line for line in output.splitlines()]


def failure_report(ctx, guest):
    lines = []
    client = ctx.client if ctx else (guest.agent if guest else None)
    if client is not None:
        lines.append(f"  request:   {client.last_request!r}")
        lines.append(f"  raw reply: {client.last_raw_reply!r}")
        lines.append("  agent transcript (last exchanges):")
        lines += ["    " + line for line in client.transcript_tail(8)]
    if guest is not None:
        if guest.control and guest.control.last:
            script, rc, output = guest.control.last
            lines.append(f"  last control command: {script!r} -> exit {rc}")
            lines += ["    | " + line for line in output.splitlines()[-10:]]
        lines += _agent_logs(guest)
        lines.append("  guest console (last 40 lines):")
        lines += ["    | " + line for line in guest.console_tail(40)]
        if guest.qmp:
            lines.append("  QMP events (last 15):")
            lines += ["    " + line for line in guest.qmp.event_log_tail(15)] or ["    (none)"]
        qemu_tail = guest.qemu_log_tail()
        if qemu_tail:
            lines.append("  QEMU stderr:")
            lines += ["    | " + line for line in qemu_tail]
    return "\n".join(lines)


def run_check(chk, pool, agent_spec):
    """Run one check; returns (status, detail, seconds)."""
    started = time.monotonic()
    guest = None
    ctx = None
    pool.current_check = chk.name
    try:
        if chk.boot != "none":
            guest = pool.get(chk.boot)
        ctx = Context(guest, agent_spec, pool)
        chk.func(ctx)
        return PASS, "; ".join(ctx.notes), time.monotonic() - started
    except CheckNotRun as reason:
        return NOT_RUN, str(reason), time.monotonic() - started
    except NotApplicable as reason:
        return NOT_APPLICABLE, str(reason), time.monotonic() - started
    except GuestUnavailable as err:
        return FAIL, f"GuestUnavailable: {err}", time.monotonic() - started
    except (CheckFailed, AgentError, ControlError, QmpError, OSError) as err:
        # a boot that failed to come up, or a check's own guest (boot "none")
        guest = guest or pool.guests.get(chk.boot) or (ctx.guest if ctx else None)
        detail = f"{type(err).__name__}: {err}\n" + failure_report(ctx, guest)
    except Exception:  # a bug in the check itself must still be reported, not crash the run
        guest = guest or pool.guests.get(chk.boot) or (ctx.guest if ctx else None)
        detail = traceback.format_exc() + failure_report(ctx, guest)
    if chk.boot != "none":
        pool.discard(chk.boot)   # the next check on this boot gets a fresh guest
    return FAIL, detail, time.monotonic() - started
