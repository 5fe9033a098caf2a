"""Preparing one namespace's part of a commit: from operations to versions and skip records.

The pipeline (each step in the module named for it):

1. :func:`~koru_core.write.batches.merge_batches`: the operations' rows, conformed to
   the union schema (``delete_missing`` adds tombstones for the live keys absent);
2. content ids of the live rows, in the store's content-id format (:mod:`koru_core.hashing`);
3. rows sorted by (key, valid time), each key's head looked up in the hot index;
4. the unchanged rule: :func:`~koru_core.write.decide.decide_in_order` for keys whose
   rows all come at or after their last recorded valid time, and
   :func:`~koru_core.write.late.decide_late` for late keys (with their history and
   skip records; it may bring skip records back as versions);
5. :func:`~koru_core.write.versions.build`: write ids, chain, the tables to persist.

A single put or delete takes :func:`prepare_single`, the same rule without Arrow
compute or sorting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._memory import LARGE_ROWS, give_back
from koru_core.errors import InvalidInputError, KeyNotFoundError
from koru_core.hashing import content_id, content_ids
from koru_core.hot.index import HeadIndex
from koru_core.layout import SKIP_SCHEMA, commit_schema
from koru_core.model import CONTENT_ID, TIMESTAMP, WRITE_ID
from koru_core.read.rules import is_sorted
from koru_core.schema import PLAIN_TYPES, conform_input, union_schema
from koru_core.write import hotsync
from koru_core.write.batches import ROW_COLUMNS, Operation, add_missing_tombstones, merge_batches
from koru_core.write.decide import NOOP, SKIP, WRITE, decide_in_order, first_of_key, late_keys_mask
from koru_core.write.late import decide_late
from koru_core.write.versions import Prepared, build

if TYPE_CHECKING:
    from koru_core.catalog.entries import NamespaceInfo
    from koru_core.context import StoreContext

__all__ = ["prepare", "prepare_single"]


def _key_columns(namespace: str, info: NamespaceInfo | None, ops: Sequence[Operation]) -> tuple[str, ...]:
    stored = info.key_columns if info is not None else ()
    for op in ops:
        given = op.batch.key_columns
        if not given:
            continue
        if stored and tuple(given) != tuple(stored):
            msg = (
                f"namespace {namespace!r}: its key columns are {list(stored)}, "
                f"this write gives key={list(given)}"
            )
            raise InvalidInputError(msg)
        stored = tuple(given)
    return tuple(stored)


def prepare(
    ctx: StoreContext, namespace: str, ops: Sequence[Operation], *, info: NamespaceInfo | None, head: int,
    system_time: int, first_write_id: int, actor: str | None, run_id: str | None,
) -> Prepared:
    """Prepare one namespace's versions for the commit after ``head``.

    Raises:
        SchemaError: a field's type cannot widen.
        InvalidInputError: key columns differ from the namespace's, a vector of the wrong size.
        KeyNotFoundError: a ``Store.delete`` found no live version.
    """
    stored_schema = info.schema if info is not None else None
    keys = _key_columns(namespace, info, ops)
    index = hotsync.index_at(ctx, namespace, head)
    if len(ops) == 1 and ops[0].batch.num_rows == 1 and not ops[0].delete_missing:
        quick = prepare_single(ctx, ops[0], stored_schema=stored_schema, key_columns=keys, index=index,
                               system_time=system_time, first_write_id=first_write_id, actor=actor, run_id=run_id)
        if quick is not None:
            return quick
    rows = merge_batches([op.batch for op in ops], stored_schema=stored_schema, system_time=system_time)
    if any(op.delete_missing for op in ops):
        rows = add_missing_tombstones(rows, index, system_time)
    values = rows.column_names[len(ROW_COLUMNS):]
    schema = pa.schema([rows.schema.field(n) for n in values])
    by_key = [("__key", "ascending"), ("__valid", "ascending")]
    if not is_sorted(rows, by_key):  # input in key order (a sorted file, a key-ordered frame) is taken as is
        rows = rows.take(pc.sort_indices(rows, sort_keys=by_key))
    live = pc.invert(rows["__deleted"].combine_chunks())
    cids = _content_ids_where(ctx, rows.select(values), live)
    sorted_keys = rows["__key"].combine_chunks()
    valid = rows["__valid"].combine_chunks().to_numpy(zero_copy_only=False)
    explicit = rows["__explicit"].combine_chunks().to_numpy(zero_copy_only=False)
    index_rows = index.rows_of(sorted_keys)
    large = rows.num_rows > LARGE_ROWS
    if large:
        give_back()
    late, actions, live, head_write_ids = _decide_on_time(sorted_keys, valid, explicit, cids, index, index_rows)
    extra = None
    if late.any():
        actions, extra = _decide_late_rows(ctx, namespace, rows, late, actions, live, cids, head, values)
    _check_live(namespace, ops, rows, live)
    if large:
        give_back()
    versions, skips = build(
        rows, actions=actions, cids=cids, head_write_ids=head_write_ids, extra=extra,
        first_write_id=first_write_id, actor=actor, run_id=run_id, values=values,
    )
    deleted = pc.sum(versions["_deleted"].cast(pa.int64())).as_py() or 0
    reshaped = stored_schema != schema or (info.key_columns if info else ()) != keys
    return Prepared(namespace, schema, keys, versions, skips, versions.num_rows - deleted,
                    int((actions != WRITE).sum()), deleted, reshaped,
                    version_rows=None if extra is not None else index_rows[actions == WRITE],
                    skip_rows=index_rows[actions == SKIP])


DECIDE_ROWS = 128 * 1024
"""Rows whose heads are looked up and decided at a time (whole keys): the heads of a
1M-row batch would take 64 MB at once, the rule's temporaries about 90 MB more."""


def _decide_on_time(
    keys: pa.Array, valid: np.ndarray, explicit: np.ndarray, cids: pa.Array, index: HeadIndex, index_rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    """The unchanged rule for the rows of keys that are not late, :data:`DECIDE_ROWS` rows
    (whole keys) at a time (:func:`~koru_core.write.decide.decide_in_order`).

    Args:
        keys: The batch's keys, sorted (with ``valid``: int64 ns, ``explicit``: bool per row).
        cids: Content ids per row (``fixed_size_binary(32)``, null for tombstones).
        index: The namespace's head index; ``index_rows``: each key's row in it (-1: none).

    Returns:
        (late: bool per row, its key needs the late path; action per row, :data:`NOOP` for
        late rows; live: the row's before is a live version; each row's key's latest write
        id before the commit, ``fixed_size_binary(8)``, null for a new key).
    """
    n = len(keys)
    late = np.zeros(n, dtype=bool)
    actions = np.full(n, NOOP, dtype=np.int8)
    live = np.zeros(n, dtype=bool)
    write_ids = []
    for lo, hi in _key_slices(keys, DECIDE_ROWS):
        k, c = keys.slice(lo, hi - lo), cids.slice(lo, hi - lo)
        heads = index.lookup(k, rows=index_rows[lo:hi])
        write_ids.append(heads["last_write_id"].combine_chunks())
        slice_late = late_keys_mask(k, valid[lo:hi], heads["last_valid"].combine_chunks())
        late[lo:hi] = slice_late
        on_time = ~slice_late
        if on_time.all():
            actions[lo:hi], live[lo:hi] = decide_in_order(k, valid[lo:hi], explicit[lo:hi], c, heads)
        elif on_time.any():
            idx = pa.array(np.flatnonzero(on_time))
            at = np.flatnonzero(on_time) + lo
            actions[at], live[at] = decide_in_order(k.take(idx), valid[lo:hi][on_time], explicit[lo:hi][on_time],
                                                    c.take(idx), heads.take(idx))
    ids = pa.concat_arrays(write_ids) if write_ids else pa.array([], WRITE_ID)
    return late, actions, live, ids


def _key_slices(keys: pa.Array, rows: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of about ``rows`` rows of sorted ``keys`` that split no key's rows."""
    n = len(keys)
    if n <= rows:
        return [(0, n)]
    starts = np.flatnonzero(first_of_key(keys))
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, np.arange(rows, n, rows)), len(starts) - 1)])
    bounds = [0, *(int(c) for c in cuts if 0 < c < n), n]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _decide_late_rows(
    ctx: StoreContext, namespace: str, rows: pa.Table, late: np.ndarray, actions: np.ndarray, live: np.ndarray,
    cids: pa.Array, head: int, values: list[str],
) -> tuple[np.ndarray, pa.Table | None]:
    idx = pa.array(np.flatnonzero(late))
    late_rows = pa.table({
        "key": rows["__key"].take(idx), "valid": rows["__valid"].take(idx),
        "explicit": rows["__explicit"].take(idx), "cid": cids.take(idx),
    })
    keys = pc.unique(late_rows["key"].combine_chunks())
    history = hotsync.late_history(ctx, namespace, keys, head, values)
    skips = hotsync.late_skips(ctx, namespace, keys, head)
    decision = decide_late(late_rows, history, skips)
    actions[late] = decision.actions
    live[late] = decision.live_before
    if not decision.materialised:
        return actions, None
    return actions, _materialised_rows(ctx, decision.materialised, history, rows.schema, values)


def _materialised_rows(ctx: StoreContext, items: list, history: pa.Table, schema: pa.Schema,
                       values: list[str]) -> pa.Table:
    """Version rows (as :func:`~koru_core.write.versions.build` takes them) for materialised skip records."""
    by_write = {w: i for i, w in enumerate(history["_write_id"].to_pylist())}
    sources = [by_write.get(m.source) if m.source is not None else None for m in items]
    take = pa.array([-1 if s is None else s for s in sources], pa.int64())
    mask = pa.array([s is None for s in sources])
    picked = history.take(pc.if_else(mask, pa.scalar(None, pa.int64()), take))
    provenance = {c.commit: c for c in ctx.catalog.commits(since=min(m.commit for m in items) - 1,
                                                               until=max(m.commit for m in items))}
    return pa.table({
        "__key": pa.array([m.key for m in items], pa.string()),
        "__valid": pa.array([m.valid for m in items], pa.int64()),
        "__deleted": mask,
        "__parents": pa.array([m.parents for m in items], pa.list_(pa.string())),
        "__cid": picked["_content_id"].cast(CONTENT_ID),
        "__head": pa.nulls(len(items), WRITE_ID),
        "__actor": pa.array([provenance[m.commit].actor if m.commit in provenance else None for m in items], pa.string()),
        "__run_id": pa.array([provenance[m.commit].run_id if m.commit in provenance else None for m in items], pa.string()),
        **{v: (picked[v] if v in picked.column_names else pa.nulls(len(items), schema.field(v).type)) for v in values},
    })


def _check_live(namespace: str, ops: Sequence[Operation], rows: pa.Table, live: np.ndarray) -> None:
    """Raise for a ``Store.delete`` whose key has no live version before it (one row per such op)."""
    if not any(op.require_live for op in ops):
        return
    for i in np.flatnonzero(~live):
        if rows["__deleted"][int(i)].as_py():
            key = rows["__key"][int(i)].as_py()
            msg = f"namespace {namespace!r}: no live key {key!r} to delete"
            raise KeyNotFoundError(msg)


def _content_ids_where(ctx: StoreContext, values: pa.Table, live: pa.Array) -> pa.Array:
    """Content ids for the live rows, null for tombstones (not hashed)."""
    fmt = ctx.content_format
    if pc.all(live).as_py() is not False:
        return content_ids(values, format=fmt)
    idx = pc.indices_nonzero(live)
    ids = content_ids(values.take(idx), format=fmt)
    positions = np.full(len(live), -1, dtype=np.int64)
    positions[idx.to_numpy()] = np.arange(len(idx))
    return ids.take(pa.array(positions, mask=positions < 0))


def prepare_single(
    ctx: StoreContext, op: Operation, *, stored_schema: pa.Schema | None, key_columns: tuple[str, ...],
    index: HeadIndex, system_time: int, first_write_id: int, actor: str | None, run_id: str | None,
) -> Prepared | None:
    """The fast path of :func:`prepare` for one put or delete: same rule and result.

    Returns None when the row is late (it needs the key's history): use :func:`prepare`.

    Raises:
        KeyNotFoundError: a ``Store.delete`` found no live version.
    """
    batch = op.batch
    namespace = batch.namespace
    key = batch.keys[0].as_py()
    explicit = batch.valid_from is not None
    valid = batch.valid_from[0].as_py() if explicit else system_time
    head = index.get(key)
    if head is not None and valid < head.last_valid:
        return None
    is_deleted = batch.is_deleted is not None
    stored = stored_schema or pa.schema([])
    schema = stored if batch.values.schema == stored else union_schema(namespace, stored, batch.values.schema)
    reshaped = stored_schema != schema
    if is_deleted:
        cid = None
        values = None
    else:
        values = conform_input(namespace, batch.values, schema)
        # a record hashes as given only if conforming changed no type (a vector field rounds to float32)
        as_given = batch.record is not None and all(schema.field(f.name).type == f.type for f in batch.values.schema)
        if as_given:
            cid = content_id(batch.record, format=ctx.content_format)
        else:
            cid = content_ids(values.select(batch.values.column_names), format=ctx.content_format)[0].as_py()
    before = None if head is None else head.content_id
    action = WRITE
    if cid == before:
        if head is None:  # a tombstone for a key never written
            action = WRITE if explicit else NOOP
        elif valid in (head.valid_from, head.last_valid) or not explicit:  # last_valid: a skip record there
            action = NOOP
        else:
            action = SKIP
    if op.require_live and (head is None or head.content_id is None):
        msg = f"namespace {namespace!r}: no live key {key!r} to delete"
        raise KeyNotFoundError(msg)
    if action != WRITE:
        skips = _EMPTY_SKIPS
        if action == SKIP:
            skips = pa.table([pa.array([key], pa.string()), pa.array([valid], TIMESTAMP), _NULL_COMMIT,
                              batch.parents if batch.parents is not None else _NULL_PARENTS], schema=SKIP_SCHEMA)
        return Prepared(namespace, schema, key_columns, commit_schema(schema).empty_table(), skips, 0, 1, 0, reshaped)
    parents = batch.parents[0].as_py() if batch.parents is not None else None
    row = {"_key": key, "_valid_from": valid, "_write_id": first_write_id.to_bytes(8, "big"),
           "_prev_write_id": None if head is None else head.last_write_id, "_content_id": cid,
           "_deleted": is_deleted, "_actor": actor, "_run_id": run_id, "_parents": parents}
    if values is None:
        row.update(dict.fromkeys(schema.names))
    elif as_given and all(type(v) in PLAIN_TYPES for v in batch.record.values()):
        row.update({name: batch.record.get(name) for name in schema.names})  # what Arrow gives back
    else:
        row.update(values.to_pylist()[0])
    system = [
        pa.array([key], pa.string()),
        pa.array([valid], TIMESTAMP),
        pa.array([row["_write_id"]], WRITE_ID),
        _NULL_WRITE_ID if head is None else pa.array([head.last_write_id], WRITE_ID),
        pa.array([cid], CONTENT_ID),
        pa.array([is_deleted]),
        _NULL_STRING if actor is None else pa.array([actor], pa.string()),
        _NULL_STRING if run_id is None else pa.array([run_id], pa.string()),
        batch.parents if batch.parents is not None else _NULL_PARENTS,
    ]
    columns = system + [values.column(f.name) if values is not None else pa.nulls(1, f.type) for f in schema]
    versions = pa.Table.from_arrays(columns, schema=commit_schema(schema))
    return Prepared(namespace, schema, key_columns, versions, _EMPTY_SKIPS, 0 if is_deleted else 1, 0,
                    1 if is_deleted else 0, reshaped, row=row)


_EMPTY_SKIPS = SKIP_SCHEMA.empty_table()
_NULL_COMMIT = pa.nulls(1, pa.int64())
_NULL_PARENTS = pa.nulls(1, pa.list_(pa.string()))
_NULL_STRING = pa.nulls(1, pa.string())
_NULL_WRITE_ID = pa.nulls(1, WRITE_ID)
