"""The store's single-writer lock: an exclusive ``flock`` on ``<store>/write.lock``.

One writer per store across processes. The lock is held for one commit (or one
open transaction) and released at once; a second writer waits up to its timeout
and then gets :class:`StoreLockedError`. ``flock`` locks belong to the open
file, so the kernel releases them when a writer dies, even by ``SIGKILL``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path

from koru_core.errors import CorruptionError, ReadOnlyError, StoreLockedError

__all__ = ["WriteLock"]


class WriteLock:
    """A re-entrant (per thread) inter-process write lock.

    Args:
        path: The lock file (created if missing); None for a store whose catalog is
            shared (PostgreSQL): then only the threads of this process serialise, and
            writers in other processes or hosts commit optimistically (the catalog
            transaction checks what they committed meanwhile).
        where: How messages name the store (default: the lock file's folder).
        timeout: Seconds to wait for another process's lock before
            :class:`StoreLockedError`; 0 fails at once.
        read_only: The store is read-only: every acquire raises :class:`ReadOnlyError`
            (so every write path refuses before it writes anything).

    The lock file is opened with ``O_NOFOLLOW``: a symlink planted as ``write.lock`` is
    refused (its target is never created or locked), as is a folder in its place.
    """

    def __init__(self, path: Path | None, *, timeout: float, read_only: bool = False, why: str = "",
                 where: str = "") -> None:
        self.path = path
        self._where = where or (str(path.parent) if path is not None else "the store")
        self.timeout = timeout
        self.read_only = read_only
        self._why = why or "opened with read_only=True, or its folder is not writable"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock (waiting up to ``timeout`` seconds, default the lock's own; 0: no wait).

        Raises:
            StoreLockedError: another process held it for longer than the timeout.
            ReadOnlyError: the store is read-only.
            CorruptionError: ``write.lock`` is a symlink or not a regular file.
            StoreFullError: no space left to create the lock file.
        """
        if self.read_only:
            msg = f"store {self._where!r} is read-only ({self._why}); nothing was written"
            raise ReadOnlyError(msg)
        wait = self.timeout if timeout is None else timeout
        if not self._thread_lock.acquire(blocking=wait > 0, timeout=wait if wait > 0 else -1):
            msg = f"{self._where}: another thread holds the write lock"
            raise StoreLockedError(msg)
        if self._depth or self.path is None:  # re-entry, or a shared store (optimistic commits)
            self._depth += 1
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            self._thread_lock.release()
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                msg = f"{self.path}: the store's write lock cannot be created here ({e.strerror}): the store is read-only"
                raise ReadOnlyError(msg) from e
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                from koru_core.storage.local import full_disk

                raise full_disk(e, str(self.path)) from e
            what = "is a symlink" if e.errno == errno.ELOOP else f"cannot be opened ({e.strerror})"
            msg = f"{self.path}: the store's write lock file {what}; koru refuses it"
            raise CorruptionError(msg) from e
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    self._thread_lock.release()
                    msg = (
                        f"{self.path.parent}: another process holds the write lock "
                        f"(waited {wait:g} s; raise lock_timeout to wait longer)"
                    )
                    raise StoreLockedError(msg) from None
                time.sleep(0.002)
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        """Release one level of the lock; the file lock goes with the last."""
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
