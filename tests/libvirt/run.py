#!/usr/bin/env python3
"""libvirt suite: a private libvirtd drives the agent inside a TCG guest through virsh, and
every answer is checked against the guest's real state. See tests/libvirt/README.md.

    python3 tests/libvirt/run.py [--agent PATH] [--strict] [--only REGEX] [--keep]
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "vm"))   # the real-guest suite's kernel, initramfs, control port

from vmtest import agent_under_test, hostenv, initramfs  # noqa: E402
from vmtest.suite_cli import banner, parse_args as suite_args  # noqa: E402
from lvtest import checks  # noqa: E402
from lvtest import checks_accounts  # noqa: E402,F401
from lvtest.daemon import Libvirtd  # noqa: E402
from lvtest.domain import Domain, Virsh  # noqa: E402

PASS, FAIL, NOT_RUN, NOT_APPLICABLE = "PASS", "FAIL", "NOT RUN", "N/A"


class BudgetExhausted(Exception):
    pass


def extra_guest_files():
    return {"/etc/os-release": checks.OS_RELEASE,
            "/etc/localtime": Path(checks.LOCALTIME_SOURCE).read_bytes(),
            "/etc/timezone": checks.TIMEZONE + "\n"}


def virsh_has_option(command, option):
    result = subprocess.run(["virsh", "help", command], capture_output=True, text=True)
    return re.search(rf"(^|\s){re.escape(option)}\b", result.stdout) is not None


def enabled_commands(virsh, domain):
    info = virsh.agent(domain.name, "guest-info")
    return {c["name"] for c in info["supported_commands"] if c.get("enabled")}


def failure_report(domain, virsh, daemon):
    lines = ["  last virsh calls:"]
    for argv, rc, out, err in virsh.transcript[-6:]:
        lines.append(f"    $ virsh {' '.join(argv)}  -> exit {rc}")
        lines += [f"      {line}" for line in (out + err).strip().splitlines()[-12:]]
    if domain.control.last:
        script, rc, output = domain.control.last
        lines.append(f"  last guest command (exit {rc}): {script}")
        lines += [f"      {line}" for line in output.strip().splitlines()[-12:]]
    try:
        # The agent's own log and its stdio as the supervisor keeps them, read without the agent.
        agent_log = domain.control.check("tail -n 12 /tmp/qga.log /tmp/agent.stdio 2>&1; echo '==> seccomp kills:'; "
                                         "dmesg | grep -E 'type=1326|seccomp' | tail -n 3", timeout=10)
        lines.append("  the agent's log and stdio in the guest, and the kernel's seccomp records:")
        lines += [f"      {line}" for line in agent_log.strip().splitlines()]
    except Exception as err:
        lines.append(f"  (the agent's log could not be read through the control port: {err})")
    lines.append("  guest console (last 20 lines):")
    lines += [f"      {line}" for line in domain.console_tail(20)]
    lines.append("  libvirtd log (last 8 lines):")
    lines += [f"      {line}" for line in daemon.log_tail(8)]
    return "\n".join(lines)


def ensure_guest(domain):
    """The next check gets a running guest whose control port and agent answer; a guest that
    is off or broken (after a failure or the shutdown check) is destroyed and booted afresh."""
    try:
        if domain.running():
            domain.control.wait_ready(5)
            domain.wait_agent(10)
            return
    except Exception:
        pass
    domain.destroy()
    domain.start()


def run_check(chk, ctx, domain, virsh, daemon, enabled):
    started = time.monotonic()
    ctx.notes = []
    try:
        if chk.virsh_option and not virsh_has_option(*chk.virsh_option):
            raise checks.NotApplicable(f"this virsh has no '{chk.virsh_option[0]} {chk.virsh_option[1]}'")
        missing = [c for c in chk.needs if c not in enabled]
        if missing:
            raise checks.NotRun(f"the agent does not list {', '.join(missing)} as enabled in guest-info")
        chk.func(ctx)
        return PASS, "; ".join(ctx.notes), time.monotonic() - started
    except checks.NotRun as err:
        return NOT_RUN, str(err), time.monotonic() - started
    except checks.NotApplicable as err:
        return NOT_APPLICABLE, str(err), time.monotonic() - started
    except checks.CheckFailed as err:
        detail = str(err)
    except Exception as err:
        detail = f"{type(err).__name__}: {err}\n{traceback.format_exc().rstrip()}"
    return FAIL, detail + "\n" + failure_report(domain, virsh, daemon), time.monotonic() - started


def main():
    args = suite_args(__doc__, budget=540, keep_help="keep the work directory (always kept on failure)")
    selected = [c for c in checks.REGISTRY if not args.only or re.search(args.only, c.name)]
    if args.list:
        for c in selected:
            print(f"{c.name:60s} needs {', '.join(c.needs)}\n    {c.doc.splitlines()[0]}")
        return 0
    started = time.monotonic()
    workroot = Path(tempfile.mkdtemp(prefix="qga-libvirt-"))
    os.chmod(workroot, 0o755)
    daemon = Libvirtd(workroot)
    try:
        hostenv.require_tool(hostenv.QEMU_BINARY)
        hostenv.require_tool("busybox")
        agent = agent_under_test.resolve(args.agent, args.flavour)
        release = hostenv.kernel_release()
        initrd = initramfs.build(agent, release, workroot / "initramfs.cpio", extra_files=extra_guest_files())
        kernel = hostenv.vmlinux_path(release)
        version = daemon.start()
    except (hostenv.HostSetupError, OSError, subprocess.SubprocessError) as err:
        print(f"libvirt tests: cannot start: {err}", file=sys.stderr)
        daemon.stop()
        return 2
    virsh = Virsh(daemon.uri)
    domain = Domain(virsh, workroot, f"qga-lvtest-{os.getpid()}", kernel, initrd, args.accel)
    versions = dict(line.split(":", 1) for line in version.splitlines() if ":" in line)
    stack = f"{versions.get('Using library', '?').strip()}, {versions.get('Running hypervisor', '?').strip()}"
    print(f"libvirt tests: agent {agent.label} ({args.agent}), {stack}, kernel {release}, "
          f"{len(selected)} checks, work dir {workroot}", flush=True)
    results = []
    try:
        domain.define()
        enabled = None
        boot_error = None   # a guest that did not come up once is not retried: the budget matters more
        ctx = checks.Context(domain, virsh, agent.label)
        for chk in selected:
            try:
                if boot_error:
                    raise boot_error
                if time.monotonic() - started > args.budget:
                    raise BudgetExhausted(f"not started: the suite's {args.budget:.0f} s budget is exhausted")
                ensure_guest(domain)
                if enabled is None:
                    enabled = enabled_commands(virsh, domain)
            except Exception as err:
                if not isinstance(err, BudgetExhausted):
                    boot_error = err
                detail = f"no guest to run on: {err}\n" + failure_report(domain, virsh, daemon)
                results.append((chk.name, FAIL, detail, 0))
                print(f"[FAIL]    {chk.name}\n{results[-1][2]}", flush=True)
                continue
            status, detail, seconds = run_check(chk, ctx, domain, virsh, daemon, enabled)
            results.append((chk.name, status, detail, seconds))
            if status == FAIL:
                print(f"[FAIL]    {chk.name} ({seconds:.1f} s)\n{detail}", flush=True)
            elif status == NOT_RUN:
                banner(f"NOT RUN: {chk.name}: {detail}")
            else:
                print(f"[{status}]{' ' * (8 - len(status))} {chk.name} ({seconds:.1f} s)"
                      + (f"  -- {detail}" if detail else ""), flush=True)
    finally:
        domain.destroy()
        daemon.stop()
        domain.kill_leftover_qemu()

    total = time.monotonic() - started
    print("\n==== summary " + "=" * 65)
    for name, status, detail, _ in results:
        short = detail.splitlines()[0] if detail and status != PASS else ""
        print(f"  {status:8s} {name}" + (f"  ({short})" if short else ""))
    counts = {s: sum(1 for r in results if r[1] == s) for s in (PASS, FAIL, NOT_RUN, NOT_APPLICABLE)}
    boots = ", ".join(f"{s:.1f} s" for s in domain.boots)
    print(f"  {counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_RUN]} not run, "
          f"{counts[NOT_APPLICABLE]} not applicable, against {agent.label}; {total:.0f} s total; boots: {boots}")
    if counts[NOT_RUN]:
        banner(f"{counts[NOT_RUN]} check(s) NOT RUN: the agent lacks their commands; they are not passes"
               + (" (--strict: counted as failures)" if args.strict else ""))
    if args.keep or counts[FAIL]:
        print(f"  work directory kept (guest/console.log, libvirtd/libvirtd.log): {workroot}")
    else:
        shutil.rmtree(workroot, ignore_errors=True)
    failed = counts[FAIL] + (counts[NOT_RUN] if args.strict else 0)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
