"""The read rules: the as-of rule, ``_valid_to``, history order and the change feed.

Every function takes and returns Arrow tables of versions (system columns beside
value columns) and knows nothing of files. The as-of rule is written here and only
here (:func:`as_of_rule`); the planner (:mod:`koru_core.read.plan`) decides which rows
reach it and when a stored interval makes it unnecessary, and DuckDB and Polars
translate the planner's decisions into their own operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.model import TIMESTAMP

__all__ = [
    "AS_OF_SYSTEM_COLUMNS",
    "CHANGE_COLUMNS",
    "ORDER_COLUMNS",
    "as_of_rule",
    "bisect_key",
    "change_feed",
    "find_sorted",
    "history_order",
    "is_sorted",
    "latest_per_key",
    "row_value",
    "search_sorted",
    "value_columns",
    "visible",
    "with_valid_to",
]

ORDER_COLUMNS = ("_valid_from", "_commit")
"""A key's versions are ordered by valid time, then commit (system time never decreases)."""

AS_OF_SYSTEM_COLUMNS = ("_key", "_valid_from", "_system_from", "_commit", "_write_id")
"""System columns an as-of result carries after the value columns."""

CHANGE_COLUMNS = (
    "_key", "op", "_valid_from", "_system_from", "_commit", "_write_id",
    "before_write_id", "before_content_id", "after_content_id",
)
"""Leading columns of a change feed; the value columns (after the change) follow."""


def row_value(record: dict[str, object], names: list[str]) -> object:
    """Return what ``get`` returns for one row's value fields: the dict of fields,
    or the bare value when the namespace's only field is ``value``."""
    if names == ["value"]:
        return record["value"]
    return {n: record[n] for n in names}


def value_columns(table: pa.Table) -> list[str]:
    """Return the names of ``table``'s value columns (value fields never start with ``_``), in order."""
    return [n for n in table.column_names if not n.startswith("_")]


def visible(versions: pa.Table, *, valid_at: int | None, max_commit: int | None) -> pa.Table:
    """Keep the versions with ``_valid_from ≤ valid_at`` and ``_commit ≤ max_commit``.

    Args:
        versions: Versions with ``_valid_from`` (timestamp[ns, UTC]) and ``_commit``.
        valid_at: Valid time bound, ns since epoch (UTC); None for no bound.
        max_commit: Commit bound (system time); None for no bound.
    """
    mask = None
    if valid_at is not None:
        mask = pc.less_equal(versions["_valid_from"], pa.scalar(valid_at, TIMESTAMP))
    if max_commit is not None:
        by_commit = pc.less_equal(versions["_commit"], max_commit)
        mask = by_commit if mask is None else pc.and_(mask, by_commit)
    return versions if mask is None else versions.filter(mask)


def bisect_key(keys: pa.Array, key: str, *, right: bool, order: pa.Array | None = None) -> int:
    """The first position whose key is > ``key`` (``right``) or >= ``key``, in a sorted array
    (or in ``keys`` taken in ``order``).

    Strings compare as their UTF-8 bytes (code points), as Parquet and
    :func:`pyarrow.compute.sort_indices` order them.
    """
    lo, hi = 0, len(keys) if order is None else len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        here = keys[mid if order is None else order[mid].as_py()].as_py()
        if here < key or (right and here == key):
            lo = mid + 1
        else:
            hi = mid
    return lo


def is_sorted(table: pa.Table, sort_keys: Sequence[tuple[str, str]]) -> bool:
    """True when ``table``'s rows are already in the ascending order of ``sort_keys``
    ((column, "ascending") pairs, as :meth:`pyarrow.Table.sort_by` takes them): one
    comparison of neighbouring rows per column, cheaper than sorting. Columns without nulls."""
    n = table.num_rows
    if n < 2:
        return True
    names = [c for c, _ in sort_keys]
    wrong = None
    same = None
    for i, c in enumerate(names):
        a, b = table[c].slice(0, n - 1), table[c].slice(1)
        ahead = pc.greater(a, b)
        wrong = ahead if same is None else pc.or_(wrong, pc.and_(same, ahead))
        if i < len(names) - 1:
            tied = pc.equal(a, b)
            same = tied if same is None else pc.and_(same, tied)
    return not pc.any(wrong).as_py()


def search_sorted(sorted_keys: pa.Array, keys: pa.Array) -> np.ndarray:
    """For each of ``keys``, the first position in ``sorted_keys`` whose key is ``>=`` it.

    Args:
        sorted_keys: string array sorted ascending by UTF-8 bytes (as Parquet and
            :func:`pyarrow.compute.sort_indices` order strings), no nulls.
        keys: string array, any order, no nulls.

    Returns:
        int64 array, one position in ``[0, len(sorted_keys)]`` per element of ``keys``
        (NumPy's ``searchsorted(side="left")``), found by Polars' binary search; when
        ``keys`` equals ``sorted_keys`` (a batch that writes every key of the index
        again), by one comparison instead.
    """
    import polars as pl  # a base dependency (polars-hash); imported here so ``import koru_core`` stays light

    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), dtype=np.int64)
    if len(keys) == len(sorted_keys) and pc.all(pc.equal(keys, sorted_keys)).as_py():
        return np.arange(len(keys), dtype=np.int64)  # the same keys (every key written again): no search
    found = pl.from_arrow(sorted_keys).search_sorted(pl.from_arrow(keys), side="left")  # type: ignore[union-attr]
    return found.to_numpy().astype(np.int64)


def find_sorted(sorted_keys: pa.Array, keys: pa.Array, *, at: np.ndarray | None = None) -> np.ndarray:
    """For each of ``keys``, its position in ``sorted_keys`` (sorted, unique, as for
    :func:`search_sorted`), or -1 where it is absent: int64, one per element of ``keys``.
    ``at``: their :func:`search_sorted` positions, when already known."""
    n = len(sorted_keys)
    if at is None and n and len(keys) == n and pc.all(pc.equal(keys, sorted_keys)).as_py():
        return np.arange(n, dtype=np.int64)  # the same keys: each is where it is
    at = search_sorted(sorted_keys, keys) if at is None else at
    if not n:
        return np.full(len(keys), -1, dtype=np.int64)
    inside = np.minimum(at, n - 1)
    hit = pc.equal(sorted_keys.take(pa.array(inside)), keys).to_numpy(zero_copy_only=False) & (at < n)
    return np.where(hit, inside, -1)


def _first_per_key(keys: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Boolean mask of rows whose key differs from the previous row's (keys sorted)."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    n = len(keys)
    if n == 0:
        return pa.array([], pa.bool_())
    changed = pc.not_equal(keys.slice(1), keys.slice(0, n - 1))
    return pa.concat_arrays([pa.array([True]), changed])


def as_of_rule(versions: pa.Table, *, valid_at: int | None, max_commit: int | None) -> pa.Table:
    """Return the as-of state at (valid time ``valid_at``, commit ``max_commit``).

    The rule (DESIGN.md, "As-of, precisely"): for each key take the versions with
    ``_valid_from ≤ valid_at`` and ``_commit ≤ max_commit``, keep the one with
    the largest (``_valid_from``, ``_commit``), and drop the key if that version
    is a tombstone. Commit order breaks ties, as system time never decreases.

    Args:
        versions: Versions of one namespace (at least ``_key``, ``_valid_from``,
            ``_commit``, ``_deleted``, plus any other columns to carry).
        valid_at: ns since epoch (UTC), or None for no bound.
        max_commit: Commit number, or None for no bound.

    Returns:
        One row per live key, in no particular order, with the input's columns.
    """
    latest = latest_per_key(visible(versions, valid_at=valid_at, max_commit=max_commit))
    return latest.filter(pc.invert(latest["_deleted"]))


SORT_ALL_ROWS = 8192
"""Below this many candidates, :func:`latest_per_key` sorts them all (a hash aggregation
costs more than the sort of a few thousand rows)."""


def latest_per_key(candidates: pa.Table) -> pa.Table:
    """Per ``_key``, the row with the largest (``_valid_from``, ``_commit``), tombstones kept.

    Args:
        candidates: Rows with at least ``_key``, ``_valid_from`` and ``_commit``;
            (key, valid time, commit) is unique.

    Returns:
        One row per key, in no particular order.
    """
    if candidates.num_rows < 2:
        return candidates
    if candidates.num_rows <= SORT_ALL_ROWS:
        return _last_of_each_key(candidates)
    # Keys with one candidate need no ordering: find the others with one hash
    # aggregation and sort only their rows.
    counts = candidates.group_by("_key").aggregate([([], "count_all")])
    several = counts.filter(pc.greater(counts["count_all"], 1))["_key"]
    if len(several):
        is_several = pc.is_in(candidates["_key"], value_set=several.combine_chunks())
        single = candidates.filter(pc.invert(is_several))
        candidates = pa.concat_tables([single, _last_of_each_key(candidates.filter(is_several))])
    return candidates


def _last_of_each_key(rows: pa.Table) -> pa.Table:
    """Per key, the row with the largest (``_valid_from``, ``_commit``), by one sort."""
    order = pc.sort_indices(
        rows, sort_keys=[("_key", "ascending"), ("_valid_from", "descending"), ("_commit", "descending")]
    )
    first = _first_per_key(rows["_key"].take(order))
    return rows.take(order.filter(first))  # one gather of the rows kept


def with_valid_to(versions: pa.Table) -> pa.Table:
    """Sort versions by (``_key``, ``_valid_from``, ``_commit``) and compute ``_valid_to``.

    ``_valid_to`` of a version is the ``_valid_from`` of the next version of the
    same key in that order (null for the last), as DESIGN.md defines it. A
    later correction at the same valid time makes the earlier version's
    interval empty (``_valid_to == _valid_from``).
    """
    order = pc.sort_indices(
        versions,
        sort_keys=[("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")],
    )
    n = versions.num_rows
    sorted_already = bool(np.array_equal(order.to_numpy(), np.arange(n)))  # often: one key's sources in order
    ordered = versions if sorted_already else versions.take(order)
    if n == 0:
        valid_to = pa.array([], TIMESTAMP)
    else:
        keys = ordered["_key"].combine_chunks()
        starts = ordered["_valid_from"].combine_chunks().view(pa.int64()).to_numpy()
        if keys[0] == keys[n - 1]:  # one key (sorted): each version ends where the next starts
            same_next = np.ones(n - 1, dtype=bool)
        else:
            same_next = pc.equal(keys.slice(0, n - 1), keys.slice(1)).to_numpy(zero_copy_only=False)
        ends = np.empty(n, dtype=np.int64)
        ends[:-1] = starts[1:]
        ends[-1] = 0
        open_ = np.append(~same_next, True)
        valid_to = pa.array(ends, pa.int64(), mask=open_).view(TIMESTAMP)
    if "_valid_to" in ordered.column_names:
        ordered = ordered.drop_columns(["_valid_to"])
    at = ordered.column_names.index("_valid_from") + 1
    return ordered.add_column(at, pa.field("_valid_to", TIMESTAMP), valid_to)


def history_order(versions: pa.Table) -> pa.Table:
    """Order a key's versions oldest first: by ``_valid_from``, then ``_commit``, with ``_valid_to``."""
    return with_valid_to(versions)


def change_feed(versions: pa.Table, *, in_window: pa.Array) -> pa.Table:
    """Return one row per change: the versions flagged by ``in_window``, with before/after.

    The *before* of a version is the previous version of the same key in
    (``_valid_from``, ``_commit``) order, i.e. the one it supersedes. ``op`` is
    ``insert`` when there was no live before, ``delete`` for a tombstone, and
    ``update`` otherwise; a tombstone with no live before is not a change.

    Args:
        versions: All versions of the namespace up to the window's end, any order.
        in_window: bool per row of ``versions``: which versions are in the window.

    Returns:
        Columns :data:`CHANGE_COLUMNS` then the value columns (as after the
        change; null for a delete), ordered by ``_commit``, ``_key``, ``_valid_from``.
    """
    flagged = versions.append_column("__in", in_window)
    ordered = with_valid_to(flagged)
    n = ordered.num_rows
    keys = ordered["_key"].combine_chunks()
    if n:
        same_prev = pa.concat_arrays([pa.array([False]), pc.equal(keys.slice(1), keys.slice(0, n - 1))])
    else:
        same_prev = pa.array([], pa.bool_())

    def shift(name: str) -> pa.Array:
        col = ordered[name].combine_chunks()
        prev = pa.concat_arrays([pa.nulls(1, col.type), col.slice(0, max(n - 1, 0))]) if n else col
        return pc.if_else(same_prev, prev, pa.nulls(n, col.type))

    before_deleted = pc.fill_null(shift("_deleted"), True)
    deleted = ordered["_deleted"].combine_chunks()
    op = pc.if_else(deleted, "delete", pc.if_else(before_deleted, "insert", "update"))
    keep = pc.and_(ordered["__in"].combine_chunks(), pc.invert(pc.and_(deleted, before_deleted)))
    before_write = shift("_write_id")
    before_content = shift("_content_id")
    result = pa.table(
        {
            "_key": keys,
            "op": op,
            "_valid_from": ordered["_valid_from"],
            "_system_from": ordered["_system_from"],
            "_commit": ordered["_commit"],
            "_write_id": ordered["_write_id"],
            "before_write_id": before_write,
            "before_content_id": before_content,
            "after_content_id": ordered["_content_id"],
            **{name: ordered[name] for name in value_columns(ordered) if name != "__in"},
        }
    ).filter(keep)
    order = pc.sort_indices(
        result, sort_keys=[("_commit", "ascending"), ("_key", "ascending"), ("_valid_from", "ascending")]
    )
    return result.take(order)
