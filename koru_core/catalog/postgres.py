"""The PostgreSQL catalog backend: a store shared by many processes and machines (issue 15).

The same verbs, records and rules as :mod:`koru_core.catalog.sqlite`; the tables,
the URL (``postgresql://…?koru_schema=NAME``) and the migrations are in
:mod:`koru_core.catalog.postgres_schema`. Uses psycopg 3 (``pip install 'koru-lake[postgres]'``).

Concurrency, learnt from DuckLake's open bugs (``docs/research/optimistic-commits.md``):

- **Every write runs at READ COMMITTED** with explicit checks, so a check made after a
  lock wait sees what the winner committed; nothing relies on a REPEATABLE READ
  snapshot that would hide concurrent commits.
- **Commit numbers come from the one ``head`` row**, locked ``FOR UPDATE`` by the
  statement that publishes the commit (:mod:`koru_core.catalog.postgres_commit`): under
  that lock the head is compared with the draft's base
  (:class:`~koru_core.errors.HeadMovedError` if it moved), and the commit row (number
  ``head + 1``, system time and chain hash fixed by the client from the head it read), its
  files, blobs and schemas and the new head are written in the same transaction. The
  numbers and the chain are gap-free and linear; no ``max()+1``, no sequence (a
  rolled-back ``nextval`` leaves a gap). Two round trips; the lock is held only while the
  server runs that one statement, never across a client round trip.
- **Write ids come from a counter row** bumped by one autocommit ``UPDATE … RETURNING``
  (:meth:`PostgresCatalog.allocate_write_ids`): ranges never overlap across processes or
  hosts, gaps are harmless, and a commit's write ids need not grow with its number.
- **Swaps** delete their input files with one ``DELETE … WHERE path = ANY(…)``; a count
  short of the inputs (a concurrent swap took one; READ COMMITTED re-checks the rows it
  waited for) rolls back and returns False.
- **Reads**: each verb is one statement; :meth:`PostgresCatalog.snapshot` is a
  REPEATABLE READ READ ONLY transaction, one consistent commit for many verbs.
- **A connection lost during COMMIT** leaves the outcome unknown; ``record_commit``
  reconnects, waits for the head lock (so the old transaction has ended) and returns
  the record if its hash is there, else raises ``ConnectionError`` (nothing written).
- **Reader leases** (:mod:`koru_core.catalog.leases`) expire on the server's clock
  (``now()``); their mark is the last committed retire epoch. Lease verbs work on a
  catalog opened ``read_only`` too: a reader on another machine must be able to lease.

Each thread uses its own connection (autocommit; transactions are explicit). After
``fork`` the child opens new connections and never closes the parent's.

Example:
    >>> catalog = PostgresCatalog("postgresql://koru@db.example/lake?koru_schema=sales")  # doctest: +SKIP
    >>> catalog.head()                                                                    # doctest: +SKIP
    (0, 0, None)
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa

try:
    import psycopg
    from psycopg import errors as pgerrors
    from psycopg.pq import TransactionStatus
except ImportError as e:  # pragma: no cover - the extra is installed in CI
    msg = "the PostgreSQL catalog needs psycopg 3: pip install 'koru-lake[postgres]'"
    raise ImportError(msg) from e

from koru_core._time import now_ns
from koru_core.catalog.base import FORMAT_VERSION, Catalog, parse_schema
from koru_core.catalog.entries import (
    COMMIT_COLUMNS,
    FILE_COLUMNS,
    CommitDraft,
    CommitRecord,
    FileEntry,
    NamespaceInfo,
    PendingBlob,
)
from koru_core.catalog.leases import ReaderLease, ttl_ns
from koru_core.catalog.postgres_rows import (
    INSERT_COMMIT,
    INSERT_FILE,
    commit_record,
    commit_row,
    file_entry,
    file_row,
    lease_entry,
)
from koru_core.catalog.postgres_schema import SCHEMA_VERSION, migrate, newer_tables, parse_url, table_version
from koru_core.errors import (
    ConflictError,
    CorruptionError,
    InvalidInputError,
    StoreFullError,
    StoreLockedError,
)

__all__ = ["PostgresCatalog"]

_NS = "(extract(epoch FROM {}) * 1000000000)::bigint"  # timestamptz -> int64 ns
_LEASE_COLUMNS = f"lease_id, holder, commit_number, mark, {_NS.format('expires_at')}"
_MAX = 2**62
_INHERITED: list[Any] = []  # connections of a parent process: never closed (or finalised) by a child


class PostgresCatalog(Catalog):
    """A store's catalog in PostgreSQL (see the module docstring).

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?koru_schema=NAME&…]``
            (see :mod:`koru_core.catalog.postgres_schema`).
        create: Create the catalog if the schema holds none (idempotent, safe when many
            processes open it at once). With False, a missing catalog is an error.
        content_format: Content-id format of a new store.
        read_only: Open for reads only: every write verb raises ``PermissionError``,
            except the reader-lease verbs.
        timeout: Seconds to connect, and to wait for a lock (the head row, a file row)
            before :class:`~koru_core.errors.StoreLockedError`.

    Raises:
        InvalidInputError: a malformed URL or schema name, or no catalog with ``create=False``.
        ConnectionError: the server cannot be reached (the message names the URL, not the password).
        CorruptionError: the schema holds tables that are not a koru catalog.
        FormatError: the store is of another on-disk format, or its tables are newer than this koru.
    """

    def __init__(
        self, url: str, *, create: bool = True, content_format: int = 2, read_only: bool = False,
        timeout: float = 10.0,
    ) -> None:
        target = parse_url(url)
        self.url = target.display
        self.schema = target.schema
        self.read_only = read_only
        self._conninfo = target.conninfo
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._guard = threading.Lock()
        self._pid = os.getpid()
        try:
            self._open(create=create and not read_only, content_format=content_format)
        except BaseException:
            self.close()
            raise

    # -- connections -----------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        options = psycopg.conninfo.conninfo_to_dict(self._conninfo).get("options") or ""
        options = f"{options} -c search_path={self.schema} -c lock_timeout={int(self._timeout * 1000)}".strip()
        try:
            con = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=max(1, round(self._timeout)),
                                  options=options, application_name="koru")
        except psycopg.Error as e:
            raise self._wrap(e) from e
        con.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        with self._guard:
            self._connections.append(con)
        return con

    @property
    def _con(self) -> psycopg.Connection:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use or close
            with self._guard:
                _INHERITED.extend(self._connections)
                self._connections = []
            self._local = threading.local()
            self._pid = os.getpid()
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = self._local.con = self._connect()
        return con

    def _drop(self) -> None:
        """Forget this thread's connection after a failure (the next call reconnects)."""
        con = getattr(self._local, "con", None)
        self._local.con = None
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()
            with self._guard, contextlib.suppress(ValueError):
                self._connections.remove(con)

    def _wrap(self, e: Exception) -> Exception:
        text = str(e).strip()
        if isinstance(e, (pgerrors.LockNotAvailable, pgerrors.QueryCanceled)):
            return StoreLockedError(f"{self.url}: waited {self._timeout:g} s for a catalog lock ({text})")
        if isinstance(e, pgerrors.DiskFull):
            msg = f"{self.url}: the catalog server has no space left ({text}); nothing was written"
            return StoreFullError(errno.ENOSPC, msg)
        if isinstance(e, (pgerrors.ReadOnlySqlTransaction, pgerrors.InsufficientPrivilege)):
            return PermissionError(f"{self.url}: the catalog cannot be written here ({text})")
        if isinstance(e, psycopg.OperationalError):
            self._drop()
            return ConnectionError(f"{self.url}: cannot reach the catalog server: {text}")
        if isinstance(e, pgerrors.UndefinedTable):
            return CorruptionError(f"{self.url}: a catalog table is missing: {text}")
        return CorruptionError(f"{self.url}: the catalog refused a statement: {text}")

    def close(self) -> None:
        with self._guard:
            mine = self._connections if self._pid == os.getpid() else []
            for con in mine:
                with contextlib.suppress(Exception):
                    con.close()
            self._connections = []
        self._local = threading.local()

    def _idle(self, con: psycopg.Connection) -> bool:
        return con.info.transaction_status == TransactionStatus.IDLE

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        con = self._con
        if not self._idle(con):  # nested
            yield
            return
        try:
            con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except psycopg.Error as e:
            raise self._wrap(e) from e
        try:
            yield
        finally:
            try:
                if con.info.transaction_status != TransactionStatus.UNKNOWN:
                    con.execute("ROLLBACK")  # read only: nothing to keep
            except psycopg.Error as e:
                raise self._wrap(e) from e

    @contextlib.contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        if self.read_only:
            msg = f"{self.url}: the store was opened read-only"
            raise PermissionError(msg)
        con = self._con
        if not self._idle(con):
            msg = f"{self.url}: a catalog write cannot run inside catalog.snapshot()"
            raise InvalidInputError(msg)
        try:
            with con.transaction():
                yield con
        except psycopg.Error as e:
            raise self._wrap(e) from e

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            con = self._con
            idle = self._idle(con)
            try:
                return con.execute(sql, params).fetchall()
            except psycopg.OperationalError as e:
                if attempt == 2 or not idle or not con.broken:
                    raise self._wrap(e) from e
                self._drop()  # a server restart between calls: one reconnect, outside any transaction
            except psycopg.Error as e:
                raise self._wrap(e) from e
        raise AssertionError  # pragma: no cover

    # -- creation and meta -----------------------------------------------------

    def _open(self, *, create: bool, content_format: int) -> None:
        con = self._con
        try:
            version = table_version(con, self.schema)
            if version != SCHEMA_VERSION:
                if version is not None and version > SCHEMA_VERSION:
                    raise newer_tables(self.schema, version)
                if not create:
                    what = "no koru catalog" if version is None else f"a catalog at table version {version}"
                    how = "open it read-write once to migrate it" if version is not None else "create it"
                    msg = f"{self.url}: the schema holds {what}; {how} (PostgresCatalog(url, create=True))"
                    raise InvalidInputError(msg)
                migrate(con, self.schema, meta={
                    "format_version": str(FORMAT_VERSION), "content_format": str(content_format),
                    "store_id": uuid.uuid4().hex,
                })
        except psycopg.Error as e:
            raise self._wrap(e) from e
        self._check_format(dict(self._query("SELECT name, value FROM meta")))

    # -- reads -----------------------------------------------------------------

    def head(self) -> tuple[int, int, bytes | None]:
        n, t, h = self._query("SELECT last_commit, last_system_time, last_hash FROM head WHERE id = 1")[0]
        return (0, 0, None) if not n else (int(n), int(t), bytes(h))

    def namespaces(self) -> list[str]:
        return [r[0] for r in self._query('SELECT name FROM namespaces ORDER BY name COLLATE "C"')]

    def namespace(self, name: str) -> NamespaceInfo | None:
        rows = self._query(
            "SELECT name, schema, key_columns, created_commit, schema_commit, cold_commit FROM namespaces "
            "WHERE name = %s", (name,),
        )
        return None if not rows else self._namespace_info(rows[0])

    def _namespace_info(self, row: tuple[Any, ...]) -> NamespaceInfo:
        name, schema, keys, created, schema_commit, cold = row
        parsed = parse_schema(schema, where=str(self.url), namespace=name)
        return NamespaceInfo(name=name, schema=parsed, key_columns=tuple(keys), created_commit=int(created),
                             schema_commit=int(schema_commit), cold_commit=int(cold))

    def files(self, namespace: str | None = None) -> list[FileEntry]:
        where, params = ("WHERE namespace = %s", (namespace,)) if namespace is not None else ("", ())
        rows = self._query(f"SELECT {', '.join(FILE_COLUMNS)} FROM files {where} "
                           'ORDER BY namespace COLLATE "C", min_commit, path COLLATE "C"', params)
        return [file_entry(r) for r in rows]

    def pending(self, namespace: str, *, after: int = 0, upto: int | None = None,
                kind: Literal["versions", "skips"] = "versions") -> list[PendingBlob]:
        rows = self._query(
            "SELECT commit_number, system_time, rows, data, checksum FROM pending WHERE namespace = %s AND kind = %s "
            "AND commit_number > %s AND commit_number <= %s ORDER BY commit_number",
            (namespace, kind, after, upto if upto is not None else _MAX),
        )
        return [PendingBlob(namespace=namespace, commit=int(c), system_time=int(t), kind=kind, rows=int(n),
                            data=bytes(d), checksum=bytes(h)) for c, t, n, d, h in rows]

    def pending_commits(
        self, namespace: str, *, kind: Literal["versions", "skips"] = "versions",
    ) -> list[tuple[int, int]]:
        return [(int(c), int(n)) for c, n in self._query(
            "SELECT commit_number, rows FROM pending WHERE namespace = %s AND kind = %s ORDER BY commit_number",
            (namespace, kind),
        )]

    def commits(self, *, since: int = 0, until: int | None = None) -> list[CommitRecord]:
        rows = self._query(
            f"SELECT {', '.join(COMMIT_COLUMNS)} FROM commits WHERE commit_number > %s AND commit_number <= %s "
            "ORDER BY commit_number", (since, until if until is not None else _MAX),
        )
        return [commit_record(r) for r in rows]

    def commit_at(self, system_time: int) -> int:
        rows = self._query("SELECT max(commit_number) FROM commits WHERE system_time <= %s", (system_time,))
        return int(rows[0][0] or 0)

    def commit_of_write_id(self, write_id: int) -> int | None:
        rows = self._query(
            "SELECT commit_number FROM commits WHERE last_write_id >= %s AND first_write_id <= %s "
            "ORDER BY last_write_id LIMIT 1", (write_id, write_id),
        )
        return None if not rows else int(rows[0][0])

    def tags(self) -> dict[str, int]:
        return {n: int(c) for n, c in self._query("SELECT name, commit_number FROM tags")}

    def cursor(self, name: str) -> int | None:
        rows = self._query("SELECT commit_number FROM cursors WHERE name = %s", (name,))
        return None if not rows else int(rows[0][0])

    def retired(self) -> dict[str, tuple[str, str, int, int | None]]:
        return {p: (ns, tier, int(size), None if at is None else int(at)) for p, ns, tier, size, at in self._query(
            "SELECT path, namespace, tier, bytes, retired_at FROM retired")}

    # -- writes ----------------------------------------------------------------

    def allocate_write_ids(self, count: int) -> int:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            msg = f"{self.url}: write ids are allocated in counts of at least 1, got {count!r}"
            raise InvalidInputError(msg)
        with self._write() as con:
            row = con.execute("UPDATE counters SET value = value + %s WHERE name = 'next_write_id' "
                              "RETURNING value - %s", (count, count)).fetchone()
        assert row is not None
        return int(row[0])

    def record_commit(self, draft: CommitDraft) -> CommitRecord:
        from koru_core.catalog.postgres_commit import record

        return record(self, draft)

    def swap_files(
        self, namespace: str, *, remove: Sequence[FileEntry], add: Sequence[FileEntry],
        absorb_pending_upto: int | None = None, cold_commit: int | None = None, retired_at: int | None = None,
        base_cold_commit: int | None = None,
    ) -> bool:
        paths = [e.path for e in remove]
        try:
            return self._swap(namespace, paths=paths, remove=remove, add=add, absorb_pending_upto=absorb_pending_upto,
                              cold_commit=cold_commit, retired_at=retired_at, base_cold_commit=base_cold_commit)
        except _Refused:
            return False

    def _swap(
        self, namespace: str, *, paths: list[str], remove: Sequence[FileEntry], add: Sequence[FileEntry],
        absorb_pending_upto: int | None, cold_commit: int | None, retired_at: int | None,
        base_cold_commit: int | None = None,
    ) -> bool:
        with self._write() as con:
            epoch = 0
            if base_cold_commit is not None:  # the row lock serialises swaps of one namespace
                row = con.execute("SELECT cold_commit FROM namespaces WHERE name = %s FOR UPDATE",
                                  (namespace,)).fetchone()
                if row is None or int(row[0]) != base_cold_commit:
                    raise _Refused
            if paths:
                gone = con.execute("DELETE FROM files WHERE path = ANY(%s)", (paths,)).rowcount
                if gone != len(paths):  # a concurrent swap took one (READ COMMITTED re-checked it)
                    raise _Refused
                row = con.execute("UPDATE counters SET value = value + 1 WHERE name = 'retire_epoch' "
                                  "RETURNING value").fetchone()
                epoch = int(row[0]) if row else 0
            if absorb_pending_upto is not None:
                con.execute("DELETE FROM pending WHERE namespace = %s AND commit_number <= %s",
                            (namespace, absorb_pending_upto))
            con.cursor().executemany(INSERT_FILE, [file_row(e, commit=e.commit, system_time=e.system_time)
                                                    for e in add])
            if cold_commit is not None:
                con.execute("UPDATE namespaces SET cold_commit = greatest(cold_commit, %s) WHERE name = %s",
                            (cold_commit, namespace))
            con.cursor().executemany(
                "INSERT INTO retired VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (path) DO UPDATE SET "
                "namespace = excluded.namespace, tier = excluded.tier, bytes = excluded.bytes, "
                "retired_at = excluded.retired_at, epoch = excluded.epoch",
                [(e.path, e.namespace, e.tier, e.bytes, now_ns() if retired_at is None else retired_at, epoch)
                 for e in remove],
            )
        return True

    def bootstrap(
        self, *, commits: Sequence[CommitRecord], namespaces: Sequence[NamespaceInfo], files: Sequence[FileEntry],
        tags: dict[str, int], next_write_id: int,
    ) -> None:
        with self._write() as con:
            row = con.execute("SELECT last_commit FROM head WHERE id = 1 FOR UPDATE").fetchone()
            taken = con.execute("SELECT count(*) FROM commits").fetchone()
            if (row and row[0]) or (taken and taken[0]):
                msg = f"{self.url}: bootstrap needs an empty catalog"
                raise ConflictError(msg)
            con.cursor().executemany(INSERT_COMMIT, [commit_row(c) for c in commits])
            con.cursor().executemany(
                "INSERT INTO namespaces VALUES (%s, %s, %s, %s, %s, %s)",
                [(n.name, n.schema.serialize().to_pybytes(), list(n.key_columns), n.created_commit,
                  n.schema_commit, n.cold_commit) for n in namespaces],
            )
            con.cursor().executemany(INSERT_FILE, [file_row(e, commit=e.commit, system_time=e.system_time)
                                                    for e in files])
            con.cursor().executemany("INSERT INTO tags VALUES (%s, %s)", list(tags.items()))
            if commits:
                last = max(commits, key=lambda c: c.commit)
                con.execute("UPDATE head SET last_commit = %s, last_system_time = %s, last_hash = %s WHERE id = 1",
                            (last.commit, last.system_time, last.hash))
            con.execute("UPDATE counters SET value = %s WHERE name = 'next_write_id'", (next_write_id,))

    def forget_retired(self, paths: Sequence[str]) -> None:
        with self._write() as con:
            con.execute("DELETE FROM retired WHERE path = ANY(%s)", (list(paths),))

    def set_tag(self, name: str, commit: int) -> None:
        with self._write() as con:
            con.execute("INSERT INTO tags VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                        "SET commit_number = excluded.commit_number", (name, commit))

    def set_cursor(self, name: str, commit: int) -> None:
        with self._write() as con:
            con.execute("INSERT INTO cursors VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                        "SET commit_number = excluded.commit_number", (name, commit))

    def set_key_columns(self, namespace: str, key_columns: Sequence[str]) -> None:
        with self._write() as con:
            con.execute("UPDATE namespaces SET key_columns = %s WHERE name = %s", (list(key_columns), namespace))

    # -- reader leases (koru_core.catalog.leases: server clock, retire-epoch marks) --

    # Each lease verb is one autocommit statement (one round trip, retried once on a dropped
    # connection: the statements are idempotent), allowed on a read-only handle.

    def add_lease(self, holder: str, *, commit: int, ttl: float) -> ReaderLease:
        span = ttl_ns(ttl)
        lease_id = uuid.uuid4().hex
        row = self._query(
            "WITH gone AS (DELETE FROM leases WHERE expires_at <= now()) "
            "INSERT INTO leases SELECT %s, %s, %s, value, now() + make_interval(secs => %s) FROM counters "
            "WHERE name = 'retire_epoch' ON CONFLICT (lease_id) DO UPDATE SET holder = excluded.holder "
            f"RETURNING mark, {_NS.format('expires_at')}",
            (lease_id, holder, commit, span / 1e9),
        )[0]
        return ReaderLease(lease_id=lease_id, holder=holder, commit=commit, mark=int(row[0]), expires_at=int(row[1]))

    def renew_lease(self, lease_id: str, *, ttl: float) -> int | None:
        span = ttl_ns(ttl)
        rows = self._query(
            "UPDATE leases SET expires_at = now() + make_interval(secs => %s) WHERE lease_id = %s "
            f"AND expires_at > now() RETURNING {_NS.format('expires_at')}", (span / 1e9, lease_id),
        )
        return None if not rows else int(rows[0][0])

    def release_lease(self, lease_id: str) -> None:
        self._query("DELETE FROM leases WHERE lease_id = %s RETURNING 1", (lease_id,))

    def live_leases(self) -> list[ReaderLease]:
        rows = self._query(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE expires_at > now() ORDER BY mark, lease_id")
        return [lease_entry(row) for row in rows]

    def vacuumable(self, *, retired_before: int) -> list[str]:
        rows = self._query(
            "SELECT path FROM retired r WHERE coalesce(retired_at, 0) <= %s "
            "AND epoch <= coalesce((SELECT min(mark) FROM leases WHERE expires_at > now()), %s) "
            'AND NOT EXISTS (SELECT 1 FROM files f WHERE f.path = r.path) ORDER BY path COLLATE "C"',
            (retired_before, _MAX),
        )
        return [r[0] for r in rows]


class _Refused(Exception):  # noqa: N818 - internal signal, never escapes swap_files
    """A swap's input file is gone: roll the transaction back, and ``swap_files`` returns False."""
