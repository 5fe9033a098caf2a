"""A shared 8-byte counter, ``<store>/head``, that tells readers a commit happened.

The writer stores the last commit number here (memory-mapped, so every process
sees it at once) after each commit. A reader compares it with the commit its
caches were built at: equal means the caches are current, without a catalog
query. It is a hint, not the truth: the catalog is. A writer that dies between
its catalog commit and this update leaves the hint one behind until the next
commit or open, which re-syncs it.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

__all__ = ["HeadFile"]

_FORMAT = struct.Struct("<q")


class HeadFile:
    """The memory-mapped commit counter of one store."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < _FORMAT.size:
                os.ftruncate(fd, _FORMAT.size)
            self._map = mmap.mmap(fd, _FORMAT.size)
        finally:
            os.close(fd)

    def read(self) -> int:
        """Return the last commit number a writer announced."""
        return int(_FORMAT.unpack_from(self._map, 0)[0])

    def write(self, commit: int) -> None:
        """Announce ``commit`` as the last commit."""
        _FORMAT.pack_into(self._map, 0, commit)

    def close(self) -> None:
        self._map.close()
