"""The write path: turning checked batches into the versions of one commit.

Given the rows bound for one namespace, :func:`prepare` decides which rows are
new versions and which are unchanged, chains each key's versions, assigns write
ids and content ids, and returns the version table to persist. It reads only
the in-memory :class:`~koru_core._index.HeadIndex`, plus, for late-arriving
rows (a valid time earlier than the key's current one), those keys' history.

Unchanged rule (issue 2): a row whose content equals the key's as-of version at
the row's valid time is a no-op, counted but not written. Rows of one batch are
taken in valid-time order, so within a backfill a row equal to the row before
it is unchanged too. A tombstone for a key with no live version is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import blake3
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._index import HeadIndex
from koru_core.hashing import content_id, content_ids
from koru_core.input import Batch
from koru_core.model import STORED_COLUMNS, SYSTEM_SCHEMA, TIMESTAMP, write_id_for
from koru_core.schema import conform, union_schema

__all__ = ["Prepared", "commit_hash", "merge_batches", "prepare", "prepare_single"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Prepared:
    """The versions one commit writes to one namespace.

    Attributes:
        namespace: The namespace.
        schema: Its value schema after this commit (the union).
        versions: Stored columns (:data:`~koru_core.model.STORED_COLUMNS`) then
            the value columns, sorted by (``_key``, ``_valid_from``); only rows
            that are written.
        written, unchanged, deleted: Counts of value versions written, rows
            skipped, tombstones written.
    """

    namespace: str
    schema: pa.Schema
    versions: pa.Table
    written: int
    unchanged: int
    deleted: int


def merge_batches(batches: Sequence[Batch], *, stored_schema: pa.Schema | None, system_time: int) -> pa.Table:
    """Concatenate one namespace's batches into one table of rows to write.

    Returns:
        Columns ``__key`` (string), ``__valid`` (int64 ns), ``__deleted``
        (bool), ``__parents`` (list<string>), ``__seq`` (int64 input order), then
        the value columns conformed to the union of ``stored_schema`` and the
        batches' schemas. Rows with the same (key, valid time) keep the last
        one (later operations in a transaction win).

    Raises:
        SchemaError: a field's types cannot widen.
    """
    namespace = batches[0].namespace
    schema = stored_schema or pa.schema([])
    for b in batches:
        schema = union_schema(namespace, schema, b.values.schema)
    parts = []
    for b in batches:
        n = b.num_rows
        columns = {
            "__key": b.keys,
            "__valid": b.valid_from if b.valid_from is not None else pa.array([system_time] * n, pa.int64()),
            "__deleted": b.is_deleted if b.is_deleted is not None else pa.array([False] * n),
            "__parents": b.parents if b.parents is not None else pa.nulls(n, pa.list_(pa.string())),
        }
        for field in schema:
            if field.name in b.values.column_names:
                columns[field.name] = b.values[field.name].cast(field.type)
            else:
                columns[field.name] = pa.nulls(n, field.type)
        parts.append(pa.table(columns))
    rows = pa.concat_tables(parts)
    rows = rows.add_column(4, "__seq", pa.array(range(rows.num_rows), pa.int64()))
    if len(batches) > 1:
        last = rows.group_by(["__key", "__valid"]).aggregate([("__seq", "max")])["__seq_max"]
        rows = rows.take(pc.sort(last))
    return rows


def prepare(
    namespace: str,
    rows: pa.Table,
    *,
    stored_schema: pa.Schema | None,
    index: HeadIndex,
    history: Callable[[list[str]], pa.Table],
    commit: int,
    system_time: int,
    first_ordinal: int,
    actor: str | None,
    run_id: str | None,
) -> Prepared:
    """Decide, chain and build the versions of one namespace for one commit.

    Args:
        namespace: Target namespace.
        rows: From :func:`merge_batches`.
        stored_schema: The namespace's value schema so far (None if new).
        index: Its current-state index, up to date to ``commit - 1``.
        history: Returns every stored version of the given keys, with columns
            ``_key``, ``_valid_from``, ``_commit``, ``_content_id``, ``_deleted``.
        commit: This commit's number.
        system_time: This commit's system time, ns since epoch (UTC).
        first_ordinal: Ordinal of this namespace's first version in the commit.
        actor, run_id: Provenance recorded on every version.

    Raises:
        SchemaError: a field's type cannot widen.
    """
    names = rows.column_names[5:]
    schema = pa.schema([rows.schema.field(n) for n in names])
    values = rows.select(names)
    is_deleted = rows["__deleted"].combine_chunks()
    live = pc.invert(is_deleted)
    cids = pc.if_else(live, _content_ids_where(values, live), pa.scalar(None, pa.string()))

    order = pc.sort_indices(rows, sort_keys=[("__key", "ascending"), ("__valid", "ascending")])
    keys = rows["__key"].take(order).to_pylist()
    valid = rows["__valid"].take(order).to_pylist()
    deleted = is_deleted.take(order).to_pylist()
    cid = cids.take(order).to_pylist()

    late = sorted({k for k, v in zip(keys, valid) if (h := index.get(k)) is not None and v < h.valid_from})
    past = _history_by_key(history(late)) if late else {}

    keep: list[int] = []
    prev_ids: list[str | None] = []
    write_ids: list[str] = []
    ordinal = first_ordinal
    prev_key = None
    existing: list[tuple[int, int, str | None]] = []
    ptr = 0
    before: object = _MISSING
    last_written: str | None = None
    for i, k in enumerate(keys):
        if k != prev_key:
            prev_key, ptr, before = k, 0, _MISSING
            head = index.get(k)
            existing = past.get(k, []) if k in past else ([] if head is None else [(head.valid_from, head.commit, head.content_id)])
            last_written = None if head is None else head.last_write_id
        while ptr < len(existing) and existing[ptr][0] <= valid[i]:
            before = existing[ptr][2]
            ptr += 1
        current = None if deleted[i] else cid[i]
        if current == before or (current is None and before is _MISSING):
            before = current
            continue
        before = current
        wid = write_id_for(commit, ordinal)
        ordinal += 1
        keep.append(i)
        prev_ids.append(last_written)
        write_ids.append(wid)
        last_written = wid

    taken = order.take(pa.array(keep, pa.int64())) if keep else pa.array([], pa.int64())
    n = len(keep)
    out_deleted = is_deleted.take(taken)
    n_deleted = pc.sum(out_deleted.cast(pa.int64())).as_py() or 0
    system = {
        "_key": rows["__key"].take(taken),
        "_valid_from": rows["__valid"].take(taken).cast(TIMESTAMP),
        "_system_from": pa.array([system_time] * n, pa.int64()).cast(TIMESTAMP),
        "_commit": pa.array([commit] * n, pa.int64()),
        "_write_id": pa.array(write_ids, pa.string()),
        "_prev_write_id": pa.array(prev_ids, pa.string()),
        "_content_id": cids.take(taken),
        "_deleted": out_deleted,
        "_actor": pa.array([actor] * n, pa.string()),
        "_run_id": pa.array([run_id] * n, pa.string()),
        "_parents": rows["__parents"].take(taken),
    }
    stored = pa.schema([SYSTEM_SCHEMA.field(c) for c in STORED_COLUMNS])
    versions = pa.table([system[c] for c in STORED_COLUMNS], schema=stored)
    for field in schema:
        versions = versions.append_column(field, rows[field.name].take(taken))
    return Prepared(namespace, schema, versions, n - n_deleted, rows.num_rows - n, n_deleted)


def prepare_single(
    batch: Batch,
    *,
    stored_schema: pa.Schema | None,
    index: HeadIndex,
    commit: int,
    system_time: int,
    first_ordinal: int,
    actor: str | None,
    run_id: str | None,
) -> Prepared | None:
    """The fast path of :func:`prepare` for one put or delete.

    Same rules and result as :func:`prepare`, without sorting or Arrow compute.
    Returns None when the row arrives late (valid time earlier than the key's
    current one), which needs the key's history: use :func:`prepare` then.
    """
    namespace = batch.namespace
    key = batch.keys[0].as_py()
    valid = system_time if batch.valid_from is None else batch.valid_from[0].as_py()
    head = index.get(key)
    if head is not None and valid < head.valid_from:
        return None
    is_deleted = batch.is_deleted is not None
    stored = stored_schema or pa.schema([])
    schema = stored if batch.values.schema == stored else union_schema(namespace, stored, batch.values.schema)
    empty = pa.table([pa.array([], f.type) for f in schema], schema=schema)
    if is_deleted:
        if head is None or head.content_id is None:
            return Prepared(namespace, schema, empty, 0, 1, 0)
        cid = None
    else:
        cid = content_id(batch.record) if batch.record is not None else content_ids(batch.values)[0].as_py()
        if head is not None and head.content_id == cid:
            return Prepared(namespace, schema, empty, 0, 1, 0)
    system = {
        "_key": pa.array([key], pa.string()),
        "_valid_from": pa.array([valid], TIMESTAMP),
        "_system_from": pa.array([system_time], TIMESTAMP),
        "_commit": pa.array([commit], pa.int64()),
        "_write_id": pa.array([write_id_for(commit, first_ordinal)], pa.string()),
        "_prev_write_id": pa.array([None if head is None else head.last_write_id], pa.string()),
        "_content_id": pa.array([cid], pa.string()),
        "_deleted": pa.array([is_deleted]),
        "_actor": pa.array([actor], pa.string()),
        "_run_id": pa.array([run_id], pa.string()),
        "_parents": batch.parents if batch.parents is not None else pa.nulls(1, pa.list_(pa.string())),
    }
    values = conform(batch.values, schema) if not is_deleted else None
    columns = [system[c] for c in STORED_COLUMNS] + [
        values.column(f.name) if values is not None else pa.nulls(1, f.type) for f in schema
    ]
    stored_fields = [SYSTEM_SCHEMA.field(c) for c in STORED_COLUMNS] + list(schema)
    versions = pa.table(columns, schema=pa.schema(stored_fields))
    return Prepared(namespace, schema, versions, 0 if is_deleted else 1, 0, 1 if is_deleted else 0)


def _content_ids_where(values: pa.Table, live: pa.Array) -> pa.Array:
    """Content ids for the live rows, null for tombstones (not hashed)."""
    if pc.all(live).as_py() is not False:
        return content_ids(values)
    idx = pc.indices_nonzero(live)
    ids = content_ids(values.take(idx)).to_pylist()
    out: list[str | None] = [None] * len(live)
    for i, v in zip(idx.to_pylist(), ids):
        out[i] = v
    return pa.array(out, pa.string())


def _history_by_key(versions: pa.Table) -> dict[str, list[tuple[int, int, str | None]]]:
    """Group stored versions per key as (valid ns, commit, content id or None), sorted."""
    order = pc.sort_indices(
        versions, sort_keys=[("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")]
    )
    t = versions.take(order)
    out: dict[str, list[tuple[int, int, str | None]]] = {}
    for k, v, c, cid, d in zip(
        t["_key"].to_pylist(), t["_valid_from"].cast(pa.int64()).to_pylist(),
        t["_commit"].to_pylist(), t["_content_id"].to_pylist(), t["_deleted"].to_pylist(),
    ):
        out.setdefault(k, []).append((v, c, None if d else cid))
    return out


def commit_hash(prev_hash: str | None, *, commit: int, system_time: int, versions: Sequence[pa.Table]) -> str:
    """Return the commit's chain hash: blake3 over the previous hash, the commit
    number and time, and every version's write id and content id (as in Git's or
    Dolt's commit chains: editing any earlier commit changes every later hash)."""
    h = blake3.blake3()
    h.update(f"{prev_hash or ''}\n{commit}\n{system_time}\n".encode())
    for t in versions:
        for wid, cid in zip(t["_write_id"].to_pylist(), t["_content_id"].to_pylist()):
            h.update(f"{wid}:{cid or '-'}\n".encode())
    return h.hexdigest()
