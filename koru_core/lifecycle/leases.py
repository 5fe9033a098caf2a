"""Reader leases: which replaced data files a live reader may still need.

Consolidation and distillation replace files in the catalog; the replaced
(*retired*) files stay on disk until :func:`koru_core.lifecycle.vacuum.vacuum`
deletes them. A reader that made its :class:`~koru_core.scan.ScanPlan` before
the swap still reads them, so vacuum must know how old the oldest plan in use is.

Each :class:`Leases` (one per open store object) owns a lease file
``<store>/readers/<pid>-<hex>.lease``: 8 bytes holding the time (int64 ns, UTC) at
which the oldest of its plans in use was *started*, or 0 when none is. The 8 bytes
are written for real when the file is made (so updating them in place never needs a
new disk block: a full disk cannot fail a read), and updated with ``pwrite``. The
owner holds a shared ``flock`` on it for its whole life, so vacuum can tell a dead
process's leftover (it can take an exclusive lock) from a live one. Starting a plan
costs an in-memory update and, when it becomes the oldest, one ``pwrite``; no catalog
write. On a read-only store, or when the lease file cannot be made (a full disk),
reads go on without a lease file: nothing can be vacuumed there meanwhile by this
process, and another process's vacuum is told by :func:`oldest_lease` that a reader
of unknown age exists only if the file exists, so a full disk is the one residual
window (documented in README, "Integrity").

Why a start time is enough: a plan records its lease time *before* it opens
its catalog snapshot, and a swap records ``retired.retired_at`` *after* its
transaction committed. A plan that still lists a retired file therefore has a
lease time earlier than that file's ``retired_at``; vacuum deletes a retired
file only if ``retired_at`` is earlier than every live lease (and it reads the
retired list before the leases, so a plan started after that read sees the swap).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import uuid
from pathlib import Path

from typing import TYPE_CHECKING

from koru_core._time import now_ns
from koru_core.errors import CorruptionError

if TYPE_CHECKING:
    from koru_core.catalog.base import Catalog

__all__ = ["LEASE_DIR", "Lease", "Leases", "oldest_lease"]

LEASE_DIR = "readers"
_FORMAT = struct.Struct("<q")


class Leases:
    """The leases of one open store object (thread-safe).

    Args:
        root: The store folder.
    """

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self._dir = root / LEASE_DIR
        self._lock = threading.RLock()  # a Lease the GC collects inside a locked section releases here
        self._active: dict[int, int] = {}
        self._next = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._published = 0
        self._disabled = read_only

    def _open(self) -> int | None:
        try:
            if self._dir.is_symlink() or (self._dir.exists() and not self._dir.is_dir()):
                # a symlink planted as readers/ (never followed) or a file in its place: read
                # without a lease file; vacuum refuses to run until it is fixed (koru recover)
                self._disabled = True
                return None
            self._dir.mkdir(exist_ok=True)
            name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            tmp = self._dir / f"{name}.tmp"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, _FORMAT.pack(0))  # a real block: later pwrites never allocate
                fcntl.flock(fd, fcntl.LOCK_SH)  # locked before vacuum can see it under its .lease name
                self._path = self._dir / f"{name}.lease"
                os.replace(tmp, self._path)
            except OSError:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR):
                self._disabled = True
                return None
            raise
        self._fd = fd
        return fd

    def _publish(self) -> None:
        value = min(self._active.values()) if self._active else 0
        if value == self._published or self._disabled:
            return
        fd = self._fd if self._fd is not None else (self._open() if value else None)
        if fd is None:
            return
        os.pwrite(fd, _FORMAT.pack(value), 0)
        self._published = value

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

    def lease(self) -> Lease:
        """Start a :class:`Lease` (ended when released or garbage collected)."""
        return Lease(self)

    def vacuumable(self, catalog: Catalog, *, retired_before: int) -> list[str]:
        """Retired paths vacuum may delete: retired at or before ``retired_before`` (ns),
        before every live lease of any process, and not listed again."""
        retired = catalog.retired()
        if not retired:
            return []
        listed = {e.path for e in catalog.files()}
        oldest = oldest_lease(self._dir.parent)  # read after the retired list (module docstring)
        bound = retired_before if oldest is None else min(retired_before, oldest - 1)
        return sorted(p for p, (_, _, _, at) in retired.items() if (at or 0) <= bound and p not in listed)

    def orphan_bound(self, cutoff: int) -> int:
        """The latest modification time (ns) at which an unlisted file is an orphan:
        ``cutoff``, and before the oldest live lease (a writer may be about to list it)."""
        oldest = oldest_lease(self._dir.parent)
        return cutoff if oldest is None else min(cutoff, oldest - 1)

    def close(self) -> None:
        """Drop every lease and remove the lease file."""
        with self._lock:
            self._active.clear()
            if self._fd is not None:
                if self._path is not None:
                    self._path.unlink(missing_ok=True)
                os.close(self._fd)
            self._fd = None
            self._published = 0


def oldest_lease(root: Path) -> int | None:
    """Return the start time (ns) of the oldest live lease of any process, or None.

    Lease files of dead processes are removed on the way.

    Raises:
        CorruptionError: ``readers/`` is a symlink or not a folder (the leases cannot be seen).
    """
    folder = root / LEASE_DIR
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        what = "a symlink" if folder.is_symlink() else "not a folder"
        msg = (f"{folder}: is {what}, so the reader leases cannot be seen; vacuum refuses to delete "
               "anything (run `koru recover --apply` to move it aside)")
        raise CorruptionError(msg)
    oldest: int | None = None
    for path in sorted(folder.glob("*.lease")) if folder.exists() else []:
        try:  # never follow a planted link, never block on a planted FIFO
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError:  # a symlink or something else koru did not make: not a lease
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
