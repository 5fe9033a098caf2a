"""Reader leases: which replaced data files a live reader may still need.

Consolidation and distillation replace files in the catalog; the replaced
(*retired*) files stay on disk until :func:`koru_core.lifecycle.vacuum.vacuum`
deletes them. A reader that made its :class:`~koru_core.scan.ScanPlan` before
the swap still reads them, so vacuum must know how old the oldest plan in use is.

Each :class:`Leases` (one per open store object) owns a lease file
``<store>/readers/<pid>-<hex>.lease``: 8 bytes, memory-mapped, holding the time
(int64 ns, UTC) at which the oldest of its plans in use was *started*, or 0 when
none is. The owner holds a shared ``flock`` on it for its whole life, so vacuum
can tell a dead process's leftover (it can take an exclusive lock) from a live
one. Starting a plan costs an in-memory update, no catalog write.

Why a start time is enough: a plan records its lease time *before* it opens
its catalog snapshot, and a swap records ``retired.retired_at`` *after* its
transaction committed. A plan that still lists a retired file therefore has a
lease time earlier than that file's ``retired_at``; vacuum deletes a retired
file only if ``retired_at`` is earlier than every live lease (and it reads the
retired list before the leases, so a plan started after that read sees the swap).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import threading
import uuid
from pathlib import Path

from koru_core._time import now_ns

__all__ = ["LEASE_DIR", "Lease", "Leases", "oldest_lease"]

LEASE_DIR = "readers"
_FORMAT = struct.Struct("<q")


class Leases:
    """The leases of one open store object (thread-safe).

    Args:
        root: The store folder.
    """

    def __init__(self, root: Path) -> None:
        self._dir = root / LEASE_DIR
        self._lock = threading.Lock()
        self._active: dict[int, int] = {}
        self._next = 0
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._path: Path | None = None

    def _open(self) -> mmap.mmap:
        self._dir.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp = self._dir / f"{name}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, _FORMAT.size)
        fcntl.flock(fd, fcntl.LOCK_SH)  # locked before vacuum can see it under its .lease name
        self._path = self._dir / f"{name}.lease"
        os.replace(tmp, self._path)
        self._fd, self._map = fd, mmap.mmap(fd, _FORMAT.size)
        return self._map

    def _publish(self) -> None:
        value = min(self._active.values()) if self._active else 0
        if self._map is None:
            if not value:
                return
            self._open()
        assert self._map is not None
        _FORMAT.pack_into(self._map, 0, value)

    def acquire(self) -> int:
        """Start a lease now; returns its token for :meth:`release`."""
        with self._lock:
            self._next += 1
            self._active[self._next] = now_ns()
            self._publish()
            return self._next

    def release(self, token: int) -> None:
        """End the lease ``token`` (unknown tokens are ignored)."""
        with self._lock:
            if self._active.pop(token, None) is not None:
                self._publish()

    def close(self) -> None:
        """Drop every lease and remove the lease file."""
        with self._lock:
            self._active.clear()
            if self._map is not None and self._fd is not None:
                self._map.close()
                if self._path is not None:
                    self._path.unlink(missing_ok=True)
                os.close(self._fd)
            self._map = self._fd = None


def oldest_lease(root: Path) -> int | None:
    """Return the start time (ns) of the oldest live lease of any process, or None.

    Lease files of dead processes are removed on the way.
    """
    folder = root / LEASE_DIR
    oldest: int | None = None
    for path in sorted(folder.glob("*.lease")) if folder.exists() else []:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                data = os.pread(fd, _FORMAT.size, 0)
                value = _FORMAT.unpack(data)[0] if len(data) == _FORMAT.size else 0
                if value:
                    oldest = value if oldest is None else min(oldest, value)
                continue
            path.unlink(missing_ok=True)  # its owner is gone
        finally:
            os.close(fd)
    return oldest



class Lease:
    """One lease of a :class:`Leases`, started when made, ended by :meth:`release`
    or when the object is garbage collected (a :class:`~koru_core.scan.ScanPlan` holds one)."""

    __slots__ = ("_leases", "_token")

    def __init__(self, leases: Leases) -> None:
        self._leases = leases
        self._token = leases.acquire()

    def release(self) -> None:
        """End the lease (idempotent)."""
        token, self._token = self._token, 0
        if token:
            self._leases.release(token)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
