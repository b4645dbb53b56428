"""Policy reload on SIGHUP in the real guest: the host stays connected while the policy file
changes under the running agent, observed through guest-info and a refused command."""

import time

from .harness import NotApplicable, check

POLICY = "/etc/qemu-ga-rs/allow-all.policy"
SAVED = "/run/qga-test/allow-all.policy.saved"


def _enabled(ctx, name):
    for c in ctx.call("guest-info")["supported_commands"]:
        if c["name"] == name:
            return c["enabled"]
    ctx.fail(f"{name} missing from guest-info")


def _hup_until(ctx, name, want):
    """SIGHUP to the agent, then wait (bounded) until guest-info shows `name` as `want`."""
    ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -HUP $(agent_pid)")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _enabled(ctx, name) == want:
            return
        time.sleep(0.2)
    ctx.fail(f"after SIGHUP guest-info still shows {name} enabled={not want}")


@check(boot="pvh")
def sighup_reloads_the_policy_while_the_host_stays_connected(ctx):
    """The agent runs with allow-all.policy; the file is rewritten to deny guest-get-time and
    the agent gets SIGHUP: the same host connection sees guest-info's flag drop and the command
    refused as disabled; the original file and a second SIGHUP bring it back."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 exits on SIGHUP")
    rc, _ = ctx.guest_sh_rc(f"test -f {POLICY}")
    if rc != 0:
        raise NotApplicable(f"the agent runs without {POLICY}")
    starts = ctx.guest_sh("cat /run/qga-test/agent.starts")
    ctx.expect(_enabled(ctx, "guest-get-time"), "guest-get-time is not enabled before the reload")
    ctx.guest_sh(f"cp -p {POLICY} {SAVED} && printf 'default allow\\ndeny guest-get-time\\n' > {POLICY}")
    try:
        _hup_until(ctx, "guest-get-time", False)
        ctx.call_expecting_error("guest-get-time", None, "CommandNotFound", "Command guest-get-time has been disabled")
    finally:
        ctx.guest_sh(f"cp -p {SAVED} {POLICY}")
    _hup_until(ctx, "guest-get-time", True)
    ctx.call("guest-get-time")
    ctx.expect(
        ctx.guest_sh("cat /run/qga-test/agent.starts") == starts, "the agent was restarted: a reload must not restart it"
    )


@check(boot="pvh")
def sighup_brings_argument_conditions_in_and_takes_them_out(ctx):
    """The policy file gains an argument condition (guest-file-open of one path, for reading)
    and the agent gets SIGHUP: the same host connection then sees another path refused by the
    condition and the allowed one pass the gate; the original file and a second SIGHUP drop
    the condition, and the other path reaches the open again (a missing file: an OS error)."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 exits on SIGHUP")
    rc, _ = ctx.guest_sh_rc(f"test -f {POLICY}")
    if rc != 0:
        raise NotApplicable(f"the agent runs without {POLICY}")
    allowed, other = POLICY, "/nonexistent-qga-reload-other"
    refusal = f"the policy does not allow guest-file-open '{other}'"

    def open_other():
        return ctx.guest.agent.execute("guest-file-open", {"path": other, "mode": "r"}, 30)

    def hup_until(pred, what):
        ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -HUP $(agent_pid)")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = open_other()
            if pred(reply):
                return reply
            time.sleep(0.2)
        ctx.fail(f"after SIGHUP: {what}; last reply {reply}")

    ctx.guest_sh(f"cp -p {POLICY} {SAVED} && "
                 f"printf 'default allow\\nallow guest-file-open path={allowed} access=read\\n' > {POLICY}")
    try:
        reply = hup_until(lambda r: r.get("error", {}).get("desc") == refusal, "the condition is not in force")
        ctx.expect(reply["error"]["class"] == "GenericError", f"refused with {reply}")
        handle = ctx.call("guest-file-open", {"path": allowed, "mode": "r"})
        ctx.call("guest-file-close", {"handle": handle})
    finally:
        ctx.guest_sh(f"cp -p {SAVED} {POLICY}")
    reply = hup_until(lambda r: r.get("error", {}).get("desc") != refusal, "the condition is still in force")
    ctx.note(f"after the second reload the other path answers {reply}")
    ctx.expect("No such file" in reply.get("error", {}).get("desc", ""), f"the other path now answers {reply}")
