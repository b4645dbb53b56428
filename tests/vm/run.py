#!/usr/bin/env python3
"""Real-guest test suite: boots Linux VMs with the agent inside and checks every command's
effect from outside the agent. See tests/vm/README.md.

    python3 tests/vm/run.py [--agent PATH] [--only REGEX] [--keep]
"""

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmtest import agent_under_test, hostenv, initramfs  # noqa: E402
from vmtest.suite_cli import banner, parse_args as suite_args  # noqa: E402
from vmtest import checks_guest_view, checks_storage, checks_faults, checks_system, checks_transport  # noqa: E402,F401
from vmtest import checks_reconnect, checks_vsock  # noqa: E402,F401
from vmtest import checks_audit  # noqa: E402,F401
from vmtest import checks_reload  # noqa: E402,F401
from vmtest import checks_memory_freeze_list  # noqa: E402,F401
from vmtest import checks_guest_facts, checks_storage_info  # noqa: E402,F401
from vmtest import checks_accounts  # noqa: E402,F401
from vmtest import checks_exec, checks_files  # noqa: E402,F401
from vmtest.harness import FAIL, NOT_APPLICABLE, NOT_RUN, PASS, REGISTRY, GuestPool, run_check  # noqa: E402

# Run order. Checks on the shared "pvh" guest go from harmless to destructive: the clock,
# vCPUs and freeze-with-crash come late, reboot and powerdown last. The suspend check has a
# guest of its own (bzImage boot: S3 resume does not work with the PVH-booted vmlinux).
ORDER = [
    "handshake_delimited_sync_then_sync",
    "network_interfaces_show_guest_nic",
    "file_commands_roundtrip_on_data_disk",
    "fstrim_shrinks_host_disk_image",
    "privilege_separation_front_unprivileged_helper_separate",
    "idle_agent_sleeps_while_no_host_is_connected",
    "idle_agent_uses_no_cpu_while_no_host_is_connected",
    "host_reconnects_keep_the_half_read_request_then_50_delimited_syncs",
    "isa_serial_transport_handshake_and_commands",
    "sighup_reloads_the_policy_while_the_host_stays_connected",
    "sighup_brings_argument_conditions_in_and_takes_them_out",
    "set_user_password_plain_sets_a_hash_that_verifies_on_the_host",
    "set_user_password_crypted_lands_verbatim_in_shadow",
    "ssh_keys_add_get_remove_with_owner_and_modes",
    "ssh_keys_refuse_links_planted_in_the_users_home",
    "password_and_ssh_keys_of_a_user_no_policy_rule_names_are_refused",
    "exec_output_and_exit_codes_are_reported_as_the_programs_left_them",
    "exec_of_a_program_no_rule_allows_is_refused_and_never_runs",
    "exec_past_its_time_limit_is_killed_with_its_child_and_reported",
    "exec_runs_the_program_as_the_rules_user",
    "files_written_under_the_backup_appliance_drop_directory_are_roots_0644_and_refused_elsewhere",
    "files_symlinks_and_dotdot_out_of_the_allowed_directories_are_refused",
    "fsfreeze_blocks_writer_until_thaw",
    "audit_records_made_while_frozen_appear_after_thaw_in_order",
    "audit_records_held_while_frozen_survive_a_sigkill_of_the_agent",
    "audit_ring_overflow_keeps_the_newest_and_says_how_many_were_dropped",
    "fsfreeze_time_limit_thaws_on_its_own",
    "fsfreeze_survives_agent_crash_and_restart",
    "front_killed_while_frozen_is_thawed_by_the_helper",
    "sigterm_while_frozen_thaws_then_exits_0",
    "helper_killed_while_frozen_is_thawed_by_the_launcher",
    "set_vcpus_takes_cpu1_offline_and_back",
    "set_vcpus_refuses_to_offline_cpu0",
    "set_vcpus_list_over_the_helpers_bound_is_refused_and_the_agent_goes_on",
    "memory_blocks_match_sysfs_and_set_memory_blocks_offlines_the_dimm",
    "freeze_list_freezes_only_the_listed_mount",
    "guest_facts_match_the_guests_own_files_and_tools",
    "disks_and_fsinfo_show_the_partition_its_disk_and_qemus_pci_address",
    "fsinfo_answers_in_bounded_time_beside_a_hung_mount",
    "set_time_moves_guest_clock_and_rtc",
    "set_time_without_time_sets_clock_from_rtc",
    "shutdown_invalid_mode_is_refused_and_nothing_happens",
    "shutdown_reboot_resets_and_keeps_data",
    "shutdown_powerdown_stops_the_guest",
    "suspend_ram_resumes_same_boot",
    "vsock_handshake_delimited_sync_then_sync",
    "vsock_answers_every_read_only_command_as_virtio_serial_does",
    "vsock_client_leaves_mid_request_and_the_next_client_is_served",
    "vsock_agent_restarted_by_its_supervisor_while_a_client_waits",
    "vsock_agent_privileges_front_unprivileged_helper_separate",
]


def ordered_checks(only):
    by_name = {c.name: c for c in REGISTRY}
    missing = set(by_name) - set(ORDER)
    assert not missing, f"checks missing from ORDER: {missing}"
    selected = [by_name[name] for name in ORDER]
    if only:
        selected = [c for c in selected if re.search(only, c.name)]
    return selected


def main():
    args = suite_args(__doc__, budget=570, keep_help="keep the work directory (console logs, images); it is always kept when a check fails")
    checks = ordered_checks(args.only)
    if args.list:
        for c in checks:
            print(f"{c.name:60s} [{c.boot}]\n    {c.doc.splitlines()[0] if c.doc else ''}")
        return 0
    started = time.monotonic()
    try:
        hostenv.require_tool(hostenv.QEMU_BINARY)
        hostenv.require_tool("busybox")
        agent = agent_under_test.resolve(args.agent, args.flavour)
        release = hostenv.kernel_release()
        workroot = Path(tempfile.mkdtemp(prefix="qga-vm-"))
        initrd = initramfs.build(agent, release, workroot / "initramfs.cpio")
        hostenv.vmlinux_path(release)
    except hostenv.HostSetupError as err:
        print(f"vm tests: cannot start: {err}", file=sys.stderr)
        return 2
    print(f"vm tests: agent {agent.label} ({args.agent}), kernel {release}, accel {args.accel}, "
          f"{len(checks)} checks, work dir {workroot}", flush=True)

    pool = GuestPool(agent, release, initrd, workroot, args.accel)
    results = []
    try:
        for chk in checks:
            if time.monotonic() - started > args.budget:
                status, detail, seconds = FAIL, f"not started: the suite's {args.budget:.0f} s budget is exhausted", 0.0
            else:
                status, detail, seconds = run_check(chk, pool, agent)
            results.append((chk.name, status, detail, seconds))
            if status == FAIL:
                print(f"[FAIL]    {chk.name} ({seconds:.1f} s)\n{detail}", flush=True)
            elif status == NOT_RUN:
                banner(f"NOT RUN: {chk.name}: {detail}")
            else:
                print(f"[{status}]{' ' * (8 - len(status))} {chk.name} ({seconds:.1f} s)"
                      + (f"  -- {detail}" if detail else ""), flush=True)
    finally:
        pool.stop_all()

    total = time.monotonic() - started
    print("\n==== summary " + "=" * 65)
    for name, status, detail, seconds in results:
        short = detail.splitlines()[0] if detail and status != PASS else ""
        print(f"  {status:8s} {name}" + (f"  ({short})" if short else ""))
    counts = {s: sum(1 for r in results if r[1] == s) for s in (PASS, FAIL, NOT_RUN, NOT_APPLICABLE)}
    boots = ", ".join(f"{kind} {secs:.1f} s" for kind, secs in pool.boot_seconds)
    print(f"  {counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_RUN]} not run, "
          f"{counts[NOT_APPLICABLE]} not applicable to {agent.label}; {total:.0f} s total; boots: {boots}")
    if counts[NOT_RUN]:
        banner(f"{counts[NOT_RUN]} check(s) NOT RUN on this host: they are not passes")
    if args.keep or counts[FAIL]:
        print(f"  work directory kept (console.log, qemu.log, data.img per guest): {workroot}")
    else:
        shutil.rmtree(workroot, ignore_errors=True)
    failed = counts[FAIL] + (counts[NOT_RUN] if args.strict else 0)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
