"""The unchanged rule for rows that arrive in valid-time order: one vectorised pass.

DESIGN.md, "As-of, precisely": every row written is a version, except two kinds that
record nothing: a row equal to its key's version at the *same* valid time (an
idempotent re-write), and a row written with *no* valid time equal to the key's
current version (a re-run that changed nothing). A row with an explicit valid time
equal to its key's version *before* it, at an earlier valid time, is not stored as a
version either — but it is not forgotten: it becomes a *skip record* (key, valid
time, commit), and a later write that lands between it and that earlier version
brings it back as a version (:mod:`koru_core.write.late`). So no answer can tell it
was skipped.

A row's *before* is the version the as-of rule picks at the row's valid time among
the stored versions and the batch's earlier rows. For a key whose rows are all valid
at or after its ``last_valid`` (every row and skip record ever recorded for it, see
:class:`~koru_core.hot.index.Head`), that is its head for the first row and the
previous row for each next one — which is what this module computes, without
sorting anything but the batch. Keys with an earlier row are *late*; the late path
decides them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["NOOP", "SKIP", "WRITE", "decide_in_order", "first_of_key", "late_keys_mask"]

NOOP, WRITE, SKIP = 0, 1, 2
"""Actions: record nothing, write a version, record a skip."""


def first_of_key(keys: pa.Array) -> np.ndarray:
    """bool per row of a key-sorted array: the row starts its key's run."""
    n = len(keys)
    out = np.ones(n, dtype=bool)
    if n > 1:
        out[1:] = pc.not_equal(keys.slice(1), keys.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return out


def late_keys_mask(keys: pa.Array, valid: np.ndarray, last_valid: pa.Array) -> np.ndarray:
    """bool per row (sorted by key, valid time): the row's key has a row valid before
    the key's ``last_valid`` (a late arrival: the key needs the late path)."""
    last = pc.fill_null(last_valid, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
    early = valid < last
    if not early.any():
        return early
    first = first_of_key(keys)
    run = np.cumsum(first) - 1  # run number per row
    late_run = np.zeros(run[-1] + 1, dtype=bool)
    np.logical_or.at(late_run, run, early)
    return late_run[run]


def decide_in_order(
    keys: pa.Array, valid: np.ndarray, explicit: np.ndarray, cids: pa.Array, heads: pa.Table,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the unchanged rule to rows none of which is late.

    Args:
        keys: Sorted keys (with ``valid``, unique per (key, valid time)).
        valid: int64 ns per row.
        explicit: bool per row: the writer gave the valid time.
        cids: Content ids (``fixed_size_binary(32)``), null for a tombstone.
        heads: :data:`~koru_core.hot.index.HEAD_SCHEMA` rows aligned with ``keys``.

    Returns:
        int8 action per row: :data:`NOOP`, :data:`WRITE` or :data:`SKIP`; and whether each
        row's before is a live version (a ``Store.delete`` needs one).
    """
    n = len(keys)
    first = first_of_key(keys)
    head_valid = heads["valid_from"].combine_chunks()
    has_head = head_valid.is_valid().to_numpy(zero_copy_only=False)
    head_valid_np = pc.fill_null(head_valid, 0).to_numpy(zero_copy_only=False)
    head_cid = heads["content_id"].combine_chunks()
    # a skip record at exactly a row's valid time is the version there (same content as the head)
    last_np = pc.fill_null(heads["last_valid"].combine_chunks(), 0).to_numpy(zero_copy_only=False)
    head_valid_np = np.where(has_head & (last_np > head_valid_np), last_np, head_valid_np)
    # content of each row's before: its head for a key's first row, the previous row
    # otherwise (compared in place: no copy of the 32-byte ids)
    is_tomb = cids.is_null().to_numpy(zero_copy_only=False)
    # some version is in force before a row: the key's head, or an earlier row of this
    # commit that records one (a live row, or a tombstone at an explicit time); a tombstone
    # at the commit's time for a key never written records nothing, so it is no "before"
    records = ~is_tomb | explicit
    seen = np.cumsum(records) - records  # rows that record one, before each row
    run_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
    before_exists = has_head | (seen > seen[run_start])
    before_valid = np.where(first, head_valid_np, np.concatenate([[0], valid[:-1]]) if n else valid)
    head_tomb = head_cid.is_null().to_numpy(zero_copy_only=False)
    before_tomb = np.where(first, head_tomb, np.concatenate([[True], is_tomb[:-1]]) if n else head_tomb)
    same_as_head = pc.fill_null(pc.equal(cids, head_cid), False).to_numpy(zero_copy_only=False)
    same_as_prev = np.zeros(n, dtype=bool)
    if n > 1:
        same_as_prev[1:] = pc.fill_null(pc.equal(cids.slice(1), cids.slice(0, n - 1)), False).to_numpy(
            zero_copy_only=False)
    same = np.where(first, same_as_head, same_as_prev) | (is_tomb & before_tomb)  # before_tomb: or nothing at all
    action = np.full(n, WRITE, dtype=np.int8)
    noop = same & (~explicit | (before_exists & (before_valid == valid)))
    action[noop] = NOOP
    skip = same & explicit & before_exists & (before_valid != valid)
    action[skip] = SKIP
    # a tombstone with nothing before it at all (never written) and an explicit time is
    # written as a version: a skip record needs a version before it
    return action, before_exists & ~before_tomb
