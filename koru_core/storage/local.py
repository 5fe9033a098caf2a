"""Data files on a local disk: durable writes, symlink-safe paths, out-of-space as its own error.

A file is written whole to a temporary name beside its target, fsynced, renamed into
place and its folder fsynced (so a crash leaves the old state or the new, never a
torn file); a failed write removes its temporary file. Paths are relative to the
store root and ``/``-separated; every path component inside the store is checked
with ``lstat`` and a symlink is refused (a planted link must never make koru read or
overwrite a file elsewhere). ``ENOSPC`` becomes :class:`koru_core.StoreFullError`.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from koru_core.errors import CorruptionError, InvalidInputError, ReadOnlyError, StoreFullError

__all__ = ["FileStat", "LocalStorage", "check_no_symlink", "full_disk"]

FileStat = tuple[int, int, int, int]
"""(size in bytes, mtime ns, ctime ns, inode) of a file: what changes when anything rewrites it."""


def full_disk(e: OSError, what: str) -> StoreFullError:
    """The :class:`StoreFullError` for an ``ENOSPC``/``EDQUOT`` error while writing ``what``."""
    err = StoreFullError(errno.ENOSPC, f"{what}: no space left on device; nothing was written ({e.strerror})")
    err.__cause__ = e
    return err


def check_no_symlink(root: Path, rel: str) -> Path:
    """Return ``root / rel`` after checking that no existing component below ``root`` is a symlink.

    Raises:
        CorruptionError: a component is a symlink (names it).
        InvalidInputError: ``rel`` is absolute or climbs out of the root.
    """
    path, _ = _walk(str(root), rel)
    return Path(path)


def _walk(root: str, rel: str) -> tuple[str, os.stat_result | None]:
    """``root/rel`` as a string and the ``lstat`` of its last component (None if some
    component is missing), each component below ``root`` checked not to be a symlink.

    Raises:
        CorruptionError, InvalidInputError: as :func:`check_no_symlink`.
    """
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        msg = f"{root}: refusing the path {rel!r} (it must stay inside the store)"
        raise InvalidInputError(msg)
    path = root.rstrip("/")  # "" for the file system's root: each step adds "/part"
    st = None
    for part in parts:
        path = f"{path}/{part}"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return os.path.join(root, rel), None
        if stat.S_ISLNK(st.st_mode):
            msg = f"{path}: is a symlink; koru refuses symlinks inside a store"
            raise CorruptionError(msg)
    return path, st


class LocalStorage:
    """The data files of a store in a local folder.

    Args:
        root: The store folder (absolute).
    """

    immutable = False
    """Files may be changed in place behind koru's back (the cache checks their stat)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self.filesystem = pafs.LocalFileSystem()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def uri(self, rel: str) -> str:
        """The path an engine (pyarrow, DuckDB, Polars) reads ``rel`` at."""
        return os.path.join(self._root, rel)

    def storage_options(self) -> dict[str, str] | None:
        """Options for Polars' ``scan_parquet`` (none for local files)."""
        return None

    def source(self, rel: str) -> str:
        """What ``pq.ParquetFile`` opens for ``rel``: its local path (symlinks refused)."""
        return str(self.path(rel))

    def path(self, rel: str) -> Path:
        """``root / rel``, symlinks refused."""
        return check_no_symlink(self.root, rel)

    def write(self, rel: str, data: bytes | memoryview) -> None:
        """Write ``data`` durably at ``rel`` (atomic replace; folders created).

        Raises:
            StoreFullError: the disk is full (nothing is left behind).
            ReadOnlyError: the folder cannot be written (a read-only mount, no permission).
            OSError: any other failure (nothing is left behind).
        """
        path = self.path(rel)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self._mkdirs(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            self._fsync_dir(path.parent)
        except OSError as e:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise full_disk(e, str(path)) from e
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                msg = f"{path}: cannot be written ({e.strerror}): the store is read-only; nothing was written"
                raise ReadOnlyError(msg) from e
            raise

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for f in reversed(missing):
            f.mkdir(exist_ok=True)
            self._fsync_dir(f.parent)

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, rel: str) -> bytes:
        """Return the bytes of ``rel``.

        Raises:
            CorruptionError: it is missing or a symlink.
        """
        path = self.path(rel)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as e:
            msg = f"{path}: data file is missing"
            raise CorruptionError(msg) from e
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def stat(self, rel: str) -> FileStat | None:
        """Return :data:`FileStat` of ``rel``, or None if it is missing.

        Raises:
            CorruptionError: ``rel`` or a folder on its way is a symlink, or it is not a regular file.
        """
        path, st = _walk(self._root, rel)
        if st is None:
            return None
        if not stat.S_ISREG(st.st_mode):
            msg = f"{path}: is not a regular file; koru refuses it"
            raise CorruptionError(msg)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def delete(self, rel: str) -> None:
        """Delete ``rel`` if present. A symlink in its place is removed, never followed;
        a symlinked folder on its way is refused (nothing outside the store is deleted).

        Raises:
            CorruptionError: a folder on the way is a symlink.
        """
        parent, _, name = rel.rpartition("/")
        folder = check_no_symlink(self.root, parent) if parent else self.root
        if parent and folder.is_symlink():
            msg = f"{folder}: is a symlink; koru refuses symlinks inside a store"
            raise CorruptionError(msg)
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass

    def walk(self, folder: str) -> Iterator[tuple[str, int, int]]:
        """Yield (relative path, size, mtime ns) of the regular files under ``folder``; symlinks are not followed."""
        base = self.root / folder
        if not base.is_dir() or base.is_symlink():
            return
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
            for name in filenames:
                p = Path(dirpath) / name
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    yield p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns
