"""The :class:`Store` facade: each method checks its input, then makes one call below."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from koru_core import diff as _diff
from koru_core import lineage as _lineage
from koru_core import read
from koru_core import watch as _watch
from koru_core._time import now_ns, to_ns
from koru_core._writer import DEFAULT_MEMORY_LIMIT, TOMBSTONE, Operation, Writer
from koru_core.catalog import Catalog, Durability
from koru_core.errors import CorruptionError, InvalidInputError, KeyNotFoundError, StoreLockedError
from koru_core.input import batch_from_table, batch_from_value, check_key, check_metadata, check_namespace
from koru_core.lifecycle import api as _lifecycle
from koru_core.lifecycle.leases import Lease, Leases
from koru_core.lifecycle.methods import LifecycleMethods
from koru_core.model import (
    TIMESTAMP,
    Commit,
    CommitResult,
    FieldChange,
    Lineage,
    Version,
    version_from_row,
)
from koru_core.scan import ScanPlan, hint_applies, plan_scan, read_versions
from koru_core.stats import store_stats
from koru_core.transaction import Transaction
from koru_core.vector.methods import VectorMethods

__all__ = ["DEFAULT_STORE", "Store", "open"]

DEFAULT_STORE = "koru-data"
"""The store folder used when none is given (the CLI also reads ``KORU_STORE``)."""


def open(  # noqa: A001 - mirrors sqlite3.connect / duckdb.connect style entry points
    path: str | os.PathLike[str] = DEFAULT_STORE,
    *,
    durability: Durability = "full",
    lock_timeout: float = 10.0,
    auto_consolidate: bool = False,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    create: bool | None = None,
) -> Store:
    """Open the store in folder ``path``, creating it if missing.

    Args:
        path: The store folder.
        create: ``None`` (default): open the store there, or create one in a
            missing or empty folder. ``True``: also create one in a non-empty
            folder that holds no store. ``False``: never create; a missing
            store is an error.
        durability: ``"full"`` (default): every write call is on disk when it
            returns. ``"process"``: survives the process being killed, not a
            power loss; single puts are several times faster.
        lock_timeout: Seconds a write waits for another process's write lock
            before :class:`StoreLockedError`.
        auto_consolidate: Consolidate a namespace right after a commit that
            leaves it with ``AUTO_CONSOLIDATE_WARM_FILES`` (32) warm files or more.
            Off by default: that commit then pays for the consolidation (it
            runs synchronously, holding the write lock).
        memory_limit: Bound of the hot tier in bytes (default 512 MiB): each
            namespace's current-state index and the cache of recently written
            or read values. Past it the cache is emptied, then the least
            recently used indexes are dropped (rebuilt from files when needed).
            Working memory of one large upsert is not counted: write very large
            data in batches to bound it.

    Returns:
        An open :class:`Store`; close it with ``close()`` or a ``with`` block.

    Raises:
        CorruptionError: the catalog exists but is unreadable.
        InvalidInputError: ``path`` exists and is not a folder, holds files
            but no store (without ``create=True``), holds no store and
            ``create=False``, or ``memory_limit`` is not a positive int.

    Example:
        >>> import tempfile, koru_core as koru
        >>> store = koru.open(tempfile.mkdtemp())
        >>> store.put("users", "alice", {"name": "Alice", "age": 31}).commit
        1
    """
    _check_create(Path(path).absolute(), create)
    return Store(
        path, durability=durability, lock_timeout=lock_timeout, auto_consolidate=auto_consolidate,
        memory_limit=memory_limit,
    )


def _check_create(path: Path, create: bool | None) -> None:
    """Refuse to turn a folder of other files into a store (or to create one at all, with ``create=False``)."""
    if create not in (None, True, False):
        msg = f"create must be None, True or False, got {create!r}"
        raise InvalidInputError(msg)
    if (path / "catalog.sqlite").is_file():
        return
    if create is False:
        msg = f"no koru store at {str(path)!r} (it has no catalog.sqlite) and create=False"
        raise InvalidInputError(msg)
    if create is None and path.is_dir() and any(path.iterdir()):
        msg = (
            f"{str(path)!r} is a non-empty folder that holds no koru store; "
            "pass create=True to make one there anyway"
        )
        raise InvalidInputError(msg)


class Store(LifecycleMethods, VectorMethods):
    """A koru store: one folder holding a SQLite catalog and Parquet data files.

    Thread-safe for one writer and many readers within a process; across
    processes, one writer at a time (a file lock) and any number of readers.
    Use :func:`open` to make one.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, durability: Durability, lock_timeout: float,
        auto_consolidate: bool = False, memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.path = Path(path).absolute()
        if self.path.exists() and not self.path.is_dir():
            msg = f"store path {str(self.path)!r} exists and is not a folder"
            raise InvalidInputError(msg)
        self.path.mkdir(parents=True, exist_ok=True)
        self._catalog = Catalog(self.path / "catalog.sqlite", durability=durability, timeout=lock_timeout)
        if not isinstance(memory_limit, int) or memory_limit <= 0:
            msg = f"memory_limit must be a positive number of bytes, got {memory_limit!r}"
            raise InvalidInputError(msg)
        self._writer = Writer(self.path, self._catalog, lock_timeout=lock_timeout, memory_limit=memory_limit)
        self._leases = Leases(self.path)
        if auto_consolidate:
            self._writer.after_commit = lambda names: _lifecycle.auto_consolidate(self, names)
        # the head file is written after each catalog commit, so read it first: it never runs ahead
        announced = self._writer.head_file.read()
        head = self._catalog.head()[0]
        if announced > head:
            self.close()
            msg = (
                f"{self.path / 'catalog.sqlite'}: the catalog holds {head} commits but commit "
                f"{announced} was made; the catalog was truncated or replaced"
            )
            raise CorruptionError(msg)
        try:  # re-sync a hint left behind by a dead writer; a live lock holder announces its own
            self._writer.lock.acquire(timeout=0)
        except StoreLockedError:
            pass
        else:
            try:
                self._writer.head_file.write(self._catalog.head()[0])
            finally:
                self._writer.lock.release()

    def __repr__(self) -> str:
        return f"koru.Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the catalog connection, caches and reader leases.

        Example:
            >>> import tempfile
            >>> with koru.open(tempfile.mkdtemp()) as other:
            ...     _ = other.put("t", "k", 1)
        """
        self._writer.head_file.close()
        self._leases.close()
        self._catalog.close()

    # -- writes ----------------------------------------------------------------

    def put(
        self, namespace: str, key: str, value: Any, *, valid_from: datetime | None = None,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None,
    ) -> Version:
        """Write one version of ``key``.

        Args:
            namespace: Namespace name, ``[A-Za-z_][A-Za-z0-9_]*``.
            key: Non-empty str.
            value: A dict (its items become fields; nested dicts and lists become
                Arrow structs and lists) or any other value Arrow can hold
                (stored in a field named ``value``).
            valid_from: When the value became true (tz-aware); default: the
                commit's system time.
            actor, run_id: Provenance.
            parents: Write ids this value was derived from.
            metadata: str → str recorded with the commit (:attr:`Commit.metadata`).

        Returns:
            The :class:`Version` written; or, when the value equals the key's
            as-of version at ``valid_from``, that version with ``is_unchanged=True``
            (nothing is written).

        Raises:
            InvalidInputError: bad namespace, key, value, NaN/inf or naive time.
            SchemaError: a field's type cannot widen the stored type.
            StoreLockedError: another process holds the write lock.

        Example:
            >>> store.put("users", "bob", {"name": "Bob"}).key
            'bob'
        """
        batch = batch_from_value(namespace, key, value, valid_from=valid_from, parents=parents)
        meta = check_metadata(metadata)
        result, prepared = self._writer.commit([Operation(batch)], actor=actor, run_id=run_id, metadata=meta)
        return self._version_of(namespace, key, result, prepared, valid_from, value)

    def delete(
        self, namespace: str, key: str, *, valid_from: datetime | None = None,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None,
    ) -> Version:
        """Write a tombstone for ``key`` (nothing is erased; history keeps it).

        Raises:
            KeyNotFoundError: the key has no live version at ``valid_from``.
            InvalidInputError, StoreLockedError: as for :meth:`put`.

        Example:
            >>> store.delete("users", "bob").is_deleted
            True
        """
        batch = batch_from_value(namespace, key, None, valid_from=valid_from, parents=parents, is_deleted=True)
        meta = check_metadata(metadata)
        result, prepared = self._writer.commit([Operation(batch)], actor=actor, run_id=run_id, metadata=meta)
        if result.commit is None:
            msg = f"namespace {namespace!r}: no live key {key!r} to delete"
            raise KeyNotFoundError(msg)
        return self._version_of(namespace, key, result, prepared, valid_from, None)

    def _version_of(self, namespace: str, key: str, result: CommitResult, prepared: list[Any],
                    valid_from: datetime | None, value: Any) -> Version:
        if result.commit is None:
            at = now_ns() if valid_from is None else to_ns(valid_from, what="valid_from")
            rows = self._versions(namespace, None, ds.field("_key") == key)
            row = read.as_of_rule(rows, valid_at=at, max_commit=None).to_pylist()[0]
            return version_from_row(namespace, row, value, is_unchanged=True)
        versions = prepared[0].versions
        return version_from_row(namespace, versions.slice(0, 1).to_pylist()[0], value, is_unchanged=False)

    def upsert(
        self, namespace: str, data: Any, *, key: str | Sequence[str],
        valid_from: datetime | str | None = None, delete_missing: bool = False,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None,
    ) -> CommitResult:
        """Write many rows as versions in one commit; unchanged rows are skipped.

        Args:
            namespace: Namespace name.
            data: pyarrow Table / RecordBatch / RecordBatchReader, Polars or
                pandas DataFrame, or a list of dicts.
            key: The key column, or several (a composite key, joined with ``|``).
            valid_from: A tz-aware datetime for all rows, the name of a
                timestamp column giving each row's valid time (a backfill may
                hold many versions of one key), or None (the commit's time).
                A named column becomes ``_valid_from`` and is not stored as a
                value field, so a row equal to the version before it, apart from
                its time, counts as unchanged.
            delete_missing: Tombstone every live key absent from ``data`` (a
                full snapshot: change data capture from snapshots).
            actor, run_id, parents: Provenance for every row. A ``_write_id``
                column (from a koru read) adds each row's source as a parent.
            metadata: str → str recorded with the commit (:attr:`Commit.metadata`).

        Returns:
            :class:`CommitResult` with the commit number (None if nothing
            changed) and the counts written, unchanged and deleted.

        Raises:
            InvalidInputError: bad data, missing/null key column, two rows with
                the same key and valid time, naive or null valid times.
            SchemaError: a field's type cannot widen the stored type.

        Example:
            >>> store.upsert("users", [{"id": "carol", "age": 5}], key="id").written
            1
        """
        batch = batch_from_table(namespace, data, key=key, valid_from=valid_from, parents=parents)
        op = Operation(batch, delete_missing=delete_missing)
        meta = check_metadata(metadata)
        return self._writer.commit([op], actor=actor, run_id=run_id, metadata=meta)[0]

    def transaction(
        self, *, actor: str | None = None, run_id: str | None = None, metadata: dict[str, str] | None = None,
    ) -> Transaction:
        """Return a context manager committing everything written in it atomically.

        Example:
            >>> with store.transaction(actor="etl") as tx:
            ...     tx.put("users", "dan", {"age": 1})
            >>> tx.result.written
            1
        """
        return Transaction(self._writer, actor=actor, run_id=run_id, metadata=check_metadata(metadata))

    # -- reads -------------------------------------------------------------------

    def scan_plan(self, namespace: str, *, version: int | None = None) -> ScanPlan:
        """Return the files and pending versions to read for ``namespace`` at commit ``version``.

        This is how DuckDB and Polars learn what to scan (see :class:`ScanPlan`).

        Example:
            >>> plan = store.scan_plan("users")
            >>> plan.commit, plan.pending.num_rows, len(plan.files)
            (2, 2, 0)

        Raises:
            NamespaceNotFoundError, InvalidInputError: unknown namespace or commit.
        """
        check_namespace(namespace)
        lease = Lease(self._leases)  # taken before the catalog snapshot (see lifecycle/leases.py)
        return dataclasses.replace(plan_scan(self.path, self._catalog, namespace, version=version), lease=lease)

    def _versions(self, namespace: str, version: int | None, filter: ds.Expression | None = None) -> pa.Table:
        plan = self.scan_plan(namespace, version=version)
        return read_versions(self.path, plan, filter=filter)

    def get(self, namespace: str, key: str, *, at: datetime | None = None, version: int | None = None) -> Any:
        """Return the value of ``key`` as of valid time ``at`` and commit ``version``.

        Returns:
            A dict of the namespace's fields (null fields as None), or the bare
            value for a namespace whose only field is ``value``.

        Raises:
            KeyNotFoundError: no live version at that point.
            NamespaceNotFoundError: the namespace was never written.

        Example:
            >>> store.get("users", "alice")["age"]
            31
        """
        if at is None and version is None:
            hit = self._writer.cached(namespace, key)
            if hit is not None:
                if hit is TOMBSTONE:
                    raise KeyNotFoundError(f"namespace {namespace!r}: no live key {key!r}")
                return dict(hit) if isinstance(hit, dict) else hit
        check_key(check_namespace(namespace), key)
        plan = self.scan_plan(namespace, version=version)
        rows = read_versions(self.path, plan, filter=ds.field("_key") == key)
        valid_at = now_ns() if at is None else to_ns(at, what="at")
        state = read.as_of_rule(rows, valid_at=valid_at, max_commit=None)
        if state.num_rows == 0:
            raise KeyNotFoundError(f"namespace {namespace!r}: no live key {key!r}" + _point(at, version))
        names = [n for n in plan.schema.names if not n.startswith("_")]
        value = read.row_value(state.select(names).to_pylist()[0], names)
        # cache only a value that stays current as time passes (no version valid later than now)
        if at is None and version is None and max(rows["_valid_from"].cast(pa.int64()).to_pylist()) <= valid_at:
            self._writer.remember(namespace, key, value, commit=plan.head_commit)
        return value

    def as_of(
        self, namespace: str, *, at: datetime | None = None, version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Return the records of a namespace as they stood at a point in time.

        Args:
            namespace: Existing namespace name.
            at: Valid time (tz-aware; converted to UTC, ns precision). Defaults to now.
            version: Commit number bounding system time. Defaults to the latest commit.
            columns: Value columns to return (default all).

        Returns:
            One row per live key, sorted by ``_key``: the value columns, then
            ``_key`` (string), ``_valid_from`` and ``_system_from``
            (timestamp[ns, UTC]), ``_commit`` (int64), ``_write_id`` (string).

        Raises:
            NamespaceNotFoundError: if ``namespace`` was never written.
            InvalidInputError: if ``at`` is naive or ``version`` is not a commit number.

        Example:
            >>> store.as_of("users").num_rows
            2
        """
        valid_at = now_ns() if at is None else to_ns(at, what="at")
        plan = self.scan_plan(namespace, version=version)
        values = [n for n in plan.schema.names if not n.startswith("_")]
        wanted = values if columns is None else _check_columns(namespace, columns, values)
        needed = [*read.AS_OF_SYSTEM_COLUMNS, "_deleted", *wanted]
        hint = valid_at if hint_applies(plan) else None
        by_time = ds.field("_valid_from") <= _ts(valid_at)
        if plan.has_exact_valid_to:  # one consolidation run: the stored intervals are the answer
            by_time = by_time & ~ds.field("_deleted")
        rows = read_versions(self.path, plan, columns=needed, filter=by_time, valid_at_hint=hint)
        if plan.has_exact_valid_to:
            state = rows.take(pc.sort_indices(rows["_key"]))
        else:
            state = read.as_of_rule(rows, valid_at=valid_at, max_commit=None)
        return state.select([*wanted, *read.AS_OF_SYSTEM_COLUMNS])

    def keys(self, namespace: str, *, at: datetime | None = None, version: int | None = None) -> list[str]:
        """Return the live keys at (``at``, ``version``), sorted.

        Example:
            >>> store.keys("users")
            ['alice', 'bob']
        """
        return self.as_of(namespace, at=at, version=version, columns=[])["_key"].to_pylist()

    def history(self, namespace: str, key: str) -> pa.Table:
        """Return every version of ``key``, oldest first (by valid time, then commit).

        Returns:
            The value columns, then every system column of
            :data:`koru_core.model.SYSTEM_SCHEMA`, ``_valid_to`` computed.
            Tombstones are included (``_deleted`` true, value columns null).
            Once the namespace was distilled, versions pruned by
            :meth:`distill` are included too (their value columns null) and a
            last bool column ``_pruned`` marks them.

        Raises:
            NamespaceNotFoundError: unknown namespace. An unknown key gives an
            empty table.

        Example:
            >>> store.history("users", "alice").num_rows
            1
        """
        check_key(check_namespace(namespace), key)
        full = _values_first(read.history_order(self._versions(namespace, None, ds.field("_key") == key)))
        return _lifecycle.with_pruned(self, namespace, key, full)

    def versions(self, namespace: str, *, version: int | None = None) -> pa.Table:
        """Return every version of every key up to commit ``version``, with ``_valid_to``.

        Same columns as :meth:`history`, sorted by ``_key``, ``_valid_from``, ``_commit``.

        Example:
            >>> store.versions("users")["_key"].to_pylist()
            ['alice', 'bob']
        """
        return _values_first(read.with_valid_to(self._versions(namespace, version)))

    def changes(
        self, namespace: str, *, since: int | datetime | None = None, until: int | datetime | None = None,
    ) -> pa.Table:
        """Return the change feed: one row per version written in a window, with before/after.

        Args:
            since, until: The window ``(since, until]``. ints are commit numbers
                (system time: what was written between two commits);
                datetimes are valid times (what became true between two
                instants). Both bounds must be of one kind; None is open.

        Returns:
            Columns ``_key``, ``op`` (``insert``/``update``/``delete``),
            ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``,
            ``before_write_id``, ``before_content_id``, ``after_content_id``,
            then the value columns after the change.

        Raises:
            InvalidInputError: mixed or invalid bounds.

        Example:
            >>> store.changes("users", since=0)["op"].to_pylist()[:1]
            ['insert']
        """
        versions = self._versions(namespace, None)
        return read.change_feed(versions, in_window=read.change_window(namespace, versions, since, until))

    def diff(
        self, namespace: str, key: str, a: int | datetime | str | None = None,
        b: int | datetime | str | None = None,
    ) -> list[FieldChange]:
        """Return the fields that differ between two versions of ``key``.

        Args:
            a, b: A version, given as a write id (str), a commit number (the
                version current at that commit) or a valid time (datetime).
                ``b`` defaults to the current version, ``a`` to the one before ``b``.

        Raises:
            KeyNotFoundError: the key, or a named version, does not exist.

        Example:
            >>> _ = store.put("users", "alice", {"name": "Alice", "age": 32})
            >>> [(c.field, c.before, c.after) for c in store.diff("users", "alice")]
            [('age', 31, 32)]
        """
        check_key(check_namespace(namespace), key)
        full = _values_first(read.history_order(self._versions(namespace, None, ds.field("_key") == key)))
        return _diff.diff(full, namespace, key, a, b)

    def lineage(self, namespace: str, key: str, *, max_depth: int | None = None) -> Lineage:
        """Return the ancestor graph of ``key``'s current version, across namespaces.

        Follows ``_parents`` (write ids) to the versions they name, recursively.

        Returns:
            :class:`~koru_core.model.Lineage`: ``nodes`` (one row per version
            reached, with its namespace, key, commit, times, provenance and
            ``depth``) and ``edges`` (``child``, ``parent``, ``kind``).

        Example:
            >>> source = store.put("users", "carol", {"name": "Carol", "age": 9})
            >>> _ = store.put("cards", "c1", {"owner": "carol"}, parents=[source.write_id])
            >>> store.lineage("cards", "c1").nodes["namespace"].to_pylist()
            ['cards', 'users']

        Raises:
            KeyNotFoundError: the key has no versions.
        """
        return _lineage.lineage(self, namespace, key, max_depth=max_depth)

    def namespaces(self) -> list[str]:
        """Return the names of every namespace ever written, sorted.

        Example:
            >>> store.namespaces()
            ['users']
        """
        return self._catalog.namespaces()

    def commits(
        self, *, namespace: str | None = None, metadata: dict[str, str] | None = None,
    ) -> list[Commit]:
        """Return the commit log, oldest first (number, system time, provenance, counts, metadata).

        Args:
            namespace: Only the commits that wrote this namespace.
            metadata: Only the commits whose metadata holds every one of these items.

        Example:
            >>> [(c.commit, c.namespaces, c.written) for c in store.commits()]
            [(1, ('users',), 1), (2, ('users',), 1)]
        """
        wanted = check_metadata(metadata) or {}
        return [
            c for c in self._catalog.commits()
            if (namespace is None or namespace in c.namespaces)
            and all(c.metadata.get(k) == v for k, v in wanted.items())
        ]

    def watch(
        self, namespace: str | Sequence[str] | None = None, *, since: int | None = None,
        poll_interval: float = 0.5, timeout: float | None = None, name: str | None = None,
        with_changes: bool = False,
    ) -> Iterator[_watch.CommitEvent]:
        """Yield each new commit as it lands, from any process (:func:`koru_core.watch.watch`).

        Example:
            >>> [e.commit for e in store.watch("users", since=1, timeout=0)]
            [2]
        """
        return _watch.watch(self, namespace, since=since, poll_interval=poll_interval, timeout=timeout,
                            name=name, with_changes=with_changes)

    def stats(self) -> pa.Table:
        """Return one row per namespace and tier: ``namespace``, ``tier``, ``files``,
        ``versions``, ``bytes`` (int64), ``memory_bytes`` (int64) and ``hit_rate``
        (float64). Tier ``hot`` counts versions still in the catalog, and this
        process's in-memory state and cache hit rate (see :data:`koru_core.stats.STATS_SCHEMA`).

        Example:
            >>> store.stats().select(["namespace", "tier", "versions"]).to_pylist()
            [{'namespace': 'users', 'tier': 'hot', 'versions': 2}]
            >>> _ = store.get("users", "bob"); store.stats()["hit_rate"].to_pylist()
            [1.0]
        """
        return store_stats(self._catalog, memory=self._writer.memory_bytes(), hits=self._writer.hits)

    def flush(self) -> None:
        """Move every pending version of every namespace into warm Parquet files.

        Example:
            >>> store.flush()
            >>> [r["tier"] for r in store.stats().to_pylist() if r["versions"]]
            ['warm']
        """
        from koru_core.commit import flush

        with self._writer.lock:
            for namespace in self.namespaces():
                flush(self.path, self._catalog, namespace, min_rows=1)

    def commit_at(self, system_time: datetime) -> int:
        """Return the last commit recorded at or before ``system_time`` (0 if none).

        Example:
            >>> from datetime import datetime, timezone
            >>> store.commit_at(datetime.now(timezone.utc))
            2
        """
        return self._catalog.commit_at(to_ns(system_time, what="system_time"))


def _ts(nanos: int) -> pa.Scalar:
    """ns since the epoch as a timestamp[ns, UTC] scalar, for dataset filters."""
    return pa.scalar(nanos, TIMESTAMP)


def _point(at: datetime | None, version: int | None) -> str:
    parts = ([f"at {at.isoformat()}"] if at else []) + ([f"version {version}"] if version else [])
    return f" ({', '.join(parts)})" if parts else ""


def _check_columns(namespace: str, columns: Sequence[str], values: list[str]) -> list[str]:
    for c in columns:
        if c not in values:
            msg = f"namespace {namespace!r}: no column {c!r} (columns: {values})"
            raise InvalidInputError(msg)
    return list(columns)


def _values_first(table: pa.Table) -> pa.Table:
    names = read.value_columns(table)
    return table.select(names + [n for n in table.column_names if n not in names])
