"""Late rows: writes valid before a key's last recorded time, decided against the key's history.

A *late* key (a backfill, a correction of an earlier valid time, a late-arriving
fact) has a batch row valid before its ``last_valid``. Its rows are decided in
valid-time order against the key's stored versions and the batch's accepted rows
(DESIGN.md's rule over every row), and the key's skip records are checked: a skip
record ``r`` (a row equal to its before at ``r``'s valid time, commit ``c_r``) is
brought back as a version — *materialised* in this commit — when the as-of state at
its valid time no longer has its content:

1. ``r`` is *shadowed* when a version at exactly its valid time has a later commit;
   then ``r`` is never the rule's choice again and needs nothing.
2. Otherwise its content is the as-of content at (``r``'s valid time, ``c_r``) over the
   stored versions (skipping was invisible up to now, so that equals the content the
   row had), and the as-of content at ``r``'s valid time after this commit's rows is
   compared with it; if they differ, ``r`` becomes a version with that content
   (values copied from the version that held it, or a tombstone).

Events are taken in valid-time order (batch rows before skip records at one time), so
a materialised row counts for every later row and skip record of the key. The
materialised version keeps the skip record's parents; it is recorded in this commit.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.write.decide import NOOP, SKIP, WRITE

__all__ = ["LateDecision", "Materialised", "decide_late"]


@dataclass(frozen=True, slots=True)
class Materialised:
    """A skip record brought back as a version of this commit.

    Attributes:
        key, valid: Its key and valid time (ns).
        source: The write id (8 bytes) of the stored version whose values it takes,
            or None for a tombstone.
        parents: The skip record's parents.
        commit: The commit that recorded the skip (its provenance is the row's).
    """

    key: str
    valid: int
    source: bytes | None
    parents: list[str] | None
    commit: int


@dataclass(frozen=True, slots=True)
class LateDecision:
    """Actions for the late rows (aligned with the input), whether each row's before was a
    live version, and the skip records to materialise."""

    actions: np.ndarray
    live_before: np.ndarray
    materialised: list[Materialised]


_INF = 2**62  # this commit: later than every stored one


@dataclass(slots=True)
class _Version:
    valid: int
    commit: int
    content: bytes | None  # None: tombstone
    write_id: bytes | None  # None: a row of this commit


def _as_of(stored: list[_Version], keys: list[tuple[int, int]], valid: int, commit: int = _INF) -> _Version | None:
    """The rule's choice among ``stored`` (sorted by (valid, commit)) at (valid, commit)."""
    i = bisect.bisect_right(keys, (valid, _INF))
    while i > 0:
        v = stored[i - 1]
        if v.commit <= commit:
            return v
        i -= 1
    return None


def decide_late(
    rows: pa.Table, stored: pa.Table, skips: pa.Table,
) -> LateDecision:
    """Decide the rows of late keys.

    Args:
        rows: The late keys' batch rows sorted by (key, valid time): ``key``,
            ``valid`` (int64 ns), ``explicit`` (bool), ``cid`` (binary(32), null for a
            tombstone).
        stored: Every stored version of those keys: ``_key``, ``_valid_from`` (int64),
            ``_commit``, ``_content_id`` (null for a tombstone), ``_write_id``.
        skips: Their skip records: ``_key``, ``_valid_from`` (int64), ``_commit``, ``_parents``.

    Returns:
        A :class:`LateDecision`.
    """
    same = _same_as_stored(rows, stored)
    if same is not None and len(same):
        return _decide_rest(rows, stored, skips, same)
    return _decide_all(rows, stored, skips)


def _same_as_stored(rows: pa.Table, stored: pa.Table) -> np.ndarray | None:
    """Per row: its key's stored version at exactly its valid time holds its content (a
    re-import of known rows, the most common late write). Such a row records nothing
    (DESIGN.md: equal to its key's version at the same valid time), and a key all of
    whose rows are such is left as it was: no answer changes, so no skip record of it
    needs materialising. Found with one hash join (vectorised); None when nothing is stored."""
    if not stored.num_rows or not rows.num_rows:
        return None
    # the hash table is built on the right input: the batch's rows, the smaller side
    left = pa.table({"key": stored["_key"], "valid": stored["_valid_from"], "__commit": stored["_commit"],
                     "__content": stored["_content_id"].cast(pa.binary())})
    right = pa.table({"key": rows["key"], "valid": rows["valid"], "__i": pa.array(np.arange(rows.num_rows))})
    j = left.join(right, keys=["key", "valid"], join_type="inner")
    same = np.zeros(rows.num_rows, dtype=bool)
    if not j.num_rows:
        return same
    j = j.sort_by([("__i", "ascending"), ("__commit", "ascending")])  # the latest commit at each row's time last
    at = j["__i"].combine_chunks().to_numpy(zero_copy_only=False)
    last = np.ones(len(at), dtype=bool)
    last[:-1] = at[:-1] != at[1:]
    top = pa.array(np.flatnonzero(last))
    content = j["__content"].combine_chunks().take(top)
    at = at[last]
    cid = rows["cid"].combine_chunks().cast(pa.binary()).take(pa.array(at))
    equal = pc.or_kleene(pc.and_(pc.is_null(cid), pc.is_null(content)), pc.equal(cid, content))
    same[at] = pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
    return same


def _decide_rest(rows: pa.Table, stored: pa.Table, skips: pa.Table, same: np.ndarray) -> LateDecision:
    """Keys whose rows all equal their stored versions are no-ops; the others are decided in full."""
    keys = rows["key"].combine_chunks()
    n = len(keys)
    starts = np.ones(n, dtype=bool)
    if n > 1:
        starts[1:] = ~pc.equal(keys.slice(0, n - 1), keys.slice(1)).to_numpy(zero_copy_only=False)
    first = np.flatnonzero(starts)
    key_same = np.minimum.reduceat(same.astype(np.int8), first).astype(bool)
    row_same = np.repeat(key_same, np.diff(np.append(first, n)))
    actions = np.full(n, NOOP, dtype=np.int8)
    live = np.zeros(n, dtype=bool)
    cids = rows["cid"].combine_chunks()
    live[row_same] = cids.is_valid().to_numpy(zero_copy_only=False)[row_same]  # its before is that version
    if row_same.all():
        return LateDecision(actions, live, [])
    rest = np.flatnonzero(~row_same)
    wanted = keys.take(pa.array(first[~key_same]))
    sub = _decide_all(rows.take(pa.array(rest)), stored.filter(pc.is_in(stored["_key"], value_set=wanted)),
                      skips.filter(pc.is_in(skips["_key"], value_set=wanted)))
    actions[rest] = sub.actions
    live[rest] = sub.live_before
    return LateDecision(actions, live, sub.materialised)


def _decide_all(rows: pa.Table, stored: pa.Table, skips: pa.Table) -> LateDecision:
    """Every late key decided in valid-time order (module docstring), one key at a time."""
    history: dict[str, list[_Version]] = {}
    s = stored.sort_by([("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
    for k, v, c, cid, w in zip(*(s[n].to_pylist() for n in ("_key", "_valid_from", "_commit", "_content_id", "_write_id"))):
        history.setdefault(k, []).append(_Version(v, c, cid, w))
    skipped: dict[str, list[tuple[int, int, list[str] | None]]] = {}
    for k, v, c, p in zip(*(skips[n].to_pylist() for n in ("_key", "_valid_from", "_commit", "_parents"))):
        skipped.setdefault(k, []).append((v, c, p))
    keys, valid, explicit, cids = (rows[n].to_pylist() for n in ("key", "valid", "explicit", "cid"))
    actions = np.full(len(keys), NOOP, dtype=np.int8)
    live = np.zeros(len(keys), dtype=bool)
    materialised: list[Materialised] = []
    start = 0
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        _decide_key(keys[start], list(range(start, end)), valid, explicit, cids,
                    history.get(keys[start], []), sorted(skipped.get(keys[start], [])), actions, live, materialised)
        start = end
    return LateDecision(actions, live, materialised)


def _decide_key(
    key: str, positions: Sequence[int], valid: list[int], explicit: list[bool], cids: list[bytes | None],
    stored: list[_Version], skips: list[tuple[int, int, list[str] | None]], actions: np.ndarray,
    live: np.ndarray, materialised: list[Materialised],
) -> None:
    order = [(v.valid, v.commit) for v in stored]
    # a skip record is a row of the rule too: its content is the stored as-of content at its
    # own (valid time, commit), as it was when it was written (skipping was invisible so far)
    virtual = []
    for v, c, _ in skips:
        then = _as_of(stored, order, v, c)
        virtual.append(_Version(v, c, None if then is None else then.content, None))
    rows = sorted([*stored, *virtual], key=lambda x: (x.valid, x.commit))
    rows_order = [(x.valid, x.commit) for x in rows]
    accepted: list[_Version] = []  # this commit's versions of the key, in valid-time order

    def latest(t: int, among: list[_Version], keys_: list[tuple[int, int]]) -> _Version | None:
        s = _as_of(among, keys_, t)
        a = accepted[-1] if accepted and accepted[-1].valid <= t else None
        if a is None:
            return s
        return a if s is None or a.valid >= s.valid else s

    events = [(valid[p], 0, p) for p in positions] + [(v, 1, i) for i, (v, _, _) in enumerate(skips)]
    for t, kind, ref in sorted(events):
        if kind == 0:
            p = ref
            before = latest(t, rows, rows_order)  # over every row: versions, skips and this commit's
            live[p] = before is not None and before.content is not None
            same = cids[p] == (None if before is None else before.content)
            if not same:
                actions[p] = WRITE
                accepted.append(_Version(t, _INF, cids[p], None))
            elif before is None:  # a tombstone for a key with nothing before it
                actions[p] = WRITE if explicit[p] else NOOP
                if explicit[p]:
                    accepted.append(_Version(t, _INF, None, None))
            elif before.valid == t or not explicit[p]:
                actions[p] = NOOP
            else:
                actions[p] = SKIP
            continue
        v, c, parents = skips[ref]
        shadowed = any(x.valid == v and x.commit > c for x in stored) or any(a.valid == v for a in accepted)
        if shadowed:
            continue
        then = virtual[ref]
        now = latest(v, stored, order)  # over stored versions and this commit's: what answers without it
        if then.content != (None if now is None else now.content):
            accepted.append(_Version(v, _INF, then.content, None))
            source = _as_of(stored, order, v, c)
            materialised.append(Materialised(key, v, None if source is None or source.content is None
                                             else source.write_id, parents, c))
