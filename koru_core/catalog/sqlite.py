"""The SQLite catalog backend: a store's catalog in ``<store>/catalog.sqlite``.

SQLite in WAL mode gives atomic commits, checksummed durable frames and
multi-process snapshot reads (DESIGN.md recommends it as the embedded default).
A commit is visible exactly when its transaction commits. Each thread of a process
uses its own connection, so reads run in parallel and never share a transaction;
writes are serialised by the store's write lock (one writer process at a time),
so :meth:`SQLiteCatalog.record_commit` never races another writer.

Tables (times int64 ns UTC; hashes and checksums 32-byte blobs)::

    meta(name PRIMARY KEY, value)     format_version, content_format, store_id, next_write_id,
                                      format1_commits and upgraded_from (upgraded stores only)
    commits(commit_number PRIMARY KEY, system_time, actor, run_id, namespaces JSON,
            written, unchanged, deleted, first_write_id, last_write_id, hash, prev_hash,
            metadata JSON)
    namespaces(name PRIMARY KEY, schema BLOB, key_columns JSON, created_commit,
               schema_commit, cold_commit)
    files(path PRIMARY KEY, namespace, tier, kind, rows, bytes, checksum, commit_number,
          system_time, min_commit, max_commit, min_valid, max_valid, max_valid_to,
          max_valid_to_commit, min_key, max_key)
    pending(namespace, commit_number, kind, system_time, rows, data BLOB, checksum,
            PRIMARY KEY(namespace, commit_number, kind))
    retired(path PRIMARY KEY, namespace, tier, bytes, retired_at)
    tags(name PRIMARY KEY, commit_number)      named pins (retention keeps their commit)
    cursors(name PRIMARY KEY, commit_number)   named reader positions (Store.watch)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pyarrow as pa

from koru_core._time import now_ns
from koru_core.catalog.base import FORMAT_VERSION, Catalog, parse_schema
from koru_core.catalog.entries import (
    COMMIT_COLUMNS,
    FILE_COLUMNS,
    FILE_FIELDS,
    CommitDraft,
    CommitRecord,
    FileEntry,
    NamespaceInfo,
    PendingBlob,
)
from koru_core.catalog.leases import ReaderLease, ttl_ns
from koru_core.catalog.sqlite_files import check_catalog_files
from koru_core.chain import chain_hash
from koru_core.errors import (
    ConflictError,
    CorruptionError,
    HeadMovedError,
    ReadOnlyError,
    StoreFullError,
    StoreLockedError,
)

__all__ = ["SQLiteCatalog"]

Durability = Literal["full", "process"]

_DDL = """
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE commits(
    commit_number INTEGER PRIMARY KEY, system_time INTEGER NOT NULL, actor TEXT, run_id TEXT,
    namespaces TEXT NOT NULL, written INTEGER NOT NULL, unchanged INTEGER NOT NULL,
    deleted INTEGER NOT NULL, first_write_id INTEGER, last_write_id INTEGER,
    hash BLOB NOT NULL, prev_hash BLOB, metadata TEXT);
CREATE INDEX commits_write_ids ON commits(last_write_id);
CREATE TABLE namespaces(
    name TEXT PRIMARY KEY, schema BLOB NOT NULL, key_columns TEXT NOT NULL,
    created_commit INTEGER NOT NULL, schema_commit INTEGER NOT NULL, cold_commit INTEGER NOT NULL);
CREATE TABLE files(
    path TEXT PRIMARY KEY, namespace TEXT NOT NULL, tier TEXT NOT NULL, kind TEXT NOT NULL,
    rows INTEGER NOT NULL, bytes INTEGER NOT NULL, checksum BLOB NOT NULL,
    commit_number INTEGER, system_time INTEGER,
    min_commit INTEGER NOT NULL, max_commit INTEGER NOT NULL,
    min_valid INTEGER NOT NULL, max_valid INTEGER NOT NULL,
    max_valid_to INTEGER, max_valid_to_commit INTEGER, min_key TEXT, max_key TEXT);
CREATE INDEX files_namespace ON files(namespace, tier);
CREATE TABLE pending(
    namespace TEXT NOT NULL, commit_number INTEGER NOT NULL, kind TEXT NOT NULL,
    system_time INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL, checksum BLOB NOT NULL,
    PRIMARY KEY(namespace, commit_number, kind));
CREATE TABLE retired(
    path TEXT PRIMARY KEY, namespace TEXT NOT NULL, tier TEXT NOT NULL, bytes INTEGER NOT NULL,
    retired_at INTEGER);
CREATE TABLE tags(name TEXT PRIMARY KEY, commit_number INTEGER NOT NULL);
CREATE TABLE cursors(name TEXT PRIMARY KEY, commit_number INTEGER NOT NULL);
"""



class SQLiteCatalog(Catalog):
    """A store's SQLite catalog (see the module docstring).

    Args:
        path: The SQLite file.
        durability: ``"full"``: a commit is on disk when it returns (``synchronous=FULL``).
            ``"process"``: it survives the process being killed, not a power loss
            (``synchronous=NORMAL``).
        timeout: Seconds to wait for SQLite's own lock.
        create: Create the catalog (the file must not exist yet).
        content_format: Content-id format of a new store.
        read_only: Open for reads only (a read-only mount or a copy without write
            permission); every write verb then raises :class:`ReadOnlyError`.
        check_files: Check the database file and its write-ahead log before SQLite
            opens them (:mod:`koru_core.catalog.sqlite_files`); off only for a second
            open of files just checked.
        immutable: For ``read_only``: open the file as one nobody changes (SQLite then
            needs no ``-shm``). None (default) decides by itself: when nobody may write
            the folder and no write-ahead log holds commits. A connection made so is
            replaced by an ordinary read-only one as soon as a write-ahead log appears
            (a writer started elsewhere).

    Raises:
        CorruptionError: the file is not a readable koru catalog, or its write-ahead log
            holds commits SQLite would drop (names the file at fault).
        StoreLockedError: SQLite's lock was held for longer than ``timeout``.
        FormatError: the catalog is of another on-disk format (names the upgrade path).
        ReadOnlyError: a read-only catalog whose write-ahead log SQLite cannot read here.

    Threads: each thread uses its own connection (made on its first call, closed when
    the thread ends or the catalog closes), so reads run in parallel and no two threads
    ever share a transaction.
    """

    swaps_in_commit = True

    def __init__(
        self, path: Path, *, durability: Durability = "full", timeout: float = 10.0, create: bool = False,
        content_format: int = 2, read_only: bool = False, check_files: bool = True,
        immutable: bool | None = None,
    ) -> None:
        self.path = path
        self.url = str(path)
        self.read_only = read_only
        self._durability = durability
        self._timeout = timeout
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._immutable = False
        if not create and check_files:
            check_catalog_files(path)  # before any connection: a failed open changes nothing
        if read_only:
            self._immutable = _needs_immutable(path) if immutable is None else immutable
        if not create:
            self._probe_format()
        try:
            if create:
                self._create(content_format)
            self._load_meta()
        except BaseException:
            self.close()
            raise

    def _probe_format(self) -> None:
        """Refuse a catalog of another on-disk format before any connection that would leave
        ``-shm``/``-wal`` files beside it: read ``meta`` through an immutable read-only
        connection, when no write-ahead log could hold a newer ``meta``."""
        wal = self.path.with_name(self.path.name + "-wal")
        if not self.path.is_file() or (wal.exists() and wal.stat().st_size > 0):
            return
        try:
            con = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro&immutable=1", uri=True)
            try:
                row = con.execute("SELECT value FROM meta WHERE name = 'format_version'").fetchone()
            finally:
                con.close()
        except sqlite3.Error:
            return  # the ordinary open reports what is wrong
        if row is not None and str(row[0]).isdigit() and int(row[0]) != FORMAT_VERSION:
            self._refuse_format(int(row[0]))

    # -- connections -----------------------------------------------------------

    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        if self.read_only:
            # immutable: a folder nobody can write (a read-only mount, a copy without write
            # permission, a full disk) with no write-ahead log: SQLite could not create its -shm there
            uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if immutable else "")
            con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                  timeout=self._timeout)
        else:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=" + ("FULL" if self._durability == "full" else "NORMAL"))
            except sqlite3.Error:
                con.close()
                raise
        return con

    @property
    def _con(self) -> sqlite3.Connection:
        holder = getattr(self._local, "con", None)
        if holder is not None and holder.immutable and not holder.con.in_transaction and self._wal_in_use():
            holder.close()  # a writer started: the file may change now, read it the ordinary way
            holder = self._local.con = None
            self._immutable = False
        if holder is None:
            try:
                holder = _Connection(self._connect(self._immutable), immutable=self._immutable)
            except sqlite3.Error as e:
                raise self._wrap(e) from e
            self._local.con = holder
            with self._guard:
                self._connections.add(holder)
        return holder.con

    def _wal_in_use(self) -> bool:
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            return wal.stat().st_size > 0
        except OSError:
            return False

    def _wrap(self, e: sqlite3.Error) -> Exception:
        text = str(e)
        code = getattr(e, "sqlite_errorcode", 0) & 0xFF
        if code in (5, 6) or "locked" in text or "busy" in text:  # SQLITE_BUSY, SQLITE_LOCKED
            return StoreLockedError(f"{self.path}: {text}")
        if code == 13 or "disk is full" in text or (code == 10 and _out_of_space(self.path)):  # SQLITE_FULL, IOERR
            err = StoreFullError(errno.ENOSPC, f"{self.path}: no space left on device ({text}); nothing was written")
            err.filename = str(self.path)
            return err
        if code == 8 or "readonly" in text or "read-only" in text:  # SQLITE_READONLY
            return ReadOnlyError(f"{self.path}: the catalog cannot be written here ({text}); "
                                 "open the store with read_only=True to read it")
        if code == 14 and self.read_only:  # SQLITE_CANTOPEN
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                return ReadOnlyError(
                    f"{wal}: the catalog has commits in its write-ahead log, which SQLite can read only where "
                    "it may write (it needs catalog.sqlite-shm beside it); open the store once where its "
                    "folder is writable, or copy the store"
                )
        return CorruptionError(f"{self.path}: the catalog is unreadable: {text}")

    def close(self) -> None:
        with self._guard:
            for holder in list(self._connections):
                holder.close()
            self._connections = weakref.WeakSet()
        self._local = threading.local()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        con = self._con
        nested = con.in_transaction
        try:
            if not nested:
                con.execute("BEGIN")
            try:
                yield
            finally:
                if not nested:
                    con.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._wrap(e) from e

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            msg = f"{self.path}: the store was opened read-only; nothing was written"
            raise ReadOnlyError(msg)
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                if con.in_transaction:
                    con.execute("ROLLBACK")
            raise self._wrap(e) from e

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._con.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self._wrap(e) from e

    # -- creation and meta -----------------------------------------------------

    def _create(self, content_format: int) -> None:
        with self._write() as con:
            for statement in _DDL.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format_version", str(FORMAT_VERSION)), ("content_format", str(content_format)),
                 ("store_id", uuid.uuid4().hex), ("next_write_id", "1")],
            )

    def _load_meta(self) -> None:
        try:
            rows = dict(self._query("SELECT name, value FROM meta"))
        except CorruptionError as e:
            if "no such table" in str(e):
                self._refuse_format(None)
            raise
        self._check_format(rows)

    # -- reads -----------------------------------------------------------------

    def head(self) -> tuple[int, int, bytes | None]:
        rows = self._query("SELECT commit_number, system_time, hash FROM commits ORDER BY commit_number DESC LIMIT 1")
        return (0, 0, None) if not rows else (int(rows[0][0]), int(rows[0][1]), bytes(rows[0][2]))

    def namespaces(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM namespaces ORDER BY name")]

    def namespace(self, name: str) -> NamespaceInfo | None:
        rows = self._query(
            "SELECT name, schema, key_columns, created_commit, schema_commit, cold_commit FROM namespaces "
            "WHERE name = ?", (name,),
        )
        return None if not rows else self._namespace_info(rows[0])

    def _namespace_info(self, row: tuple[Any, ...]) -> NamespaceInfo:
        name, schema, keys, created, schema_commit, cold = row
        parsed = parse_schema(schema, where=str(self.path), namespace=name)
        return NamespaceInfo(name=name, schema=parsed, key_columns=tuple(json.loads(keys)),
                             created_commit=created, schema_commit=schema_commit, cold_commit=cold)

    def files(self, namespace: str | None = None) -> list[FileEntry]:
        where, params = ("WHERE namespace = ?", (namespace,)) if namespace is not None else ("", ())
        rows = self._query(f"SELECT {', '.join(FILE_COLUMNS)} FROM files {where} ORDER BY namespace, min_commit, path", params)
        return [FileEntry(**dict(zip(FILE_FIELDS, (bytes(v) if k == "checksum" else v for k, v in zip(FILE_FIELDS, r))))) for r in rows]

    def pending(self, namespace: str, *, after: int = 0, upto: int | None = None,
                kind: Literal["versions", "skips"] = "versions") -> list[PendingBlob]:
        rows = self._query(
            "SELECT commit_number, system_time, rows, data, checksum FROM pending WHERE namespace = ? AND kind = ? "
            "AND commit_number > ? AND commit_number <= ? ORDER BY commit_number",
            (namespace, kind, after, upto if upto is not None else 2**62),
        )
        return [PendingBlob(namespace=namespace, commit=c, system_time=t, kind=kind, rows=n, data=bytes(d),
                            checksum=bytes(h)) for c, t, n, d, h in rows]

    def pending_commits(self, namespace: str, *, kind: Literal["versions", "skips"] = "versions") -> list[tuple[int, int]]:
        return [(int(c), int(n)) for c, n in self._query(
            "SELECT commit_number, rows FROM pending WHERE namespace = ? AND kind = ? ORDER BY commit_number",
            (namespace, kind),
        )]

    def commits(self, *, since: int = 0, until: int | None = None) -> list[CommitRecord]:
        rows = self._query(
            f"SELECT {', '.join(COMMIT_COLUMNS)} FROM commits WHERE commit_number > ? AND commit_number <= ? "
            "ORDER BY commit_number", (since, until if until is not None else 2**62),
        )
        return [_commit_record(r) for r in rows]

    def commit_at(self, system_time: int) -> int:
        rows = self._query("SELECT max(commit_number) FROM commits WHERE system_time <= ?", (system_time,))
        return int(rows[0][0] or 0)

    def commit_of_write_id(self, write_id: int) -> int | None:
        rows = self._query(
            "SELECT commit_number FROM commits WHERE last_write_id >= ? AND first_write_id <= ? "
            "ORDER BY last_write_id LIMIT 1", (write_id, write_id),
        )
        return None if not rows else int(rows[0][0])

    def tags(self) -> dict[str, int]:
        return {n: int(c) for n, c in self._query("SELECT name, commit_number FROM tags")}

    def cursor(self, name: str) -> int | None:
        rows = self._query("SELECT commit_number FROM cursors WHERE name = ?", (name,))
        return None if not rows else int(rows[0][0])

    def retired(self) -> dict[str, tuple[str, str, int, int | None]]:
        return {p: (ns, tier, size, at) for p, ns, tier, size, at in self._query(
            "SELECT path, namespace, tier, bytes, retired_at FROM retired")}

    # -- writes ----------------------------------------------------------------

    def allocate_write_ids(self, count: int) -> int:
        # the store's write lock is held: nobody else allocates until this commit is recorded
        rows = self._query("SELECT value FROM meta WHERE name = 'next_write_id'")
        return int(rows[0][0])

    def record_commit(self, draft: CommitDraft) -> CommitRecord:
        with self._write() as con:
            row = con.execute(
                "SELECT commit_number, system_time, hash FROM commits ORDER BY commit_number DESC LIMIT 1"
            ).fetchone()
            head, head_time, prev = (0, 0, None) if row is None else (int(row[0]), int(row[1]), bytes(row[2]))
            if head != draft.base:
                msg = f"{self.path}: commit {draft.base + 1} was taken by another writer (the last is {head})"
                raise HeadMovedError(msg, base=draft.base, head=head)
            commit = head + 1
            system_time = max(draft.system_time, head_time + 1000)
            digest = chain_hash(prev, commit=commit, system_time=system_time, body=draft.body, actor=draft.actor,
                                run_id=draft.run_id, metadata=draft.metadata)
            record = CommitRecord(
                commit=commit, system_time=system_time, actor=draft.actor, run_id=draft.run_id,
                namespaces=draft.namespaces, written=draft.written, unchanged=draft.unchanged,
                deleted=draft.deleted, first_write_id=draft.first_write_id, last_write_id=draft.last_write_id,
                hash=digest, prev_hash=prev, metadata=dict(draft.metadata or {}),
            )
            con.execute(
                f"INSERT INTO commits VALUES ({', '.join('?' * len(COMMIT_COLUMNS))})",
                (commit, system_time, draft.actor, draft.run_id, json.dumps(list(draft.namespaces)),
                 draft.written, draft.unchanged, draft.deleted, draft.first_write_id, draft.last_write_id,
                 digest, prev, json.dumps(draft.metadata, sort_keys=True) if draft.metadata else None),
            )
            for name, (schema, keys) in draft.schemas.items():
                con.execute(
                    "INSERT INTO namespaces VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT(name) DO UPDATE SET "
                    "schema = excluded.schema, key_columns = excluded.key_columns, "
                    "schema_commit = excluded.schema_commit",
                    (name, schema.serialize().to_pybytes(), json.dumps(list(keys)), commit, commit),
                )
            for entry in draft.files:
                _insert_file(con, entry, commit=commit, system_time=system_time)
            con.executemany(
                "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(b.namespace, commit, b.kind, system_time, b.rows, b.data, b.checksum) for b in draft.blobs],
            )
            if draft.last_write_id is not None:
                con.execute("UPDATE meta SET value = ? WHERE name = 'next_write_id'", (str(draft.last_write_id + 1),))
            for swap in draft.swaps:
                if not _swap_in(con, swap.namespace, remove=swap.remove, add=swap.add, absorb_pending_upto=None,
                                cold_commit=commit, retired_at=None, base_cold_commit=swap.base_cold_commit):
                    msg = (f"{self.path}: namespace {swap.namespace!r} was consolidated while commit {commit} "
                           "was prepared; nothing was written")
                    raise HeadMovedError(msg, base=draft.base, head=head)
        for swap in draft.swaps:
            self._stamp_retired([e.path for e in swap.remove])
        return record

    def swap_files(
        self, namespace: str, *, remove: Sequence[FileEntry], add: Sequence[FileEntry],
        absorb_pending_upto: int | None = None, cold_commit: int | None = None, retired_at: int | None = None,
        base_cold_commit: int | None = None,
    ) -> bool:
        with self._write() as con:
            if not _swap_in(con, namespace, remove=remove, add=add, absorb_pending_upto=absorb_pending_upto,
                            cold_commit=cold_commit, retired_at=retired_at, base_cold_commit=base_cold_commit):
                return False
        if retired_at is None:
            self._stamp_retired([e.path for e in remove])
        return True

    def _stamp_retired(self, paths: list[str]) -> None:
        """Stamp files retired by a swap with the time the swap became visible.

        Stamped only once the swap is visible: a reader whose lease starts before this
        time may hold a snapshot from before the swap (it still lists these files), and
        vacuum deletes a retired file only when every live lease started after its stamp."""
        if not paths:
            return
        marks = ", ".join("?" * len(paths))
        with self._write() as con:
            con.execute(f"UPDATE retired SET retired_at = ? WHERE retired_at = ? AND path IN ({marks})",
                        [now_ns(), _NOT_YET, *paths])

    def bootstrap(
        self, *, commits: Sequence[CommitRecord], namespaces: Sequence[NamespaceInfo], files: Sequence[FileEntry],
        tags: dict[str, int], next_write_id: int, cursors: dict[str, int] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        with self._write() as con:
            if con.execute("SELECT count(*) FROM commits").fetchone()[0]:
                msg = f"{self.path}: bootstrap needs an empty catalog"
                raise ConflictError(msg)
            con.executemany(
                f"INSERT INTO commits VALUES ({', '.join('?' * len(COMMIT_COLUMNS))})",
                [(c.commit, c.system_time, c.actor, c.run_id, json.dumps(list(c.namespaces)), c.written, c.unchanged,
                  c.deleted, c.first_write_id, c.last_write_id, c.hash, c.prev_hash,
                  json.dumps(c.metadata, sort_keys=True) if c.metadata else None) for c in commits],
            )
            con.executemany(
                "INSERT INTO namespaces VALUES (?, ?, ?, ?, ?, ?)",
                [(n.name, n.schema.serialize().to_pybytes(), json.dumps(list(n.key_columns)), n.created_commit,
                  n.schema_commit, n.cold_commit) for n in namespaces],
            )
            for e in files:
                _insert_file(con, e, commit=e.commit, system_time=e.system_time)
            con.executemany("INSERT INTO tags VALUES (?, ?)", list(tags.items()))
            con.executemany("INSERT INTO cursors VALUES (?, ?)", list((cursors or {}).items()))
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list((meta or {}).items()))
            con.execute("UPDATE meta SET value = ? WHERE name = 'next_write_id'", (str(next_write_id),))

    def forget_retired(self, paths: Sequence[str]) -> None:
        with self._write() as con:
            con.executemany("DELETE FROM retired WHERE path = ?", [(p,) for p in paths])

    def set_tag(self, name: str, commit: int) -> None:
        with self._write() as con:
            con.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, commit))

    def set_cursor(self, name: str, commit: int) -> None:
        with self._write() as con:
            con.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, commit))

    def set_key_columns(self, namespace: str, key_columns: Sequence[str]) -> None:
        with self._write() as con:
            con.execute("UPDATE namespaces SET key_columns = ? WHERE name = ?", (json.dumps(list(key_columns)), namespace))

    # -- reader leases (koru_core.catalog.leases; one machine: marks are start times in ns) --

    def _upgrade_paths(self) -> dict[str, str]:
        import shlex

        root = self.path.parent
        return {"old": shlex.quote(str(root)), "new": shlex.quote(str(root.with_name(root.name + "-v2")))}

    def _has_leases(self) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'"))

    def add_lease(self, holder: str, *, commit: int, ttl: float) -> ReaderLease:
        span = ttl_ns(ttl)
        lease_id = uuid.uuid4().hex
        with self._write() as con:
            con.execute(_LEASES_DDL)  # made by the first lease: older catalogs have no such table
            now = now_ns()
            con.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
            con.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", (lease_id, holder, commit, now, now + span))
        return ReaderLease(lease_id=lease_id, holder=holder, commit=commit, mark=now, expires_at=now + span)

    def renew_lease(self, lease_id: str, *, ttl: float) -> int | None:
        span = ttl_ns(ttl)
        if not self._has_leases():
            return None
        with self._write() as con:
            now = now_ns()
            done = con.execute("UPDATE leases SET expires_at = ? WHERE lease_id = ? AND expires_at > ?",
                               (now + span, lease_id, now)).rowcount
        return now + span if done else None

    def release_lease(self, lease_id: str) -> None:
        if self._has_leases():
            with self._write() as con:
                con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def live_leases(self) -> list[ReaderLease]:
        if not self._has_leases():
            return []
        rows = self._query("SELECT lease_id, holder, commit_number, mark, expires_at FROM leases WHERE expires_at > ? "
                           "ORDER BY mark, lease_id", (now_ns(),))
        return [ReaderLease(lease_id=i, holder=h, commit=int(c), mark=int(m), expires_at=int(e))
                for i, h, c, m, e in rows]

    def vacuumable(self, *, retired_before: int) -> list[str]:
        with self.snapshot():
            bound = retired_before
            if self._has_leases():
                oldest = self._query("SELECT min(mark) FROM leases WHERE expires_at > ?", (now_ns(),))[0][0]
                if oldest is not None:
                    bound = min(bound, int(oldest) - 1)
            rows = self._query("SELECT path FROM retired WHERE coalesce(retired_at, 0) <= ? AND path NOT IN "
                               "(SELECT path FROM files) ORDER BY path", (bound,))
        return [r[0] for r in rows]


def _swap_in(
    con: sqlite3.Connection, namespace: str, *, remove: Sequence[FileEntry], add: Sequence[FileEntry],
    absorb_pending_upto: int | None, cold_commit: int | None, retired_at: int | None, base_cold_commit: int | None,
) -> bool:
    """The statements of a file swap, inside the caller's transaction (see
    :meth:`Catalog.swap_files`); False, having changed nothing, when refused."""
    paths = [e.path for e in remove]
    marks = ", ".join("?" * len(paths))
    if base_cold_commit is not None:
        row = con.execute("SELECT cold_commit FROM namespaces WHERE name = ?", (namespace,)).fetchone()
        if row is None or int(row[0]) != base_cold_commit:
            return False
    if paths:
        listed = con.execute(f"SELECT count(*) FROM files WHERE path IN ({marks})", paths).fetchone()[0]
        if listed != len(paths):
            return False
        con.execute(f"DELETE FROM files WHERE path IN ({marks})", paths)
    if absorb_pending_upto is not None:
        con.execute("DELETE FROM pending WHERE namespace = ? AND commit_number <= ?", (namespace, absorb_pending_upto))
    for entry in add:
        _insert_file(con, entry, commit=entry.commit, system_time=entry.system_time)
    if cold_commit is not None:
        con.execute("UPDATE namespaces SET cold_commit = max(cold_commit, ?) WHERE name = ?", (cold_commit, namespace))
    con.executemany(
        "INSERT OR REPLACE INTO retired VALUES (?, ?, ?, ?, ?)",
        [(e.path, e.namespace, e.tier, e.bytes, _NOT_YET if retired_at is None else retired_at) for e in remove],
    )
    return True


_NOT_YET = 2**62
"""``retired_at`` of files whose swap has not been stamped yet (never deleted; a crash between
the swap and its stamp leaves them on disk, listed as retired)."""


class _Connection:
    """One thread's SQLite connection; closed when its thread ends (the thread-local
    drops the last reference) or when the catalog closes."""

    __slots__ = ("__weakref__", "con", "immutable")

    def __init__(self, con: sqlite3.Connection, *, immutable: bool = False) -> None:
        self.con = con
        self.immutable = immutable

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.con.close()

    def __del__(self) -> None:
        self.close()


def _needs_immutable(path: Path) -> bool:
    """True when a read-only open must tell SQLite the file cannot change: nobody may write
    its folder (so SQLite cannot make ``-shm``) and no write-ahead log holds commits."""
    folder = path.parent
    writable = os.access(folder, os.W_OK) and not os.statvfs(folder).f_flag & os.ST_RDONLY
    wal = path.with_name(path.name + "-wal")
    return not writable and (not wal.exists() or wal.stat().st_size == 0)


def _out_of_space(path: Path) -> bool:
    """True when the catalog's file system has (almost) no space left: an I/O error there is a full disk."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _insert_file(con: sqlite3.Connection, entry: FileEntry, *, commit: int | None, system_time: int | None) -> None:
    values = {f: getattr(entry, f) for f in FILE_FIELDS}
    values["commit"], values["system_time"] = commit, system_time
    if commit is not None:  # a warm file: its rows all belong to that commit
        values["min_commit"] = values["max_commit"] = commit
    con.execute(
        f"INSERT INTO files ({', '.join(FILE_COLUMNS)}) VALUES ({', '.join('?' * len(FILE_COLUMNS))})",
        tuple(values[f] for f in FILE_FIELDS),
    )


def _commit_record(row: tuple[Any, ...]) -> CommitRecord:
    c, t, a, r, ns, w, u, d, first, last, h, prev, meta = row
    return CommitRecord(
        commit=int(c), system_time=int(t), actor=a, run_id=r, namespaces=tuple(json.loads(ns)),
        written=int(w), unchanged=int(u), deleted=int(d), first_write_id=first, last_write_id=last,
        hash=bytes(h), prev_hash=None if prev is None else bytes(prev), metadata=json.loads(meta) if meta else {},
    )


_LEASES_DDL = (
    "CREATE TABLE IF NOT EXISTS leases(lease_id TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "commit_number INTEGER NOT NULL, mark INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
)
"""Reader leases (see :mod:`koru_core.catalog.leases`): made by the first lease, not by ``_create``."""
