"""Building one commit's versions of one namespace: write ids, the causal chain, skip records.

Given the rows the unchanged rule decided to write (and the skip records the late
path materialises), :func:`build` assigns write ids from the commit's block in
(key, valid time) order, chains each key's versions (``_prev_write_id`` is the key's
previous write: its head's latest write for the key's first row, the row before
otherwise), and returns the table to persist in :data:`~koru_core.layout.COMMIT_SCHEMA`
order, plus the skip records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.chain import ZERO_ID
from koru_core.layout import COMMIT_COLUMNS, COMMIT_SCHEMA, SKIP_SCHEMA
from koru_core.model import CONTENT_ID, TIMESTAMP, WRITE_ID
from koru_core.write.decide import SKIP, WRITE, first_of_key

__all__ = ["Prepared", "build", "u64_ids", "write_ids", "write_ids_of"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What one commit writes to one namespace.

    Attributes:
        namespace: The namespace.
        schema: Its value schema after this commit (the union).
        key_columns: Its key columns after this commit.
        versions: :data:`~koru_core.layout.COMMIT_SCHEMA` columns then the value
            columns, sorted by (``_key``, ``_valid_from``); ids as bytes.
        skips: :data:`~koru_core.layout.SKIP_SCHEMA` rows (``_commit`` null).
        written, unchanged, deleted: Values written, rows that recorded no version
            (no-ops and skips), tombstones written.
        is_reshaped: The schema or key columns changed.
        version_rows, skip_rows: The hot index rows of the versions' and skips' keys
            (-1 for new keys), when prepare knew them; they spare the index a lookup.
        row: For a single put or delete (:func:`~koru_core.write.prepare.prepare_single`)
            that writes a version: its columns (``versions``' one row) as Python values
            (``_valid_from`` int ns, ids bytes, ``_parents`` a list or None, value fields as
            ``to_pylist`` gives them), so the commit hash, the hot tier and the returned
            :class:`~koru_core.model.Version` need no pass over Arrow arrays.
    """

    namespace: str
    schema: pa.Schema
    key_columns: tuple[str, ...]
    versions: pa.Table
    skips: pa.Table
    written: int
    unchanged: int
    deleted: int
    is_reshaped: bool = False
    version_rows: np.ndarray | None = None
    skip_rows: np.ndarray | None = None
    row: dict[str, Any] | None = None


def write_ids(first: int, n: int) -> pa.Array:
    """``n`` consecutive write ids from ``first``, as big-endian ``fixed_size_binary(8)``."""
    values = np.arange(first, first + n, dtype=np.int64).astype(">i8")
    return pa.FixedSizeBinaryArray.from_buffers(WRITE_ID, n, [None, pa.py_buffer(values.tobytes())])


def u64_ids(ids: pa.Array) -> np.ndarray:
    """Write ids (``fixed_size_binary(8)``, big-endian) as uint64; 0 for null."""
    n = len(ids)
    if not n:
        return np.zeros(0, dtype=np.uint64)
    filled = pc.fill_null(ids, pa.scalar(bytes(8), WRITE_ID)) if ids.null_count else ids
    raw = np.frombuffer(filled.buffers()[1], dtype=np.uint8, count=(filled.offset + n) * 8)[filled.offset * 8:]
    return raw.view(">u8").astype(np.uint64)


def write_ids_of(values: np.ndarray) -> pa.Array:
    """uint64 write ids as ``fixed_size_binary(8)`` (big-endian); 0 becomes null (no write)."""
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    out = pa.FixedSizeBinaryArray.from_buffers(WRITE_ID, len(values), [None, pa.py_buffer(raw.tobytes())])
    return pc.if_else(pa.array(values == 0), pa.scalar(None, WRITE_ID), out) if (values == 0).any() else out


def _shift(arr: pa.Array) -> pa.Array:
    return pa.concat_arrays([pa.nulls(1, arr.type), arr.slice(0, len(arr) - 1)]) if len(arr) else arr


def build(
    rows: pa.Table, *, actions: np.ndarray, cids: pa.Array, head_write_ids: pa.Array, extra: pa.Table | None,
    first_write_id: int, actor: str | None, run_id: str | None, values: list[str],
) -> tuple[pa.Table, pa.Table]:
    """Return (versions, skips) of one namespace for one commit.

    Args:
        rows: The batch rows sorted by (key, valid time): ``__key``, ``__valid``,
            ``__deleted``, ``__parents`` and the value columns.
        actions: Per row: write a version, record a skip, or nothing.
        cids: Content ids per row (null for tombstones).
        head_write_ids: Per row, its key's latest write id before this commit (null if none).
        extra: Materialised skip records as version rows (``__key``, ``__valid``,
            ``__deleted``, ``__parents``, ``__cid``, ``__head``, ``__actor``,
            ``__run_id`` and the value columns), or None.
        first_write_id: The first id of the commit's block.
        actor, run_id: Provenance of the batch rows.
        values: The value column names, in schema order.
    """
    writes = actions == WRITE
    every = bool(writes.all())  # every row a version (new keys, all changed): no copy of the batch
    write = pa.array(writes)
    picked = rows if every else rows.filter(write)
    n = picked.num_rows
    table = pa.table({
        "__key": picked["__key"], "__valid": picked["__valid"], "__deleted": picked["__deleted"],
        "__parents": picked["__parents"], "__cid": cids if every else cids.filter(write),
        "__head": head_write_ids if every else head_write_ids.filter(write),
        "__actor": pa.repeat(pa.scalar(actor, pa.string()), n), "__run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        **{v: picked[v] for v in values},
    })
    if extra is not None and extra.num_rows:
        table = pa.concat_tables([table, extra.select(table.column_names).cast(table.schema)])
        table = table.take(pc.sort_indices(table, sort_keys=[("__key", "ascending"), ("__valid", "ascending")]))
    total = table.num_rows
    ids = write_ids(first_write_id, total)
    keys = table["__key"].combine_chunks()
    first = pa.array(first_of_key(keys)) if total else pa.array([], pa.bool_())
    head = pc.if_else(pc.equal(table["__head"], pa.scalar(ZERO_ID, WRITE_ID)), pa.scalar(None, WRITE_ID), table["__head"])
    prev = pc.if_else(first, head, _shift(ids)) if total else pa.array([], WRITE_ID)
    system = {
        "_key": keys,
        "_valid_from": table["__valid"].cast(TIMESTAMP),
        "_write_id": ids,
        "_prev_write_id": prev,
        "_content_id": table["__cid"].cast(CONTENT_ID),
        "_deleted": table["__deleted"],
        "_actor": table["__actor"],
        "_run_id": table["__run_id"],
        "_parents": table["__parents"],
    }
    columns = [system[c] for c in COMMIT_COLUMNS] + [table[v] for v in values]
    schema = pa.schema([*COMMIT_SCHEMA, *(rows.schema.field(v) for v in values)])
    versions = pa.table(columns, schema=schema)
    skip = pa.array(actions == SKIP)
    skipped = rows.filter(skip)
    m = skipped.num_rows
    skips = pa.table(
        [skipped["__key"], skipped["__valid"].cast(TIMESTAMP), pa.nulls(m, pa.int64()), skipped["__parents"]],
        schema=SKIP_SCHEMA,
    )
    return versions, skips
