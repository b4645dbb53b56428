"""Commands that change the machine: vCPUs, the clock and RTC, power state. Each effect is
observed from sysfs, the guest's date, or QEMU's QMP monitor."""

import calendar
import json
import random
import time

from .harness import CheckFailed, NotApplicable, check

DAY = 86400


def _vcpu(vcpus, logical_id):
    found = [v for v in vcpus if v.get("logical-id") == logical_id]
    return found[0] if found else None


def _sysfs_online(ctx):
    return ctx.guest_sh("cat /sys/devices/system/cpu/online").strip()


@check(boot="pvh")
def set_vcpus_takes_cpu1_offline_and_back(ctx):
    """guest-set-vcpus takes cpu1 offline and back online, as the guest's sysfs and
    guest-get-vcpus both show."""
    vcpus = ctx.call("guest-get-vcpus")
    cpu1 = _vcpu(vcpus, 1)
    ctx.expect(cpu1 and cpu1.get("online") is True and cpu1.get("can-offline") is True,
               f"cpu1 should be listed online and offlinable: {vcpus}")
    ctx.expect(_sysfs_online(ctx) == "0-1", f"both CPUs should start online; sysfs says {_sysfs_online(ctx)}")
    done = ctx.call("guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": False}]})
    ctx.expect(done == 1, f"guest-set-vcpus offlining cpu1 should return 1; got {done!r}")
    ctx.expect(ctx.guest_sh("cat /sys/devices/system/cpu/cpu1/online").strip() == "0", "cpu1 is still online in sysfs")
    ctx.expect(_sysfs_online(ctx) == "0", f"sysfs online list should be 0; got {_sysfs_online(ctx)}")
    cpu1 = _vcpu(ctx.call("guest-get-vcpus"), 1)
    ctx.expect(cpu1 and cpu1.get("online") is False, f"guest-get-vcpus still shows cpu1 online: {cpu1}")
    done = ctx.call("guest-set-vcpus", {"vcpus": [{"logical-id": 1, "online": True}]})
    ctx.expect(done == 1, f"guest-set-vcpus onlining cpu1 should return 1; got {done!r}")
    ctx.expect(ctx.guest_sh("cat /sys/devices/system/cpu/cpu1/online").strip() == "1", "cpu1 did not come back online")
    ctx.expect(_sysfs_online(ctx) == "0-1", f"sysfs online list should be 0-1; got {_sysfs_online(ctx)}")
    cpu1 = _vcpu(ctx.call("guest-get-vcpus"), 1)
    ctx.expect(cpu1 and cpu1.get("online") is True, f"guest-get-vcpus shows cpu1 offline after onlining: {cpu1}")


@check(boot="pvh")
def set_vcpus_refuses_to_offline_cpu0(ctx):
    """Offlining cpu0 (which has no sysfs online switch) is refused with 7.2's text and
    cpu0 stays online."""
    ctx.call_expecting_error("guest-set-vcpus", {"vcpus": [{"logical-id": 0, "online": False}]},
                             "GenericError", "logical processor #0 can't be offlined")
    online = _sysfs_online(ctx)
    ctx.expect(online.startswith("0"), f"cpu0 went offline: sysfs online list {online}")


@check(boot="pvh")
def set_vcpus_list_over_the_helpers_bound_is_refused_and_the_agent_goes_on(ctx):
    """guest-set-vcpus with 8,193 processors (one over the helper's bound) and with 120,000
    (more than a helper frame holds) is refused by the front with a GenericError; no processor
    changes and the agent keeps answering (it used to exit without an answer)."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga has no helper and no such bound")
    before = _sysfs_online(ctx)
    for count in (8193, 120000):
        vcpus = [{"logical-id": 1, "online": True}] * count
        ctx.call_expecting_error("guest-set-vcpus", {"vcpus": vcpus}, "GenericError",
                                 f"guest-set-vcpus takes at most 8192 processors; {count} were given",
                                 timeout=120.0)
        ctx.expect(ctx.call("guest-ping") == {}, f"the agent does not answer after a list of {count}")
    ctx.expect(_sysfs_online(ctx) == before, f"processors changed: {before} -> {_sysfs_online(ctx)}")


def _guest_epoch(ctx):
    return int(ctx.guest_sh("date +%s"))


def _rtc_epoch(ctx):
    """The emulated RTC's time as QEMU sees it (the guest cannot fake this)."""
    tm = ctx.guest.qmp.command("qom-get", {"path": "/machine", "property": "rtc-time"})
    return calendar.timegm((tm["tm_year"] + 1900, tm["tm_mon"] + 1, tm["tm_mday"],
                            tm["tm_hour"], tm["tm_min"], tm["tm_sec"], 0, 0, 0))


def _restore_clock(ctx):
    try:
        ctx.guest.agent.execute("guest-set-time", {"time": time.time_ns()}, timeout=30)
    except Exception:
        pass


@check(boot="pvh")
def set_time_moves_guest_clock_and_rtc(ctx):
    """guest-set-time with a time one day ahead moves the guest's clock (guest-get-time and
    the guest's date) and its RTC: QEMU reports RTC_CHANGE with a one-day offset."""
    qmp = ctx.guest.qmp
    mark = qmp.mark()
    target_s = int(time.time()) + DAY
    ctx.call("guest-set-time", {"time": target_s * 10**9})
    set_at = time.monotonic()
    try:
        agent_s = ctx.call("guest-get-time") / 1e9
        expected = target_s + (time.monotonic() - set_at)
        ctx.expect(abs(agent_s - expected) < 10, f"guest-get-time says {agent_s:.0f}, expected about {expected:.0f}")
        guest_s = _guest_epoch(ctx)
        expected = target_s + (time.monotonic() - set_at)
        ctx.expect(abs(guest_s - expected) < 10, f"the guest's date says {guest_s}, expected about {expected:.0f}")
        event = qmp.wait_event("RTC_CHANGE", mark, timeout=20)
        ctx.expect(event is not None, "QEMU reported no RTC_CHANGE: the RTC was not set")
        offset = event["data"]["offset"]
        ctx.expect(abs(offset - DAY) < 15, f"RTC_CHANGE offset {offset} s, expected about {DAY}")
        rtc = _rtc_epoch(ctx)
        expected = target_s + (time.monotonic() - set_at)
        ctx.expect(abs(rtc - expected) < 10, f"QEMU's RTC reads {rtc}, expected about {expected:.0f}")
    finally:
        _restore_clock(ctx)


@check(boot="pvh")
def set_time_without_time_sets_clock_from_rtc(ctx):
    """guest-set-time without `time` sets the system clock from the RTC: a guest clock set
    three days wrong (behind the agent's back) comes back to what QEMU's RTC says."""
    rtc_offset = _rtc_epoch(ctx) - time.time()
    bogus = int(time.time()) - 3 * DAY
    ctx.guest_sh(f"date -s @{bogus} > /dev/null")
    ctx.expect(abs(_guest_epoch(ctx) - bogus) < 10, "could not put the guest's clock off for the test")
    ctx.call("guest-set-time", {})
    guest_s = _guest_epoch(ctx)
    expected = time.time() + rtc_offset
    ctx.expect(abs(guest_s - expected) < 10,
               f"after guest-set-time without time the guest's date is {guest_s}; the RTC says about {expected:.0f} "
               f"(the clock had been set to {bogus})")
    ctx.note(f"RTC offset {rtc_offset:+.0f} s")


def _boot_id(ctx):
    return ctx.guest_sh("cat /proc/sys/kernel/random/boot_id").strip()


POWER_EVENTS = ("SHUTDOWN", "RESET", "POWERDOWN", "SUSPEND", "STOP")


@check(boot="pvh")
def shutdown_invalid_mode_is_refused_and_nothing_happens(ctx):
    """guest-shutdown with an unknown mode is refused with 7.2's text (including its missing
    closing parenthesis) and the guest keeps running: no QMP power event, same boot."""
    qmp = ctx.guest.qmp
    boot_id = _boot_id(ctx)
    mark = qmp.mark()
    ctx.call_expecting_error("guest-shutdown", {"mode": "sleep"}, "GenericError",
                             "mode is invalid (valid values are: halt|powerdown|reboot")
    time.sleep(3)
    events = [e for e in qmp.events_since(mark) if e["event"] in POWER_EVENTS]
    ctx.expect(not events, f"QEMU reported power events after a refused shutdown: {events}")
    ctx.expect(ctx.guest.running(), "QEMU exited after a refused shutdown")
    ctx.expect(_boot_id(ctx) == boot_id, "the guest rebooted after a refused shutdown")
    ctx.expect(ctx.call("guest-ping") == {}, "the agent stopped answering after a refused shutdown")


def _expect_no_reply(ctx, command, arguments):
    """success-response:no commands send nothing on success."""
    ctx.client = ctx.guest.agent
    reply = ctx.guest.agent.execute_no_reply(command, arguments, quiet_for=3.0)
    if reply is not None:
        raise CheckFailed(f"{command} {json.dumps(arguments)} should send no reply on success; got {json.dumps(reply)}")


@check(boot="pvh")
def shutdown_reboot_resets_and_keeps_data(ctx):
    """guest-shutdown mode=reboot: QEMU reports RESET, the guest boots again (new boot id),
    the agent answers again, and the data disk still holds what was written before."""
    guest = ctx.guest
    token = "%016x" % random.randrange(2**64)
    ctx.guest_sh(f"echo {token} > /mnt/data/reboot-token && sync")
    boot_id = _boot_id(ctx)
    mark = guest.qmp.mark()
    _expect_no_reply(ctx, "guest-shutdown", {"mode": "reboot"})
    event = guest.qmp.wait_event("RESET", mark, timeout=60)
    ctx.expect(event is not None, "QEMU reported no RESET within 60 s of guest-shutdown mode=reboot")
    ctx.expect(not guest.qmp.events_since(mark, "SHUTDOWN"), "QEMU reported SHUTDOWN for a reboot")
    try:
        guest.control.wait_ready(120)
        guest.agent.handshake(timeout=120)
    except Exception as err:
        raise CheckFailed(f"the guest did not come back after the reboot: {err}") from None
    ctx.expect(_boot_id(ctx) != boot_id, "the boot id did not change: the guest did not really reboot")
    ctx.expect(ctx.guest_sh("cat /run/qga-test/data-disk").strip() == "existing",
               "after the reboot /init had to re-make the data disk: its ext4 did not survive")
    ctx.expect(ctx.guest_sh("cat /mnt/data/reboot-token").strip() == token, "the data written before the reboot is gone")
    ctx.expect(ctx.call("guest-ping") == {}, "the agent does not answer after the reboot")


@check(boot="pvh")
def shutdown_powerdown_stops_the_guest(ctx):
    """guest-shutdown mode=powerdown: QEMU reports SHUTDOWN (caused by the guest) and exits."""
    guest = ctx.guest
    mark = guest.qmp.mark()
    _expect_no_reply(ctx, "guest-shutdown", {"mode": "powerdown"})
    event = guest.qmp.wait_event("SHUTDOWN", mark, timeout=60)
    ctx.expect(event is not None, "QEMU reported no SHUTDOWN within 60 s of guest-shutdown mode=powerdown")
    ctx.expect(event["data"].get("guest") is True, f"the SHUTDOWN was not guest-initiated: {event}")
    status = guest.wait_exit(30)
    ctx.expect(status is not None, "QEMU did not exit within 30 s of the guest powering off")
    ctx.pool.discard("pvh")   # the next check on this boot kind needs a new guest


SUSPEND_MARKER = "/run/qga-test/suspend-marker"


def _uptime(ctx):
    return float(ctx.guest_sh("read up _ < /proc/uptime; echo $up"))


@check(boot="bzimage")
def suspend_ram_resumes_same_boot(ctx):
    """guest-suspend-ram puts the guest into S3 (QMP SUSPEND, query-status "suspended");
    after system_wakeup it really resumes (same boot id, a marker in /run still there,
    uptime kept counting, no second boot on the console) and the agent answers again."""
    guest = ctx.guest
    qmp = guest.qmp
    states = ctx.guest_sh("cat /sys/power/state").split()
    ctx.expect("mem" in states, f"the guest kernel offers no S3 (/sys/power/state: {states}); is disable_s3=0 set?")
    token = "%016x" % random.randrange(2**64)
    ctx.guest_sh(f"echo {token} > {SUSPEND_MARKER}")
    boot_id = _boot_id(ctx)
    uptime_before = _uptime(ctx)
    mark = qmp.mark()
    _expect_no_reply(ctx, "guest-suspend-ram", None)
    ctx.expect(qmp.wait_event("SUSPEND", mark, timeout=60) is not None, "QEMU reported no SUSPEND within 60 s")
    status = qmp.command("query-status")
    ctx.expect(status.get("status") == "suspended", f"query-status after SUSPEND: {status}")
    time.sleep(3)
    status = qmp.command("query-status")
    ctx.expect(status.get("status") == "suspended", f"the guest did not stay suspended: {status}")
    wake_mark = qmp.mark()
    qmp.command("system_wakeup")
    ctx.expect(qmp.wait_event("WAKEUP", wake_mark, timeout=30) is not None, "QEMU reported no WAKEUP after system_wakeup")
    try:
        guest.agent.handshake(timeout=90)
    except Exception as err:
        raise CheckFailed(f"the agent does not answer after resume: {err}") from None
    ctx.expect(qmp.command("query-status").get("status") == "running", "the guest is not running after wakeup")
    ctx.expect(not qmp.events_since(mark, "RESET"), "QEMU reported a RESET: the wakeup rebooted the guest")
    ctx.expect(_boot_id(ctx) == boot_id, "the boot id changed: the guest cold-booted instead of resuming")
    ctx.expect(ctx.guest_sh(f"cat {SUSPEND_MARKER}").strip() == token, "the marker in /run is gone: not a resume")
    uptime_after = _uptime(ctx)
    ctx.expect(uptime_after > uptime_before, f"uptime went from {uptime_before} to {uptime_after}: not a resume")
    boots = guest.console_text().count("qga-test: init start")
    ctx.expect(boots == 1, f"the console shows {boots} boots")
    ctx.expect(ctx.call("guest-ping") == {}, "guest-ping failed after resume")
