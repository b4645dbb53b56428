"""guest-exec and guest-exec-status in the real guest, under a policy whose exec rules name a few
of the guest's (busybox) programs. What the agent reports is compared with what the guest itself
shows, read through the control port: files the programs wrote, their processes in /proc while
they run and after they were killed, the uid they ran as, and a marker file a refused program
would have created.

For qemu-ga-rs the agent reloads (SIGHUP) EXEC_POLICY over its allow-all policy for each check
and gets the original back afterwards; the reference has no policy, so only the output check
applies to it."""

import base64
import contextlib
import time

from .harness import NotApplicable, check

POLICY = "/etc/qemu-ga-rs/allow-all.policy"
SAVED = "/run/qga-test/allow-all.policy.exec-saved"
USER, UID, GID = "qgatest", 1001, 1001
# A group of the guest's /etc/group that lists qgatest as a member (initramfs.GROUP).
SUPPLEMENTARY_GID = 1002
RAN = "/run/qga-test/exec-ran"            # written by the script that exits 3
MARKER = "/run/qga-test/exec-marker"      # what a refused program would have created
REFUSED = "the policy does not allow guest-exec "
ECHO_ARGS = ["hello", "from the guest"]
SCRIPT_3 = f"echo out; echo err >&2; echo ran > {RAN}; exit 3"
# Prints its background child's pid, then becomes a sleep: both outlive the one-second limit.
SCRIPT_SLOW = "sleep 30 & echo $!; exec sleep 31"

EXEC_POLICY = f"""default allow
allow guest-exec program=/bin/echo user=root arg=hello "arg=from the guest" capture=yes
allow guest-exec program=/bin/sh user=root arg=-c "arg={SCRIPT_3}" capture=yes
allow guest-exec program=/bin/sh user=root arg=-c "arg={SCRIPT_SLOW}" capture=yes env=PATH=/bin:/usr/bin timeout=1
allow guest-exec program=/usr/bin/id user={USER} arg=-u capture=yes
allow guest-exec program=/bin/sleep user={USER} arg=4 timeout=20
"""


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _decoded(status, key):
    return base64.b64decode(status.get(key, "")).decode(errors="replace")


def _exec(ctx, path, args, capture=True):
    arguments = {"path": path, "arg": args}
    if capture:
        arguments["capture-output"] = True
    return ctx.call("guest-exec", arguments)["pid"]


def _wait_exited(ctx, pid, timeout=30):
    """Polls guest-exec-status until it reports the program exited (then it forgets it)."""
    deadline = time.monotonic() + timeout
    while True:
        status = ctx.call("guest-exec-status", {"pid": pid})
        if status.get("exited"):
            return status
        if time.monotonic() > deadline:
            ctx.fail(f"pid {pid} not reported exited within {timeout} s: {status}")
        time.sleep(0.2)


def _refused(ctx, path, args):
    reply = ctx.guest.agent.execute("guest-exec", {"path": path, "arg": args, "capture-output": True}, 30)
    error = reply.get("error", {})
    ctx.expect(error.get("class") == "GenericError" and error.get("desc", "").startswith(REFUSED),
               f"guest-exec {path} {args} should have been refused by the policy; got {reply}")
    return error["desc"]


def _hup(ctx):
    ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -HUP $(agent_pid)")


def _true_is_refused(ctx):
    """The probe: /bin/true is named by no exec rule, so it is refused while EXEC_POLICY is in
    force; otherwise it runs (harmlessly) and its status is collected."""
    reply = ctx.guest.agent.execute("guest-exec", {"path": "/bin/true"}, 30)
    if "return" in reply:
        _wait_exited(ctx, reply["return"]["pid"])
        return False
    return reply.get("error", {}).get("desc", "").startswith(REFUSED)


def _until(ctx, want_refused, what):
    _hup(ctx)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _true_is_refused(ctx) == want_refused:
            return
        time.sleep(0.2)
    ctx.fail(f"after SIGHUP: {what}")


@contextlib.contextmanager
def exec_policy(ctx):
    """EXEC_POLICY in force for the block (qemu-ga-rs; the reference runs everything)."""
    if ctx.agent_spec.is_reference:
        yield
        return
    rc, _ = ctx.guest_sh_rc(f"test -f {POLICY}")
    if rc != 0:
        ctx.fail(f"the agent runs without {POLICY}: the exec rules cannot be put in force")
    ctx.guest_sh(f"cp -p {POLICY} {SAVED} && echo {_b64(EXEC_POLICY)} | base64 -d > {POLICY}")
    try:
        _until(ctx, True, "the exec rules are not in force")
        yield
    finally:
        ctx.guest_sh(f"cp -p {SAVED} {POLICY}")
        _until(ctx, False, "the exec rules are still in force after the original policy came back")


def _not_reference(ctx, why):
    if ctx.agent_spec.is_reference:
        raise NotApplicable(f"not applicable to the reference: {why}")


def _process_state(ctx, pid):
    """The guest's view of a pid: its state letter from /proc/PID/stat, or "gone"."""
    return ctx.guest_sh(f"if [ -e /proc/{pid}/stat ]; then read -r _ _ s _ < /proc/{pid}/stat; echo $s; "
                        "else echo gone; fi").strip()


@check(boot="pvh")
def exec_output_and_exit_codes_are_reported_as_the_programs_left_them(ctx):
    """/bin/echo with the rule's fixed arguments: exit code 0 and exactly its line in out-data;
    /bin/sh -c with the rule's exact script: exit code 3, its stdout and stderr in out-data and
    err-data, and the file the script wrote is in the guest (root's); the status of each is
    forgotten once reported exited."""
    ctx.guest_sh(f"rm -f {RAN}")
    with exec_policy(ctx):
        pid = _exec(ctx, "/bin/echo", ECHO_ARGS)
        status = _wait_exited(ctx, pid)
        ctx.expect(status.get("exitcode") == 0, f"/bin/echo: {status}")
        ctx.expect(_decoded(status, "out-data") == "hello from the guest\n", f"/bin/echo's output: {status}")
        ctx.expect(not status.get("err-data"), f"/bin/echo wrote to stderr: {status}")
        again = ctx.guest.agent.execute("guest-exec-status", {"pid": pid}, 30)
        ctx.expect("error" in again, f"a status reported exited is still known: {again}")

        pid = _exec(ctx, "/bin/sh", ["-c", SCRIPT_3])
        status = _wait_exited(ctx, pid)
        ctx.note(f"sh -c script: {status}")
        ctx.expect(status.get("exitcode") == 3, f"the script's exit code: {status}")
        ctx.expect(_decoded(status, "out-data") == "out\n" and _decoded(status, "err-data") == "err\n",
                   f"the script's output: {status}")
        ctx.expect(ctx.guest_sh(f"stat -c '%u %s' {RAN}").strip() == "0 4", "the script's file is not root's 'ran'")


@check(boot="pvh")
def exec_of_a_program_no_rule_allows_is_refused_and_never_runs(ctx):
    """Under the exec rules: /bin/touch MARKER (no rule names it), /bin/sh -c with another script
    that would touch MARKER, and /bin/echo with other arguments are refused with a GenericError
    naming what the policy refused; MARKER never appears in the guest. Once the original
    (allow-all) policy is back, the same /bin/touch request does create it: the marker would
    have shown a run."""
    _not_reference(ctx, "qemu-ga 7.2 has no exec rules")
    ctx.guest_sh(f"rm -f {MARKER}")
    with exec_policy(ctx):
        for path, args, what in [
            ("/bin/touch", [MARKER], "of '/bin/touch'"),
            ("/bin/sh", ["-c", f"touch {MARKER}; exit 3"], "of '/bin/sh' with these arguments"),
            ("/bin/echo", ["hello", "world"], "of '/bin/echo' with these arguments"),
        ]:
            desc = _refused(ctx, path, args)
            ctx.expect(what in desc, f"{path} {args} refused with {desc!r}, which does not say {what!r}")
        ctx.note(f"refused: {desc!r}")
        time.sleep(1.0)
        rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
        ctx.expect(rc != 0, f"a refused program ran: {MARKER} exists")
    pid = _exec(ctx, "/bin/touch", [MARKER], capture=False)
    ctx.expect(_wait_exited(ctx, pid).get("exitcode") == 0, "the control run of /bin/touch failed")
    rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
    ctx.expect(rc == 0, f"the control run of /bin/touch did not create {MARKER}: the marker proves nothing")
    ctx.guest_sh(f"rm -f {MARKER}")


@check(boot="pvh")
def exec_past_its_time_limit_is_killed_with_its_child_and_reported(ctx):
    """The rule for the slow script has a one-second limit: the script starts a background
    sleep and becomes a sleep itself. While it runs the guest shows both processes; guest-exec-
    status then reports it killed by signal 9 within a few seconds, with the child's pid in
    out-data, and the guest has neither process any more."""
    _not_reference(ctx, "qemu-ga 7.2 has no time limit")
    with exec_policy(ctx):
        started = time.monotonic()
        pid = _exec(ctx, "/bin/sh", ["-c", SCRIPT_SLOW])
        running = _process_state(ctx, pid)
        status = _wait_exited(ctx, pid)
        took = time.monotonic() - started
        ctx.note(f"reported after {took:.1f} s: {status}; the program was '{running}' while it ran")
        ctx.expect(running not in ("gone", "Z") or took >= 1.0, f"pid {pid} was not running at first: {running}")
        ctx.expect(status.get("signal") == 9 and "exitcode" not in status, f"not reported killed: {status}")
        ctx.expect(took < 10, f"killed {took:.1f} s after the start, with a limit of 1 s")
        out = _decoded(status, "out-data").split()
        ctx.expect(len(out) == 1 and out[0].isdigit(), f"the child's pid is not in out-data: {status}")
        child = out[0]
        deadline = time.monotonic() + 5
        while True:
            states = {p: _process_state(ctx, p) for p in (pid, child)}
            if all(s == "gone" for s in states.values()):
                break
            if time.monotonic() > deadline:
                ctx.fail(f"still in the guest after the kill: {states}")
            time.sleep(0.3)


@check(boot="pvh")
def exec_runs_the_program_as_the_rules_user(ctx):
    """The rules run /usr/bin/id -u and /bin/sleep 4 as qgatest: id prints 1001, and the
    guest's /proc shows the sleeping program with uid and gid 1001 (real, effective, saved and
    filesystem) and the groups the guest's /etc/group gives qgatest (1001 and 1002, not root's),
    then it exits 0."""
    _not_reference(ctx, "qemu-ga 7.2 runs every program as root")
    with exec_policy(ctx):
        status = _wait_exited(ctx, _exec(ctx, "/usr/bin/id", ["-u"]))
        ctx.expect(status.get("exitcode") == 0 and _decoded(status, "out-data") == f"{UID}\n",
                   f"id -u as {USER}: {status}")
        pid = _exec(ctx, "/bin/sleep", ["4"], capture=False)
        ids = ctx.guest_sh(f"grep -E '^(Uid|Gid|Groups):' /proc/{pid}/status").split()
        ctx.note(f"/proc/{pid}/status: {' '.join(ids)}")
        ctx.expect(ids[:10] == ["Uid:"] + [str(UID)] * 4 + ["Gid:"] + [str(GID)] * 4, f"the program's ids: {ids}")
        ctx.expect(sorted(ids[11:]) == sorted([str(GID), str(SUPPLEMENTARY_GID)]) and ids[10] == "Groups:",
                   f"the program's groups (as login would give {USER}): {ids[10:]}")
        status = _wait_exited(ctx, pid)
        ctx.expect(status.get("exitcode") == 0, f"sleep as {USER}: {status}")
