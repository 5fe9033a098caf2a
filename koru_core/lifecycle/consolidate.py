"""Consolidation: warm files and pending versions → the cold layout (state and history files).

The cold layout of a namespace (:mod:`koru_core.layout`) is, as of its consolidation
head ``cold_commit``:

- *state* files: each key's last version (``_valid_to`` null), sorted by key, in key
  ranges (shards) of at most :data:`STATE_SHARD_ROWS` keys; each row also keeps the
  key's chain tip ``_last_write_id`` and its ``_last_valid`` (skip records included),
  from which the write path's index is rebuilt;
- *history* files: every closed version (``_valid_to`` set), sorted by (valid time,
  key) (:data:`HISTORY_ORDER`). Each run writes the versions it closes into one new
  file; their intervals end near the time of the run, so the file's ``max_valid_to``
  lets an as-of read skip it, and within a file the versions that started by *t* are a
  prefix. The newest small history files are folded together (:func:`_history_to_merge`);
- *skips* files: skip records.

A run reads the overlay (warm files and pending versions up to the head it sees),
the state shards holding the overlay's keys, and — only for *late* keys, whose new
versions come before their last cold version — those keys' history rows. It computes
``_valid_to`` (the next ``_valid_from`` of the key in (``_valid_from``, ``_commit``)
order) and ``_valid_to_commit`` over all of them (when no key is late, by a sorted merge
of the state rows and the overlay: :mod:`koru_core.lifecycle.merge`), writes the new state shards, one
history file and one skips file, and swaps them in with one catalog transaction
(:meth:`Catalog.swap_files`), raising ``cold_commit`` to its head. Readers see the
old files and overlay or the new files, never a mix. Replaced files are retired and
deleted by vacuum once no reader needs them.

Memory: a run of more rows than :func:`range_rows` (``memory_limit`` / 2,048: 256k rows at
the default 512 MiB) goes key range by key range: each range's state rows stream into
the new shards, and its closed versions are a sorted run; the runs (spilled to temporary
files past the same bound) and the small history files folded in are merged into the
one new history file (:mod:`koru_core.lifecycle.runs`). A run with late keys is done at
once (their history is pulled whole).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.catalog.entries import FileEntry
from koru_core.layout import COLD_SCHEMA, SKIP_SCHEMA, cold_name
from koru_core.lifecycle.merge import merge_sorted
from koru_core.lifecycle.runs import HISTORY_ORDER, Runs, encoded_run, first_row, last_row, merge_runs
from koru_core.model import TIMESTAMP, WRITE_ID
from koru_core.read.rules import bisect_key, is_sorted
from koru_core.schema import conform
from koru_core.storage.parquet import ParquetSink, write_parquet
from koru_core.write.decide import first_of_key
from koru_core.write.hotsync import commit_rows, with_commit
from koru_core.write.versions import u64_ids, write_ids_of

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = [
    "COLD_ROW_GROUP_ROWS", "HISTORY_MERGE_ROWS", "HISTORY_ORDER", "HISTORY_SMALL_ROWS", "RANGE_BYTES_PER_ROW",
    "STATE_SHARD_ROWS", "consolidate_commit", "consolidate_namespace", "range_rows",
]

COLD_ROW_GROUP_ROWS = 16 * 1024
"""Rows per row group in cold files: a key's rows are one small group per file."""

STATE_SHARD_ROWS = 4 * 1024 * 1024
"""Keys per state shard: a run rewrites only the shards holding keys it changed."""

HISTORY_MERGE_ROWS = 4 * 1024 * 1024
"""History files of at least this many rows are never merged again (their ``_valid_to`` range
then prunes as-of reads)."""

HISTORY_MAX_FILES = 16
"""A run folds its newest history files into the new one while a namespace would keep more than this many."""

HISTORY_TIER_RATIO = 4
"""A run folds in a newest history file whose rows are at most 1/4 of the rows gathered so far."""

HISTORY_SMALL_ROWS = 4 * COLD_ROW_GROUP_ROWS
"""A run always folds in history files of fewer rows than this (64k: four row groups), so that
many runs of a few versions each leave one small history file, not one apiece: a one-key
read opens every history file that may hold its key."""

RANGE_BYTES_PER_ROW = 2048
"""Bytes of ``memory_limit`` a run budgets per row of one key range (the range's rows are
read, split, merged and sorted: about five copies of ~150-byte rows, with room)."""


def range_rows(memory_limit: int) -> int:
    """Rows (overlay and state together) one key range of a run holds: ``memory_limit``
    (bytes) / :data:`RANGE_BYTES_PER_ROW`, at least 4096 (256k at the default 512 MiB)."""
    return max(4096, memory_limit // RANGE_BYTES_PER_ROW)

_BY_KEY = [("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")]
"""The order of a key's versions in state files and while a run merges them."""

STATE_EXTRA = pa.schema([pa.field("_last_write_id", WRITE_ID), pa.field("_last_valid", TIMESTAMP)])
"""Columns state files keep beyond :data:`~koru_core.layout.COLD_SCHEMA` (for the write path's index)."""


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a run read: the overlay as each commit's rows (sorted by key and valid time)."""

    head: int
    cold_commit: int
    values: pa.Schema
    files: list[FileEntry]
    parts: list[tuple[int, pa.Table]]
    systimes: dict[int, int]
    overlay_skips: pa.Table
    overlay_files: list[FileEntry]

    @property
    def overlay_rows(self) -> int:
        return sum(t.num_rows for _, t in self.parts)

    def overlay(self) -> pa.Table:
        """The whole overlay as one table (:func:`_overlay`)."""
        return _overlay(self.parts, self.systimes, self.values)


def _cold(table: pa.Table, values: pa.Schema) -> pa.Table:
    return conform(table, pa.schema([*COLD_SCHEMA, *values]))


def _by_key(overlay: pa.Table) -> pa.Table:
    """``overlay`` sorted by (``_key``, ``_valid_from``, ``_commit``), as it already is when
    it holds one commit's rows (written in key and valid-time order)."""
    return overlay if is_sorted(overlay, _BY_KEY) else overlay.sort_by(_BY_KEY)


def _read_inputs(ctx: StoreContext, namespace: str) -> _Inputs | None:
    with ctx.catalog.snapshot():
        head = ctx.catalog.head()[0]
        info = ctx.catalog.namespace(namespace)
        if info is None:
            return None
        files = ctx.catalog.files(namespace)
        names = [*COLD_SCHEMA.names]
        names.remove("_valid_to")
        names.remove("_valid_to_commit")
        rows = commit_rows(ctx, namespace, files, after=info.cold_commit, upto=head,
                           columns=[*names, *info.schema.names])
        skips = commit_rows(ctx, namespace, files, after=info.cold_commit, upto=head, kind="skips",
                            columns=SKIP_SCHEMA.names)
    overlay_files = [e for e in files if e.tier == "warm" and e.commit is not None and e.commit <= head]
    systimes = {c.commit: c.system_time for c in ctx.catalog.commits(since=info.cold_commit, until=head)}
    skip_table = pa.concat_tables([t.cast(SKIP_SCHEMA) for _, t in skips]) if skips else SKIP_SCHEMA.empty_table()
    return _Inputs(head, info.cold_commit, info.schema, files, rows, systimes, skip_table, overlay_files)


def _overlay(rows: list[tuple[int, pa.Table]], systimes: dict[int, int], values: pa.Schema) -> pa.Table:
    """The overlay's (commit, rows) pairs, in commit order, as one table of
    :data:`~koru_core.layout.COLD_SCHEMA` + ``values`` columns, ``_system_from`` (ns, UTC)
    set from each commit's system time in ``systimes`` (commit → ns). Runs of commits
    with one schema are joined first and conformed once (64 one-row puts: one conform, not 64)."""
    if not rows:
        return _cold(pa.table({}), values).slice(0, 0)
    parts = []
    for _, group in itertools.groupby(rows, key=lambda row: row[1].schema):
        run = list(group)
        t = pa.concat_tables([t for _, t in run])
        lengths = np.array([t.num_rows for _, t in run], dtype=np.int64)
        times = np.repeat(np.array([systimes[c] for c, _ in run], dtype=np.int64), lengths)
        t = t.set_column(t.column_names.index("_system_from"), "_system_from", pa.array(times).cast(TIMESTAMP))
        parts.append(_cold(t, values))
    return pa.concat_tables(parts)


def consolidate_namespace(ctx: StoreContext, namespace: str) -> bool:
    """Consolidate one namespace; returns False when it had nothing to consolidate.

    Raises:
        CorruptionError: an input file is missing or corrupted (nothing is swapped).
        StoreFullError: no space for the new files (nothing is swapped, nothing left behind).
    """
    ctx.overlay.pop(namespace, None)  # the overlay changes here: counted again from the catalog next time
    token = ctx.leases.acquire()  # before the inputs' snapshot: a vacuum elsewhere keeps what it reads
    try:
        return _consolidate_leased(ctx, namespace)
    finally:
        ctx.leases.release(token)


def consolidate_commit(ctx: StoreContext, namespace: str, versions: pa.Table, skips: pa.Table, values: pa.Schema, *,
                       files: Sequence[FileEntry], cold_commit: int, commit: int,
                       system_time: int) -> tuple[list[FileEntry], list[FileEntry]]:
    """The cold layout of a namespace whose overlay is empty, with one more commit's rows,
    written before that commit is recorded (a commit large enough to be consolidated at
    once goes straight to the cold layout: its versions are encoded once, not first into
    a warm file).

    Args:
        versions: The commit's versions (:data:`~koru_core.layout.COMMIT_SCHEMA` and the
            value columns), sorted by ``_key`` and ``_valid_from``.
        skips: Its skip records (:data:`~koru_core.layout.SKIP_SCHEMA`, ``_commit`` null).
        values: The namespace's value schema after the commit.
        files: The namespace's files at the head the commit is prepared on.
        cold_commit: The namespace's ``cold_commit`` there (no warm file or pending blob
            after it).
        commit, system_time: The number and system time (ns, UTC) the commit will be
            recorded with (``_commit`` and ``_system_from`` of its rows).

    Returns:
        (files replaced, files added): for :class:`~koru_core.catalog.entries.FileSwap`.

    Raises:
        CorruptionError: an input file is missing or corrupted.
        StoreFullError: no space for the new files (nothing is left behind).
    """
    names = [n for n in COLD_SCHEMA.names if n not in ("_valid_to", "_valid_to_commit")]
    parts = [(commit, with_commit(versions, commit, [*names, *values.names]))] if versions.num_rows else []
    skip_rows = (with_commit(skips, commit, SKIP_SCHEMA.names).cast(SKIP_SCHEMA) if skips.num_rows
                 else SKIP_SCHEMA.empty_table())
    x = _Inputs(commit, cold_commit, values, list(files), parts, {commit: system_time}, skip_rows, [])
    token = ctx.leases.acquire()  # a vacuum elsewhere keeps the state files read here
    try:
        return _rewrite(ctx, namespace, x)
    finally:
        ctx.leases.release(token)


def _consolidate_leased(ctx: StoreContext, namespace: str) -> bool:
    inputs = _read_inputs(ctx, namespace)
    if inputs is None or (not inputs.overlay_rows and not inputs.overlay_skips.num_rows):
        return False
    added: list[FileEntry] = []
    try:
        removed, added = _rewrite(ctx, namespace, inputs)
        with ctx.lock:
            ok = ctx.catalog.swap_files(namespace, remove=[*removed, *inputs.overlay_files], add=added,
                                        absorb_pending_upto=inputs.head, cold_commit=inputs.head,
                                        retired_at=None, base_cold_commit=inputs.cold_commit)
    except BaseException:
        ctx.files.forget([e.path for e in added])
        for e in added:
            ctx.storage.delete(e.path)
        raise
    if not ok:
        ctx.files.forget([e.path for e in added])
        for e in added:
            ctx.storage.delete(e.path)
        return False
    return True


def _rewrite(ctx: StoreContext, namespace: str, x: _Inputs) -> tuple[list[FileEntry], list[FileEntry]]:
    """Write the run's new files; returns (files replaced, files added).

    A run whose overlay and touched state shards hold more than :func:`range_rows` rows
    goes key range by key range (:func:`_rewrite_by_range`), in bounded memory; a
    smaller one, or one with late keys, at once."""
    schema = pa.schema([*COLD_SCHEMA, *x.values])
    state_files = sorted((e for e in x.files if e.tier == "cold" and e.kind == "state"), key=lambda e: e.min_key or "")
    span = _key_span(x.parts)
    touched = [e for e in state_files if _touches(e, span)]
    limit = range_rows(ctx.memory_limit)
    if x.overlay_rows + sum(e.rows for e in touched) > limit:
        groups = {e.path: _group_keys(ctx, e) for e in touched}
        ranges = _ranges(x.parts, touched, groups, limit)
        if len(ranges) > 1:
            done = _rewrite_by_range(ctx, namespace, x, schema, touched, groups, ranges, limit)
            if done is not None:
                return done
    overlay = _by_key(x.overlay())
    old_state = (pa.concat_tables([_cold_read(ctx, e, schema) for e in touched])
                 if touched else _with_state_extra(schema.empty_table()))
    rewritten: list[FileEntry] = []
    remainders: list[FileEntry] = []
    merged = merge_sorted(old_state, overlay, x.overlay_skips, schema)
    if merged is not None:
        state, closed = merged
    else:  # late keys: their history is pulled and every row of theirs sorted again
        kept_state, changed_state, late = _split_state(old_state, overlay)
        history_rows = pa.schema([*schema]).empty_table()
        if len(late):
            history_rows, rewritten, remainders = _pull_history(ctx, namespace, x, schema, late)
        new_state, closed = _close(schema, changed_state, overlay, history_rows, x.overlay_skips)
        state = pa.concat_tables([kept_state, new_state.select(kept_state.column_names)])
        state = state.sort_by([("_key", "ascending")])
    added = [*remainders, *_write_state(ctx, namespace, x.head, state)]
    small = _history_to_merge([e for e in x.files if e.tier == "cold" and e.kind == "history" and e not in rewritten],
                              closed.num_rows)
    if closed.num_rows and small:  # fold small history files into the new one (size-tiered)
        closed = pa.concat_tables([closed, *(conform(ctx.files.read(e, schema.names, keep=False), schema) for e in small)])
        rewritten = [*rewritten, *small]
    if closed.num_rows:
        added.append(_write(ctx, namespace, "history", x.head, closed if is_sorted(closed, HISTORY_ORDER) else closed.sort_by(HISTORY_ORDER)))
    skips = _cold_skips(ctx, x)
    if skips is not None:
        added.append(_write(ctx, namespace, "skips", x.head, skips))
    return [*touched, *rewritten], added


def _split_state(old_state: pa.Table, overlay: pa.Table) -> tuple[pa.Table, pa.Table, pa.Array]:
    """(state rows of keys the overlay does not write, those it writes, the late keys among them)."""
    keys = pc.unique(overlay["_key"].combine_chunks()) if overlay.num_rows else pa.array([], pa.string())
    is_new = pc.is_in(old_state["_key"], value_set=keys) if len(keys) else pa.repeat(pa.scalar(False), old_state.num_rows)
    changed_state = old_state.filter(is_new)
    by_key = overlay.select(["_key", "_valid_from"]).sort_by([("_key", "ascending"), ("_valid_from", "ascending")])
    return old_state.filter(pc.invert(is_new)), changed_state, _late_keys(changed_state, by_key)


def _close(schema: pa.Schema, changed_state: pa.Table, overlay: pa.Table, history_rows: pa.Table,
           skips: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(new state rows with their tips, closed versions) of the keys the overlay writes."""
    merged = pa.concat_tables([
        changed_state.select(schema.names), overlay.select(schema.names), history_rows.select(schema.names),
    ]).sort_by(_BY_KEY)
    merged = _intervals(merged)
    tips = _tips(changed_state, overlay, skips)
    is_open = pc.is_null(merged["_valid_to"])
    return _with_tips(merged.filter(is_open), tips), merged.filter(pc.invert(is_open))


def _key_span(parts: list[tuple[int, pa.Table]]) -> tuple[str, str] | None:
    """The smallest and largest key of the overlay's parts (each sorted by key), None if empty."""
    ends = [(t["_key"][0].as_py(), t["_key"][t.num_rows - 1].as_py()) for _, t in parts if t.num_rows]
    return (min(a for a, _ in ends), max(b for _, b in ends)) if ends else None


def _group_keys(ctx: StoreContext, e: FileEntry) -> list[tuple[int, int, str | None, str | None]]:
    """(row group, rows, min key, max key) of a key-sorted file from its footer (keys None: no statistics)."""
    md = ctx.files.metadata(e)
    i = ctx.files.column_index(e, "_key")
    out = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        st = rg.column(i).statistics if i is not None else None
        ok = st is not None and st.has_min_max
        out.append((g, rg.num_rows, st.min if ok else None, st.max if ok else None))
    return out


def _ranges(parts: list[tuple[int, pa.Table]], touched: list[FileEntry], groups: dict[str, list],
            limit: int) -> list[tuple[str | None, str | None]]:
    """Key ranges ``[lo, hi)`` (None: unbounded) of about ``limit`` overlay and state rows each.

    Their bounds come from a sample of the overlay's keys (every ``limit // 16``-th of
    each commit's rows) and the first key of each row group of the touched state shards
    (``groups``: :func:`_group_keys` by path)."""
    marks: list[tuple[str, int]] = []
    step = max(1, limit // 16)
    for _, t in parts:
        at = np.arange(0, t.num_rows, step)
        marks += [(k, min(step, t.num_rows - int(a))) for k, a in zip(t["_key"].take(pa.array(at)).to_pylist(), at)]
    for e in touched:
        marks += [(lo if lo is not None else e.min_key or "", rows) for _, rows, lo, _ in groups[e.path]]
    marks.sort(key=lambda m: m[0])
    bounds: list[str] = []
    held = 0
    for key, rows in marks:
        if held >= limit and (not bounds or key > bounds[-1]) and key > marks[0][0]:
            bounds.append(key)
            held = 0
        held += rows
    return list(zip([None, *bounds], [*bounds, None]))


def _in_range(keys: pa.Array | pa.ChunkedArray, lo: str | None, hi: str | None) -> tuple[int, int]:
    """The slice ``[a, b)`` of sorted ``keys`` with ``lo <= key < hi``."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    a = 0 if lo is None else bisect_key(keys, lo, right=False)
    b = len(keys) if hi is None else bisect_key(keys, hi, right=False)
    return a, max(a, b)


def _key_mask(keys: pa.ChunkedArray, lo: str | None, hi: str | None) -> pa.ChunkedArray | pa.Array:
    """bool per key (any order): ``lo <= key < hi`` (None: unbounded)."""
    mask = pa.repeat(pa.scalar(True), len(keys))
    if lo is not None:
        mask = pc.and_(mask, pc.greater_equal(keys, lo))
    if hi is not None:
        mask = pc.and_(mask, pc.less(keys, hi))
    return mask


def _state_in_range(ctx: StoreContext, touched: list[FileEntry], groups: dict[str, list],
                    schema: pa.Schema, lo: str | None, hi: str | None) -> pa.Table:
    """The touched state shards' rows with ``lo <= _key < hi`` (row groups picked by statistics)."""
    parts = []
    full = pa.schema([*schema, *STATE_EXTRA])
    for e in touched:
        picked = [g for g, _, gmin, gmax in groups[e.path]
                  if (lo is None or gmax is None or gmax >= lo) and (hi is None or gmin is None or gmin < hi)]
        if not picked:
            continue
        t = ctx.files.read(e, full.names, row_groups=picked, keep=False)  # the run replaces it
        a, b = _in_range(t["_key"], lo, hi)
        if b > a:
            parts.append(conform(t.slice(a, b - a), full))
    return pa.concat_tables(parts) if parts else _with_state_extra(schema.empty_table())


class _ShardSink:
    """New state files from key-sorted tables, a new shard every :data:`STATE_SHARD_ROWS` rows."""

    def __init__(self, ctx: StoreContext, namespace: str, head: int) -> None:
        self.ctx, self.namespace, self.head = ctx, namespace, head
        self.entries: list[FileEntry] = []
        self.paths: list[str] = []
        self._sink: ParquetSink | None = None
        self._stats: list[FileEntry] = []

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._sink is None:
                rel = cold_name(self.namespace, "state", self.head)
                self.paths.append(rel)
                self._sink = ParquetSink(self.ctx.storage, rel, table.schema, row_group_size=COLD_ROW_GROUP_ROWS)
                self._stats = []
            piece = table.slice(0, STATE_SHARD_ROWS - self._sink.rows)
            self._sink.write(piece)
            self._stats.append(_entry(self.namespace, "state", self._sink.rel, piece, 0, b""))
            table = table.slice(piece.num_rows)
            if self._sink.rows >= STATE_SHARD_ROWS:
                self._finish_shard()

    def _finish_shard(self) -> None:
        assert self._sink is not None
        size, checksum = self._sink.close()
        self.entries.append(_merged_entry(self._stats, size, checksum))
        self._sink = None

    def close(self) -> list[FileEntry]:
        if self._sink is not None:
            self._finish_shard()
        return self.entries


def _merged_entry(parts: list[FileEntry], size: int, checksum: bytes) -> FileEntry:
    """The entry of a file written in non-empty pieces, from each piece's :func:`_entry`
    (statistics combined; ``max_valid_to`` None when any piece has an open version)."""
    open_ = any(p.max_valid_to is None for p in parts)
    open_commit = any(p.max_valid_to_commit is None for p in parts)
    return dataclasses.replace(
        parts[0], rows=sum(p.rows for p in parts), bytes=size, checksum=checksum,
        min_commit=min(p.min_commit for p in parts), max_commit=max(p.max_commit for p in parts),
        min_valid=min(p.min_valid for p in parts), max_valid=max(p.max_valid for p in parts),  # type: ignore[type-var]
        max_valid_to=None if open_ else max(p.max_valid_to for p in parts),  # type: ignore[type-var]
        max_valid_to_commit=None if open_commit else max(p.max_valid_to_commit for p in parts),  # type: ignore[type-var]
        min_key=min(p.min_key for p in parts), max_key=max(p.max_key for p in parts),  # type: ignore[type-var]
    )


def _file_groups(ctx: StoreContext, e: FileEntry, schema: pa.Schema) -> Iterator[pa.Table]:
    """A history file's rows, a row group at a time (a sorted run for :func:`merge_runs`)."""
    for g in range(ctx.files.metadata(e).num_row_groups):
        yield conform(ctx.files.read(e, schema.names, row_groups=[g], keep=False), schema)  # folded in: replaced


def _rewrite_by_range(ctx: StoreContext, namespace: str, x: _Inputs, schema: pa.Schema, touched: list[FileEntry],
                      groups: dict[str, list], ranges: list[tuple[str | None, str | None]],
                      limit: int) -> tuple[list[FileEntry], list[FileEntry]] | None:
    """:func:`_rewrite` key range by key range: per range, the overlay's rows (binary
    searches in each commit's key-sorted rows), the touched shards' rows (row groups by
    their key statistics) and the skip records; their new state rows stream into new
    shards and their closed versions become a sorted run, all runs merged into one
    history file at the end (with the small history files folded in, themselves runs).
    Peak memory: about ``limit`` rows of one range, plus the runs kept in memory.

    Returns:
        As :func:`_rewrite`; None when a range has late keys (nothing is left behind: the
        caller does the run at once, which pulls their history).
    """
    shards = _ShardSink(ctx, namespace, x.head)
    history = _HistorySink(ctx, namespace, x.head, schema, memory_rows=limit)
    handed = False  # the new files go to the caller (or are deleted here)
    try:
        for lo, hi in ranges:
            slices = []
            for c, t in x.parts:
                a, b = _in_range(t["_key"], lo, hi)
                if b > a:
                    slices.append((c, t.slice(a, b - a)))
            overlay = _by_key(_overlay(slices, x.systimes, x.values))
            old_state = _state_in_range(ctx, touched, groups, schema, lo, hi)
            skips = x.overlay_skips.filter(_key_mask(x.overlay_skips["_key"], lo, hi))
            merged = merge_sorted(old_state, overlay, skips, schema)
            if merged is None:  # a late key: the caller does the run at once
                return None
            state, closed = merged
            shards.write(state)
            history.add(closed if is_sorted(closed, HISTORY_ORDER) else closed.sort_by(HISTORY_ORDER))
            del overlay, old_state, closed, state, skips, merged
        added = shards.close()
        small = _history_to_merge([e for e in x.files if e.tier == "cold" and e.kind == "history"], history.rows)
        if history.rows:
            added.append(history.finish([_file_groups(ctx, e, schema) for e in small]))
        else:
            small = []
        skip_table = _cold_skips(ctx, x)
        if skip_table is not None:
            added.append(_write(ctx, namespace, "skips", x.head, skip_table))
        handed = True
        return [*touched, *small], added
    finally:
        history.close()
        if not handed:
            for rel in [*shards.paths, history.rel]:
                ctx.storage.delete(rel)


class _HistorySink:
    """A run's one new history file, from the sorted runs of its key ranges.

    Runs that come in :data:`HISTORY_ORDER` (each starting at or after the last row given,
    as when a run closes versions of one valid time: every range's rows follow the
    previous range's keys) stream straight into the file. Once one does not, the rest are
    kept as :class:`~koru_core.lifecycle.runs.Runs` (spilled past ``memory_rows``), and
    :meth:`finish` merges the streamed part (still encoded in memory), those runs and the
    history files folded in into the file.
    """

    def __init__(self, ctx: StoreContext, namespace: str, head: int, schema: pa.Schema, *, memory_rows: int) -> None:
        self.ctx, self.namespace, self.schema = ctx, namespace, schema
        self.rel = cold_name(namespace, "history", head)
        self.rows = 0
        self._runs = Runs(memory_rows=memory_rows)
        self._sink = self._new_sink()
        self._stats: list[FileEntry] = []
        self._last: tuple[int, str, int] | None = None

    def _new_sink(self) -> ParquetSink:
        return ParquetSink(self.ctx.storage, self.rel, self.schema, row_group_size=COLD_ROW_GROUP_ROWS)

    def _stream(self, t: pa.Table) -> None:
        self._sink.write(t)
        self._stats.append(_entry(self.namespace, "history", self.rel, t, 0, b""))

    def add(self, run: pa.Table) -> None:
        """Take one run sorted by :data:`HISTORY_ORDER`."""
        if not run.num_rows:
            return
        self.rows += run.num_rows
        if not self._runs.rows and (self._last is None or first_row(run) >= self._last):
            self._stream(run)
            self._last = last_row(run)
        else:
            self._runs.add(run)

    def finish(self, folded: list[Iterable[pa.Table]]) -> FileEntry:
        """Write the file durably, with ``folded`` (more sorted runs: history files) merged
        in; returns its entry.

        Raises:
            StoreFullError: no space left (nothing is left behind).
        """
        if self._runs.rows or folded:
            streamed = [encoded_run(self._sink.encoded())] if self._sink.rows else []
            self._sink, self._stats = self._new_sink(), []
            for t in merge_runs([*streamed, *self._runs.sources(), *folded], self.schema):
                self._stream(t)
        size, checksum = self._sink.close()
        return _merged_entry(self._stats, size, checksum)

    def close(self) -> None:
        """Drop the kept runs and their temporary files."""
        self._runs.close()


def _history_to_merge(history: list[FileEntry], new_rows: int) -> list[FileEntry]:
    """The history files to fold into a new one of ``new_rows`` rows.

    Files stay in the order of the runs that wrote them, so each covers a span of
    ``_valid_to`` next to its neighbours' and an as-of read skips most of them. The
    newest files are folded in while they are small next to what is gathered
    (:data:`HISTORY_TIER_RATIO`: a row is rewritten O(log n) times, as in LSM stores)
    or below :data:`HISTORY_SMALL_ROWS`, and while the namespace would keep more than
    :data:`HISTORY_MAX_FILES`; files of :data:`HISTORY_MERGE_ROWS` rows or more are
    folded only for the count.
    """
    newest_first = sorted(history, key=lambda e: (e.max_commit, e.path), reverse=True)
    chosen: list[FileEntry] = []
    acc = new_rows
    for e in newest_first:
        too_many = len(history) - len(chosen) + 1 > HISTORY_MAX_FILES
        small = e.rows < HISTORY_SMALL_ROWS or (e.rows * HISTORY_TIER_RATIO <= acc and e.rows < HISTORY_MERGE_ROWS)
        if not (too_many or small):
            break
        chosen.append(e)
        acc += e.rows
    return chosen


def _touches(e: FileEntry, span: tuple[str, str] | None) -> bool:
    """True when the file's key range meets the overlay's (or the file has no key bounds)."""
    if span is None or e.min_key is None:
        return span is not None
    return not (span[1] < e.min_key or span[0] > (e.max_key or ""))


def _cold_read(ctx: StoreContext, e: FileEntry, schema: pa.Schema) -> pa.Table:
    names = [*schema.names, *STATE_EXTRA.names]
    t = ctx.files.read(e, names, keep=False)  # a touched shard: the run replaces it
    return conform(t, pa.schema([*schema, *STATE_EXTRA]))


def _with_state_extra(t: pa.Table) -> pa.Table:
    n = t.num_rows
    return t.append_column(STATE_EXTRA.field(0), pa.nulls(n, WRITE_ID)).append_column(STATE_EXTRA.field(1), pa.nulls(n, TIMESTAMP))


def _late_keys(changed_state: pa.Table, overlay: pa.Table) -> pa.Array:
    """Keys with an overlay version valid before their state row (their history must be recomputed).

    Both are sorted by key (``overlay`` by key and valid time: ``_key``, ``_valid_from``
    at least); every key of ``changed_state`` is in ``overlay``.
    """
    if not changed_state.num_rows or not overlay.num_rows:
        return pa.array([], pa.string())
    okeys = overlay["_key"].combine_chunks()
    first = pa.array(first_of_key(okeys))
    first_keys = okeys.filter(first)
    first_valid = overlay["_valid_from"].combine_chunks().filter(first)
    at = pc.index_in(changed_state["_key"].combine_chunks(), value_set=first_keys)
    earlier = pc.less(first_valid.take(at), changed_state["_valid_from"].combine_chunks())
    return changed_state["_key"].combine_chunks().filter(pc.fill_null(earlier, False))


def _pull_history(ctx: StoreContext, namespace: str, x: _Inputs, schema: pa.Schema,
                  late: pa.Array) -> tuple[pa.Table, list[FileEntry], list[FileEntry]]:
    """The history rows of late keys, the history files that held them, and those files
    written again without them."""
    rows, rewritten, remainders = [], [], []
    for e in x.files:
        if e.tier != "cold" or e.kind != "history":
            continue
        t = conform(ctx.files.read(e, schema.names), schema)
        mine = pc.is_in(t["_key"], value_set=late)
        if not pc.any(mine).as_py():
            continue
        rows.append(t.filter(mine))
        rest = t.filter(pc.invert(mine))
        rewritten.append(e)
        if rest.num_rows:
            remainders.append(_write(ctx, namespace, "history", x.head, rest))
    return (pa.concat_tables(rows) if rows else schema.empty_table()), rewritten, remainders


def _intervals(t: pa.Table) -> pa.Table:
    """``_valid_to``/``_valid_to_commit`` of rows sorted by (key, valid time, commit): the next row of the key."""
    n = t.num_rows
    if not n:
        return t
    keys = t["_key"].combine_chunks()
    last = np.ones(n, dtype=bool)
    last[:-1] = first_of_key(keys)[1:]
    nxt_from = pa.concat_arrays([t["_valid_from"].combine_chunks().slice(1), pa.nulls(1, TIMESTAMP)])
    nxt_commit = pa.concat_arrays([t["_commit"].combine_chunks().slice(1), pa.nulls(1, pa.int64())])
    mask = pa.array(last)
    valid_to = pc.if_else(mask, pa.scalar(None, TIMESTAMP), nxt_from)
    valid_to_commit = pc.if_else(mask, pa.scalar(None, pa.int64()), nxt_commit)
    t = t.set_column(t.column_names.index("_valid_to"), "_valid_to", valid_to)
    return t.set_column(t.column_names.index("_valid_to_commit"), "_valid_to_commit", valid_to_commit)


def _tips(changed_state: pa.Table, overlay: pa.Table, skips: pa.Table) -> pa.Table:
    """Per key: the latest write id (``w``) and the last valid time (``v_max``, skip records included).

    Write ids rise with every write (the big-endian bytes of the store's sequence), so the
    latest is the largest; computed over runs of key-sorted rows, with no group-by.
    """
    parts = [
        (changed_state["_key"], changed_state["_last_write_id"], changed_state["_last_valid"]),
        (overlay["_key"], overlay["_write_id"], overlay["_valid_from"]),
        (skips["_key"], pa.nulls(skips.num_rows, WRITE_ID), skips["_valid_from"].cast(TIMESTAMP)),
    ]
    keys = pa.concat_arrays([_array(p[0]).cast(pa.string()) for p in parts])
    wids = pa.concat_arrays([_array(p[1]).cast(WRITE_ID) for p in parts])
    valid = pa.concat_arrays([_array(p[2]).cast(TIMESTAMP) for p in parts])
    order = pc.sort_indices(keys)
    keys = keys.take(order)
    n = len(keys)
    if not n:
        return pa.table({"k": keys, "v_max": valid, "w": wids})
    starts = np.flatnonzero(first_of_key(keys))
    w = u64_ids(wids.take(order))
    v = pc.fill_null(valid.take(order).cast(pa.int64()), np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
    w_max = np.maximum.reduceat(w, starts)
    v_max = np.maximum.reduceat(v, starts)
    w_arr = write_ids_of(w_max)  # keys with skip records only: null
    return pa.table({"k": keys.take(pa.array(starts)), "v_max": pa.array(v_max).cast(TIMESTAMP), "w": w_arr})


def _array(x: pa.Array | pa.ChunkedArray) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def _with_tips(state: pa.Table, tips: pa.Table) -> pa.Table:
    """``state`` with ``_last_write_id`` and ``_last_valid`` from ``tips`` (rows aligned by key)."""
    at = pc.index_in(state["_key"], value_set=tips["k"].combine_chunks())
    tip_w = pc.coalesce(tips["w"].take(at), state["_write_id"])
    tip_v = pc.coalesce(tips["v_max"].take(at), state["_valid_from"])
    return state.append_column(STATE_EXTRA.field(0), tip_w.cast(WRITE_ID)).append_column(STATE_EXTRA.field(1), tip_v)


def _write(ctx: StoreContext, namespace: str, kind: str, head: int, table: pa.Table) -> FileEntry:
    rel = cold_name(namespace, kind, head)
    size, checksum = write_parquet(ctx.storage, rel, table, row_group_size=COLD_ROW_GROUP_ROWS, compression="zstd")
    entry = _entry(namespace, kind, rel, table, size, checksum)
    ctx.files.prime(entry, table)  # the next read of the namespace finds it decoded
    return entry


def _entry(namespace: str, kind: str, rel: str, table: pa.Table, size: int, checksum: bytes) -> FileEntry:
    """The catalog entry of a cold or deep file of ``table``'s rows, with its statistics.

    A state, skips or skeleton file is sorted by ``_key`` first and a history file by
    ``_valid_from`` first (:mod:`koru_core.layout`), so those bounds are its first and
    last rows; the others take one pass (:func:`pyarrow.compute.min_max`) each."""
    if not table.num_rows:
        return FileEntry(namespace=namespace, tier="cold", kind=kind, path=rel, rows=0, bytes=size,  # type: ignore[arg-type]
                         checksum=checksum, min_commit=0, max_commit=0, min_valid=None, max_valid=None,
                         max_valid_to=None, max_valid_to_commit=None, min_key=None, max_key=None)
    valid = table["_valid_from"].cast(pa.int64())
    keys = table["_key"]
    min_key, max_key = ((keys[0].as_py(), keys[-1].as_py()) if kind in _KEY_FIRST else _min_max(keys))
    min_valid, max_valid = (valid[0].as_py(), valid[-1].as_py()) if kind == "history" else _min_max(valid)
    min_commit, max_commit = _min_max(table["_commit"])
    vt = table["_valid_to"].cast(pa.int64()) if "_valid_to" in table.column_names else None
    vtc = table["_valid_to_commit"] if "_valid_to_commit" in table.column_names else None
    has_open = vt is None or vt.null_count > 0
    return FileEntry(
        namespace=namespace, tier="cold", kind=kind, path=rel, rows=table.num_rows, bytes=size,  # type: ignore[arg-type]
        checksum=checksum, min_commit=min_commit or 0, max_commit=max_commit or 0,
        min_valid=min_valid, max_valid=max_valid,
        max_valid_to=None if has_open or vt is None else pc.max(vt).as_py(),
        max_valid_to_commit=None if has_open or vtc is None else pc.max(vtc).as_py(),
        min_key=min_key, max_key=max_key,
    )


_KEY_FIRST = frozenset({"state", "skips", "skeleton"})
"""Cold and deep file kinds sorted by ``_key`` first (:mod:`koru_core.layout`)."""


def _min_max(x: pa.Array | pa.ChunkedArray) -> tuple[Any, Any]:
    mm = pc.min_max(x)
    return mm["min"].as_py(), mm["max"].as_py()


def _write_state(ctx: StoreContext, namespace: str, head: int, state: pa.Table) -> list[FileEntry]:
    out = []
    for start in range(0, state.num_rows, STATE_SHARD_ROWS):
        out.append(_write(ctx, namespace, "state", head, state.slice(start, STATE_SHARD_ROWS)))
    return out


def _cold_skips(ctx: StoreContext, x: _Inputs) -> pa.Table | None:
    skips = x.overlay_skips
    if not skips.num_rows:
        return None
    return skips.sort_by([("_key", "ascending"), ("_valid_from", "ascending")])


def consolidate_all(ctx: StoreContext, namespaces: Sequence[str]) -> list[str]:
    """Consolidate each namespace; returns those that changed."""
    return [ns for ns in namespaces if consolidate_namespace(ctx, ns)]


def write_layout(ctx: StoreContext, namespace: str, values: pa.Schema, versions: pa.Table, skips: pa.Table,
                 head: int) -> list[FileEntry]:
    """Write the whole cold layout of a namespace from every one of its versions (restore, upgrade).

    Args:
        versions: Every version, :data:`~koru_core.layout.COLD_SCHEMA` columns (``_valid_to``
            may be absent: it is computed) and the value columns.
        skips: Its skip records (:data:`~koru_core.layout.SKIP_SCHEMA`, ``_commit`` set).
        head: The consolidation head (the namespace's ``cold_commit``).
    """
    schema = pa.schema([*COLD_SCHEMA, *values])
    table = conform(versions, schema).sort_by(_BY_KEY)
    table = _intervals(table)
    empty = _with_state_extra(schema.empty_table())
    tips = _tips(empty, table.select(["_key", "_write_id", "_valid_from"]), skips)
    is_open = pc.is_null(table["_valid_to"])
    state = _with_tips(table.filter(is_open), tips).sort_by([("_key", "ascending")])
    closed = table.filter(pc.invert(is_open))
    added = _write_state(ctx, namespace, head, state)
    if closed.num_rows:
        added.append(_write(ctx, namespace, "history", head, closed.sort_by(HISTORY_ORDER)))
    if skips.num_rows:
        added.append(_write(ctx, namespace, "skips", head, skips.sort_by([("_key", "ascending"), ("_valid_from", "ascending")])))
    return added
