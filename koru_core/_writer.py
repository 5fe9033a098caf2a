"""The commit sequence: lock, number, prepare, persist, then update the hot tier.

:class:`Writer` owns a store's write lock, its current-state indexes and its
cache of recently written values. Store methods hand it a list of operations;
it turns them into exactly one commit (or none, when every row is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from koru_core._head import HeadFile
from koru_core._index import INDEX_COLUMNS, HeadIndex
from koru_core._lock import WriteLock
from koru_core._time import now_ns
from koru_core.catalog import Catalog
from koru_core.commit import flush, persist
from koru_core.input import Batch
from koru_core.model import CommitResult
from koru_core.read import row_value
from koru_core.scan import plan_scan, read_versions
from koru_core.write import Prepared, commit_hash, merge_batches, prepare, prepare_single

__all__ = ["Operation", "Writer"]

CACHE_ENTRY_BYTES = 512
"""Estimated memory of one cached value (dict, key and tuple overheads), for ``memory_limit``."""

DEFAULT_MEMORY_LIMIT = 512 * 1024 * 1024
"""Default bound of the hot tier (current-state indexes plus cached values), in bytes."""

RELEASE_AFTER_ROWS = 10_000
"""After a commit of more versions than this, the Arrow memory pool returns freed
memory to the operating system, so a long ingest does not hold its peak."""

CACHE_MAX_ROWS = 1024
"""Commits writing at most this many versions to a namespace refresh the value cache."""

TOMBSTONE = object()


@dataclass(frozen=True, slots=True)
class Operation:
    """One buffered write: a batch, and whether to tombstone the keys it lacks."""

    batch: Batch
    delete_missing: bool = False


class Writer:
    """Commits operations to one store (see module docstring)."""

    def __init__(
        self, root: Path, catalog: Catalog, *, lock_timeout: float, memory_limit: int = DEFAULT_MEMORY_LIMIT
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.lock = WriteLock(root / "write.lock", timeout=lock_timeout)
        self.head_file = HeadFile(root / "head")
        self.indexes: dict[str, HeadIndex] = {}
        self.cache: dict[str, dict[str, Any]] = {}  # namespace -> key -> current value
        self.cache_commit = -1
        self.schemas: dict[str, pa.Schema | None] = {}
        self.memory_limit = memory_limit
        self.hits: dict[str, list[int]] = {}  # namespace -> [hits, misses] of the value cache
        self.after_commit: Callable[[list[str]], None] | None = None
        """Called with the namespaces written, after each commit, the lock held (auto-consolidation)."""

    # -- hot tier -------------------------------------------------------------

    def index(self, namespace: str, head_commit: int) -> HeadIndex:
        """Return the namespace's index, brought up to ``head_commit``."""
        index = self.indexes.pop(namespace, None) or HeadIndex()
        self.indexes[namespace] = index  # most recently used last
        if index.commit < head_commit and namespace in self.catalog.namespaces():
            plan = plan_scan(self.root, self.catalog, namespace, version=head_commit)
            newer = ds.field("_commit") > index.commit
            index.apply(read_versions(self.root, plan, columns=INDEX_COLUMNS, filter=newer), commit=head_commit)
        index.commit = max(index.commit, head_commit)
        return index

    def cached(self, namespace: str, key: str) -> Any:
        """Return the cached current value of a key, :data:`TOMBSTONE`, or None (unknown)."""
        counts = self.hits.setdefault(namespace, [0, 0])
        value = self.cache.get(namespace, {}).get(key) if self.head_file.read() == self.cache_commit else None
        counts[value is None] += 1
        return value

    def remember(self, namespace: str, key: str, value: Any, *, commit: int) -> None:
        """Cache a key's current value, read at the store's last commit ``commit``."""
        if commit != self.cache_commit:
            self.cache.clear()
            self.cache_commit = commit
        self.cache.setdefault(namespace, {})[key] = value
        self.enforce_memory_limit()

    # -- commits --------------------------------------------------------------

    def commit(
        self, operations: Sequence[Operation], *, actor: str | None, run_id: str | None,
        metadata: dict[str, str] | None = None,
    ) -> tuple[CommitResult, list[Prepared]]:
        """Turn ``operations`` into one durable commit.

        Returns:
            The result, and per namespace what was written.

        Raises:
            StoreLockedError: another writer held the lock past the timeout.
            SchemaError: a field type cannot widen (nothing is written).
        """
        with self.lock:
            head, head_time, head_hash = self.catalog.head()
            if head != self.cache_commit:
                self.cache.clear()
                self.schemas.clear()
                self.cache_commit = head
            commit, system_time = head + 1, max(now_ns() // 1000 * 1000, head_time + 1000)
            prepared: list[Prepared] = []
            reshaped: set[str] = set()
            unchanged, ordinal = 0, 0
            for namespace, ops in _group(operations).items():
                p, stored = self._prepare(namespace, ops, head, commit, system_time, ordinal, actor, run_id)
                prepared.append(p)
                if stored != p.schema:
                    reshaped.add(namespace)
                unchanged += p.unchanged
                ordinal += p.versions.num_rows
            if ordinal == 0:
                result = CommitResult(commit=None, unchanged=unchanged)
                return result, prepared
            digest = commit_hash(head_hash, commit=commit, system_time=system_time, versions=[p.versions for p in prepared])
            persist(
                self.root, self.catalog, prepared, commit=commit, system_time=system_time,
                actor=actor, run_id=run_id, unchanged=unchanged, commit_hash=digest, prev_hash=head_hash,
                metadata=metadata,
            )
            self.head_file.write(commit)
            self._after_commit(prepared, reshaped, commit)
            for p in prepared:
                flush(self.root, self.catalog, p.namespace)
            if ordinal > RELEASE_AFTER_ROWS:  # large commits leave large freed buffers: hand them back
                pa.default_memory_pool().release_unused()
            if self.after_commit is not None:
                self.after_commit([p.namespace for p in prepared if p.versions.num_rows])
        result = CommitResult(
            commit=commit,
            written=sum(p.written for p in prepared),
            unchanged=unchanged,
            deleted=sum(p.deleted for p in prepared),
            namespaces=tuple(sorted(p.namespace for p in prepared if p.versions.num_rows)),
        )
        return result, prepared

    def _prepare(
        self, namespace: str, ops: list[Operation], head: int, commit: int, system_time: int,
        ordinal: int, actor: str | None, run_id: str | None,
    ) -> tuple[Prepared, pa.Schema | None]:
        if namespace not in self.schemas:
            self.schemas[namespace] = self.catalog.schema(namespace)
        stored = self.schemas[namespace]
        if len(ops) == 1 and ops[0].batch.num_rows == 1 and not ops[0].delete_missing:
            quick = prepare_single(
                ops[0].batch, stored_schema=stored, index=self.index(namespace, head), commit=commit,
                system_time=system_time, first_ordinal=ordinal, actor=actor, run_id=run_id,
            )
            if quick is not None:
                return quick, stored
        rows = merge_batches([op.batch for op in ops], stored_schema=stored, system_time=system_time)
        index = self.index(namespace, head)
        if any(op.delete_missing for op in ops):
            rows = _add_missing_tombstones(rows, index, system_time)

        def history(keys: list[str]) -> pa.Table:
            plan = plan_scan(self.root, self.catalog, namespace, version=head)
            cols = ["_key", "_valid_from", "_commit", "_content_id", "_deleted"]
            return read_versions(self.root, plan, columns=cols, filter=ds.field("_key").isin(keys))

        p = prepare(
            namespace, rows, stored_schema=stored, index=index, history=history,
            commit=commit, system_time=system_time, first_ordinal=ordinal, actor=actor, run_id=run_id,
        )
        return p, stored

    def _after_commit(self, prepared: list[Prepared], reshaped: set[str], commit: int) -> None:
        for p in prepared:
            index = self.indexes[p.namespace]
            if not p.versions.num_rows:  # every row unchanged (e.g. prepare_single's empty table)
                index.commit = max(index.commit, commit)
                continue
            self.schemas[p.namespace] = p.schema
            if p.versions.num_rows == 1:
                v = p.versions
                index.apply_one(
                    v["_key"][0].as_py(), v["_valid_from"].cast(pa.int64())[0].as_py(),
                    None if v["_deleted"][0].as_py() else v["_content_id"][0].as_py(),
                    v["_write_id"][0].as_py(), commit=commit,
                )
            else:
                index.apply(p.versions.select(list(INDEX_COLUMNS)), commit=commit)
            if p.versions.num_rows > CACHE_MAX_ROWS or p.namespace in reshaped:
                self._forget(p.namespace)
            else:
                self._cache_rows(p, index, commit)
        self.cache_commit = commit
        self.enforce_memory_limit()

    def memory_bytes(self) -> dict[str, int]:
        """Estimated bytes of the hot tier per namespace: its index and cached values."""
        out = {ns: index.nbytes() for ns, index in self.indexes.items()}
        for ns, values in self.cache.items():
            out[ns] = out.get(ns, 0) + CACHE_ENTRY_BYTES * len(values)
        return out

    def enforce_memory_limit(self) -> None:
        """Keep the hot tier under ``memory_limit`` bytes.

        First the cached values go, then whole indexes, least recently used
        first; an evicted index is rebuilt from the files when next needed.
        """
        indexes = sum(i.nbytes() for i in self.indexes.values())
        if indexes + CACHE_ENTRY_BYTES * sum(map(len, self.cache.values())) <= self.memory_limit:
            return
        self.cache.clear()
        while len(self.indexes) > 1 and sum(i.nbytes() for i in self.indexes.values()) > self.memory_limit:
            del self.indexes[next(iter(self.indexes))]

    def _forget(self, namespace: str) -> None:
        self.cache.pop(namespace, None)

    def _cache_rows(self, p: Prepared, index: HeadIndex, commit: int) -> None:
        names = list(p.schema.names)
        keys = p.versions["_key"].to_pylist()
        valid = p.versions["_valid_from"].cast(pa.int64()).to_pylist()
        deleted = p.versions["_deleted"].to_pylist()
        records = p.versions.select(names).to_pylist()
        for k, v, d, rec in zip(keys, valid, deleted, records):
            head = index.get(k)
            # the cache holds the value as of *now*: a head valid only in the future is not it
            if head is not None and head.valid_from == v and head.commit == commit and v <= now_ns():
                self.cache.setdefault(p.namespace, {})[k] = TOMBSTONE if d else row_value(rec, names)
            else:
                self.cache.get(p.namespace, {}).pop(k, None)


def _group(operations: Sequence[Operation]) -> dict[str, list[Operation]]:
    groups: dict[str, list[Operation]] = {}
    for op in operations:
        groups.setdefault(op.batch.namespace, []).append(op)
    return groups


def _add_missing_tombstones(rows: pa.Table, index: HeadIndex, system_time: int) -> pa.Table:
    """Append tombstones for keys live in ``index`` but absent from ``rows``
    (at the batch's latest valid time)."""
    live = index.live_keys()
    missing = sorted(live.filter(pc.invert(pc.is_in(live, value_set=rows["__key"]))).to_pylist())
    if not missing:
        return rows
    valid = max(rows["__valid"].to_pylist(), default=system_time)
    n = len(missing)
    extra = {
        "__key": pa.array(missing, pa.string()),
        "__valid": pa.array([valid] * n, pa.int64()),
        "__deleted": pa.array([True] * n),
        "__parents": pa.nulls(n, pa.list_(pa.string())),
        "__seq": pa.array(range(rows.num_rows, rows.num_rows + n), pa.int64()),
    }
    columns = [extra.get(f.name, pa.nulls(n, f.type)) for f in rows.schema]
    return pa.concat_tables([rows, pa.table(columns, schema=rows.schema)])
