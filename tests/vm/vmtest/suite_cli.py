"""The command line both guest suites take (tests/vm/run.py and tests/libvirt/run.py): the same
options with the same meaning, so a CI script or a developer runs either the same way."""

import argparse

from . import hostenv


def parse_args(description, budget, keep_help):
    """The options of a suite whose run must end within `budget` seconds by default."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default=str(hostenv.REPO_ROOT / "target" / "release" / "qemu-ga-rs"),
                        help="agent binary to put in the guest (default: target/release/qemu-ga-rs; "
                             "/usr/sbin/qemu-ga runs the suite against the reference)")
    parser.add_argument("--flavour", choices=["auto", "rs", "reference"], default="auto",
                        help="how to start the agent; auto: qemu-ga-rs if the binary is named so, else reference")
    parser.add_argument("--only", metavar="REGEX", help="run only the checks whose name matches")
    parser.add_argument("--keep", action="store_true", help=keep_help)
    parser.add_argument("--accel", default="tcg", help="QEMU accelerator (default tcg; KVM is unusable on the CI hosts)")
    parser.add_argument("--strict", action="store_true", help="count NOT RUN checks as failures")
    parser.add_argument("--budget", type=float, default=budget,
                        help=f"seconds after which checks not yet started fail as not started "
                             f"(default {budget:.0f}: keeps a run within the 10-minute CI budget)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser.parse_args()


def banner(text):
    print("!" * 78)
    print(f"!!! {text}")
    print("!" * 78, flush=True)
