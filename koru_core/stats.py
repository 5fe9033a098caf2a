"""Store statistics per namespace and tier."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
        ("memory_bytes", pa.int64()),
        ("hit_rate", pa.float64()),
    ]
)
"""One row per (namespace, tier). ``hot`` holds versions still kept in the catalog
(not yet flushed); ``warm``/``cold``/``deep`` are Parquet files. ``deep`` rows
count the skeletons of versions pruned by distillation (no values).

``bytes`` is what the tier holds on disk (``hot``: 0, its versions live in the catalog).
``memory_bytes`` and ``hit_rate`` describe this process's hot tier and are null
on other tiers: the estimated memory of the namespace's current-state index and
cached values, and the share of ``get`` calls for the current value that the
cache answered (null before any)."""


def store_stats(
    catalog: Catalog, *, memory: dict[str, int] | None = None, hits: dict[str, list[int]] | None = None
) -> pa.Table:
    """Return :data:`STATS_SCHEMA` rows for every namespace and tier that holds data.

    Args:
        catalog: The store's catalog.
        memory: Hot-tier bytes per namespace in this process.
        hits: ``[hits, misses]`` of the value cache per namespace.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    with catalog.snapshot():
        for e in catalog.files():
            if e.kind == "skips":
                continue
            r = rows.setdefault((e.namespace, e.tier), {"namespace": e.namespace, "tier": e.tier, "files": 0,
                                                       "versions": 0, "bytes": 0})
            r["files"] += 1
            r["versions"] += e.rows
            r["bytes"] += e.bytes
        for ns in catalog.namespaces():
            pending = catalog.pending_commits(ns)
            if pending:
                r = rows.setdefault((ns, "hot"), {"namespace": ns, "tier": "hot", "files": 0, "versions": 0, "bytes": 0})
                r["versions"] += sum(n for _, n in pending)
    memory, hits = memory or {}, hits or {}
    for namespace in sorted(set(memory) | set(hits)):
        rows.setdefault((namespace, "hot"), {"namespace": namespace, "tier": "hot", "files": 0, "versions": 0, "bytes": 0})
    out = []
    for (namespace, tier), row in sorted(rows.items()):
        if tier == "hot":
            row["memory_bytes"] = memory.get(namespace, 0)
            h, m = hits.get(namespace, (0, 0))
            row["hit_rate"] = h / (h + m) if h + m else None
        out.append(row)
    return pa.Table.from_pylist(out, schema=STATS_SCHEMA)
