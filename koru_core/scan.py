"""Resolving what a read needs: the commit, the data files and the pending versions.

:func:`plan_scan` is the one call DuckDB, Polars and the core's own reads use to
learn what to read: it fixes the commit bound and lists the Parquet files and
the not-yet-flushed versions, in one consistent catalog snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from koru_core._parquet import read_files
from koru_core.catalog import Catalog, FileEntry
from koru_core.errors import InvalidInputError, NamespaceNotFoundError
from koru_core.model import STORED_COLUMNS, SYSTEM_SCHEMA
from koru_core.schema import conform

__all__ = ["ScanPlan", "plan_scan", "read_versions", "stored_schema"]


def stored_schema(value_schema: pa.Schema) -> pa.Schema:
    """Return the schema of stored versions: system columns, then value columns."""
    return pa.schema([SYSTEM_SCHEMA.field(c) for c in STORED_COLUMNS] + list(value_schema))


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanPlan:
    """What to read for one namespace at one commit.

    Attributes:
        namespace: The namespace.
        commit: The commit bound (system time): rows with ``_commit`` greater
            than this must be filtered out by the reader.
        head_commit: The store's last commit when the plan was made.
        schema: Stored schema: system columns (without ``_valid_to``) then value
            columns, the union of every file's schema. Older files may lack
            value columns (read them as null) or hold narrower types (cast).
        files: Absolute paths of the Parquet files holding the namespace's
            versions, oldest first; each is sorted by (``_key``, ``_valid_from``).
        entries: The catalog entries of ``files`` (sizes, checksums, commit and
            valid-time ranges for pruning).
        pending: Versions not yet flushed to files (same ``schema``), as Arrow.
    """

    namespace: str
    commit: int
    head_commit: int
    schema: pa.Schema
    files: tuple[str, ...]
    entries: tuple[FileEntry, ...]
    pending: pa.Table


def plan_scan(root: Path, catalog: Catalog, namespace: str, *, version: int | None = None) -> ScanPlan:
    """Return the :class:`ScanPlan` of ``namespace`` at commit ``version`` (default: latest).

    Raises:
        NamespaceNotFoundError: the namespace was never written.
        InvalidInputError: ``version`` is not an existing commit number.
        CorruptionError: pending versions fail their checksum.
    """
    with catalog.read():
        head = catalog.head()[0]
        value_schema = catalog.schema(namespace)
        if value_schema is None:
            msg = f"namespace {namespace!r} does not exist (namespaces: {catalog.namespaces()})"
            raise NamespaceNotFoundError(msg)
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= head):
            msg = f"namespace {namespace!r}: version must be a commit number in 1..{head}, got {version!r}"
            raise InvalidInputError(msg)
        bound = head if version is None else version
        entries = [e for e in catalog.files(namespace) if e.min_commit <= bound]
        pending = catalog.pending(namespace)
    schema = stored_schema(value_schema)
    tables = [conform(t, schema) for t in pending]
    return ScanPlan(
        namespace=namespace,
        commit=bound,
        head_commit=head,
        schema=schema,
        files=tuple(str(root / e.path) for e in entries),
        entries=tuple(entries),
        pending=pa.concat_tables(tables) if tables else schema.empty_table(),
    )


def read_versions(
    root: Path,
    plan: ScanPlan,
    *,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
) -> pa.Table:
    """Read the plan's versions (files and pending) as one table, ``_commit ≤ plan.commit``.

    Args:
        root: The store folder.
        plan: From :func:`plan_scan`.
        columns: Columns to read (default all stored columns).
        filter: A pyarrow dataset expression, pushed down to the Parquet scan
            (row-group statistics) and applied to pending versions.

    Returns:
        Stored columns (or ``columns``), in no particular order.
    """
    bound = ds.field("_commit") <= plan.commit
    expr = bound if filter is None else (bound & filter)
    from_files = read_files(root, plan.entries, schema=plan.schema, columns=columns, filter=expr)
    pending = plan.pending
    if pending.num_rows:
        pending = ds.dataset(pending).to_table(columns=list(columns) if columns else None, filter=expr)
        return pa.concat_tables([from_files, pending])
    return from_files
