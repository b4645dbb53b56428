"""The Debian 12 root file systems the package is booted in, made with mmdebstrap.

The mirror is the machine's own: the apt source files under /etc/apt are handed to
mmdebstrap as they are (it reads one-line and deb822 files alike), so no host name is
written here. Downloaded packages are kept between runs in the cache directory, keyed by
those sources; the reference image (Debian's qemu-guest-agent), which does not depend on
this tree's build, is kept whole, keyed by everything it is made from.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
BASE_PACKAGES = ["systemd-sysv", "udev"]
CACHE_ROOT = Path(os.environ.get("QGA_TEST_CACHE", "/var/cache/qemu-ga-rs-tests"))
IMAGE_BYTES = 1 << 30
GUEST_DIR = Path(__file__).resolve().parent.parent / "guest"
VM_GUEST_DIR = Path(__file__).resolve().parents[2] / "vm" / "guest"
FILE_MIRROR_HOOKS = Path("/usr/share/mmdebstrap/hooks/file-mirror-automount")

FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"


class ImageError(Exception):
    pass


def apt_source_files():
    """The host's apt source files, in the order apt reads them."""
    files = []
    main = Path("/etc/apt/sources.list")
    if main.is_file() and main.read_text().strip():
        files.append(main)
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    if not files:
        raise ImageError("no apt sources configured on this machine (/etc/apt/sources.list{,.d})")
    return files


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _sources_key():
    return _digest(*[p.read_bytes() for p in apt_source_files()])


def _overlay(workdir, extra_files):
    """A directory copied over the new root file system: the control port and its unit,
    fstab, hostname, and extra_files ({guest path: host path})."""
    overlay = Path(tempfile.mkdtemp(prefix="overlay-", dir=workdir))
    files = {
        "/usr/libexec/qga-test/control": (VM_GUEST_DIR / "control").read_bytes(),
        "/usr/libexec/qga-test/lib.sh": (VM_GUEST_DIR / "lib.sh").read_bytes(),
        "/etc/systemd/system/qga-test-control.service": (GUEST_DIR / "qga-test-control.service").read_bytes(),
        "/etc/fstab": FSTAB.encode(),
        "/etc/hostname": b"pkg-test\n",
    }
    for guest_path, host_path in extra_files.items():
        files[guest_path] = Path(host_path).read_bytes()
    for guest_path, data in files.items():
        target = overlay / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if "/libexec/" in guest_path else 0o644)
    return overlay


def _recipe_key():
    """Everything besides the mirror that shapes an image."""
    return _digest(Path(__file__).read_bytes(), (VM_GUEST_DIR / "control").read_bytes(),
                   (VM_GUEST_DIR / "lib.sh").read_bytes(), (GUEST_DIR / "qga-test-control.service").read_bytes())


def _mmdebstrap(target, includes, workdir, extra_files, log):
    apt_cache = CACHE_ROOT / f"apt-archives-{_sources_key()}"
    apt_cache.mkdir(parents=True, exist_ok=True)
    overlay = _overlay(workdir, extra_files)
    argv = [
        "mmdebstrap", "--mode=root", "--variant=minbase", "--include=" + ",".join(includes),
        "--hook-dir=" + str(FILE_MIRROR_HOOKS),
        # Packages downloaded once are reused (mmdebstrap's documented sync-in/sync-out cache).
        "--skip=essential/unlink",
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        f"--setup-hook=sync-in {apt_cache} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {apt_cache}",
        f"--customize-hook=sync-in {overlay} /",
        "--customize-hook=chroot \"$1\" systemctl enable qga-test-control.service",
        SUITE, str(target),
    ] + [str(p) for p in apt_source_files()]
    started = time.monotonic()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log(f"mmdebstrap ({', '.join(Path(i).name for i in includes)}): exit {result.returncode} "
        f"in {time.monotonic() - started:.1f} s")
    # Our own package is never cached: it changes with every build.
    for stale in apt_cache.glob("qemu-ga-rs_*.deb"):
        stale.unlink()
    shutil.rmtree(overlay, ignore_errors=True)
    if result.returncode != 0:
        raise ImageError("mmdebstrap failed:\n" + result.stdout[-4000:])


def _ext4_image(rootdir, image):
    with open(image, "wb") as out:
        out.truncate(IMAGE_BYTES)
    result = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                             "-d", str(rootdir), str(image)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"mke2fs -d failed: {result.stderr}")


def build_image(image, includes, workdir, log, extra_files=None):
    """A bootable ext4 image at `image`: Debian 12 minbase, systemd, udev, the includes
    (package names or .deb paths, installed by apt with their dependencies)."""
    rootdir = Path(workdir) / (Path(image).stem + "-root")
    try:
        _mmdebstrap(rootdir, BASE_PACKAGES + includes, workdir, extra_files or {}, log)
        _ext4_image(rootdir, image)
    finally:
        shutil.rmtree(rootdir, ignore_errors=True)
    return Path(image)


def reference_image(image, workdir, log):
    """The same system with Debian's qemu-guest-agent instead, copied from the cache."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    cached = CACHE_ROOT / f"reference-{_sources_key()}-{_recipe_key()}.img"
    if not cached.exists():
        tmp = cached.with_suffix(".tmp")
        # dbus too: the package under test depends on it (for guest-shutdown), so both
        # images hold the same packages and differ only in the agent.
        build_image(tmp, ["qemu-guest-agent", "dbus"], workdir, log)
        tmp.rename(cached)
    else:
        log(f"reference image from the cache ({cached.name})")
    subprocess.run(["cp", "--sparse=always", str(cached), str(image)], check=True)
    return Path(image)
