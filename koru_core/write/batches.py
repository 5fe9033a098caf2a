"""One commit's input: operations grouped per namespace and merged into one table of rows.

A write call (``put``, ``delete``, ``upsert``, a transaction) hands the write path a
list of :class:`Operation`; :func:`merge_batches` turns those bound for one namespace
into the rows the unchanged rule then decides on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.hot.index import HeadIndex
from koru_core.input import Batch
from koru_core.schema import conform_input, union_schema

__all__ = ["ROW_COLUMNS", "Operation", "add_missing_tombstones", "group", "merge_batches"]

ROW_COLUMNS = ("__key", "__valid", "__explicit", "__deleted", "__parents", "__seq")
"""Leading columns of :func:`merge_batches`'s table; the value columns follow."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One buffered write: a batch, whether to tombstone the live keys it lacks, and
    whether its tombstones must find a live version (``Store.delete``)."""

    batch: Batch
    delete_missing: bool = False
    require_live: bool = False


def group(operations: Sequence[Operation]) -> dict[str, list[Operation]]:
    """Operations per namespace, in order."""
    groups: dict[str, list[Operation]] = {}
    for op in operations:
        groups.setdefault(op.batch.namespace, []).append(op)
    return groups


def merge_batches(batches: Sequence[Batch], *, stored_schema: pa.Schema | None, system_time: int) -> pa.Table:
    """Concatenate one namespace's batches into one table of rows to write.

    Returns:
        Columns ``__key`` (string), ``__valid`` (int64 ns), ``__explicit`` (bool: the
        writer gave the valid time; otherwise it is ``system_time``), ``__deleted``
        (bool), ``__parents`` (list<string>), ``__seq`` (int64 input order), then the
        value columns conformed to the union of ``stored_schema`` and the batches'
        schemas. Rows with the same (key, valid time) keep the last one (later
        operations in a transaction win).

    Raises:
        SchemaError: a field's types cannot widen.
        InvalidInputError: a vector field gets a list of another dimension.
    """
    namespace = batches[0].namespace
    schema = stored_schema or pa.schema([])
    for b in batches:
        schema = union_schema(namespace, schema, b.values.schema)
    parts = []
    for b in batches:
        n = b.num_rows
        explicit = b.valid_from is not None
        columns = {
            "__key": b.keys,
            "__valid": b.valid_from if explicit else pa.repeat(pa.scalar(system_time, pa.int64()), n),
            "__explicit": pa.repeat(pa.scalar(explicit), n),
            "__deleted": b.is_deleted if b.is_deleted is not None else pa.repeat(pa.scalar(False), n),
            "__parents": b.parents if b.parents is not None else pa.nulls(n, pa.list_(pa.string())),
        }
        values = conform_input(namespace, b.values, schema)
        columns.update(zip(values.column_names, values.columns, strict=True))
        parts.append(pa.table(columns))
    rows = pa.concat_tables(parts, promote_options="none")
    rows = rows.add_column(ROW_COLUMNS.index("__seq"), "__seq", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    if len(batches) > 1:
        last = rows.group_by(["__key", "__valid"]).aggregate([("__seq", "max")])["__seq_max"]
        rows = rows.take(last.sort())
    return rows


def add_missing_tombstones(rows: pa.Table, index: HeadIndex, system_time: int) -> pa.Table:
    """Append tombstones for keys live in ``index`` but absent from ``rows``, at the
    batch's latest valid time (the commit's system time when the batch gave none)."""
    live = index.live_keys()
    missing = sorted(live.filter(pc.invert(pc.is_in(live, value_set=rows["__key"]))).to_pylist())
    if not missing:
        return rows
    valid = max(rows["__valid"].to_pylist(), default=system_time)
    explicit = bool(rows.num_rows) and bool(pc.any(rows["__explicit"]).as_py())
    n = len(missing)
    extra = {
        "__key": pa.array(missing, pa.string()),
        "__valid": pa.array([valid] * n, pa.int64()),
        "__explicit": pa.array([explicit] * n),
        "__deleted": pa.array([True] * n),
        "__parents": pa.nulls(n, pa.list_(pa.string())),
        "__seq": pa.array(np.arange(rows.num_rows, rows.num_rows + n, dtype=np.int64)),
    }
    columns = [extra.get(f.name, pa.nulls(n, f.type)) for f in rows.schema]
    return pa.concat_tables([rows, pa.table(columns, schema=rows.schema)])
