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
from koru_core.schema import conform_input, union_schema

__all__ = ["Prepared", "commit_hash", "merge_batches", "prepare", "prepare_single"]


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
            "__valid": b.valid_from if b.valid_from is not None else pa.repeat(pa.scalar(system_time, pa.int64()), n),
            "__deleted": b.is_deleted if b.is_deleted is not None else pa.repeat(pa.scalar(False), n),
            "__parents": b.parents if b.parents is not None else pa.nulls(n, pa.list_(pa.string())),
        }
        values = conform_input(namespace, b.values, schema)
        columns.update(zip(values.column_names, values.columns, strict=True))
        parts.append(pa.table(columns))
    rows = pa.concat_tables(parts)
    rows = rows.add_column(4, "__seq", pa.array(range(rows.num_rows), pa.int64()))
    if len(batches) > 1:
        last = rows.group_by(["__key", "__valid"]).aggregate([("__seq", "max")])["__seq_max"]
        rows = rows.take(last.sort())
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
    sorted_keys = rows["__key"].take(order).combine_chunks()
    sorted_valid = rows["__valid"].take(order).combine_chunks()
    sorted_cids = cids.take(order)
    heads = index.lookup(sorted_keys)
    late = pc.fill_null(pc.less(sorted_valid, heads["valid_from"]), False)
    past = None
    if pc.any(late).as_py():
        past = history(pc.unique(sorted_keys.filter(late)).to_pylist())
    keep_idx = _decide(sorted_keys, sorted_valid, sorted_cids, heads, past)
    prev = heads["last_write_id"].combine_chunks().take(keep_idx)
    n = len(keep_idx)
    prefix = f"{commit:08x}"
    write_ids = pa.array([f"{prefix}{o:08x}" for o in range(first_ordinal, first_ordinal + n)], pa.string())
    prev = _chain(sorted_keys.take(keep_idx), write_ids, prev)
    taken = order.take(keep_idx)
    out_deleted = is_deleted.take(taken)
    n_deleted = pc.sum(out_deleted.cast(pa.int64())).as_py() or 0
    system = {
        "_key": rows["__key"].take(taken),
        "_valid_from": rows["__valid"].take(taken).cast(TIMESTAMP),
        "_system_from": pa.repeat(pa.scalar(system_time, TIMESTAMP), n),
        "_commit": pa.repeat(pa.scalar(commit, pa.int64()), n),
        "_write_id": write_ids,
        "_prev_write_id": prev,
        "_content_id": cids.take(taken),
        "_deleted": out_deleted,
        "_actor": pa.repeat(pa.scalar(actor, pa.string()), n),
        "_run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "_parents": rows["__parents"].take(taken),
    }
    stored = pa.schema([SYSTEM_SCHEMA.field(c) for c in STORED_COLUMNS])
    versions = pa.table([system[c] for c in STORED_COLUMNS], schema=stored)
    for field in schema:
        versions = versions.append_column(field, rows[field.name].take(taken))
    return Prepared(namespace, schema, versions, n - n_deleted, rows.num_rows - n, n_deleted)


def _shift(arr: pa.Array) -> pa.Array:
    """``arr`` moved down one row (the first row null)."""
    return pa.concat_arrays([pa.nulls(1, arr.type), arr.slice(0, len(arr) - 1)]) if len(arr) else arr


def _same_as_previous(keys: pa.Array) -> pa.Array:
    """bool per row: the row before has the same key (keys sorted)."""
    n = len(keys)
    if n == 0:
        return pa.array([], pa.bool_())
    return pa.concat_arrays([pa.array([False]), pc.equal(keys.slice(1), keys.slice(0, n - 1))])


def _chain(keys: pa.Array, write_ids: pa.Array, first_prev: pa.Array) -> pa.Array:
    """``_prev_write_id`` of written rows sorted by (key, valid time): the row
    before's write id within a key, ``first_prev`` for a key's first row."""
    return pc.if_else(_same_as_previous(keys), _shift(write_ids), first_prev)


def _decide(
    keys: pa.Array, valid: pa.Array, cids: pa.Array, heads: pa.Table, past: pa.Table | None
) -> pa.Array:
    """Apply the unchanged rule to incoming rows sorted by (key, valid time).

    Each incoming row is compared with its *before*: the version the as-of
    rule picks at the row's valid time among the stored versions and the
    batch's earlier rows. Stored versions and incoming rows are merged in one
    sort by (key, valid time, stored first, commit), so the before of a row is
    simply the row preceding it. Stored versions are the keys' current
    versions (``heads``), or their whole history (``past``) for keys with a
    row earlier than their current version.

    Args:
        keys, valid, cids: Incoming rows, sorted, unique (key, valid); content
            id null for a tombstone.
        heads: :data:`~koru_core._index.HEAD_SCHEMA` aligned with ``keys``.
        past: ``_key``, ``_valid_from``, ``_commit``, ``_content_id``,
            ``_deleted`` of every stored version of the late keys, or None.

    Returns:
        int64 positions (ascending) of the incoming rows to write.
    """
    n = len(keys)
    cids = cids.combine_chunks() if isinstance(cids, pa.ChunkedArray) else cids
    first = pc.invert(_same_as_previous(keys))
    if past is None and pc.all(first).as_py():
        # one row per key, none before its current version: the before of each row is its head
        # (no merge and sort, which would copy the batch and its heads several times over)
        before = heads["content_id"]
        unchanged = pc.if_else(pc.is_null(cids), pc.is_null(before), pc.fill_null(pc.equal(cids, before), False))
        return pc.indices_nonzero(pc.invert(unchanged)).cast(pa.int64())
    incoming = pa.table(
        {
            "k": keys, "v": valid, "src": pa.repeat(pa.scalar(1, pa.int8()), n),
            "c": pa.repeat(pa.scalar(0, pa.int64()), n), "cid": cids,
            "pos": pa.array(range(n), pa.int64()),
        }
    )
    has_head = pc.and_(first, pc.is_valid(heads["valid_from"].combine_chunks()))
    stored = heads.filter(has_head)
    if past is not None and past.num_rows:
        stored = stored.filter(pc.invert(pc.is_in(stored["key"], value_set=past["_key"])))
    parts = [
        incoming,
        pa.table(
            {
                "k": stored["key"], "v": stored["valid_from"], "src": pa.repeat(pa.scalar(0, pa.int8()), stored.num_rows),
                "c": stored["commit"], "cid": stored["content_id"], "pos": pa.repeat(pa.scalar(-1, pa.int64()), stored.num_rows),
            }
        ),
    ]
    if past is not None and past.num_rows:
        parts.append(
            pa.table(
                {
                    "k": past["_key"], "v": past["_valid_from"].cast(pa.int64()),
                    "src": pa.repeat(pa.scalar(0, pa.int8()), past.num_rows), "c": past["_commit"],
                    "cid": pc.if_else(past["_deleted"], pa.scalar(None, pa.string()), past["_content_id"]),
                    "pos": pa.repeat(pa.scalar(-1, pa.int64()), past.num_rows),
                }
            )
        )
    merged = pa.concat_tables(parts)
    del parts, incoming, stored  # the batch's size again, twice over: free before the sort's copy
    order = pc.sort_indices(
        merged, sort_keys=[("k", "ascending"), ("v", "ascending"), ("src", "ascending"), ("c", "ascending")]
    )
    same_key = _same_as_previous(merged["k"].take(order).combine_chunks())
    mcid = merged["cid"].take(order).combine_chunks()
    before = pc.if_else(same_key, _shift(mcid), pa.scalar(None, pa.string()))
    unchanged = pc.if_else(pc.is_null(mcid), pc.is_null(before), pc.fill_null(pc.equal(mcid, before), False))
    del mcid, before
    write = pc.and_(pc.equal(merged["src"].take(order), 1), pc.invert(unchanged))
    return merged["pos"].take(order).filter(write).combine_chunks()


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
        values = conform_input(namespace, batch.values, schema)
        # a record hashes as given only if conforming changed no type (a vector field rounds to float32)
        as_given = batch.record is not None and all(schema.field(f.name).type == f.type for f in batch.values.schema)
        cid = content_id(batch.record) if as_given else content_ids(values.select(batch.values.column_names))[0].as_py()
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
    values = None if is_deleted else values
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


def commit_hash(prev_hash: str | None, *, commit: int, system_time: int, versions: Sequence[pa.Table]) -> str:
    """Return the commit's chain hash, as in Git's or Dolt's commit chains.

    blake3 over the UTF-8 text ``"<prev hash or ''>\n<commit>\n<system time ns>\n"``
    followed, for each namespace's versions in commit order and each row in
    order, by ``<write id (16 hex)><content id (64 hex) or '-'>``: editing any
    version or any earlier commit changes every later hash.

    Returns:
        64 hex characters.
    """
    h = blake3.blake3()
    h.update(f"{prev_hash or ''}\n{commit}\n{system_time}\n".encode())
    for t in versions:
        if not t.num_rows:
            continue
        cid = pc.fill_null(t["_content_id"], "-")
        joined = pc.binary_join_element_wise(t["_write_id"], cid, "").combine_chunks()
        offsets = pa.Array.from_buffers(pa.int32(), len(joined) + 1, [None, joined.buffers()[1]], offset=joined.offset)
        start, end = offsets[0].as_py(), offsets[len(joined)].as_py()
        h.update(memoryview(joined.buffers()[2])[start:end])
    return h.hexdigest()
