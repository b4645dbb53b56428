"""Resolve the kernel modules the guest needs, in load order, from modules.dep/softdep/alias.

The guest has no modprobe database and no udev, so /init insmods a fixed list; this module
computes that list the way modprobe would: soft pre-dependencies first, then hard
dependencies, each resolved recursively.
"""

import json
import lzma
from pathlib import Path

from . import hostenv

# What the guest uses: PCI transport, the two virtio-serial ports, the data disk and its ext4,
# the NIC, FUSE (a hung fuseblk mount for guest-get-fsinfo), and (when the host can offer it)
# vsock.
WANTED = [
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "virtio_net",
    "ext4",
    "fuse",
    "vmw_vsock_virtio_transport",
]


def _normalise(name):
    return name.replace("-", "_")


def _module_name(path):
    base = Path(path).name
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return _normalise(base)


class ModuleIndex:
    def __init__(self, moddir):
        self.moddir = Path(moddir)
        self.path_of = {}   # module name -> path relative to moddir
        self.deps_of = {}   # module name -> [module names]
        self.soft_pre = {}  # module name -> [names or aliases]
        self.aliases = {}   # alias -> [module names]
        self.builtin = set()
        self._read()

    def _read(self):
        for line in (self.moddir / "modules.dep").read_text().splitlines():
            if ":" not in line:
                continue
            path, deps = line.split(":", 1)
            name = _module_name(path)
            self.path_of[name] = path
            self.deps_of[name] = [_module_name(d) for d in deps.split()]
        softdep = self.moddir / "modules.softdep"
        if softdep.exists():
            for line in softdep.read_text().splitlines():
                words = line.split()
                if len(words) < 3 or words[0] != "softdep":
                    continue
                name = _normalise(words[1])
                section = None
                for word in words[2:]:
                    if word.endswith(":"):
                        section = word[:-1]
                    elif section == "pre":
                        self.soft_pre.setdefault(name, []).append(word)
        alias_file = self.moddir / "modules.alias"
        if alias_file.exists():
            for line in alias_file.read_text().splitlines():
                words = line.split()
                if len(words) == 3 and words[0] == "alias" and "*" not in words[1]:
                    self.aliases.setdefault(words[1], []).append(_normalise(words[2]))
        builtin = self.moddir / "modules.builtin"
        if builtin.exists():
            self.builtin = {_module_name(l) for l in builtin.read_text().split()}

    def _candidates(self, name_or_alias):
        name = _normalise(name_or_alias)
        if name in self.path_of:
            return [name]
        return [m for m in self.aliases.get(name_or_alias, []) if m in self.path_of]

    def load_order(self, wanted):
        order, seen = [], set()

        def visit(name, stack):
            if name in seen:
                return
            if name in stack:
                raise ValueError(f"module dependency cycle through {name}")
            stack = stack | {name}
            for soft in self.soft_pre.get(name, []):
                for candidate in self._candidates(soft):
                    visit(candidate, stack)
            for dep in self.deps_of.get(name, []):
                visit(dep, stack)
            seen.add(name)
            order.append(name)

        for want in wanted:
            candidates = self._candidates(want)
            if not candidates:
                if _normalise(want) in self.builtin:
                    continue
                raise hostenv.HostSetupError(f"kernel module {want} not found in {self.moddir}")
            for candidate in candidates:
                visit(candidate, set())
        return order


def module_set(release):
    """[(file name, module bytes)] in load order; the resolved name list is cached."""
    moddir = hostenv.modules_dir(release)
    cache = hostenv.ensure_cache_dir() / f"modules-{release}.json"
    stamp = (moddir / "modules.dep").stat().st_mtime_ns
    index_paths = None
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp and cached.get("wanted") == WANTED:
            index_paths = cached["modules"]
    if index_paths is None:
        index = ModuleIndex(moddir)
        index_paths = [[name, index.path_of[name]] for name in index.load_order(WANTED)]
        cache.write_text(json.dumps({"stamp": stamp, "wanted": WANTED, "modules": index_paths}))
    result = []
    for name, rel in index_paths:
        data = (moddir / rel).read_bytes()
        filename = name + ".ko"
        if rel.endswith(".ko.xz"):
            data = lzma.decompress(data)
        elif not rel.endswith(".ko"):
            # zstd/gzip: busybox insmod hands the file to finit_module, and the kernel
            # inflates it if it was built with module decompression; keep the suffix.
            filename += "." + rel.rsplit(".", 1)[1]
        result.append((filename, data))
    return result
