"""The :class:`Store` facade: each method checks its input, then makes one call below."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from koru_core import diff as _diff
from koru_core import lineage as _lineage
from koru_core.errors import InvalidInputError
from koru_core.input import batch_from_table, batch_from_value, check_metadata
from koru_core.keys import KeyLike, value_with_key_fields
from koru_core import watch as _watch
from koru_core.lifecycle.methods import LifecycleMethods
from koru_core.model import Commit, CommitResult, FieldChange, Lineage, Version
from koru_core.opening import DEFAULT_MEMORY_LIMIT, DEFAULT_STORE, Durability, open_context
from koru_core.read import reads
from koru_core.read.plan import ReadPlan
from koru_core.vector.methods import VectorMethods
from koru_core.write.batches import Operation
from koru_core.write.transaction import Transaction
from koru_core.write.writer import Writer

__all__ = ["DEFAULT_STORE", "Store", "open"]


def open(  # noqa: A001 - mirrors sqlite3.connect / duckdb.connect style entry points
    path: str | os.PathLike[str] = DEFAULT_STORE,
    *,
    durability: Durability = "full",
    lock_timeout: float = 10.0,
    auto_consolidate: bool = True,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    create: bool | None = None,
    read_only: bool = False,
    catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> Store:
    """Open the store at ``path``, creating it if missing.

    Args:
        path: The store folder (the embedded default: a SQLite catalog inside it, one
            writer at a time), or ``s3://bucket/prefix`` on object storage (needs
            ``catalog``). Objects go through ``pyarrow.fs.S3FileSystem``.
        durability: ``"full"`` (default): every write call is on disk when it
            returns. ``"process"``: survives the process being killed, not a
            power loss; single puts are several times faster.
        lock_timeout: Seconds a write waits for another writer's lock before
            :class:`StoreLockedError` (a non-negative number).
        auto_consolidate: Maintain the store after commits (default on):
            consolidate a namespace whose warm files and pending versions pass the
            thresholds of :mod:`koru_core.lifecycle.auto`, and delete replaced
            files once no reader needs them. Off: call ``consolidate()`` and
            ``vacuum()`` yourself.
        memory_limit: Bytes the store's in-memory tiers may hold together
            (default 512 MiB): current-state indexes, cached values, decoded
            files and pending versions (least recently used go first).
        create: ``None`` (default): open the store there, or create one in a
            missing or empty folder. ``True``: also create one in a non-empty
            folder that holds no store. ``False``: never create; a missing
            store is an error.
        read_only: Open for reads only (a read-only mount, a copy without write
            permission); writes raise. Detected on its own when the folder is not writable.
        catalog: A ``postgresql://user@host/db?koru_schema=NAME`` URL: the store is
            shared by any number of processes and hosts. Its catalog is in PostgreSQL
            and commits are optimistic: blind writes (``put``, ``upsert``, ``delete``)
            are rebased on other writers' commits and never fail for concurrency;
            ``put(expected_version=…)`` and a transaction's reads raise
            :class:`ConflictError` when another writer changed their key.
            Reader leases are kept in the catalog, so vacuum on any host spares what a
            reader on another host still reads. ``lock_timeout`` bounds lock waits on
            the server. Needs ``pip install 'koru-lake[postgres]'``.
        storage_options: For ``s3://``: the keys of ``deltalake`` and ``pl.scan_delta``
            (``aws_endpoint_url``, ``aws_access_key_id``, ``aws_secret_access_key``,
            ``aws_session_token``, ``aws_region``, ``aws_allow_http``); keys not given
            are read from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` … as other tools
            read them (:mod:`koru_core.storage.objects`).

    Returns:
        An open :class:`Store`; close it with ``close()`` or a ``with`` block.

    Raises:
        CorruptionError: the catalog, or the file at fault, is unreadable (names it).
        FormatError: the store was written in another on-disk format (names the upgrade).
        InvalidInputError: bad options; ``path`` is not a folder, holds files but no
            store (without ``create=True``), or holds no store and ``create=False``;
            an ``s3://`` store without ``catalog``, a ``catalog`` that is not a
            PostgreSQL URL, or a bucket that does not exist.
        ConnectionError: the catalog's server cannot be reached.

    Example:
        >>> import tempfile, koru_core as koru
        >>> store = koru.open(tempfile.mkdtemp())
        >>> store.put("users", "alice", {"name": "Alice", "age": 31}).commit
        1
    """
    return Store(open_context(
        path, durability=durability, lock_timeout=lock_timeout, auto_consolidate=auto_consolidate,
        memory_limit=memory_limit, create=create, read_only=read_only, catalog=catalog,
        storage_options=storage_options,
    ))


class Store(LifecycleMethods, VectorMethods):
    """A koru store: a catalog and Parquet data files.

    Thread-safe: threads share one store; writes serialise, reads run in parallel.
    An embedded store (a local folder): across processes, one writer at a time (a
    file lock) and any number of readers. A shared store (``catalog=`` PostgreSQL):
    any number of writers on any hosts, committing optimistically.
    Use :func:`open` to make one.

    Attributes:
        path: The store folder (``pathlib.Path``), or its ``s3://`` URL (str).
    """

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self.path = ctx.root
        from koru_core.lifecycle.auto import after_commit, consolidate_with_commit

        self._writer = Writer(ctx, after_commit=after_commit if ctx.auto_maintain else None,
                              cold_part=consolidate_with_commit if ctx.auto_maintain else None)

    def __repr__(self) -> str:
        return f"koru.Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the catalog connections, every cache and the reader leases.

        Example:
            >>> import tempfile
            >>> with koru.open(tempfile.mkdtemp()) as other:
            ...     _ = other.put("t", "k", 1)
        """
        from koru_core.opening import close_context

        close_context(self._ctx)

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The object-store options engines read this store's files with (``aws_endpoint_url``
        …, as ``pl.scan_delta`` takes them), resolved from ``storage_options`` and the
        environment; None for a store in a local folder."""
        return self._ctx.storage.storage_options()

    @property
    def read_only(self) -> bool:
        """True when the store was opened (or found) read-only."""
        return bool(self._ctx.read_only)

    # -- writes ----------------------------------------------------------------

    def put(
        self, namespace: str, key: KeyLike, value: Any, *, valid_from: datetime | None = None,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None, expected_version: int | None = None,
    ) -> Version:
        """Write one version of ``key``.

        Args:
            namespace: Namespace name, ``[A-Za-z_][A-Za-z0-9_]*``.
            key: As written: a non-empty str (the ``_key``), an int, or for a
                namespace with composite key columns a tuple of the parts in
                key-column order or a mapping of key column to value. In a
                namespace with key columns, a dict value gets the key columns it
                lacks from the key (as an upsert's rows hold them).
            value: A dict (its items become fields; nested dicts and lists become
                Arrow structs and lists) or any other value Arrow can hold
                (stored in a field named ``value``).
            valid_from: When the value became true (tz-aware); default: the
                commit's system time.
            actor, run_id: Provenance.
            parents: Write ids this value was derived from.
            metadata: str → str recorded with the commit (:attr:`Commit.metadata`).
            expected_version: Compare-and-set: the ``commit`` of the key's current
                version as the caller read it (:attr:`Version.commit`, e.g. from
                :meth:`version_at`), or 0 for a key that must have no version yet. If
                another write has changed the key's current version since, nothing is
                written and :class:`ConflictError` names the key and both commits.

        Returns:
            The :class:`Version` written; or, when the value equals the key's
            as-of version at ``valid_from``, that version with ``is_unchanged=True``.

        Raises:
            InvalidInputError: bad namespace, key, value, NaN/inf or naive time; a
                key of the wrong shape (names the key columns); a value whose key
                column differs from the key.
            SchemaError: a field's type cannot widen the stored type.
            StoreLockedError: another process holds the write lock.
            ConflictError: ``expected_version`` is not the commit of the key's current version.

        Example:
            >>> store.put("users", "bob", {"name": "Bob"}).key
            'bob'
        """
        key_text, fields = reads.key_and_fields(self._ctx, namespace, key)
        value = value_with_key_fields(namespace, value, fields)
        batch = batch_from_value(namespace, key_text, value, valid_from=valid_from, parents=parents)
        expected = None
        if expected_version is not None:
            expected = {(namespace, key_text): reads.check_commit(expected_version, "expected_version")}
        return self._write_one(Operation(batch), namespace, key_text, valid_from, value, actor, run_id, metadata,
                               expected)

    def delete(
        self, namespace: str, key: KeyLike, *, valid_from: datetime | None = None,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None,
    ) -> Version:
        """Write a tombstone for ``key`` (nothing is erased; history keeps it).

        Raises:
            NamespaceNotFoundError: the namespace was never written.
            KeyNotFoundError: the key has no live version at ``valid_from`` (nothing is written).
            InvalidInputError, StoreLockedError: as for :meth:`put`.

        Example:
            >>> store.delete("users", "bob").is_deleted
            True
        """
        reads.require_namespace(self._ctx, namespace)
        key_text = reads.key_of(self._ctx, namespace, key)
        batch = batch_from_value(namespace, key_text, None, valid_from=valid_from, parents=parents, is_deleted=True)
        op = Operation(batch, require_live=True)
        return self._write_one(op, namespace, key_text, valid_from, None, actor, run_id, metadata)

    def _write_one(self, op: Operation, namespace: str, key: str, valid_from: datetime | None, value: Any,
                   actor: str | None, run_id: str | None, metadata: dict[str, str] | None,
                   expected: dict[tuple[str, str], int] | None = None) -> Version:
        actor, run_id = reads.provenance(actor, run_id)
        meta = check_metadata(metadata)
        result, prepared, record = self._writer.commit([op], actor=actor, run_id=run_id, metadata=meta,
                                                       expected=expected)
        return reads.version_written(self._ctx, namespace, key, result, prepared, valid_from, value, record=record)

    def upsert(
        self, namespace: str, data: Any, *, key: str | Sequence[str],
        valid_from: datetime | str | None = None, delete_missing: bool = False,
        actor: str | None = None, run_id: str | None = None, parents: Iterable[str] = (),
        metadata: dict[str, str] | None = None,
    ) -> CommitResult:
        """Write many rows as versions in one commit; unchanged rows record no version.

        Args:
            namespace: Namespace name.
            data: pyarrow Table / RecordBatch / RecordBatchReader, Polars or
                pandas DataFrame, or a list of dicts.
            key: The key column, or several (a composite key); the namespace
                remembers them, so later calls may address keys as written.
            valid_from: A tz-aware datetime for all rows, the name of a
                timestamp column giving each row's valid time (a backfill may
                hold many versions of one key), or None (the commit's time).
                A named column becomes ``_valid_from`` and is not stored as a
                value field.
            delete_missing: Tombstone every live key absent from ``data`` (a
                full snapshot: change data capture from snapshots).
            actor, run_id, parents: Provenance for every row. A ``_write_id``
                column (from a koru read) adds each row's source as a parent.
            metadata: str → str recorded with the commit (:attr:`Commit.metadata`).

        Returns:
            :class:`CommitResult` with the commit number (None if nothing was
            recorded) and the counts written, unchanged and deleted. A row equal
            to its key's version before it at an earlier valid time is counted
            unchanged and recorded as a skip (see DESIGN.md, "As-of, precisely").

        Raises:
            InvalidInputError: bad data, missing/null key column, other key columns
                than the namespace's, two rows with the same key and valid time,
                naive or null valid times.
            SchemaError: a field's type cannot widen the stored type.

        Example:
            >>> store.upsert("users", [{"id": "carol", "age": 5}], key="id").written
            1
        """
        batch = batch_from_table(namespace, data, key=key, valid_from=valid_from, parents=parents)
        actor, run_id = reads.provenance(actor, run_id)
        op = Operation(batch, delete_missing=reads.check_bool(delete_missing, "delete_missing"))
        return self._writer.commit([op], actor=actor, run_id=run_id, metadata=check_metadata(metadata))[0]

    def transaction(
        self, *, actor: str | None = None, run_id: str | None = None, metadata: dict[str, str] | None = None,
    ) -> Transaction:
        """Return a context manager committing everything written in it atomically.

        A transaction opened inside another (same store, same thread) joins it.

        Example:
            >>> with store.transaction(actor="etl") as tx:
            ...     tx.put("users", "dan", {"age": 1})
            >>> tx.result.written
            1
        """
        actor, run_id = reads.provenance(actor, run_id)
        return Transaction(self._writer, actor=actor, run_id=run_id, metadata=check_metadata(metadata),
                           key_of=lambda ns, k: reads.key_and_fields(self._ctx, ns, k))

    # -- reads -------------------------------------------------------------------

    def plan(
        self, namespace: str, *, at: datetime | None = None, version: int | None = None, key: KeyLike | None = None,
        shape: str = "as_of", columns: Sequence[str] | None = None,
    ) -> ReadPlan:
        """Return the :class:`ReadPlan` of a read: every decision made, for an engine to translate.

        This is how DuckDB and Polars learn what to scan (see :mod:`koru_core.read.plan`).

        Args:
            shape: ``"as_of"`` (at ``at``/``version``), ``"history"`` (one ``key``) or
                ``"versions"`` (every version up to ``version``).

        Raises:
            NamespaceNotFoundError, InvalidInputError, PrunedError: as the matching read.

        Example:
            >>> plan = store.plan("users")
            >>> plan.strategy in ("intervals", "latest", "merge")
            True
        """
        return reads.plan(self._ctx, namespace, at=at, version=version, key=key, shape=shape, columns=columns)

    def get(self, namespace: str, key: KeyLike, *, at: datetime | None = None, version: int | None = None) -> Any:
        """Return the value of ``key`` as of valid time ``at`` and commit ``version``.

        Returns:
            A dict of the namespace's fields (null fields as None), or the bare
            value for a namespace whose only field is ``value``.

        Raises:
            KeyNotFoundError: no live version at that point.
            NamespaceNotFoundError: the namespace was never written.
            PrunedError: distillation dropped the versions valid there.

        Example:
            >>> store.get("users", "alice")["age"]
            31
        """
        return reads.get(self._ctx, namespace, key, at=at, version=version)

    def version_at(
        self, namespace: str, key: KeyLike, *, at: datetime | None = None, version: int | None = None,
    ) -> Version:
        """Return the :class:`Version` of ``key`` that holds at valid time ``at`` and commit ``version``:
        its value, valid from/to, commit, write id and provenance.

        Raises:
            KeyNotFoundError: no live version at that point.
            NamespaceNotFoundError, PrunedError: as :meth:`get`.

        Example:
            >>> store.version_at("users", "alice").value["age"]
            31
        """
        return reads.version_at(self._ctx, namespace, key, at=at, version=version)

    def as_of(
        self, namespace: str, *, at: datetime | None = None, version: int | None = None,
        columns: Sequence[str] | None = None, sort: bool = False,
    ) -> pa.Table:
        """Return the records of a namespace as they stood at a point in time.

        Args:
            namespace: Existing namespace name.
            at: Valid time (tz-aware; converted to UTC, ns precision). Defaults to now.
            version: Commit number bounding system time. Defaults to the latest commit.
            columns: Value columns to return (default all), in order; a column named twice comes once.
            sort: Sort the rows by ``_key`` (default: no particular order).

        Returns:
            One row per live key: the value columns, then ``_key`` (string),
            ``_valid_from`` and ``_system_from`` (timestamp[ns, UTC]), ``_commit``
            (int64), ``_write_id`` (string, 16 hex).

        Raises:
            NamespaceNotFoundError: if ``namespace`` was never written.
            InvalidInputError: if ``at`` is naive or ``version`` is not a commit number.
            PrunedError: distillation dropped versions valid at that point.

        Example:
            >>> store.as_of("users").num_rows
            2
        """
        return reads.as_of(self._ctx, namespace, at=at, version=version, columns=columns, sort=sort)

    def keys(self, namespace: str, *, at: datetime | None = None, version: int | None = None) -> list[str]:
        """Return the live keys (``_key``) at (``at``, ``version``), sorted.

        Example:
            >>> store.keys("users")
            ['alice', 'bob']
        """
        return sorted(self.as_of(namespace, at=at, version=version, columns=[])["_key"].to_pylist())

    def history(self, namespace: str, key: KeyLike) -> pa.Table:
        """Return every version of ``key``, oldest first (by valid time, then commit).

        Returns:
            The value columns, then every system column of
            :data:`koru_core.model.SYSTEM_SCHEMA`, ``_valid_to`` computed.
            Tombstones are included (``_deleted`` true, value columns null).
            Once the namespace was distilled, versions pruned by :meth:`distill`
            are included too (their value columns null) and a last bool column
            ``_pruned`` marks them. Rows skipped as unchanged are not shown.

        Raises:
            NamespaceNotFoundError: unknown namespace. An unknown key gives an empty table.

        Example:
            >>> store.history("users", "alice").num_rows
            1
        """
        return reads.history(self._ctx, namespace, key)

    def versions(self, namespace: str, *, version: int | None = None) -> pa.Table:
        """Return every version of every key up to commit ``version``, with ``_valid_to``.

        Same columns as :meth:`history`, sorted by ``_key``, ``_valid_from``, ``_commit``.

        Example:
            >>> store.versions("users")["_key"].to_pylist()
            ['alice', 'bob']
        """
        return reads.versions(self._ctx, namespace, version=version)

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
            InvalidInputError: mixed or invalid bounds, or ``since`` after ``until``.

        Example:
            >>> store.changes("users", since=0)["op"].to_pylist()[:1]
            ['insert']
        """
        return reads.changes(self._ctx, namespace, since=since, until=until)

    def diff(
        self, namespace: str, key: KeyLike, a: int | datetime | str | None = None,
        b: int | datetime | str | None = None,
    ) -> list[FieldChange]:
        """Return the fields that differ between two versions of ``key``.

        Args:
            a, b: A version, given as a write id (str), a commit number (the
                version current at that commit) or a valid time (datetime).
                ``b`` defaults to the current version, ``a`` to the one before ``b``.

        Raises:
            KeyNotFoundError: the key, or a named version, does not exist.
            InvalidInputError: a commit number that is not a commit.

        Example:
            >>> _ = store.put("users", "alice", {"name": "Alice", "age": 32})
            >>> [(c.field, c.before, c.after) for c in store.diff("users", "alice")]
            [('age', 31, 32)]
        """
        full = self.history(namespace, key)
        head = self._ctx.catalog.head()[0]
        return _diff.diff(full, namespace, reads.key_of(self._ctx, namespace, key), a, b, head=head)

    def lineage(self, namespace: str, key: KeyLike, *, max_depth: int | None = None) -> Lineage:
        """Return the ancestor graph of ``key``'s latest written version, across namespaces.

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
        return _lineage.lineage(self, namespace, reads.key_of(self._ctx, namespace, key), max_depth=max_depth)

    def namespaces(self) -> list[str]:
        """Return the names of every namespace ever written, sorted.

        Example:
            >>> store.namespaces()
            ['users']
        """
        return self._ctx.catalog.namespaces()

    def key_columns(self, namespace: str) -> tuple[str, ...]:
        """Return the key columns a namespace remembers (empty when written by ``put`` only).

        Raises:
            NamespaceNotFoundError: the namespace was never written.

        Example:
            >>> store.key_columns("users")
            ()
        """
        return reads.require_namespace(self._ctx, namespace).key_columns

    def schema(self, namespace: str) -> pa.Schema:
        """Return a namespace's value schema (the union of every field written).

        Raises:
            NamespaceNotFoundError: the namespace was never written.

        Example:
            >>> store.schema("users").names
            ['name', 'age']
        """
        return reads.require_namespace(self._ctx, namespace).schema

    def commits(
        self, *, namespace: str | None = None, metadata: dict[str, str] | None = None, since: int = 0,
    ) -> list[Commit]:
        """Return the commit log, oldest first (number, system time, provenance, counts, metadata, hash).

        Args:
            namespace: Only the commits that wrote this namespace.
            metadata: Only the commits whose metadata holds every one of these items.
            since: Only the commits after this commit number.

        Example:
            >>> [(c.commit, c.namespaces, c.written) for c in store.commits()][:2]
            [(1, ('users',), 1), (2, ('users',), 1)]
        """
        return reads.commits(self._ctx, namespace=namespace, metadata=check_metadata(metadata) or {},
                             since=reads.check_commit(since, "since"))

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
            >>> "tier" in store.stats().column_names
            True
        """
        from koru_core.stats import store_stats

        hot = self._ctx.hot
        return store_stats(self._ctx.catalog, memory=hot.memory_bytes(), hits=hot.hits)

    def flush(self) -> None:
        """Move every pending version of every namespace into cold files (consolidation).

        Example:
            >>> store.flush()
            >>> sorted({r["tier"] for r in store.stats().to_pylist() if r["versions"]})
            ['cold']
        """
        self.consolidate()

    def version(self) -> int:
        """Return the store's latest commit number (0 when nothing was committed), as
        ``DeltaTable.version()`` returns a Delta table's.

        Example:
            >>> store.version() >= 1
            True
        """
        return int(self._ctx.catalog.head()[0])

    def commit_at(self, system_time: datetime) -> int:
        """Return the last commit recorded at or before ``system_time`` (0 if none).

        Example:
            >>> from datetime import datetime, timezone
            >>> store.commit_at(datetime.now(timezone.utc)) >= 1
            True
        """
        return reads.commit_at(self._ctx, system_time)

    def _require_writable(self) -> None:
        if self._ctx.read_only:
            msg = f"store {str(self.path)!r} was opened read-only"
            raise InvalidInputError(msg)

