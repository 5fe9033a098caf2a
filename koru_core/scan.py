"""Resolving what a read needs: the commit, the data files and the pending versions.

:func:`plan_scan` is the one call DuckDB, Polars and the core's own reads use to
learn what to read: it fixes the commit bound and lists the Parquet files and
the not-yet-flushed versions, in one consistent catalog snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from koru_core._parquet import read_files, verify_files
from koru_core.catalog import Catalog, FileEntry
from koru_core.errors import InvalidInputError, NamespaceNotFoundError
from koru_core.model import STORED_COLUMNS, SYSTEM_SCHEMA, TIMESTAMP
from koru_core.schema import conform

__all__ = ["ScanPlan", "hint_applies", "plan_scan", "read_versions", "stored_schema"]


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
            versions (warm and cold tiers; deep-tier skeletons are not listed),
            oldest first; each is sorted by (``_key``, ``_valid_from``). Cold
            files also hold a ``_valid_to`` column (a hint filled in at
            consolidation, possibly stale): read only ``schema``'s columns and
            compute ``_valid_to`` as :func:`koru_core.read.with_valid_to` does.
            :meth:`Store.scan_plan` keeps the files on disk (a reader lease)
            while the plan object is alive.
        entries: The catalog entries of ``files`` (sizes, checksums, commit and
            valid-time ranges for pruning).
        pending: Versions not yet flushed to files (same ``schema``), as Arrow.
        is_distilled: True when distillation has dropped versions of the
            namespace (their skeletons are in the deep tier, not in ``files``).
        has_exact_valid_to: True when every version the plan reads is in cold
            files written by one consolidation run, at the latest commit, with
            nothing pending and nothing distilled: then the stored
            ``_valid_to`` is exact, and the as-of state at valid time *t* is
            just the rows with ``_valid_from <= t < _valid_to`` (null = open),
            tombstones dropped: no per-key choice is needed.
        lease: The reader lease keeping ``files`` on disk while the plan is
            alive (:class:`koru_core.lifecycle.leases.Lease`; None when made
            by :func:`plan_scan` directly). Keep the plan until the files are read.
    """

    namespace: str
    commit: int
    head_commit: int
    schema: pa.Schema
    files: tuple[str, ...]
    entries: tuple[FileEntry, ...]
    pending: pa.Table
    is_distilled: bool = False
    has_exact_valid_to: bool = False
    lease: object | None = field(default=None, repr=False, compare=False)


_RUN = re.compile(r"/part-(\d+)-[0-9a-f]+\.parquet$")
"""A consolidation run's part files are named ``part-<head>-<hex>.parquet``
(:func:`koru_core.lifecycle._swap.part_name`); the head identifies the run."""


def plan_scan(root: Path, catalog: Catalog, namespace: str, *, version: int | None = None) -> ScanPlan:
    """Return the :class:`ScanPlan` of ``namespace`` at commit ``version`` (default: latest).

    Raises:
        NamespaceNotFoundError: the namespace was never written.
        InvalidInputError: ``version`` is not an existing commit number.
        CorruptionError: pending versions fail their checksum, or a data file
            its size or blake3 (checked once per file per process).
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
        every = catalog.files(namespace)
        entries = [e for e in every if e.min_commit <= bound and e.tier != "deep"]
        is_distilled = any(e.tier == "deep" for e in every)
        pending = catalog.pending(namespace)
    verify_files(root, entries)
    runs = {m.group(1) if (m := _RUN.search(e.path)) else None for e in entries}
    exact = (
        bound == head and not is_distilled and not pending and bool(entries)
        and all(e.tier == "cold" for e in entries) and len(runs) == 1 and None not in runs
    )
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
        is_distilled=is_distilled,
        has_exact_valid_to=exact,
    )


def read_versions(
    root: Path,
    plan: ScanPlan,
    *,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
    valid_at_hint: int | None = None,
) -> pa.Table:
    """Read the plan's versions (files and pending) as one table, ``_commit ≤ plan.commit``.

    Args:
        root: The store folder.
        plan: From :func:`plan_scan`.
        columns: Columns to read (default all stored columns).
        filter: A pyarrow dataset expression, pushed down to the Parquet scan
            (row-group statistics) and applied to pending versions.
        valid_at_hint: A valid time (ns, UTC) for an as-of read: also drop
            rows of cold files whose stored ``_valid_to`` is at or before it.
            Consolidation computes ``_valid_to`` over a subset of a key's
            versions, so it is never earlier than the true one: the row the
            as-of rule picks always survives. Only sound when no file holds
            commits above ``plan.commit`` (see :func:`hint_applies`).

    Returns:
        Stored columns (or ``columns``), in no particular order.
    """
    bound = ds.field("_commit") <= plan.commit
    expr = bound if filter is None else (bound & filter)
    schema = plan.schema
    file_expr = expr
    if valid_at_hint is not None:
        schema = schema.append(pa.field("_valid_to", TIMESTAMP))
        valid_to = ds.field("_valid_to")
        file_expr = expr & (valid_to.is_null() | (valid_to > pa.scalar(valid_at_hint, TIMESTAMP)))
    from_files = read_files(root, plan.entries, schema=schema, columns=columns, filter=file_expr)
    pending = plan.pending
    if pending.num_rows:
        pending = ds.dataset(pending).to_table(columns=list(columns) if columns else None, filter=expr)
        return pa.concat_tables([from_files, pending])
    return from_files


def hint_applies(plan: ScanPlan) -> bool:
    """True when the plan reads at the store's latest commit, so every stored
    ``_valid_to`` was computed from commits the plan can see. (A file's own
    ``max_commit`` is not enough: consolidation computes ``_valid_to`` across
    all the rows of a run, which may sit in other files.) Distillation drops
    versions other rows' stored ``_valid_to`` points at, so a distilled
    namespace never uses the hint."""
    return plan.commit == plan.head_commit and not plan.is_distilled
