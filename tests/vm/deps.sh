#!/bin/sh
# Installs what the real-guest test suite needs, if it is missing. Idempotent: when every
# package is already installed it does nothing (and needs no root).
#
#   qemu-system-x86   the VM          linux-image-amd64  the guest kernel and its modules
#   busybox-static    guest userland  e2fsprogs          mke2fs for the ext4 data disk
#   qemu-utils        disk images     python3            the suite itself
#   qemu-guest-agent  the reference agent (qemu-ga 7.2) the suite is compared against
#   libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients
#                     the libvirt suite (tests/libvirt): libvirtd, its QEMU driver and virsh;
#                     not libvirt-daemon-system, whose services the suite does not want
#   tzdata            the libvirt suite's guest time zone
#   strace            tests/held_files.rs: no system call between a held-file query and its reply
#
# and, with cargo, rust-vmm's vhost-device-vsock (the user-space vsock device backend the vsock
# checks use, see vmtest/vsock.py) at a pinned version into cargo's bin directory, where it
# stays between runs. If it cannot be built, the vsock checks are NOT RUN and say why (the
# build's output is kept in target/vm-cache/vhost-device-vsock.log).
set -eu

VSOCK_BACKEND=vhost-device-vsock
VSOCK_BACKEND_VERSION=0.3.0   # also in tests/vm/vmtest/vsock.py

PACKAGES="qemu-system-x86 linux-image-amd64 busybox-static e2fsprogs qemu-utils python3 qemu-guest-agent
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients tzdata strace"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -n "$missing" ]; then
    echo "tests/vm/deps.sh: installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo > /dev/null; then
        SUDO="sudo"
    else
        echo "tests/vm/deps.sh: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The vsock backend: built once per machine; a failure is reported, not fatal.
repo=$(cd "$(dirname "$0")/../.." && pwd)
backend_log="$repo/target/vm-cache/$VSOCK_BACKEND.log"
if ! command -v cargo > /dev/null; then
    echo "tests/vm/deps.sh: no cargo, so no $VSOCK_BACKEND: the vsock checks will be NOT RUN" >&2
elif ! cargo install --list | grep -qx "$VSOCK_BACKEND v$VSOCK_BACKEND_VERSION:"; then
    echo "tests/vm/deps.sh: building $VSOCK_BACKEND $VSOCK_BACKEND_VERSION (cargo install, once)"
    mkdir -p "$(dirname "$backend_log")"
    if cargo install --locked --version "$VSOCK_BACKEND_VERSION" "$VSOCK_BACKEND" > "$backend_log" 2>&1; then
        rm -f "$backend_log"
    else
        echo "tests/vm/deps.sh: could not build $VSOCK_BACKEND (the vsock checks will be NOT RUN):" >&2
        tail -n 5 "$backend_log" >&2
    fi
fi

# Debian installs the kernel image 0600; the suite reads it to boot it and to extract vmlinux.
for image in /boot/vmlinuz-*; do
    if [ -e "$image" ] && [ ! -r "$image" ]; then
        echo "tests/vm/deps.sh: $image is not readable by $(id -un): run the suite as root" >&2
    fi
done
exit 0
