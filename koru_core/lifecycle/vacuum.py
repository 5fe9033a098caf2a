"""Vacuum: deleting data files no reader can need any more.

Two kinds of file go:

- *retired* files (replaced by consolidation or distillation): deleted once retired
  at least ``retain`` ago and before the oldest live reader lease started
  (:mod:`.leases`): no plan in use can still list them, and every version they held
  lives in the files that replaced them. The store does this by itself after each
  consolidation (``retain`` 0, see :mod:`.auto`).
- *orphans*: ``*.parquet`` and ``*.tmp`` files under ``warm/``, ``cold/``, ``deep/``
  that the catalog never listed (a writer or a maintenance run that stopped before
  its catalog transaction), last modified at least ``retain`` ago and before the
  oldest lease (a writer in another process may be between writing its warm file
  and its commit; only a manual ``vacuum`` with a short ``retain`` removes recent ones).

Vacuum holds the store's write lock, so no commit of this process is writing a file
meanwhile. Files listed in the catalog are never deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from koru_core._time import now_ns
from koru_core.model import MaintenanceResult

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["DATA_FOLDERS", "DEFAULT_RETAIN", "delete_retired", "vacuum"]

DEFAULT_RETAIN = timedelta(days=7)
DATA_FOLDERS = ("warm", "cold", "deep")


def _disk_files(ctx: StoreContext) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in DATA_FOLDERS:
        for rel, size, mtime in ctx.storage.walk(folder):
            if rel.endswith((".parquet", ".tmp")):
                out[rel] = (size, mtime)
    return out


def delete_retired(ctx: StoreContext, *, limit: int) -> list[str]:
    """Delete retired files retired at or before ``limit`` (ns) and before every live lease.

    Returns:
        The deleted paths.
    """
    gone = ctx.leases.vacuumable(ctx.catalog, retired_before=limit)
    for rel in gone:
        ctx.storage.delete(rel)
    if gone:
        ctx.catalog.forget_retired(gone)
        ctx.files.forget(gone)
    return gone


def vacuum(ctx: StoreContext, *, retain: timedelta = DEFAULT_RETAIN) -> MaintenanceResult:
    """Delete retired and orphaned data files older than ``retain`` that no reader needs.

    Returns:
        A :class:`MaintenanceResult` whose ``files_*``/``bytes_*`` count the data
        files *on disk* (listed or not) before and after; versions are unchanged.
    """
    cutoff = now_ns() - int(retain.total_seconds() * 1e9)
    with ctx.lock:
        before = _disk_files(ctx)
        gone = delete_retired(ctx, limit=cutoff)
        listed = {e.path for e in ctx.catalog.files()}
        retired = ctx.catalog.retired()
        bound = ctx.leases.orphan_bound(cutoff)
        for rel, (_, mtime) in before.items():
            if rel not in listed and rel not in retired and rel not in gone and mtime <= bound:
                ctx.storage.delete(rel)
        after = _disk_files(ctx)
        versions = sum(e.rows for e in ctx.catalog.files() if e.tier != "deep" and e.kind != "skips")
        versions += sum(n for ns in ctx.catalog.namespaces() for _, n in ctx.catalog.pending_commits(ns))
    namespaces = sorted({p.split("/")[1].removeprefix("namespace=") for p in set(before) - set(after) if p.count("/") >= 2})
    return MaintenanceResult(
        action="vacuum", files_before=len(before), files_after=len(after),
        bytes_before=sum(s for s, _ in before.values()), bytes_after=sum(s for s, _ in after.values()),
        versions_before=versions, versions_after=versions, namespaces=tuple(namespaces),
    )
