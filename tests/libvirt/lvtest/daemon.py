"""A private libvirtd: started in its own mount namespace, in the foreground, without systemd.

Inside the namespace, /run and /var are empty tmpfs mounts and /etc/libvirt, /etc/passwd and
/etc/group are bind-mounted copies from the work directory, so the daemon's state (domain
definitions, channel sockets, capability cache, logs) lives and dies with the run, and
nothing of the host's libvirt configuration (if any) is read or changed. The host side
reaches it through the one socket directory the configuration puts in the work directory.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from vmtest import hostenv

LIBVIRTD = "/usr/sbin/libvirtd"

# libvirtd runs QEMU as root without a security driver, cgroups or a /dev namespace: the
# suite tests the agent, not libvirt's confinement, and a CI container has neither cgroup
# delegation nor AppArmor. stdio_handler "file" spares a virtlogd.
QEMU_CONF = """user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

# Run inside the namespace (sh -c): the mounts, then the daemon replaces the shell.
# Debian's libvirt resolves its compiled-in QEMU user (libvirt-qemu) and group before it
# reads qemu.conf, so they must exist: the namespace's passwd and group add them when the
# host has none (Debian's libvirt-daemon-system would create them on the host).
NAMESPACE_SCRIPT = """set -eu
work="$1"
cp /etc/passwd "$work/passwd"; cp /etc/group "$work/group"
grep -q '^libvirt-qemu:' /etc/passwd || echo 'libvirt-qemu:x:64055:64055::/nonexistent:/bin/false' >> "$work/passwd"
grep -q '^libvirt-qemu:' /etc/group || echo 'libvirt-qemu:x:64055:' >> "$work/group"
grep -q '^kvm:' /etc/group || echo 'kvm:x:64056:' >> "$work/group"
mount -t tmpfs -o mode=0755 libvirt-test-run /run
mount -t tmpfs -o mode=0755 libvirt-test-var /var
mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
ln -s /run /var/run
mount --bind "$work/etc" /etc/libvirt
mount --bind "$work/passwd" /etc/passwd
mount --bind "$work/group" /etc/group
exec "$2" --config /etc/libvirt/libvirtd.conf
"""


class Libvirtd:
    def __init__(self, workdir):
        self.workdir = Path(workdir) / "libvirtd"
        self.sockdir = self.workdir / "sock"
        self.log = self.workdir / "libvirtd.log"
        self.proc = None

    @property
    def uri(self):
        return f"qemu:///system?socket={self.sockdir}/libvirt-sock"

    def _write_config(self):
        etc = self.workdir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (etc / "libvirtd.conf").write_text(
            f'unix_sock_dir = "{self.sockdir}"\n'
            'unix_sock_rw_perms = "0700"\n'
            'unix_sock_ro_perms = "0700"\n'
            'auth_unix_rw = "none"\n'
            'auth_unix_ro = "none"\n'
            f'log_outputs = "3:file:{self.log}"\n'
        )
        (etc / "qemu.conf").write_text(QEMU_CONF)

    def start(self, timeout=60):
        for tool in (LIBVIRTD, "unshare", "virsh"):
            if not shutil.which(tool):
                raise hostenv.HostSetupError(f"'{tool}' is not installed: run tests/vm/deps.sh (needs root)")
        if os.geteuid() != 0:
            raise hostenv.HostSetupError("the libvirt suite needs root (a mount namespace and a system libvirtd)")
        self._write_config()
        with open(self.workdir / "libvirtd.stdio", "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh",
                 str(self.workdir), LIBVIRTD],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise hostenv.HostSetupError(f"libvirtd exited with status {self.proc.returncode}:\n"
                                             + "\n".join(self.log_tail()))
            # The first connection waits for QEMU's capabilities to be probed (a few seconds).
            probe = subprocess.run(["virsh", "-c", self.uri, "version"], capture_output=True, text=True,
                                   timeout=timeout)
            if probe.returncode == 0 and "Running hypervisor: QEMU" in probe.stdout:
                return probe.stdout
            if time.monotonic() > deadline:
                raise hostenv.HostSetupError(f"libvirtd did not answer within {timeout} s: {probe.stderr.strip()}\n"
                                             + "\n".join(self.log_tail()))
            time.sleep(0.5)

    def log_tail(self, count=20):
        texts = []
        for path in (self.workdir / "libvirtd.stdio", self.log):
            try:
                texts += path.read_text(errors="replace").splitlines()
            except OSError:
                pass
        return texts[-count:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # libvirtd is the namespace's exec'd shell: its process group is ours alone.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
