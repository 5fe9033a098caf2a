"""The core's translation of a :class:`~koru_core.read.plan.ReadPlan` into pyarrow.

Like the DuckDB and Polars translations, this module decides nothing: it reads the
plan's sources through the store's :class:`~koru_core.storage.parquet.FileCache`,
applies the plan's filters (:data:`~koru_core.read.plan.EXACT_FILTER`,
:data:`~koru_core.read.plan.CANDIDATE_FILTER`) and strategy, and the rule of
:mod:`koru_core.read.rules`. Tables here carry ids as bytes; :func:`to_api` turns them
into the hex strings every read returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._hex import to_hex
from koru_core.layout import COLD_SCHEMA
from koru_core.model import TIMESTAMP
from koru_core.read import rules
from koru_core.read.plan import candidate_filter, exact_filter

if TYPE_CHECKING:
    from koru_core.context import StoreContext
    from koru_core.read.plan import ReadPlan, Source

__all__ = ["as_of", "ids_as_hex", "read_source", "row_to_api", "to_api", "versions"]

_SYSTEM_TYPES = {f.name: f.type for f in COLD_SCHEMA}
_ID_COLUMNS = frozenset(("_write_id", "_prev_write_id", "_content_id", "before_write_id", "before_content_id",
                         "after_content_id"))
_INTERNAL = frozenset(("_valid_to_commit", "_last_write_id", "_last_valid"))
"""Columns of cold files that reads never return."""
_VIRTUAL = ("_commit", "_system_from")
_COLD_ONLY = ("_valid_to", "_valid_to_commit")


def _row_groups(ctx: StoreContext, src: Source, key: str | None, valid_at: int | None,
                ended_by: bool) -> list[int] | None:
    """Row groups of a file that may hold rows the read keeps, by their statistics: ``key``
    within ``_key``'s range, ``_valid_from`` starting by ``valid_at``, and (``ended_by``:
    an exact source) some ``_valid_to`` after it. None for all."""
    if src.entry is None or (key is None and valid_at is None):
        return None
    stats = ctx.files.row_group_stats(src.entry)
    keep = np.ones(len(stats.valid_min), dtype=bool)
    if valid_at is not None:
        keep &= stats.valid_min <= valid_at
        if ended_by:
            keep &= stats.valid_to_max > valid_at
    if key is not None:
        k = key.encode()
        keep &= [lo is None or lo <= k <= hi for lo, hi in zip(stats.key_min, stats.key_max, strict=True)]  # type: ignore[operator]
    return np.flatnonzero(keep).tolist()


def read_source(ctx: StoreContext, plan: ReadPlan, src: Source, columns: Sequence[str]) -> pa.Table:
    """Read ``columns`` (system and value names) of one source as one table.

    Virtual columns are added (``_commit``, ``_system_from`` of warm files and pending
    versions; null ``_valid_to``/``_valid_to_commit`` where not stored), value columns
    a file lacks are null and narrower types are cast to the namespace's, and a
    one-key plan keeps only that key's rows.
    """
    if src.table is not None:
        table = src.table
        if plan.key is not None:
            table = _rows_of_key(table, plan.key)
        present = set(table.column_names)
        table = table.select([c for c in dict.fromkeys(["_key", *columns]) if c in present])
    else:
        assert src.entry is not None
        physical = [c for c in dict.fromkeys(["_key", *columns]) if not (src.commit is not None and c in _VIRTUAL)]
        if plan.key is not None and not src.is_key_sorted and ctx.files.keeps_by_key(src.entry):
            # the file's rows in key order (kept by the cache), sliced
            table = _rows_of_key(ctx.files.read_by_key(src.entry, physical), plan.key)
        else:
            valid_at = plan.valid_at if plan.shape == "as_of" and not src.keep_all else None
            groups = _row_groups(ctx, src, plan.key, valid_at, ended_by=valid_at is not None and src.is_cold
                                 and plan.commit >= plan.cold_commit)
            if plan.key is not None and not src.is_key_sorted:
                table = _key_rows_unsorted(ctx, src, plan.key, physical, groups)
            else:
                table = ctx.files.read(src.entry, physical, row_groups=groups)
                if plan.key is not None and "_key" in table.column_names:
                    table = _rows_of_key(table, plan.key)
    return _conform(table, plan.schema, src, columns)


def _conform(table: pa.Table, schema: pa.Schema, src: Source, columns: Sequence[str]) -> pa.Table:
    """``table``'s ``columns`` in order with the namespace's types (``schema`` for value
    columns, :data:`COLD_SCHEMA` for system ones): narrower types cast, absent columns
    added (a warm file's ``_commit``/``_system_from`` from ``src``, others null)."""
    fields = list(table.schema)
    index = {f.name: i for i, f in enumerate(fields)}
    types = {f.name: f.type for f in schema}
    plain = []
    for c in columns:
        i = index.get(c)
        want = _SYSTEM_TYPES.get(c) if c.startswith("_") else types[c]
        if i is None or not fields[i].nullable or (want is not None and fields[i].type != want):
            break
        plain.append(i)
    else:
        return table.select(plain)  # every column there, nullable, with its type: no copy
    n = table.num_rows
    out = []
    for c in columns:
        i = index.get(c)
        if i is not None:
            col = table.column(i)
            want = _SYSTEM_TYPES.get(c) if c.startswith("_") else types[c]
            if want is not None and col.type != want:
                col = col.cast(want)
            out.append(col)
        elif c == "_commit" and src.commit is not None:
            out.append(pa.repeat(pa.scalar(src.commit, pa.int64()), n))
        elif c == "_system_from" and src.system_time is not None:
            out.append(pa.repeat(pa.scalar(src.system_time, TIMESTAMP), n))
        elif c.startswith("_"):
            out.append(pa.nulls(n, _SYSTEM_TYPES[c]))
        else:
            out.append(pa.nulls(n, types[c]))
    return pa.table(out, names=list(columns))


STATS_PRUNE_SHARE = 2
"""A one-key read of a file not sorted by key scans the ``_key`` column of the row groups
whose statistics may hold the key when they hold at most half of its rows; else it uses
the file's key order (:meth:`FileCache.key_order`, a sort computed once per file)."""


def _key_rows_unsorted(ctx: StoreContext, src: Source, key: str, physical: list[str],
                       groups: list[int] | None) -> pa.Table:
    """One key's rows of a file not sorted by key (history files), in file order.

    A history file is sorted by valid time, then key: within each run of one valid time,
    row groups hold disjoint key ranges, so ``groups`` (pruned by ``_key`` statistics) is
    often a small share of the file. Then only their ``_key`` column is scanned, and the
    row groups with a hit are read. Otherwise two binary searches over the file's key
    order find the rows, which are gathered from the whole file when the cache keeps it
    (or may: :meth:`FileCache.may_keep_whole`), else from the row groups holding them (a
    history file of millions of rows is never decoded whole)."""
    assert src.entry is not None
    starts = ctx.files.row_group_starts(src.entry)
    if groups is not None and (starts[-1] == 0 or
                               sum(int(starts[g + 1] - starts[g]) for g in groups) * STATS_PRUNE_SHARE <= starts[-1]):
        if not groups:
            groups = [0] if len(starts) > 1 else []
        keys = ctx.files.read(src.entry, ["_key"], row_groups=groups)["_key"]
        sizes = [int(starts[g + 1] - starts[g]) for g in groups]
        hit = [g for g, part in zip(groups, _split(keys, sizes), strict=True) if pc.any(pc.equal(part, key)).as_py()]
        table = ctx.files.read(src.entry, physical, row_groups=hit or groups[:1])
        return table.filter(pc.equal(table["_key"], key))
    keys, order = ctx.files.key_order(src.entry)
    lo = rules.bisect_key(keys, key, right=False, order=order)
    hi = rules.bisect_key(keys, key, right=True, order=order)
    hits = np.sort(order.slice(lo, hi - lo).to_numpy().astype(np.int64))
    if ctx.files.holds_whole(src.entry, physical) or ctx.files.may_keep_whole(src.entry):
        # decoded (and kept) as one chunk per column: one gather
        return ctx.files.read(src.entry, physical).take(pa.array(hits, pa.int64()))
    # a gather per row group (a take over several chunks would first concatenate them)
    group_of = np.searchsorted(starts, hits, side="right") - 1
    parts = []
    for g in np.unique(group_of):
        rows = hits[group_of == g] - starts[g]
        parts.append(ctx.files.read(src.entry, physical, row_groups=[int(g)]).take(pa.array(rows, pa.int64())))
    if not parts:  # the key is not in the file
        return ctx.files.read(src.entry, physical, row_groups=[])
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _split(column: pa.ChunkedArray | pa.Array, sizes: list[int]) -> list[pa.Array | pa.ChunkedArray]:
    """``column`` cut into consecutive pieces of ``sizes`` rows."""
    out, at = [], 0
    for n in sizes:
        out.append(column.slice(at, n))
        at += n
    return out


def _rows_of_key(table: pa.Table, key: str) -> pa.Table:
    """The rows of one key of a table sorted by ``_key`` (data files but history files, and
    pending versions): two binary searches over the key column give the slice."""
    keys = table["_key"]
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    lo = rules.bisect_key(keys, key, right=False)
    hi = rules.bisect_key(keys, key, right=True)
    return table.slice(lo, hi - lo)


class _Arrow:
    """The plan's predicates as pyarrow compute expressions (:class:`~koru_core.read.plan.Predicates`)."""

    def col(self, name: str) -> pc.Expression:
        return pc.field(name)

    def timestamp(self, ns: int) -> pc.Expression:
        return pc.scalar(pa.scalar(ns, TIMESTAMP))

    def integer(self, value: int) -> pc.Expression:
        return pc.scalar(value)

    def le(self, a: pc.Expression, b: pc.Expression) -> pc.Expression:
        return a <= b

    def gt(self, a: pc.Expression, b: pc.Expression) -> pc.Expression:
        return a > b

    def is_null(self, a: pc.Expression) -> pc.Expression:
        return a.is_null()

    def and_(self, a: pc.Expression, b: pc.Expression) -> pc.Expression:
        return a & b

    def or_(self, a: pc.Expression, b: pc.Expression) -> pc.Expression:
        return a | b

    def not_(self, a: pc.Expression) -> pc.Expression:
        return ~a


ARROW = _Arrow()


class _Eager:
    """The plan's predicates evaluated at once over a table's columns (boolean arrays, SQL
    three-valued logic: a null compares as unknown, and ``unknown OR true`` is true)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def col(self, name: str) -> pa.ChunkedArray:
        return self.table[name]

    def timestamp(self, ns: int) -> pa.Scalar:
        return pa.scalar(ns, TIMESTAMP)

    def integer(self, value: int) -> pa.Scalar:
        return pa.scalar(value, pa.int64())

    def le(self, a: Any, b: Any) -> Any:
        return pc.less_equal(a, b)

    def gt(self, a: Any, b: Any) -> Any:
        return pc.greater(a, b)

    def is_null(self, a: Any) -> Any:
        return pc.is_null(a)

    def and_(self, a: Any, b: Any) -> Any:
        return pc.and_kleene(a, b)

    def or_(self, a: Any, b: Any) -> Any:
        return pc.or_kleene(a, b)

    def not_(self, a: Any) -> Any:
        return pc.invert(a)


_TAKE_BELOW = 0.1
"""Selectivity under which matching rows are gathered by index (``take``) rather than by mask."""


def _where(ctx: StoreContext, plan: ReadPlan, src: Source, columns: list[str], tested: list[str],
           predicate: Callable[[_Eager], Any]) -> pa.Table:
    """``columns`` of the rows of ``src`` for which ``predicate`` holds: the predicate is
    evaluated over the ``tested`` columns, then only the matching rows are gathered (no
    expression engine over every column)."""
    if src.keep_all:  # the planner proved every row passes
        return read_source(ctx, plan, src, columns)
    if plan.key is not None:  # one key's rows: few, so read them whole and filter once
        table = read_source(ctx, plan, src, list(dict.fromkeys([*columns, *tested])))
        mask = pc.fill_null(predicate(_Eager(table)), False)
        return table.filter(mask).select(columns)
    # one read of every column: the file cache decodes whole row groups either way
    table = read_source(ctx, plan, src, list(dict.fromkeys([*columns, *tested])))
    mask = predicate(_Eager(table))
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks() if mask.num_chunks else pa.array([], pa.bool_())
    mask = pc.fill_null(mask, False)
    hits = pc.sum(mask).as_py() or 0
    table = table.select(columns)
    if hits == len(mask):
        return table
    if not hits:
        return table.slice(0, 0)
    runs = _runs(mask) if 2 * hits >= len(mask) else None
    if runs is not None:  # a few runs of rows (a history file's rows valid by t are a prefix): zero-copy slices
        return pa.concat_tables([table.slice(lo, hi - lo) for lo, hi in runs])
    if hits < _TAKE_BELOW * len(mask):
        return _take_where(table, mask)
    return table.filter(mask)


_MAX_RUNS = 16
"""Matching rows in at most this many runs are returned as slices of the decoded rows."""


def _runs(mask: pa.Array) -> list[tuple[int, int]] | None:
    """The [lo, hi) runs of ``mask``'s true rows when there are at most :data:`_MAX_RUNS`, else None."""
    m = mask.to_numpy(zero_copy_only=False).view(np.int8)
    edges = np.flatnonzero(np.diff(m, prepend=0, append=0))  # starts and ends, alternating
    if len(edges) > 2 * _MAX_RUNS:
        return None
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _take_where(table: pa.Table, mask: pa.Array) -> pa.Table:
    """The rows of ``table`` where ``mask`` holds: gathered by index (``take``) from one
    chunk, filtered from several (a ``take`` over chunks concatenates every column first:
    3 ms against 0.6 ms for 3,235 rows of three 16k-row groups of 28 columns)."""
    if all(c.num_chunks <= 1 for c in table.columns):
        return table.take(pc.indices_nonzero(mask))
    return table.filter(mask)


def _exact_rows(ctx: StoreContext, plan: ReadPlan, src: Source, columns: list[str]) -> pa.Table:
    t = plan.valid_at
    assert t is not None
    return _where(ctx, plan, src, columns, ["_valid_from", "_valid_to"], lambda p: exact_filter(p, t))


def _candidate_rows(ctx: StoreContext, plan: ReadPlan, src: Source, columns: list[str]) -> pa.Table:
    tested = ["_commit"] if plan.valid_at is None else ["_commit", "_valid_from", *(_COLD_ONLY if src.is_cold else ())]
    return _where(ctx, plan, src, columns, tested,
                  lambda p: candidate_filter(p, plan.valid_at, plan.commit, is_cold=src.is_cold))


def as_of(ctx: StoreContext, plan: ReadPlan) -> pa.Table:
    """Execute an as-of plan.

    Returns:
        One row per live key, in no particular order: the plan's value columns, then
        ``_key``, ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id`` (bytes).
    """
    output = [*plan.columns, *rules.AS_OF_SYSTEM_COLUMNS]
    needed = [*output, "_deleted"]
    exact = [_exact_rows(ctx, plan, src, needed) for src in plan.exact]
    exact_rows = pa.concat_tables([x.select(needed) for x in exact]) if exact else None
    if plan.strategy == "intervals":
        state = exact_rows
    else:
        cands = [_candidate_rows(ctx, plan, src, needed) for src in plan.candidates]
        if (plan.strategy == "merge" and exact_rows is not None
                and exact_rows.num_rows + sum(c.num_rows for c in cands) <= rules.SORT_ALL_ROWS):
            # few rows: the rule over the exact rows and the candidates at once (one sort)
            return _live(rules.latest_per_key(pa.concat_tables([exact_rows, *cands])), output)
        latest = rules.latest_per_key(pa.concat_tables(cands)) if cands else None
        if plan.strategy == "latest" or exact_rows is None or latest is None or latest.num_rows == 0:
            state = latest if exact_rows is None else exact_rows
        else:
            state = _merge(exact_rows, latest)
    if state is None:
        return pa.schema([*_output_fields(plan)]).empty_table()
    return _live(state, output)


def _live(state: pa.Table, output: list[str]) -> pa.Table:
    """``output`` columns of the rows of ``state`` that are not tombstones."""
    deleted = state["_deleted"]
    if not pc.any(deleted).as_py():  # no tombstone: nothing to drop
        return state.select(output)
    return state.filter(pc.invert(deleted)).select(output)


def _merge(exact: pa.Table, latest: pa.Table) -> pa.Table:
    """Per key, the later of its exact row and its candidates' choice (candidates win ties:
    their commits are later)."""
    contested = pc.is_in(exact["_key"], value_set=latest["_key"].combine_chunks())
    rest = exact.filter(pc.invert(contested))
    both = rules.latest_per_key(pa.concat_tables([exact.filter(contested), latest]))
    return pa.concat_tables([rest, both])


def _output_fields(plan: ReadPlan) -> list[pa.Field]:
    return [plan.schema.field(c) for c in plan.columns] + [
        pa.field(c, _SYSTEM_TYPES[c]) for c in rules.AS_OF_SYSTEM_COLUMNS
    ]


_VERSION_COLUMNS = ("_key", "_valid_from", "_system_from", "_commit", "_write_id", "_prev_write_id",
                    "_content_id", "_deleted", "_actor", "_run_id", "_parents")


def versions(ctx: StoreContext, plan: ReadPlan, *, pruned: bool = False) -> pa.Table:
    """Execute a history or versions plan: every version up to ``plan.commit``, any order.

    Args:
        pruned: Also return the skeletons of versions distillation dropped (value
            columns null), with a bool column ``_pruned``.

    Returns:
        The value columns then :data:`_VERSION_COLUMNS` (ids as bytes), no ``_valid_to``.
    """
    columns = [*plan.columns, *_VERSION_COLUMNS]
    parts = [_candidate_rows(ctx, plan, src, columns) for src in plan.candidates]
    if pruned:
        parts = [p.append_column("_pruned", pa.repeat(pa.scalar(False), p.num_rows)) for p in parts]
        for src in plan.pruned:
            skel = _candidate_rows(ctx, plan, src, columns)
            parts.append(skel.append_column("_pruned", pa.repeat(pa.scalar(True), skel.num_rows)))
    if not parts:
        fields = [plan.schema.field(c) for c in plan.columns] + [pa.field(c, _SYSTEM_TYPES[c]) for c in _VERSION_COLUMNS]
        empty = pa.schema(fields).empty_table()
        return empty.append_column("_pruned", pa.array([], pa.bool_())) if pruned else empty
    return pa.concat_tables(parts)


def to_api(table: pa.Table) -> pa.Table:
    """Return ``table`` as reads show it: ids as lowercase hex strings, internal columns dropped."""
    schema = table.schema
    names, columns = [], []
    for i, f in enumerate(schema):
        if f.name in _INTERNAL:
            continue
        col = table.column(i)
        if f.name in _ID_COLUMNS and pa.types.is_fixed_size_binary(f.type):
            col = to_hex(col)
        names.append(f.name)
        columns.append(col)
    return pa.Table.from_arrays(columns, names=names)


def row_to_api(table: pa.Table, columns: Sequence[str]) -> dict[str, Any]:
    """The first row of ``table``'s ``columns`` as reads show it (:func:`to_api`: ids as
    lowercase hex), as a dict of column → Python value: for one version (a put's result)
    without a pass over Arrow arrays per id column. ``table`` must have a row and the columns."""
    return ids_as_hex(table.slice(0, 1).select(list(columns)).to_pylist()[0])


def ids_as_hex(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (column → Python value) with its id columns' bytes as lowercase hex, as
    reads show them (:func:`to_api`); changed in place and returned."""
    for name in _ID_COLUMNS:
        value = row.get(name)
        if isinstance(value, bytes):
            row[name] = value.hex()
    return row
