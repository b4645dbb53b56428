"""Which agent the suite puts into the guest, and how the guest starts it.

Two flavours: qemu-ga-rs (a front binary plus its helper, demoting itself to an
unprivileged user) and a reference qemu-ga (one binary, runs as root, needs /sbin/hwclock
for guest-set-time).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import hostenv

RS_FRONT = "qemu-ga-rs"
RS_HELPER = "qemu-ga-rs-helper"
VIRTIO_PORT = "/dev/virtio-ports/org.qemu.guest_agent.0"
SERIAL_TTY = "/dev/ttyS1"
STATEDIR = "/run/qga"
SERIAL_STATEDIR = "/run/qga-serial"
# The vsock guest's own CID (given to its vhost-user-vsock backend) and the agent's port.
VSOCK_CID = 3
VSOCK_PORT = 4321
VSOCK_STATEDIR = "/run/qga-vsock"


@dataclass
class AgentUnderTest:
    flavour: str                       # "rs" or "reference"
    binaries: dict                     # guest path -> host path
    base_argv: list                    # argv without -m/-p/-t/-l
    policy: tuple = None               # (host path, guest path) or None
    needs_hwclock: bool = False
    notes: list = field(default_factory=list)

    @property
    def is_reference(self):
        return self.flavour == "reference"

    @property
    def label(self):
        return "qemu-ga-rs" if self.flavour == "rs" else "reference qemu-ga"

    def argv(self, method, path, statedir, logfile):
        return (self.base_argv + ["-m", method, "-p", path, "-t", statedir, "-l", logfile] + self._policy_args()
                + self._audit_args(logfile))

    def _audit_args(self, logfile):
        # qemu-ga-rs's audit trail next to its log (/tmp/qga.log -> /tmp/qga-audit.log).
        return [] if self.is_reference else ["--audit-file", logfile.replace(".log", "-audit.log")]

    def _policy_args(self):
        return ["--policy", self.policy[1]] if self.policy else []

    def agent_conf(self):
        """Shell assignments for /etc/qga-test/agent.conf, read by the supervisor and checks."""
        virtio = self.argv("virtio-serial", VIRTIO_PORT, STATEDIR, "/tmp/qga.log")
        serial = self.argv("isa-serial", SERIAL_TTY, SERIAL_STATEDIR, "/tmp/qga-serial.log")
        vsock = self.argv("vsock-listen", f"{VSOCK_CID}:{VSOCK_PORT}", VSOCK_STATEDIR, "/tmp/qga-vsock.log")
        return (
            f"AGENT_FLAVOUR={self.flavour}\n"
            f"AGENT_VIRTIO='{' '.join(virtio)}'\n"
            f"AGENT_SERIAL='{' '.join(serial)}'\n"
            f"AGENT_VSOCK='{' '.join(vsock)}'\n"
        )


def resolve(agent_path, flavour="auto"):
    agent = Path(agent_path)
    if not agent.is_absolute():
        agent = (Path.cwd() / agent).resolve()
    if not agent.is_file() or not os.access(agent, os.X_OK):
        raise hostenv.HostSetupError(
            f"agent binary {agent} does not exist or is not executable"
            + (" (build it with: cargo build --release)" if agent.name == RS_FRONT else "")
        )
    if flavour == "auto":
        flavour = "rs" if agent.name == RS_FRONT else "reference"

    if flavour == "reference":
        return AgentUnderTest(
            flavour="reference",
            binaries={"/usr/sbin/qemu-ga": agent},
            base_argv=["/usr/sbin/qemu-ga"],
            needs_hwclock=True,
        )

    helper = agent.parent / RS_HELPER
    if not helper.is_file():
        raise hostenv.HostSetupError(f"{helper} is missing: qemu-ga-rs needs its helper next to it")
    policy_host = hostenv.REPO_ROOT / "policy" / "allow-all.policy"
    policy = (policy_host, "/etc/qemu-ga-rs/allow-all.policy") if policy_host.exists() else None
    return AgentUnderTest(
        flavour="rs",
        binaries={f"/usr/bin/{RS_FRONT}": agent, f"/usr/bin/{RS_HELPER}": helper},
        base_argv=[f"/usr/bin/{RS_FRONT}"],
        policy=policy,
        needs_hwclock=False,
    )
