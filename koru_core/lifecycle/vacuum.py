"""Vacuum: deleting data files no reader can need any more.

Two kinds of file go:

- *retired* files (catalog table ``retired``): replaced by consolidation or
  distillation. One is deleted when it was retired at least ``retain`` ago and
  before the oldest live reader lease started (:mod:`.leases`): no plan in use
  can still list it, and every version it held lives in the files that replaced it.
- *orphans*: ``*.parquet``/``*.tmp`` files under ``warm/``, ``cold/``, ``deep/``
  that the catalog never listed (a writer or a maintenance run that crashed
  before its catalog transaction), last modified at least ``retain`` ago and
  before the oldest lease (a maintenance run in progress holds a lease while it
  writes the files it has not swapped in yet).

Vacuum holds the store's write lock, so no commit is writing a file meanwhile.
Files listed in the catalog are never deleted.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from koru_core._lock import WriteLock
from koru_core._time import now_ns
from koru_core.catalog import Catalog
from koru_core.lifecycle.leases import oldest_lease
from koru_core.model import MaintenanceResult

__all__ = ["DATA_FOLDERS", "DEFAULT_RETAIN", "vacuum"]

DEFAULT_RETAIN = timedelta(days=7)
DATA_FOLDERS = ("warm", "cold", "deep")


def _disk_files(root: Path) -> dict[str, int]:
    out = {}
    for folder in DATA_FOLDERS:
        for path in (root / folder).rglob("*") if (root / folder).exists() else []:
            if path.is_file() and path.suffix in (".parquet", ".tmp"):
                out[path.relative_to(root).as_posix()] = path.stat().st_size
    return out


def vacuum(root: Path, catalog: Catalog, *, lock: WriteLock, retain: timedelta = DEFAULT_RETAIN) -> MaintenanceResult:
    """Delete retired and orphaned data files older than ``retain`` that no reader needs.

    Returns:
        A :class:`MaintenanceResult` whose ``files_*``/``bytes_*`` count the data
        files *on disk* (listed or not) before and after; versions are unchanged.
    """
    cutoff = now_ns() - int(retain.total_seconds() * 1e9)
    with lock:
        before = _disk_files(root)
        with catalog.write() as con:  # a retirement whose time was never set (crash): set it now
            con.execute("UPDATE retired SET retired_at = ? WHERE retired_at IS NULL", (now_ns(),))
        with catalog.read() as con:
            listed = {r[0] for r in con.execute("SELECT path FROM files")}
            retired = dict(con.execute("SELECT path, retired_at FROM retired").fetchall())
            versions = con.execute(
                "SELECT (SELECT coalesce(sum(rows), 0) FROM files WHERE tier != 'deep') + "
                "(SELECT coalesce(sum(rows), 0) FROM pending)"
            ).fetchone()[0]
        oldest = oldest_lease(root)  # read after the retired list (see leases.py)
        limit = cutoff if oldest is None else min(cutoff, oldest - 1)
        gone = [p for p, at in retired.items() if at <= limit and p not in listed]
        for rel in gone:
            (root / rel).unlink(missing_ok=True)
        if gone:
            with catalog.write() as con:
                con.executemany("DELETE FROM retired WHERE path = ?", [(p,) for p in gone])
        for rel in before:
            if rel not in listed and rel not in retired and (root / rel).stat().st_mtime_ns <= limit:
                (root / rel).unlink(missing_ok=True)
        after = _disk_files(root)
    namespaces = sorted({p.split("/")[1].removeprefix("namespace=") for p in set(before) - set(after)})
    return MaintenanceResult(
        action="vacuum", files_before=len(before), files_after=len(after),
        bytes_before=sum(before.values()), bytes_after=sum(after.values()),
        versions_before=versions, versions_after=versions, namespaces=tuple(namespaces),
    )
