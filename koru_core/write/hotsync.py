"""Bringing a namespace's head index up to the store's head, and reading what the late path needs.

An index is built once per store from the cold *state* files (each key's last
version, its chain tip ``_last_write_id`` and ``_last_valid``), then the warm files
and pending versions after the namespace's ``cold_commit``, in commit order; after
that, each commit made by another process is folded in from its own files and blobs.
A consolidation that absorbed commits the index has not seen makes it rebuild.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.catalog.entries import FileEntry
from koru_core.hot.index import INDEX_COLUMNS, HeadIndex
from koru_core.layout import SKIP_SCHEMA
from koru_core.model import TIMESTAMP

if TYPE_CHECKING:
    from collections.abc import Iterator

    from koru_core.context import StoreContext

__all__ = ["commit_rows", "current_commit", "index_at", "late_history", "late_skips", "with_commit"]

_STATE_COLUMNS = ["_key", "_valid_from", "_commit", "_content_id", "_deleted", "_last_write_id", "_last_valid"]


def with_commit(table: pa.Table, commit: int | np.ndarray, columns: Sequence[str]) -> pa.Table:
    """``columns`` of ``table``, ``_commit`` set to ``commit`` (one number, or one per row:
    int64) where it is null or absent; columns it lacks are null (type null)."""
    n = table.num_rows
    commits = pa.repeat(pa.scalar(commit, pa.int64()), n) if isinstance(commit, int) else pa.array(commit, pa.int64())
    if "_commit" not in table.column_names:
        table = table.append_column("_commit", commits)
    else:
        table = table.set_column(table.column_names.index("_commit"), "_commit", pc.coalesce(table["_commit"], commits))
    have = set(table.column_names)
    return pa.table([table[c] if c in have else pa.nulls(n) for c in columns], names=list(columns))


def commit_rows(
    ctx: StoreContext, namespace: str, files: Sequence[FileEntry], *, after: int, upto: int,
    kind: str = "versions", columns: Sequence[str] = INDEX_COLUMNS,
) -> list[tuple[int, pa.Table]]:
    """(commit, rows) of the warm files and pending blobs of commits in (``after``, ``upto``], in commit order.

    ``columns`` are read (``_commit`` is the commit's number)."""
    out: list[tuple[int, pa.Table]] = []
    physical = [c for c in columns if c != "_commit"]
    for e in files:
        if e.tier == "warm" and e.kind == kind and e.commit is not None and after < e.commit <= upto:
            out.append((e.commit, with_commit(ctx.files.read(e, physical), e.commit, columns)))
    pending = ctx.pending.tables(namespace, after=after, upto=upto, kind=kind)  # type: ignore[arg-type]
    for _, group in itertools.groupby(pending, key=lambda p: p[2].schema):  # a run of one schema: joined once
        run = list(group)
        lengths = [t.num_rows for _, _, t in run]
        commits = np.repeat(np.array([c for c, _, _ in run], dtype=np.int64), lengths)
        joined = with_commit(pa.concat_tables([t for _, _, t in run]), commits, columns)
        offsets = np.cumsum([0, *lengths])
        out.extend((c, joined.slice(int(offsets[i]), lengths[i])) for i, (c, _, _) in enumerate(run))
    out.sort(key=lambda p: p[0])
    return out


def current_commit(ctx: StoreContext, namespace: str, key: str, head: int) -> int:
    """The commit of ``key``'s current version as of commit ``head`` (the head of the
    namespace's index: its last version by valid time), 0 if the key has none: what a
    compare-and-set (``put(expected_version=)``) and a transaction's read set record."""
    found = index_at(ctx, namespace, head).get(key)
    return 0 if found is None else found.commit


def index_at(ctx: StoreContext, namespace: str, head: int) -> HeadIndex:
    """Return the namespace's index brought up to commit ``head`` (built if needed)."""
    index = ctx.hot.index(namespace)
    if index is not None and index.commit >= head:
        return index
    with ctx.catalog.snapshot():
        info = ctx.catalog.namespace(namespace)
        files = ctx.catalog.files(namespace)
        if info is None:
            fresh = HeadIndex()
            fresh.commit = head
            ctx.hot.set_index(namespace, fresh)
            return fresh
        if index is None or index.commit < info.cold_commit:
            index = _build(ctx, files)
            index.commit = max(index.commit, info.cold_commit)
        versions = commit_rows(ctx, namespace, files, after=index.commit, upto=head)
        skips = commit_rows(ctx, namespace, files, after=index.commit, upto=head, kind="skips",
                            columns=("_key", "_valid_from", "_commit"))
    by_commit: dict[int, list[pa.Table]] = {}
    for c, t in versions:
        by_commit.setdefault(c, []).append(t)
    skip_by_commit = {c: t for c, t in skips}
    for c in sorted(set(by_commit) | set(skip_by_commit)):
        v = pa.concat_tables(by_commit[c]) if c in by_commit else pa.schema([]).empty_table()
        if v.num_columns:
            index.apply(v.cast(_index_schema(v)), commit=c, skips=skip_by_commit.get(c))
        else:
            index.apply(_empty_versions(), commit=c, skips=skip_by_commit.get(c))
    index.commit = max(index.commit, head)
    ctx.hot.set_index(namespace, index)
    ctx.hot.enforce()
    return index


def _index_schema(t: pa.Table) -> pa.Schema:
    return pa.schema([t.schema.field(n) for n in t.column_names])


def _empty_versions() -> pa.Table:
    return pa.table({
        "_key": pa.array([], pa.string()), "_valid_from": pa.array([], TIMESTAMP), "_commit": pa.array([], pa.int64()),
        "_write_id": pa.array([], pa.binary(8)), "_content_id": pa.array([], pa.binary(32)),
        "_deleted": pa.array([], pa.bool_()),
    })


def _build(ctx: StoreContext, files: Sequence[FileEntry]) -> HeadIndex:
    """The index of the state files' heads, decoded :data:`BUILD_ROW_GROUPS` row groups at
    a time and not kept in the file cache (the index holds what it needs: a fresh process
    that opens a 1M-key namespace to write holds the index, not its state columns too)."""
    index = HeadIndex()
    states = [e for e in files if e.tier == "cold" and e.kind == "state"]
    index.load(_state_heads(ctx, states), rows=sum(e.rows for e in states))
    return index


BUILD_ROW_GROUPS = 8
"""State-file row groups decoded at a time to build a head index (128k rows: ~10 MB)."""


def _state_heads(ctx: StoreContext, states: Sequence[FileEntry]) -> Iterator[pa.Table]:
    for e in states:
        groups = ctx.files.metadata(e).num_row_groups
        for g in range(0, groups, BUILD_ROW_GROUPS):
            t = ctx.files.read(e, _STATE_COLUMNS, row_groups=range(g, min(groups, g + BUILD_ROW_GROUPS)), keep=False)
            yield pa.table({
                "key": t["_key"], "valid_from": t["_valid_from"], "commit": t["_commit"],
                "content_id": t["_content_id"], "deleted": t["_deleted"],
                "last_write_id": t["_last_write_id"], "last_valid": t["_last_valid"],
            })


def late_history(ctx: StoreContext, namespace: str, keys: pa.Array, head: int, values: Sequence[str]) -> pa.Table:
    """Every stored version of ``keys`` up to ``head``: ``_key``, ``_valid_from`` (int64 ns),
    ``_commit``, ``_content_id`` (null for tombstones), ``_write_id``, ``_actor``, ``_run_id``,
    then the value columns that ``head``'s schema has."""
    from koru_core.read import execute
    from koru_core.read.plan import plan_versions

    plan = plan_versions(ctx, namespace, version=head)
    stored = [v for v in values if v in plan.schema.names]  # a field new in this commit has no history
    wanted = pa.array(sorted(set(keys.to_pylist())), pa.string())
    parts = []
    for src in plan.candidates:
        t = execute.read_source(ctx, plan, src, ["_key", "_valid_from", "_commit", "_content_id", "_deleted",
                                                 "_write_id", "_actor", "_run_id", *stored])
        parts.append(t.filter(pc.is_in(t["_key"], value_set=wanted)))
    table = pa.concat_tables(parts) if parts else None
    if table is None:
        return pa.table({"_key": pa.array([], pa.string())})
    cid = pc.if_else(table["_deleted"], pa.scalar(None, pa.binary(32)), table["_content_id"])
    table = table.set_column(table.column_names.index("_content_id"), "_content_id", cid)
    return table.set_column(1, "_valid_from", table["_valid_from"].cast(pa.int64()))


def late_skips(ctx: StoreContext, namespace: str, keys: pa.Array, head: int) -> pa.Table:
    """The skip records of ``keys`` up to ``head``: ``_key``, ``_valid_from`` (int64 ns), ``_commit``, ``_parents``."""
    wanted = pa.array(sorted(set(keys.to_pylist())), pa.string())
    with ctx.catalog.snapshot():
        files = ctx.catalog.files(namespace)
        parts = [t for _, t in commit_rows(ctx, namespace, files, after=0, upto=head, kind="skips",
                                           columns=SKIP_SCHEMA.names)]
    cold = [e for e in files if e.tier == "cold" and e.kind == "skips"]
    parts += [ctx.files.read(e, SKIP_SCHEMA.names) for e in cold]
    if not parts:
        return SKIP_SCHEMA.empty_table().set_column(1, "_valid_from", pa.array([], pa.int64()))
    table = pa.concat_tables([p.cast(SKIP_SCHEMA) for p in parts])
    table = table.filter(pc.is_in(table["_key"], value_set=wanted))
    return table.set_column(1, "_valid_from", table["_valid_from"].cast(pa.int64()))
