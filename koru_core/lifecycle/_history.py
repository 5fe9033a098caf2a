"""The read side of distillation: putting pruned versions' skeletons back into ``history()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from koru_core._parquet import read_files
from koru_core.model import SYSTEM_SCHEMA
from koru_core.read import history_order

if TYPE_CHECKING:
    from koru_core.store import Store

__all__ = ["PRUNED_COLUMN", "with_pruned"]

PRUNED_COLUMN = "_pruned"
"""bool: true for a version distillation pruned (only its skeleton is left; value columns null)."""


def with_pruned(store: Store, namespace: str, key: str, history: pa.Table) -> pa.Table:
    """Return ``history`` (a key's full versions, ordered, values first) plus the
    key's pruned skeletons and a last ``_pruned`` column, if the namespace has a deep tier."""
    deep = [e for e in store._catalog.files(namespace) if e.tier == "deep"]
    if not deep:
        return history
    schema = pa.schema([SYSTEM_SCHEMA.field(n) for n in SYSTEM_SCHEMA.names])
    skeletons = read_files(store.path, deep, schema=schema, filter=ds.field("_key") == key)
    columns = [
        skeletons[f.name].cast(f.type) if f.name in skeletons.column_names else pa.nulls(skeletons.num_rows, f.type)
        for f in history.schema
    ]
    both = history_order(pa.concat_tables([history, pa.table(columns, schema=history.schema)]))
    pruned = pc.is_in(both["_write_id"], value_set=skeletons["_write_id"].combine_chunks())
    return both.append_column(pa.field(PRUNED_COLUMN, pa.bool_()), pruned)
