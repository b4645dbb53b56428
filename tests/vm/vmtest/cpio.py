"""A minimal writer for the "newc" cpio format the kernel unpacks as an initramfs.

The image is assembled in memory and written as one archive, so nothing is ever written
through a symlink into the host's file system.
"""

import stat


class CpioArchive:
    def __init__(self):
        self._entries = {}  # path -> (mode, data bytes, (rdev major, minor))

    def _add(self, path, mode, data, rdev=(0, 0)):
        path = path.strip("/")
        if not path:
            return
        # Create parent directories implicitly, in order.
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self._entries:
                self._entries[parent] = (stat.S_IFDIR | 0o755, b"", (0, 0))
            elif not stat.S_ISDIR(self._entries[parent][0]):
                raise ValueError(f"{parent} is not a directory in the image (needed for {path})")
        self._entries[path] = (mode, data, rdev)

    def directory(self, path, perm=0o755):
        self._add(path, stat.S_IFDIR | perm, b"")

    def file(self, path, data, perm=0o644):
        if isinstance(data, str):
            data = data.encode()
        self._add(path, stat.S_IFREG | perm, data)

    def symlink(self, path, target):
        self._add(path, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, path, major, minor, perm=0o600):
        self._add(path, stat.S_IFCHR | perm, b"", (major, minor))

    def has(self, path):
        return path.strip("/") in self._entries

    def total_size(self):
        return sum(len(entry[1]) for entry in self._entries.values())

    def serialise(self):
        out = bytearray()
        ino = 1
        # Directories first (sorted paths put parents before children).
        for path in sorted(self._entries):
            mode, data, rdev = self._entries[path]
            out += self._header(ino, mode, len(data), path, rdev)
            out += data
            out += b"\0" * (-len(out) % 4)
            ino += 1
        out += self._header(ino, 0, 0, "TRAILER!!!")
        out += b"\0" * (-len(out) % 512)
        return bytes(out)

    @staticmethod
    def _header(ino, mode, size, name, rdev=(0, 0)):
        name_bytes = name.encode() + b"\0"
        fields = [
            ino, mode, 0, 0,  # ino, mode, uid, gid (root owns everything)
            1, 0, size,       # nlink, mtime, filesize
            0, 0, rdev[0], rdev[1],  # devmajor, devminor, rdevmajor, rdevminor
            len(name_bytes), 0,
        ]
        header = b"070701" + b"".join(b"%08X" % f for f in fields) + name_bytes
        header += b"\0" * (-len(header) % 4)
        return header
