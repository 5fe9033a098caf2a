"""The sorted merge of a run: state rows and overlay versions, both in key order, with no hash or sort.

A consolidation run (:mod:`koru_core.lifecycle.consolidate`) meets, in one key range,
the state rows of the keys there (one per key, sorted by key) and the overlay's versions
(sorted by key, valid time and commit). When no key is *late* (no overlay version comes
before the key's state row), each written key's versions are its state row followed by
its overlay rows, in that order, so the run needs no sort and no hash lookup: one binary
search of the overlay's keys among the state's gives every position, and

- a written key's state row closes at the valid time (and commit) of the key's first
  overlay row; each overlay row but the last closes at the next one's;
- the key's last overlay row is its new state row, with the key's chain tip (its
  largest write id) and last valid time (skip records included);
- the state rows of keys the overlay does not write stay, and the new state rows go in
  among them at their binary-search positions.

This is the same result as sorting every row of the written keys by (key, valid time,
commit) and closing each at the next, which the general path does; it is chosen only
when the overlay has no late key (:func:`merge_sorted` returns None otherwise).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.model import TIMESTAMP
from koru_core.read.rules import find_sorted, search_sorted
from koru_core.write.decide import first_of_key
from koru_core.write.versions import u64_ids, write_ids_of

__all__ = ["merge_sorted"]


def merge_sorted(state: pa.Table, overlay: pa.Table, skips: pa.Table,
                 schema: pa.Schema) -> tuple[pa.Table, pa.Table] | None:
    """Merge one key range's state rows and overlay versions (module docstring).

    Args:
        state: State rows, sorted by ``_key`` with one row per key: ``schema``'s columns
            and ``_last_write_id`` (``fixed_size_binary(8)``), ``_last_valid`` (timestamp, ns, UTC).
        overlay: Overlay versions of ``schema``'s columns, sorted by (``_key``,
            ``_valid_from``, ``_commit``); ``_valid_to``/``_valid_to_commit`` are ignored.
        skips: The range's overlay skip records (``_key``, ``_valid_from``), any order.
        schema: The cold columns (:data:`~koru_core.layout.COLD_SCHEMA`) and the value columns.

    Returns:
        (the new state rows: ``state``'s columns, sorted by ``_key``, one per key; the
        versions closed by the run: ``schema``'s columns, ``_valid_to`` set, in no
        particular order), or None when a key of ``overlay`` is late (its first overlay
        version is valid before its state row): the general path must take the run.
    """
    skeys = _one(state["_key"])
    okeys = _one(overlay["_key"])
    n_state = len(skeys)
    first = first_of_key(okeys)
    starts = np.flatnonzero(first)
    group_keys = okeys.take(pa.array(starts))
    gpos = search_sorted(skeys, group_keys)  # per written key: its place among the state's
    found = find_sorted(skeys, group_keys, at=gpos)
    matched = found >= 0
    s_rows = found[matched]
    o_first = starts[matched]
    changed = state if len(s_rows) == n_state else state.take(pa.array(s_rows))  # s_rows ascend: all = every row
    o_valid = _one(overlay["_valid_from"]).cast(pa.int64()).to_numpy(zero_copy_only=False)
    s_valid = _one(changed["_valid_from"]).cast(pa.int64()).to_numpy(zero_copy_only=False)
    if (o_valid[o_first] < s_valid).any():
        return None
    o_commit = _one(overlay["_commit"]).to_numpy(zero_copy_only=False)

    # versions closed: the written keys' state rows, and every overlay row but each key's last
    n = len(okeys)
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    nxt_valid = np.empty(n, dtype=np.int64)
    nxt_valid[:-1] = o_valid[1:]
    nxt_commit = np.empty(n, dtype=np.int64)
    nxt_commit[:-1] = o_commit[1:]
    closed = _closed(changed.select(schema.names), o_valid[o_first], o_commit[o_first])
    ends = np.flatnonzero(last)
    rows = overlay.select(schema.names)
    if len(ends) < n:  # some key has more than one overlay row
        inner = np.flatnonzero(~last)
        closed = pa.concat_tables([closed, _closed(rows.take(pa.array(inner)), nxt_valid[inner], nxt_commit[inner])])

    # new state rows: each written key's last overlay row, with its tips
    fresh = rows.take(pa.array(ends)) if len(ends) < n else rows
    fresh = fresh.set_column(fresh.column_names.index("_valid_to"), "_valid_to", pa.nulls(len(ends), TIMESTAMP))
    fresh = fresh.set_column(fresh.column_names.index("_valid_to_commit"), "_valid_to_commit",
                             pa.nulls(len(ends), pa.int64()))
    tip_w = np.maximum.reduceat(u64_ids(_one(overlay["_write_id"])), starts)
    tip_v = np.maximum.reduceat(o_valid, starts)
    if len(s_rows):
        s_tip_v = _one(changed["_last_valid"]).cast(pa.int64())
        s_tip_v = pc.fill_null(s_tip_v, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
        tip_v[matched] = np.maximum(tip_v[matched], s_tip_v)
        tip_w[matched] = np.maximum(tip_w[matched], u64_ids(_one(changed["_last_write_id"])))
    if skips.num_rows:
        g = find_sorted(group_keys, _one(skips["_key"]).cast(pa.string()))
        sv = _one(skips["_valid_from"]).cast(pa.int64()).to_numpy(zero_copy_only=False)
        np.maximum.at(tip_v, g[g >= 0], sv[g >= 0])
    fresh = fresh.append_column(state.schema.field("_last_write_id"), write_ids_of(tip_w))
    fresh = fresh.append_column(state.schema.field("_last_valid"), pa.array(tip_v).cast(TIMESTAMP))
    fresh = fresh.select(state.column_names).cast(state.schema)

    # the new state: kept rows and new rows, merged by their places in the old state
    keep = np.ones(n_state, dtype=bool)
    keep[s_rows] = False
    kept_rows = np.flatnonzero(keep)
    if not len(kept_rows):
        return fresh, closed
    # ranks: a kept row j is 2j+1, a new row inserted before old row p is 2p (a matched one
    # replaces row p); one take from (new rows, old rows) puts both in key order
    at_new = np.arange(len(ends)) + np.searchsorted(2 * kept_rows + 1, 2 * gpos, side="left")
    order = np.empty(len(ends) + len(kept_rows), dtype=np.int64)
    is_new = np.zeros(len(order), dtype=bool)
    is_new[at_new] = True
    order[at_new] = np.arange(len(ends))
    order[~is_new] = len(ends) + kept_rows
    return pa.concat_tables([fresh, state]).take(pa.array(order)), closed


def _closed(rows: pa.Table, valid_to: np.ndarray, valid_to_commit: np.ndarray) -> pa.Table:
    """``rows`` with ``_valid_to`` (ns) and ``_valid_to_commit`` set."""
    rows = rows.set_column(rows.column_names.index("_valid_to"), "_valid_to", pa.array(valid_to).cast(TIMESTAMP))
    return rows.set_column(rows.column_names.index("_valid_to_commit"), "_valid_to_commit",
                           pa.array(valid_to_commit, pa.int64()))


def _one(x: pa.Array | pa.ChunkedArray) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x
