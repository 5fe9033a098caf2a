"""What consolidation and distillation share: writing tier files and swapping them in.

A swap is one catalog transaction that adds new files, removes the entries of
the files they replace (and, for consolidation, the pending versions they now
hold), and records the replaced files in ``retired`` so that vacuum deletes them
once no reader can need them (see :mod:`koru_core.lifecycle.leases`). It checks
first that what it replaces is still there; if a concurrent flush or another
maintenance run got there first it changes nothing and reports a conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._parquet import write_file
from koru_core._time import now_ns
from koru_core.catalog import Catalog, FileEntry, insert_file
from koru_core.model import MaintenanceResult

__all__ = ["Pending", "Totals", "month_labels", "part_name", "swap", "totals", "write_part"]


@dataclass(frozen=True, slots=True)
class Totals:
    """Files and bytes the catalog lists, and full versions stored (files + pending)."""

    files: int
    bytes: int
    versions: int

    def result(self, action: str, after: Totals, namespaces: Sequence[str]) -> MaintenanceResult:
        """The :class:`MaintenanceResult` of ``action`` from these totals (before) to ``after``."""
        return MaintenanceResult(
            action=action, files_before=self.files, files_after=after.files,
            bytes_before=self.bytes, bytes_after=after.bytes,
            versions_before=self.versions, versions_after=after.versions, namespaces=tuple(namespaces),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """The pending versions of one namespace up to commit ``upto`` that a swap absorbs."""

    upto: int
    blobs: int
    rows: int


def totals(catalog: Catalog) -> Totals:
    """Return the catalog's :class:`Totals` (deep skeleton rows are not versions)."""
    with catalog.read() as con:
        files, size = con.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM files").fetchone()
        rows = con.execute("SELECT coalesce(sum(rows), 0) FROM files WHERE tier != 'deep'").fetchone()[0]
        pending = con.execute("SELECT coalesce(sum(rows), 0) FROM pending").fetchone()[0]
    return Totals(int(files), int(size), int(rows) + int(pending))


def month_labels(valid_from: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Return ``YYYY-MM`` (UTC month of each valid time) as a string array."""
    months = valid_from.cast(pa.int64()).to_numpy().astype("datetime64[ns]").astype("datetime64[M]")
    return pa.array(months.astype(str), pa.string())


def write_part(root: Path, table: pa.Table, *, namespace: str, tier: str, rel: str, row_group_size: int) -> FileEntry:
    """Write ``table`` at ``root / rel`` and return its (not yet recorded) catalog entry."""
    size, checksum = write_file(table, root / rel, row_group_size=row_group_size)
    valid = table["_valid_from"].cast(pa.int64())
    return FileEntry(
        namespace=namespace, tier=tier, path=rel, rows=table.num_rows, bytes=size, checksum=checksum,
        min_commit=pc.min(table["_commit"]).as_py(), max_commit=pc.max(table["_commit"]).as_py(),
        min_valid=pc.min(valid).as_py(), max_valid=pc.max(valid).as_py(),
    )


def part_name(head: int) -> str:
    """A unique part file name for a run at commit ``head``: ``part-<head:09d>-<8 hex>.parquet``."""
    return f"part-{head:09d}-{uuid.uuid4().hex[:8]}.parquet"


class _ConflictError(Exception):
    pass


def swap(
    catalog: Catalog, *, namespace: str, remove: Sequence[FileEntry], add: Sequence[FileEntry],
    pending: Pending | None = None,
) -> bool:
    """Replace ``remove`` by ``add`` (and absorb ``pending``) in one transaction.

    Call with the store's write lock held. Returns False, changing nothing, when a
    file of ``remove`` is no longer listed or the pending versions changed.
    """
    paths = [e.path for e in remove]
    marks = ", ".join("?" * len(paths))
    try:
        with catalog.write() as con:
            if paths:
                listed = con.execute(f"SELECT count(*) FROM files WHERE path IN ({marks})", paths).fetchone()[0]
                if listed != len(paths):
                    raise _ConflictError
                con.execute(f"DELETE FROM files WHERE path IN ({marks})", paths)
            if pending is not None:
                now = con.execute(
                    "SELECT count(*), coalesce(sum(rows), 0) FROM pending WHERE namespace = ? AND commit_number <= ?",
                    (namespace, pending.upto),
                ).fetchone()
                if tuple(now) != (pending.blobs, pending.rows):
                    raise _ConflictError
                con.execute("DELETE FROM pending WHERE namespace = ? AND commit_number <= ?", (namespace, pending.upto))
            for entry in add:
                insert_file(con, entry)
            con.executemany(
                "INSERT OR REPLACE INTO retired VALUES (?, ?, ?, ?, NULL)",
                [(e.path, e.namespace, e.tier, e.bytes) for e in remove],
            )
    except _ConflictError:
        return False
    if paths:  # after the commit: any plan still listing these files started earlier
        with catalog.write() as con:
            con.execute(
                f"UPDATE retired SET retired_at = ? WHERE path IN ({marks}) AND retired_at IS NULL",
                [now_ns(), *paths],
            )
    return True
