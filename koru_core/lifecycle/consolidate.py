"""Consolidation: warm files and pending versions → cold files.

Layout::

    cold/namespace=<ns>/epoch=<YYYY-MM>/part-<head commit:09d>-<8 hex>.parquet

One *epoch* per UTC month of ``_valid_from``, so DuckDB, Polars and the core
prune by namespace (folder) and by valid time (folder, plus the catalog's
``min_valid``/``max_valid`` per file). Each part is sorted by (``_key``,
``_valid_from``, ``_commit``), zstd-compressed, with page checksums and
statistics, and holds every stored column plus ``_valid_to``.

Row groups: :data:`COLD_ROW_GROUP_ROWS` = 65,536 rows. Parts are sorted by key,
so a row group covers a narrow key range: a one-key read (``history``, ``get``)
decodes one group of ~64 Ki rows rather than the whole part, while groups stay
large enough (several MB of values) for DuckDB and Polars to scan at full speed
and to split work across threads. Warm files use 16 Ki rows (they are small).

Incremental (size-tiered, as in LSM stores): a run reads only the new data
(warm files and pending versions). For each epoch it touches, it merges the new
rows with that epoch's existing parts *no larger than what is merged so far*,
smallest first, and writes one new part. Existing large parts are left alone,
so a run costs O(new rows + the small parts it folds in); each row is rewritten
O(log n) times over its life and an epoch holds O(log n) parts.

``_valid_to`` is computed over the rows a run writes together (exact for them
at that time). It goes stale when a later version of a key arrives in a later
run, or lies in a part not merged; every koru reader (``read.with_valid_to``,
the DuckDB macros, Polars) therefore recomputes ``_valid_to`` and treats the
stored column as a hint for tools that read a cold file on its own.

The swap is one catalog transaction (see :mod:`koru_core.lifecycle._swap`):
readers see either the warm files and pending versions, or the cold files,
never both or neither. Replaced files stay on disk until vacuum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._lock import WriteLock
from koru_core._parquet import read_files
from koru_core.catalog import Catalog, FileEntry
from koru_core.lifecycle._swap import Pending, month_labels, part_name, swap, totals, write_part
from koru_core.lifecycle.leases import Leases
from koru_core.model import MaintenanceResult
from koru_core.read import with_valid_to
from koru_core.scan import stored_schema
from koru_core.schema import conform

__all__ = ["AUTO_CONSOLIDATE_WARM_FILES", "COLD_ROW_GROUP_ROWS", "consolidate", "consolidate_namespace"]

COLD_ROW_GROUP_ROWS = 64 * 1024
"""Rows per row group in cold files (see module docstring)."""

AUTO_CONSOLIDATE_WARM_FILES = 32
"""With ``auto_consolidate=True``, a commit that leaves a namespace with at least
this many warm files consolidates that namespace before returning."""

_ATTEMPTS = 3  # the last attempt holds the write lock throughout, so it cannot conflict


def consolidate(
    root: Path, catalog: Catalog, *, lock: WriteLock, leases: Leases, namespace: str | None = None,
) -> MaintenanceResult:
    """Consolidate one namespace (or all) and report what changed.

    Raises:
        CorruptionError: an input file is missing or corrupted (nothing is swapped).
    """
    before = totals(catalog)
    names = [namespace] if namespace is not None else catalog.namespaces()
    token = leases.acquire()  # protects the parts this run writes from vacuum until swapped in
    try:
        acted = [ns for ns in names if consolidate_namespace(root, catalog, lock=lock, namespace=ns)]
    finally:
        leases.release(token)
    after = totals(catalog)
    return before.result("consolidate", after, sorted(acted))


def consolidate_namespace(root: Path, catalog: Catalog, *, lock: WriteLock, namespace: str) -> bool:
    """Consolidate ``namespace``; returns False when it had no warm or pending versions."""
    for attempt in range(_ATTEMPTS):
        with lock if attempt == _ATTEMPTS - 1 else contextlib.nullcontext():
            outcome = _attempt(root, catalog, lock=lock, namespace=namespace)
        if outcome is not None:
            return outcome
    return False  # pragma: no cover - the locked attempt cannot conflict


def _epoch(entry: FileEntry) -> str:
    return next(p.split("=", 1)[1] for p in entry.path.split("/") if p.startswith("epoch="))


def _merge_candidates(cold: Sequence[FileEntry], epoch: str, new_rows: int) -> list[FileEntry]:
    """The epoch's parts to fold in: smallest first, each no larger than the rows so far."""
    chosen, acc = [], new_rows
    for e in sorted((e for e in cold if _epoch(e) == epoch), key=lambda e: (e.rows, e.path)):
        if e.rows > acc:
            break
        chosen.append(e)
        acc += e.rows
    return chosen


def _attempt(root: Path, catalog: Catalog, *, lock: WriteLock, namespace: str) -> bool | None:
    with catalog.read() as con:
        head = catalog.head()[0]
        entries = catalog.files(namespace)
        value_schema = catalog.schema(namespace)
        blobs, rows = con.execute(
            "SELECT count(*), coalesce(sum(rows), 0) FROM pending WHERE namespace = ? AND commit_number <= ?",
            (namespace, head),
        ).fetchone()
        pending = catalog.pending(namespace) if blobs else []
    warm = [e for e in entries if e.tier == "warm"]
    if value_schema is None or (not warm and not blobs):
        return False
    schema = stored_schema(value_schema)
    new = pa.concat_tables([read_files(root, warm, schema=schema), *(conform(t, schema) for t in pending)])
    months = month_labels(new["_valid_from"])
    cold = [e for e in entries if e.tier == "cold"]
    merged: list[FileEntry] = []
    for epoch in pc.unique(months).to_pylist():
        merged += _merge_candidates(cold, epoch, pc.sum(pc.equal(months, epoch).cast(pa.int64())).as_py())
    table = with_valid_to(pa.concat_tables([new, read_files(root, merged, schema=schema)]))
    months = month_labels(table["_valid_from"])
    added = []
    for epoch in pc.unique(months).to_pylist():
        part = table.filter(pc.equal(months, epoch))
        rel = f"cold/namespace={namespace}/epoch={epoch}/{part_name(head)}"
        added.append(write_part(root, part, namespace=namespace, tier="cold", rel=rel, row_group_size=COLD_ROW_GROUP_ROWS))
    with lock:
        ok = swap(catalog, namespace=namespace, remove=[*warm, *merged], add=added, pending=Pending(head, blobs, rows))
    if not ok:
        for e in added:
            (root / e.path).unlink(missing_ok=True)
        return None
    return True
