"""Memory blocks and guest-fsfreeze-freeze-list, in a guest of their own: memory that can be
hot-unplugged (a 128 MiB pc-dimm, onlined movable) and a second ext4 disk, so that one mount
can be frozen while a writer on another keeps writing. Everything is judged from outside the
agent: the guest's sysfs, writers stamping the guest's uptime, the freeze marker."""

import random
import time

from . import hostenv
from .harness import CheckFailed, check

MEMORY = "/sys/devices/system/memory"
MARKER = "/run/qga/qga.state.isfrozen"
OTHER_SERIAL = "qga-other"
OTHER_DISK_BYTES = 64 << 20
# Hot-pluggable memory: 384 MiB at boot, room for two DIMMs, one 128 MiB DIMM plugged. The
# kernel onlines hot-plugged memory into ZONE_MOVABLE, so offlining it can succeed.
MEMORY_ARGS = [
    "-m", "384M,slots=2,maxmem=1G",
    "-object", "memory-backend-ram,id=qgahmem0,size=128M",
    "-device", "pc-dimm,id=qgadimm0,memdev=qgahmem0",
    "-append", "console=ttyS0 quiet mitigations=off memhp_default_state=online_movable",
]
GUEST_KIND = "pvh-memory"

# Writers stamping the guest's uptime into a file five times a second: one per mount.
WRITERS_START = """
mkdir -p /run/qga-test
for m in {mounts}; do
  f=$m/ticks-{tag}; rm -f $f
  setsid sh -c "while :; do read up _ < /proc/uptime; echo \\$up >> $f; sleep 0.2; done" > /dev/null 2>&1 &
  echo $! >> /run/qga-test/ml-writers.pid
done
"""
WRITERS_STOP = "kill $(cat /run/qga-test/ml-writers.pid 2>/dev/null) 2>/dev/null; rm -f /run/qga-test/ml-writers.pid; true"
UPTIME = "read up _ < /proc/uptime; echo $up"


def memory_guest(ctx):
    """The check's own guest, kept in the pool (and stopped with it) so the next check of this
    file reuses it while it stays healthy."""
    from .vm import Guest
    pool = ctx.pool
    guest = pool.guests.get(GUEST_KIND)
    if guest and pool.healthy(guest):
        ctx.guest = guest
        ctx.client = guest.agent
        return guest
    if guest:
        pool.discard(GUEST_KIND)
    pool.counter += 1
    workdir = pool.workroot / f"{pool.counter:02d}-{GUEST_KIND}"
    guest = Guest(workdir, hostenv.vmlinux_path(pool.release), pool.initrd, "pvh", GUEST_KIND, accel=pool.accel)
    other = workdir / "other.img"
    with open(other, "wb") as disk:
        disk.truncate(OTHER_DISK_BYTES)
    guest.extra_args = MEMORY_ARGS + [
        "-drive", f"file={other},format=raw,if=none,id=other0",
        "-device", f"virtio-blk-pci,drive=other0,serial={OTHER_SERIAL}",
    ]
    pool.guests[GUEST_KIND] = guest
    ctx.guest = guest
    started = time.monotonic()
    guest.start()
    guest.wait_until_up(timeout=150)
    pool.boot_seconds.append((GUEST_KIND, time.monotonic() - started))
    ctx.client = guest.agent
    return guest


def sysfs_blocks(ctx):
    """(index, online, can-offline, zones) of every block, read in the guest by the shell."""
    out = ctx.guest_sh(
        f"cd {MEMORY}; for d in memory[0-9]*; do i=${{d#memory}}; s=$(cat $d/state 2>/dev/null || echo none); "
        "r=$(cat $d/removable 2>/dev/null || echo 0); z=$(cat $d/valid_zones 2>/dev/null | tr ' ' ,); "
        "echo \"$i $s $r $z\"; done")
    blocks = {}
    for line in out.split("\n"):
        if not line.strip():
            continue
        index, state, removable, *zones = line.split()
        blocks[int(index)] = (state == "online" or state == "none", removable != "0", zones[0] if zones else "")
    return blocks


def block_state(ctx, index):
    return ctx.guest_sh(f"cat {MEMORY}/memory{index}/state").strip()


@check(boot="none")
def memory_blocks_match_sysfs_and_set_memory_blocks_offlines_the_dimm(ctx):
    """guest-get-memory-block-info is block_size_bytes; guest-get-memory-blocks lists every
    memoryN of the guest's sysfs with its state; guest-set-memory-blocks takes a block of the
    hot-plugged DIMM offline and back online (sysfs follows), answers success without an
    error code for a block already in the asked state, not-found with ENOENT for a block that
    does not exist, and operation-failed with the errno for the boot memory the kernel will
    not give up (which stays online)."""
    memory_guest(ctx)
    size = int(ctx.guest_sh(f"cat {MEMORY}/block_size_bytes").strip(), 16)
    info = ctx.call("guest-get-memory-block-info")
    ctx.expect(info == {"size": size}, f"guest-get-memory-block-info should be {{'size': {size}}}; got {info!r}")

    blocks = sysfs_blocks(ctx)
    listed = ctx.call("guest-get-memory-blocks")
    got = {b["phys-index"]: (b["online"], b["can-offline"]) for b in listed}
    ctx.expect(len(got) == len(listed), f"guest-get-memory-blocks lists a block twice: {listed!r}")
    want = {i: (online, removable) for i, (online, removable, _) in blocks.items()}
    ctx.expect(got == want, f"guest-get-memory-blocks disagrees with sysfs:\n  agent {got}\n  sysfs {want}")

    # The DIMM sits above 4 GiB (QEMU's device memory region), onlined movable.
    dimm = sorted(i for i, (online, _, zones) in blocks.items() if online and i * size >= 4 << 30 and "Movable" in zones)
    ctx.expect(len(dimm) >= 1, f"no online movable block of the pc-dimm above 4 GiB in sysfs: {blocks}")
    target = dimm[-1]
    ctx.note(f"block size {size:#x}, {len(blocks)} blocks, DIMM blocks {dimm}, using memory{target}")

    reply = ctx.call("guest-set-memory-blocks", {"mem-blks": [{"phys-index": target, "online": False}]})
    ctx.expect(reply == [{"phys-index": target, "response": "success"}], f"offlining memory{target}: {reply!r}")
    state = block_state(ctx, target)
    ctx.expect(state == "offline", f"memory{target}/state should read offline after the command; reads {state!r}")
    listed = {b["phys-index"]: b["online"] for b in ctx.call("guest-get-memory-blocks")}
    ctx.expect(listed.get(target) is False, f"guest-get-memory-blocks should show memory{target} offline: {listed}")

    # Already offline: 7.2 writes nothing and answers success; then back online.
    far = max(blocks) + 100000
    reply = ctx.call("guest-set-memory-blocks", {"mem-blks": [
        {"phys-index": target, "online": False},
        {"phys-index": far, "online": True},
        {"phys-index": target, "online": True, "can-offline": False},
    ]})
    expected = [
        {"phys-index": target, "response": "success"},
        {"phys-index": far, "response": "not-found", "error-code": 2},
        {"phys-index": target, "response": "success"},
    ]
    ctx.expect(reply == expected, f"guest-set-memory-blocks per-block answers:\n  expected {expected}\n  got      {reply}")
    state = block_state(ctx, target)
    ctx.expect(state == "online", f"memory{target}/state should read online again; reads {state!r}")

    # Boot memory holding the kernel cannot be offlined: the kernel's errno comes back.
    reply = ctx.call("guest-set-memory-blocks", {"mem-blks": [{"phys-index": 0, "online": False}]})
    ctx.expect(len(reply) == 1 and reply[0].get("phys-index") == 0 and reply[0].get("response") == "operation-failed"
               and isinstance(reply[0].get("error-code"), int) and reply[0]["error-code"] > 0,
               f"offlining memory0 should be operation-failed with an errno; got {reply!r}")
    state = block_state(ctx, 0)
    ctx.expect(state == "online", f"memory0/state should still read online; reads {state!r}")
    ctx.note(f"offlining memory0: {reply[0]}")


def mount_other_disk(ctx):
    """Makes ext4 on the disk with serial qga-other and mounts it at /mnt/other (idempotent)."""
    ctx.guest_sh(
        "grep -q ' /mnt/other ' /proc/mounts && exit 0\n"
        f"for b in /sys/block/vd*; do [ \"$(cat $b/serial 2>/dev/null)\" = {OTHER_SERIAL} ] && dev=/dev/${{b##*/}}; done\n"
        "[ -n \"$dev\" ] || { echo 'no disk with serial " + OTHER_SERIAL + "'; exit 1; }\n"
        "/usr/sbin/mke2fs -q -t ext4 -F -E lazy_itable_init=0,lazy_journal_init=0 $dev\n"
        "mkdir -p /mnt/other && mount -t ext4 $dev /mnt/other", timeout=60)


def stamps(ctx, path):
    return [float(x) for x in ctx.guest_sh(f"cat {path} 2>/dev/null; true").split()]


def thaw_quietly(ctx):
    try:
        ctx.guest.agent.execute("guest-fsfreeze-thaw", timeout=20)
    except Exception:
        pass
    try:
        ctx.guest.control.run("busybox fsfreeze --unfreeze /mnt/data 2>/dev/null; busybox fsfreeze --unfreeze "
                              "/mnt/other 2>/dev/null; " + WRITERS_STOP, timeout=10)
    except Exception:
        pass


@check(boot="none")
def freeze_list_freezes_only_the_listed_mount(ctx):
    """guest-fsfreeze-freeze-list ["/mnt/data"] freezes that filesystem only: a writer on it
    stops until thaw while a writer on /mnt/other keeps writing; status frozen and the marker
    exist until guest-fsfreeze-thaw. Naming one filesystem through two mounts (a bind mount)
    freezes it once. A list that matches no mount point (a path that is not one, a trailing
    slash) answers 0, leaves the agent thawed with no marker, and the writer goes on."""
    memory_guest(ctx)
    mount_other_disk(ctx)
    tag = random.randrange(10**6)
    data, other = f"/mnt/data/ticks-{tag}", f"/mnt/other/ticks-{tag}"
    ctx.guest_sh(WRITERS_STOP)
    ctx.guest_sh(WRITERS_START.format(mounts="/mnt/data /mnt/other", tag=tag))
    time.sleep(1.5)
    ok = False
    try:
        # No match: nothing frozen, nothing held.
        for points in (["/nonexistent", "/mnt/data/", "mnt/data"], []):
            count = ctx.call("guest-fsfreeze-freeze-list", {"mountpoints": points}, timeout=60)
            ctx.expect(count == 0, f"guest-fsfreeze-freeze-list {points} should answer 0; got {count!r}")
            status = ctx.call("guest-fsfreeze-status")
            ctx.expect(status == "thawed", f"after a freeze-list matching nothing the status should be thawed; got {status!r}")
            rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
            ctx.expect(rc != 0, f"{MARKER} exists after a freeze-list that froze nothing")
        before = len(stamps(ctx, data))
        time.sleep(1.0)
        ctx.expect(len(stamps(ctx, data)) > before, "the writer on /mnt/data stopped after a freeze-list that froze nothing")

        count = ctx.call("guest-fsfreeze-freeze-list", {"mountpoints": ["/mnt/data"]}, timeout=60)
        frozen_at = float(ctx.guest_sh(UPTIME))
        ctx.expect(count == 1, f"guest-fsfreeze-freeze-list [\"/mnt/data\"] should freeze 1 filesystem; got {count!r}")
        status = ctx.call("guest-fsfreeze-status")
        ctx.expect(status == "frozen", f"guest-fsfreeze-status should read frozen; got {status!r}")
        rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
        ctx.expect(rc == 0, f"{MARKER} does not exist while frozen")
        time.sleep(max(0.0, 4.0 - (float(ctx.guest_sh(UPTIME)) - frozen_at)))
        thawing_at = float(ctx.guest_sh(UPTIME))
        thawed = ctx.call("guest-fsfreeze-thaw")
        ctx.expect(isinstance(thawed, int) and thawed >= 1, f"guest-fsfreeze-thaw should thaw >= 1; got {thawed!r}")
        time.sleep(1.5)
        window = thawing_at - frozen_at
        during_data = [s for s in stamps(ctx, data) if frozen_at < s < thawing_at]
        during_other = [s for s in stamps(ctx, other) if frozen_at < s < thawing_at]
        after_data = [s for s in stamps(ctx, data) if s >= thawing_at]
        summary = (f"frozen {window:.1f} s; stamps while frozen: /mnt/data {len(during_data)}, "
                   f"/mnt/other {len(during_other)}; /mnt/data after thaw {len(after_data)}")
        ctx.expect(window >= 3, f"the freeze window was too short to judge: {summary}")
        ctx.expect(len(during_data) <= 1, f"the writer on the listed mount kept writing: {summary}")
        ctx.expect(len(during_other) >= max(3, window * 5 * 0.25), f"the writer on the other mount was held up: {summary}")
        ctx.expect(len(after_data) >= 3, f"the writer on /mnt/data did not resume after thaw: {summary}")
        ctx.note(summary)
        rc, _ = ctx.guest_sh_rc(f"test -e {MARKER}")
        ctx.expect(rc != 0, f"{MARKER} still exists after thaw")

        # One filesystem named through two of its mounts is frozen once.
        ctx.guest_sh("mkdir -p /mnt/bind && (grep -q ' /mnt/bind ' /proc/mounts || mount -o bind /mnt/data /mnt/bind)")
        count = ctx.call("guest-fsfreeze-freeze-list", {"mountpoints": ["/mnt/bind", "/mnt/data"]}, timeout=60)
        ctx.expect(count == 1, f"a filesystem named through a bind mount and its own mount should freeze once; got {count!r}")
        thawed = ctx.call("guest-fsfreeze-thaw")
        ctx.expect(thawed == 1, f"guest-fsfreeze-thaw after freezing one filesystem should answer 1; got {thawed!r}")
        ctx.guest_sh("umount /mnt/bind")
        ok = True
    finally:
        if not ok:
            thaw_quietly(ctx)
        else:
            ctx.guest_sh(WRITERS_STOP)
