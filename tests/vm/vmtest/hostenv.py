"""What the suite needs from the host: the kernel, its modules, QEMU, the cache directory.

Everything here is read-only towards the host except the cache directory under target/.
"""

import hashlib
import lzma
import os
import shutil
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_DIR = REPO_ROOT / "target" / "vm-cache"

QEMU_BINARY = "qemu-system-x86_64"


class HostSetupError(Exception):
    """The host lacks something the suite needs (a package, a kernel, ...)."""


def require_tool(name):
    path = shutil.which(name)
    if not path:
        raise HostSetupError(
            f"'{name}' is not installed: run tests/vm/deps.sh (needs root) to install the suite's packages"
        )
    return path


def kernel_release():
    """The Debian kernel to boot: the newest /boot/vmlinuz-* that has its modules installed."""
    candidates = []
    for image in Path("/boot").glob("vmlinuz-*"):
        release = image.name[len("vmlinuz-"):]
        if (Path("/lib/modules") / release / "modules.dep").exists():
            candidates.append(release)
    if not candidates:
        raise HostSetupError(
            "no /boot/vmlinuz-* with matching /lib/modules/*/modules.dep: install linux-image-amd64"
        )
    # Version-aware sort: split on non-digits so 6.1.0-10 sorts after 6.1.0-9.
    def version_key(release):
        import re
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", release)]
    return sorted(candidates, key=version_key)[-1]


def bzimage_path(release):
    path = Path("/boot") / f"vmlinuz-{release}"
    if not os.access(path, os.R_OK):
        raise HostSetupError(f"{path} is not readable (Debian makes it 0600: run the suite as root)")
    return path


def modules_dir(release):
    return Path("/lib/modules") / release


def ensure_cache_dir():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return CACHE_DIR


def _decompress_embedded_kernel(blob):
    """Find the compressed payload inside a bzImage and inflate it to the ELF vmlinux.

    Debian compresses with xz; gzip is handled too. Each candidate magic is tried in turn
    because the magic bytes can also occur by chance in the setup code.
    """
    xz_magic = b"\xfd7zXZ\x00"
    start = 0
    while (pos := blob.find(xz_magic, start)) >= 0:
        try:
            out = lzma.LZMADecompressor().decompress(blob[pos:])
            if out[:4] == b"\x7fELF":
                return out
        except lzma.LZMAError:
            pass
        start = pos + 1
    gzip_magic = b"\x1f\x8b\x08"
    start = 0
    while (pos := blob.find(gzip_magic, start)) >= 0:
        try:
            out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob[pos:])
            if out[:4] == b"\x7fELF":
                return out
        except zlib.error:
            pass
        start = pos + 1
    raise HostSetupError("could not find an xz or gzip compressed ELF kernel inside the bzImage")


def vmlinux_path(release):
    """The uncompressed vmlinux, extracted once and cached.

    QEMU boots it through its PVH entry point, which skips the ~4 s xz decompression that
    dominates a bzImage boot under TCG.
    """
    bz = bzimage_path(release)
    digest = hashlib.sha256(bz.read_bytes()).hexdigest()[:16]
    cached = ensure_cache_dir() / f"vmlinux-{release}-{digest}"
    if not cached.exists():
        elf = _decompress_embedded_kernel(bz.read_bytes())
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(elf)
        tmp.rename(cached)
    return cached
