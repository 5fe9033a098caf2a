"""The SQLite catalog: commits, namespaces and their schemas, data files per tier, pending versions.

The catalog is the truth of a store (DESIGN.md, "Layout on disk"). SQLite in WAL
mode gives atomic commits, checksummed durable frames and multi-process
snapshot reads. A commit is visible exactly when its catalog transaction
commits; until then nothing of it is visible.

Small commits keep their versions *in* the catalog, in the ``pending`` table
(one Arrow IPC stream per namespace and commit, with its blake3 checksum), so a
durable ``put`` costs one SQLite commit rather than a Parquet file. Pending
versions are flushed into warm Parquet files in batches.

Tables::

    meta(name PRIMARY KEY, value)                  format version, store id
    commits(commit_number PRIMARY KEY, system_time, actor, run_id,
            namespaces JSON, written, unchanged, deleted, hash, prev_hash, metadata JSON)
    namespaces(name PRIMARY KEY, schema BLOB, created_commit, schema_commit)
    files(file_id PRIMARY KEY, namespace, tier, path UNIQUE, rows, bytes,
          checksum, min_commit, max_commit, min_valid, max_valid)
    pending(namespace, commit_number, rows, data BLOB, checksum, PRIMARY KEY(namespace, commit_number))
    retired(path PRIMARY KEY, namespace, tier, bytes, retired_at)   files replaced by
            consolidation/distillation, kept on disk until vacuum (retired_at: ns, set
            just after the swap committed; NULL until then)
    tags(name PRIMARY KEY, commit_number)          named pins (koru_core.lifecycle.policies.Pin)
    cursors(name PRIMARY KEY, commit_number)       named reader positions (Store.watch)

Tiers in ``files.tier``: ``warm`` (one file per flush), ``cold`` (consolidated),
``deep`` (skeletons of versions pruned by distillation; not full versions).

Times are int64 nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import blake3
import pyarrow as pa

from koru_core._time import from_ns
from koru_core.errors import CorruptionError, StoreLockedError
from koru_core.model import Commit

__all__ = ["Catalog", "FileEntry", "decode_table", "encode_table"]

FORMAT_VERSION = "1"
Durability = Literal["full", "process"]

_DDL = """
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits(
    commit_number INTEGER PRIMARY KEY, system_time INTEGER NOT NULL, actor TEXT, run_id TEXT,
    namespaces TEXT NOT NULL, written INTEGER NOT NULL, unchanged INTEGER NOT NULL,
    deleted INTEGER NOT NULL, hash TEXT NOT NULL, prev_hash TEXT, metadata TEXT);
CREATE TABLE IF NOT EXISTS namespaces(
    name TEXT PRIMARY KEY, schema BLOB NOT NULL, created_commit INTEGER NOT NULL,
    schema_commit INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    file_id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, tier TEXT NOT NULL, path TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL, bytes INTEGER NOT NULL, checksum TEXT NOT NULL,
    min_commit INTEGER NOT NULL, max_commit INTEGER NOT NULL,
    min_valid INTEGER NOT NULL, max_valid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS files_namespace ON files(namespace, tier);
CREATE TABLE IF NOT EXISTS pending(
    namespace TEXT NOT NULL, commit_number INTEGER NOT NULL, rows INTEGER NOT NULL,
    data BLOB NOT NULL, checksum TEXT NOT NULL, PRIMARY KEY(namespace, commit_number));
CREATE TABLE IF NOT EXISTS retired(
    path TEXT PRIMARY KEY, namespace TEXT NOT NULL, tier TEXT NOT NULL, bytes INTEGER NOT NULL,
    retired_at INTEGER);
CREATE TABLE IF NOT EXISTS tags(name TEXT PRIMARY KEY, commit_number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors(name TEXT PRIMARY KEY, commit_number INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One immutable Parquet data file, as the catalog records it.

    ``path`` is relative to the store folder; times are ns since epoch (UTC).
    """

    namespace: str
    tier: str
    path: str
    rows: int
    bytes: int
    checksum: str
    min_commit: int
    max_commit: int
    min_valid: int
    max_valid: int


def encode_table(table: pa.Table) -> bytes:
    """Serialise a table as an Arrow IPC stream (uncompressed)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(data: bytes, *, checksum: str, where: str) -> pa.Table:
    """Verify ``data`` against its blake3 ``checksum`` and decode it.

    Raises:
        CorruptionError: the checksum does not match or the stream is unreadable.
    """
    if blake3.blake3(data).hexdigest() != checksum:
        msg = f"{where}: checksum mismatch, the stored versions are corrupted"
        raise CorruptionError(msg)
    try:
        return pa.ipc.open_stream(data).read_all()
    except pa.ArrowException as e:
        msg = f"{where}: unreadable Arrow IPC data"
        raise CorruptionError(msg) from e


class Catalog:
    """A store's catalog in ``<store>/catalog.sqlite``.

    Args:
        path: The SQLite file; created with the schema above if missing.
        durability: ``"full"`` (default): a commit is on disk when it returns
            (SQLite ``synchronous=FULL``). ``"process"``: a commit survives the
            writer process being killed but not a power loss or OS crash
            (``synchronous=NORMAL``), about 15× faster for single puts.
        timeout: Seconds to wait for SQLite's own write lock.

    Raises:
        CorruptionError: the file is not a readable SQLite database.
    """

    def __init__(self, path: Path, *, durability: Durability = "full", timeout: float = 10.0) -> None:
        self.path = path
        try:
            self._con = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=timeout
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=" + ("FULL" if durability == "full" else "NORMAL"))
            with self.write():
                for statement in _DDL.split(";"):
                    if statement.strip():
                        self._con.execute(statement)
                self._con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('format_version', ?), ('store_id', ?)",
                    (FORMAT_VERSION, uuid.uuid4().hex),
                )
            self.store_id = self.meta("store_id")
        except sqlite3.DatabaseError as e:
            raise self._wrap(e) from e

    def _wrap(self, e: sqlite3.Error) -> Exception:
        text = str(e)
        if "locked" in text or "busy" in text:
            return StoreLockedError(f"{self.path}: {text}")
        return CorruptionError(f"{self.path}: the catalog is unreadable: {text}")

    def close(self) -> None:
        """Close the connection (checkpointing the WAL when this was the last one)."""
        self._con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot: every query inside sees one commit."""
        con = self._con
        try:
            nested = con.in_transaction
            if not nested:
                con.execute("BEGIN")
            try:
                yield con
            finally:
                if not nested:
                    con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise self._wrap(e) from e

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable write transaction (``BEGIN IMMEDIATE``)."""
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise self._wrap(e) from e

    def meta(self, name: str) -> str:
        with self.read() as con:
            row = con.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            msg = f"{self.path}: meta entry {name!r} is missing"
            raise CorruptionError(msg)
        return str(row[0])

    def head(self) -> tuple[int, int, str | None]:
        """Return (last commit number, its system time ns, its hash); (0, 0, None) if empty."""
        with self.read() as con:
            row = con.execute(
                "SELECT commit_number, system_time, hash FROM commits ORDER BY commit_number DESC LIMIT 1"
            ).fetchone()
        return (0, 0, None) if row is None else (int(row[0]), int(row[1]), row[2])

    def namespaces(self) -> list[str]:
        with self.read() as con:
            return [r[0] for r in con.execute("SELECT name FROM namespaces ORDER BY name")]

    def schema(self, namespace: str) -> pa.Schema | None:
        """Return the namespace's value schema, or None if it was never written."""
        with self.read() as con:
            row = con.execute("SELECT schema FROM namespaces WHERE name = ?", (namespace,)).fetchone()
        if row is None:
            return None
        try:
            return pa.ipc.read_schema(pa.py_buffer(row[0]))
        except pa.ArrowException as e:
            msg = f"{self.path}: schema of namespace {namespace!r} is unreadable"
            raise CorruptionError(msg) from e

    def files(self, namespace: str) -> list[FileEntry]:
        with self.read() as con:
            rows = con.execute(
                "SELECT namespace, tier, path, rows, bytes, checksum, min_commit, max_commit, "
                "min_valid, max_valid FROM files WHERE namespace = ? ORDER BY min_commit, path",
                (namespace,),
            ).fetchall()
        return [FileEntry(**dict(zip(_FILE_FIELDS, r))) for r in rows]

    def all_files(self) -> list[FileEntry]:
        with self.read() as con:
            rows = con.execute(
                "SELECT namespace, tier, path, rows, bytes, checksum, min_commit, max_commit, "
                "min_valid, max_valid FROM files ORDER BY namespace, min_commit, path"
            ).fetchall()
        return [FileEntry(**dict(zip(_FILE_FIELDS, r))) for r in rows]

    def pending(self, namespace: str, *, after: int = 0) -> list[pa.Table]:
        """Return the namespace's pending versions of commits > ``after``, oldest first."""
        with self.read() as con:
            rows = con.execute(
                "SELECT commit_number, data, checksum FROM pending WHERE namespace = ? "
                "AND commit_number > ? ORDER BY commit_number",
                (namespace, after),
            ).fetchall()
        return [
            decode_table(data, checksum=checksum, where=f"{self.path} (pending versions of namespace {namespace!r}, commit {c})")
            for c, data, checksum in rows
        ]

    def pending_rows(self, namespace: str) -> tuple[int, int]:
        """Return (pending versions, pending commits) of a namespace."""
        with self.read() as con:
            row = con.execute(
                "SELECT coalesce(sum(rows), 0), count(*) FROM pending WHERE namespace = ?", (namespace,)
            ).fetchone()
        return int(row[0]), int(row[1])

    def commits(self) -> list[Commit]:
        """Return the commit log, oldest first."""
        with self.read() as con:
            rows = con.execute(
                "SELECT commit_number, system_time, actor, run_id, namespaces, written, unchanged, "
                "deleted, metadata FROM commits ORDER BY commit_number"
            ).fetchall()
        return [
            Commit(
                commit=c, system_time=from_ns(t), actor=a, run_id=r,
                namespaces=tuple(json.loads(ns)), written=w, unchanged=u, deleted=d,
                metadata=json.loads(m) if m else {},
            )
            for c, t, a, r, ns, w, u, d, m in rows
        ]

    def cursor(self, name: str) -> int | None:
        """Return the commit a named reader position points at, or None if never set."""
        with self.read() as con:
            row = con.execute("SELECT commit_number FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, name: str, commit: int) -> None:
        """Store a named reader position (the last commit it has seen)."""
        with self.write() as con:
            con.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, commit))

    def commit_namespaces(self, commit: int) -> list[str]:
        with self.read() as con:
            row = con.execute(
                "SELECT namespaces FROM commits WHERE commit_number = ?", (commit,)
            ).fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def commit_at(self, system_time_ns: int) -> int:
        """Return the last commit recorded at or before a system time (0 if none)."""
        with self.read() as con:
            row = con.execute(
                "SELECT max(commit_number) FROM commits WHERE system_time <= ?", (system_time_ns,)
            ).fetchone()
        return int(row[0] or 0)


_FILE_FIELDS = (
    "namespace", "tier", "path", "rows", "bytes", "checksum",
    "min_commit", "max_commit", "min_valid", "max_valid",
)


def insert_file(con: sqlite3.Connection, entry: FileEntry) -> None:
    """Record a data file inside an open write transaction."""
    con.execute(
        f"INSERT INTO files ({', '.join(_FILE_FIELDS)}) VALUES ({', '.join('?' * len(_FILE_FIELDS))})",
        tuple(getattr(entry, f) for f in _FILE_FIELDS),
    )
