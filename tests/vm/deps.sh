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
set -eu

PACKAGES="qemu-system-x86 linux-image-amd64 busybox-static e2fsprogs qemu-utils python3 qemu-guest-agent
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients tzdata"

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

# Debian installs the kernel image 0600; the suite reads it to boot it and to extract vmlinux.
for image in /boot/vmlinuz-*; do
    if [ -e "$image" ] && [ ! -r "$image" ]; then
        echo "tests/vm/deps.sh: $image is not readable by $(id -un): run the suite as root" >&2
    fi
done
exit 0
