#!/usr/bin/env python3
"""The Debian package in a booted Debian 12 guest (systemd as PID 1, udev, apt), checked
from outside the agent. See tests/package/README.md.

    python3 tests/package/run.py --deb PKG.deb --upgrade-deb NEWER.deb --upgrade-version V
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vm"))   # the vmtest modules: QMP, qga and control clients
sys.path.insert(0, str(HERE))

from vmtest import hostenv  # noqa: E402
from vmtest.control import ControlError  # noqa: E402
from vmtest.qga import AgentError  # noqa: E402
from vmtest.qmp import QmpError  # noqa: E402
from pkgtest import rootfs, steps  # noqa: E402
from pkgtest.guest import Guest, build_initramfs  # noqa: E402

UPGRADE_DEB_IN_GUEST = "/var/cache/qga-test/qemu-ga-rs-upgrade.deb"
RS = "qemu-ga-rs (this package)"
REFERENCE = "qemu-guest-agent (Debian, qemu-ga 7.2)"

# Boot 1 (the package as installed by apt in the image), in order; the last powers it off.
FIRST_BOOT = [
    ("service_starts_by_itself_when_the_port_exists", steps.started_by_the_port),
    ("three_processes_with_their_privilege_facts", steps.three_processes_with_their_privileges),
    ("start_record_in_the_journal", steps.start_record_in_the_journal),
    ("freeze_and_thaw_under_the_sandbox", steps.freeze_and_thaw),
    ("audit_records_of_freeze_thaw_and_a_refusal_in_the_journal", steps.audit_records_in_the_journal),
    ("front_sigkill_restarted_by_systemd_guest_thawed", steps.front_sigkill_restarted_by_systemd_and_thawed),
    ("set_time_under_the_sandbox", steps.set_time_moves_clock_and_rtc),
    ("set_vcpus_under_the_sandbox", steps.set_vcpus_offline_and_online),
    ("fstrim_under_the_sandbox", steps.fstrim_shrinks_the_image),
    ("sandbox_keeps_power_state_cpu_and_rtc_writable", steps.sandbox_leaves_sysfs_power_and_rtc_writable),
    ("port_unplug_stops_service_plug_starts_it", steps.port_unplug_stops_plug_starts),
    ("freeze_hook_runs_from_qemu_guest_agent_paths", steps.freeze_hook_runs_from_qemu_guest_agent_paths),
    ("upgrade_keeps_the_edited_policy", None),   # needs the upgrade's arguments, bound in main()
    ("guest_shutdown_powers_off_through_systemd", steps.shutdown_through_systemd),
]
# Boot 2 (same disk, after the upgrade).
SECOND_BOOT = [
    ("service_starts_by_itself_after_the_upgrade", steps.started_by_the_port),
    ("guest_suspend_ram_under_the_sandbox", steps.suspend_ram_through_systemd),
    ("apt_remove_stops_the_service_purge_removes_the_conffile", steps.apt_remove_stops_purge_removes_conffile),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", required=True, help="the package to test")
    parser.add_argument("--upgrade-deb", required=True, help="a newer build of it, for the upgrade check")
    parser.add_argument("--upgrade-version", required=True, help="the version of --upgrade-deb")
    parser.add_argument("--accel", default="tcg", help="QEMU accelerator (default tcg; KVM is unusable on the CI hosts)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (images, console logs)")
    return parser.parse_args()


def log(text):
    print(f"package test: {text}", flush=True)


def report(guest):
    lines = ["  guest console (last 30 lines):"] + ["    | " + line for line in guest.console_tail(30)]
    if guest.agent is not None:
        lines += ["  agent transcript:"] + ["    " + line for line in guest.agent.transcript_tail(6)]
    if guest.control is not None and guest.control.last:
        script, rc, output = guest.control.last
        lines += [f"  last control command: {script!r} -> exit {rc}"] + ["    | " + line for line in output.splitlines()[-10:]]
    if guest.running():
        try:
            journal = guest.control.check(f"journalctl -b -u {steps.UNIT} --no-pager | tail -n 15", timeout=15)
            lines += [f"  journal of {steps.UNIT}:"] + ["    | " + line for line in journal.splitlines()]
        except (ControlError, OSError):
            pass
    return "\n".join(lines)


def run_steps(guest, plan, results):
    s = steps.Steps(guest, log)
    for name, func in plan:
        started = time.monotonic()
        try:
            if not guest.running():
                raise steps.StepFailed("the guest is not running (an earlier step failed)")
            detail = func(s)
            results.append((name, "PASS", detail))
            print(f"[PASS] {name} ({time.monotonic() - started:.1f} s)  -- {detail}", flush=True)
        except (steps.StepFailed, AgentError, ControlError, QmpError, OSError) as err:
            results.append((name, "FAIL", str(err).splitlines()[0]))
            print(f"[FAIL] {name} ({time.monotonic() - started:.1f} s)\n  {type(err).__name__}: {err}\n{report(guest)}",
                  flush=True)
        except Exception:  # a bug in the step itself is a failure too, with its traceback
            results.append((name, "FAIL", "exception in the step"))
            print(f"[FAIL] {name}\n{traceback.format_exc()}{report(guest)}", flush=True)


def boot(workroot, kernel, initrd, image, name, accel, results, unit=steps.UNIT, startups=None):
    """Boot and wait for the agent's first answer; None (and a failure) if it never comes.

    Also, when `startups` is given, the agent's own start-up: from systemd's exec of the
    unit's main process (ExecMainStartTimestamp) to the guest's clock right after the
    first answer (guest-get-time), both read in the guest, so boot noise does not enter."""
    guest = Guest(workroot, kernel, initrd, image, name, accel)
    guest.start()
    try:
        seconds = guest.wait_first_answer()
        answered_ns = guest.agent.execute("guest-get-time").get("return")
        guest.control.wait_ready(60)
        if startups is not None and isinstance(answered_ns, int):
            started_us = guest.control.check(
                f"t=$(systemctl show -p ExecMainStartTimestamp --timestamp=us+utc --value {unit}); "
                "t=${t#* }; date -u -d \"${t% UTC}\" +%s%6N").strip()
            startups.append((answered_ns / 1e9) - int(started_us) / 1e6)
        return guest, seconds
    except (AgentError, ControlError, QmpError, OSError) as err:
        results.append((f"{name}_boots_and_answers", "FAIL", str(err)))
        print(f"[FAIL] {name}: {err}\n{report(guest)}", flush=True)
        guest.stop()
        return None, None


def time_reference(workroot, kernel, initrd, image, name, accel, results, timings, startups):
    """One boot of the reference image, for its time to first answer only."""
    fresh = workroot / f"{name}.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(fresh)], check=True)   # the same disk each time
    guest, seconds = boot(workroot, kernel, initrd, fresh, name, accel, results, "qemu-guest-agent.service",
                          startups[REFERENCE])
    if guest:
        version = guest.agent.execute("guest-info").get("return", {}).get("version")
        log(f"reference agent answered after {seconds:.1f} s (qemu-ga {version})")
        timings[REFERENCE].append(seconds)
        guest.stop()
    fresh.unlink(missing_ok=True)


def main():
    args = parse_args()
    started = time.monotonic()
    deb, upgrade_deb = Path(args.deb).resolve(), Path(args.upgrade_deb).resolve()
    for path in (deb, upgrade_deb):
        if not path.is_file():
            print(f"package test: {path} does not exist", file=sys.stderr)
            return 2
    try:
        hostenv.require_tool(hostenv.QEMU_BINARY)
        hostenv.require_tool("mmdebstrap")
        release = hostenv.kernel_release()
        kernel = hostenv.vmlinux_path(release)
    except hostenv.HostSetupError as err:
        print(f"package test: cannot start: {err}", file=sys.stderr)
        return 2
    workroot = Path(tempfile.mkdtemp(prefix="qga-pkg-"))
    initrd = build_initramfs(release, workroot / "initramfs.cpio")
    results, timings, startups = [], {RS: [], REFERENCE: []}, {RS: [], REFERENCE: []}
    plan = [(name, func or (lambda s: steps.upgrade_keeps_edited_policy(s, UPGRADE_DEB_IN_GUEST, args.upgrade_version)))
            for name, func in FIRST_BOOT]
    guests = []
    try:
        # Debian's qemu-guest-agent, same base system, for the start-up comparison: booted
        # before and after the package's two boots, so both agents are timed twice in the
        # same stretch of machine load.
        reference = rootfs.reference_image(workroot / "reference.img", workroot, log)
        time_reference(workroot, kernel, initrd, reference, "reference-1", args.accel, results, timings, startups)

        image = rootfs.build_image(workroot / "qemu-ga-rs.img", [str(deb)], workroot, log,
                                   extra_files={UPGRADE_DEB_IN_GUEST: upgrade_deb})
        guest, seconds = boot(workroot, kernel, initrd, image, "first-boot", args.accel, results, startups=startups[RS])
        if guest:
            guests.append(guest)
            timings[RS].append(seconds)
            log(f"qemu-ga-rs answered after {seconds:.1f} s")
            run_steps(guest, plan, results)
            guest.stop()
        guest, seconds = boot(workroot, kernel, initrd, image, "second-boot", args.accel, results, startups=startups[RS])
        if guest:
            guests.append(guest)
            timings[RS].append(seconds)
            log(f"qemu-ga-rs answered after {seconds:.1f} s (second boot, upgraded package)")
            run_steps(guest, SECOND_BOOT, results)
            guest.stop()
        time_reference(workroot, kernel, initrd, reference, "reference-2", args.accel, results, timings, startups)
    except rootfs.ImageError as err:
        results.append(("image", "FAIL", str(err)))
        print(f"[FAIL] image: {err}", flush=True)
    finally:
        for guest in guests:
            guest.stop()

    print("\n==== package test summary " + "=" * 52)
    for name, status, detail in results:
        print(f"  {status:5s} {name}" + (f"  ({detail})" if status != "PASS" else ""))
    print("  boot to first answer (QEMU start to the first guest-sync reply, TCG), each boot:")
    for label, seconds in timings.items():
        each = ", ".join(f"{x:.1f}" for x in seconds)
        best = f"best {min(seconds):.1f} s" if seconds else "not measured"
        print(f"    {label:40s} {best}  ({each})")
    print("  the agent's own start-up (systemd's exec of the unit to its first answer, guest clock), each boot:")
    for label, seconds in startups.items():
        each = ", ".join(f"{x:.2f}" for x in seconds)
        best = f"best {min(seconds):.2f} s" if seconds else "not measured"
        print(f"    {label:40s} {best}  ({each})")
    failed = sum(1 for r in results if r[1] != "PASS")
    expected = len(FIRST_BOOT) + len(SECOND_BOOT)
    passed = sum(1 for r in results if r[1] == "PASS")
    print(f"  {passed} of {expected} checks passed, {failed} failed; {time.monotonic() - started:.0f} s total")
    if args.keep or failed:
        print(f"  work directory kept: {workroot}")
    else:
        shutil.rmtree(workroot, ignore_errors=True)
    measured = all(len(seconds) == 2 for seconds in list(timings.values()) + list(startups.values()))
    return 1 if failed or passed != expected or not measured else 0


if __name__ == "__main__":
    sys.exit(main())
