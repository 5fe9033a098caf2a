"""Store statistics per namespace and tier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from koru_core.catalog import Catalog

__all__ = ["STATS_SCHEMA", "store_stats"]

STATS_SCHEMA = pa.schema(
    [
        ("namespace", pa.string()),
        ("tier", pa.string()),
        ("files", pa.int64()),
        ("versions", pa.int64()),
        ("bytes", pa.int64()),
    ]
)
"""One row per (namespace, tier). ``hot`` holds versions still kept in the catalog
(not yet flushed); ``warm``/``cold``/``deep`` are Parquet files. ``deep`` rows
count the skeletons of versions pruned by distillation (no values)."""


def store_stats(catalog: Catalog) -> pa.Table:
    """Return :data:`STATS_SCHEMA` rows for every namespace and tier that holds data."""
    with catalog.read() as con:
        rows = con.execute(
            "SELECT namespace, tier, count(*), sum(rows), sum(bytes) FROM files GROUP BY namespace, tier "
            "UNION ALL SELECT namespace, 'hot', 0, sum(rows), sum(length(data)) FROM pending GROUP BY namespace "
            "ORDER BY 1, 2"
        ).fetchall()
    return pa.Table.from_pylist(
        [dict(zip(STATS_SCHEMA.names, r)) for r in rows], schema=STATS_SCHEMA
    )
