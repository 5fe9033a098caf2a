"""Reading the catalog of an on-disk format-1 store (koru before format 2), for ``koru upgrade``.

Format 1 is what koru wrote up to commit ``5bfbcff`` of its repository. Its catalog,
``<store>/catalog.sqlite`` (SQLite, WAL mode), held (times int64 ns UTC; ids and
hashes as lowercase hex text)::

    meta(name PRIMARY KEY, value)      format_version '1', store_id
    commits(commit_number PRIMARY KEY, system_time, actor, run_id, namespaces JSON,
            written, unchanged, deleted, hash TEXT (64 hex), prev_hash TEXT, metadata JSON)
    namespaces(name PRIMARY KEY, schema BLOB (Arrow IPC schema), created_commit, schema_commit)
    files(file_id PRIMARY KEY, namespace, tier ('warm'|'cold'|'deep'), path UNIQUE, rows,
          bytes, checksum TEXT (blake3 hex of the file), min_commit, max_commit, min_valid, max_valid)
    pending(namespace, commit_number, rows, data BLOB (Arrow IPC stream), checksum TEXT (blake3 hex))
    retired(path PRIMARY KEY, namespace, tier, bytes, retired_at)   replaced files, not data
    tags(name PRIMARY KEY, commit_number)
    cursors(name PRIMARY KEY, commit_number)

It recorded no key columns, no content-id format (format 1's content ids are
:mod:`koru_core.hashing.format1`) and no write-id sequence (a write id was
``<commit:08x><ordinal:08x>``).

:class:`Format1Catalog` never writes into the old store, not even SQLite's ``-shm``
file: it copies ``catalog.sqlite`` (and its ``-wal``, whose commits a cleanly closed
store has already checkpointed) into a private temporary folder and reads the copy,
holding a shared ``flock`` on the old ``write.lock`` (when it exists) for as long as it
is open, so no format-1 writer can commit, consolidate or vacuum meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from koru_core.errors import CorruptionError, FormatError, InvalidInputError, StoreLockedError

__all__ = ["Format1Catalog", "Format1Commit", "Format1File", "Format1Namespace", "Format1Pending"]

CATALOG = "catalog.sqlite"


@dataclass(frozen=True, slots=True, kw_only=True)
class Format1Commit:
    """One row of a format-1 commit log (``hash``/``prev_hash``: 64 hex characters)."""

    commit: int
    system_time: int
    actor: str | None
    run_id: str | None
    namespaces: tuple[str, ...]
    written: int
    unchanged: int
    deleted: int
    hash: str
    prev_hash: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Format1Namespace:
    """A format-1 namespace: its value schema and the commits that created and last widened it."""

    name: str
    schema: pa.Schema
    created_commit: int
    schema_commit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Format1File:
    """A data file a format-1 catalog lists (``path`` relative to the store, ``checksum`` blake3 hex)."""

    namespace: str
    tier: str
    path: str
    rows: int
    bytes: int
    checksum: str
    min_commit: int
    max_commit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Format1Pending:
    """A format-1 pending blob: one commit's versions of one namespace (Arrow IPC, ``checksum`` blake3 hex)."""

    namespace: str
    commit: int
    rows: int
    data: bytes
    checksum: str


class Format1Catalog:
    """The catalog of a format-1 store, read from a private copy (see the module docstring).

    Args:
        root: The old store's folder.
        timeout: Seconds to wait for a format-1 writer to release ``write.lock``.

    Raises:
        InvalidInputError: ``root`` holds no ``catalog.sqlite``, or a store of format 2
            (nothing to upgrade).
        FormatError: the catalog is of a format other than 1 and 2.
        CorruptionError: the catalog is unreadable or lacks its format version.
        StoreLockedError: a format-1 writer held ``write.lock`` for ``timeout`` seconds.

    Example:
        >>> Format1Catalog(store.path)  # a store of format 2
        Traceback (most recent call last):
        koru_core.errors.InvalidInputError: '...' is already a store of on-disk format 2; there is nothing to upgrade
    """

    def __init__(self, root: Path, *, timeout: float = 10.0) -> None:
        self.root = root
        source = root / CATALOG
        if not source.is_file():
            msg = f"no koru store at {str(root)!r} (it has no {CATALOG})"
            raise InvalidInputError(msg)
        self._lock_fd = _shared_lock(root / "write.lock", timeout)
        self._tmp = Path(tempfile.mkdtemp(prefix="koru-upgrade-"))
        self._con: sqlite3.Connection | None = None
        try:
            for suffix in ("", "-wal"):
                if (root / f"{CATALOG}{suffix}").exists():
                    shutil.copyfile(root / f"{CATALOG}{suffix}", self._tmp / f"{CATALOG}{suffix}")
            self._con = sqlite3.connect(self._tmp / CATALOG, isolation_level=None)
            self.meta = dict(self._query("SELECT name, value FROM meta"))
            self._check_format()
        except BaseException:
            self.close()
            raise

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        assert self._con is not None
        try:
            return self._con.execute(sql).fetchall()
        except sqlite3.Error as e:
            msg = f"{self.root / CATALOG}: the format-1 catalog is unreadable: {e}"
            raise CorruptionError(msg) from e

    def _check_format(self) -> None:
        version = self.meta.get("format_version")
        if version == "1":
            return
        if version == "2":
            msg = f"{str(self.root)!r} is already a store of on-disk format 2; there is nothing to upgrade"
            raise InvalidInputError(msg)
        if version is None:
            msg = f"{self.root / CATALOG}: the catalog has no format version; it is not a koru catalog"
            raise CorruptionError(msg)
        msg = f"{str(self.root)!r} is a store of on-disk format {version!r}; koru upgrade reads format 1 only"
        raise FormatError(msg)

    def __enter__(self) -> Format1Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the copy, delete it and release the old store's lock (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        shutil.rmtree(self._tmp, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @property
    def store_id(self) -> str:
        """The old store's id (``meta.store_id``)."""
        return str(self.meta.get("store_id", ""))

    def commits(self) -> list[Format1Commit]:
        """Return the commit log, oldest first."""
        rows = self._query(
            "SELECT commit_number, system_time, actor, run_id, namespaces, written, unchanged, deleted, hash, "
            "prev_hash, metadata FROM commits ORDER BY commit_number"
        )
        return [
            Format1Commit(commit=int(c), system_time=int(t), actor=a, run_id=r, namespaces=tuple(json.loads(ns)),
                          written=int(w), unchanged=int(u), deleted=int(d), hash=str(h),
                          prev_hash=None if p is None else str(p), metadata=json.loads(m) if m else {})
            for c, t, a, r, ns, w, u, d, h, p, m in rows
        ]

    def namespaces(self) -> list[Format1Namespace]:
        """Return every namespace, sorted by name.

        Raises:
            CorruptionError: a schema blob is not an Arrow IPC schema.
        """
        out = []
        for name, blob, created, schema_commit in self._query(
            "SELECT name, schema, created_commit, schema_commit FROM namespaces ORDER BY name"
        ):
            try:
                schema = pa.ipc.read_schema(pa.py_buffer(blob))
            except pa.ArrowException as e:
                msg = f"{self.root / CATALOG}: schema of namespace {name!r} is unreadable"
                raise CorruptionError(msg) from e
            out.append(Format1Namespace(name=name, schema=schema, created_commit=int(created),
                                        schema_commit=int(schema_commit)))
        return out

    def files(self) -> list[Format1File]:
        """Return every listed data file (warm, cold and deep tiers), by namespace then oldest first."""
        return [
            Format1File(namespace=ns, tier=tier, path=path, rows=int(n), bytes=int(size), checksum=str(h),
                        min_commit=int(lo), max_commit=int(hi))
            for ns, tier, path, n, size, h, lo, hi in self._query(
                "SELECT namespace, tier, path, rows, bytes, checksum, min_commit, max_commit FROM files "
                "ORDER BY namespace, min_commit, path"
            )
        ]

    def pending(self) -> list[Format1Pending]:
        """Return every pending blob, by namespace then commit."""
        return [
            Format1Pending(namespace=ns, commit=int(c), rows=int(n), data=bytes(d), checksum=str(h))
            for ns, c, n, d, h in self._query(
                "SELECT namespace, commit_number, rows, data, checksum FROM pending ORDER BY namespace, commit_number"
            )
        ]

    def tags(self) -> dict[str, int]:
        """Return tag name → commit."""
        return {str(n): int(c) for n, c in self._query("SELECT name, commit_number FROM tags")}

    def cursors(self) -> dict[str, int]:
        """Return cursor name → commit (named reader positions)."""
        return {str(n): int(c) for n, c in self._query("SELECT name, commit_number FROM cursors")}


def _shared_lock(path: Path, timeout: float) -> int | None:
    """A shared ``flock`` on a format-1 store's ``write.lock`` (opened read-only; never created)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                msg = f"{path}: a format-1 writer has held the store's write lock for {timeout} s"
                raise StoreLockedError(msg) from None
            time.sleep(0.05)
        except OSError:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
