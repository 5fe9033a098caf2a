"""Consolidation key range by key range (issue 16, memory): a store opened with a small
``memory_limit`` consolidates its overlay and state a range at a time (about
``memory_limit / 2048`` rows each) and merges the closed versions of every range into one
sorted history file. Every answer is the same as before the run, and as written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq

import koru_core as koru
from koru_core.lifecycle.consolidate import HISTORY_ORDER, range_rows

T0 = datetime(2026, 1, 15, tzinfo=timezone.utc)
KEYS = 12_000
LIMIT = 4 * 2**20  # bytes: ranges of range_rows(LIMIT) rows, far fewer than a run holds
DELETED = (5, 777, 4_321, 11_999)  # deleted at day 90, written again by round 3 (day 120)
ROUND1_KEYS = 1_500  # round 1 writes only the first keys: a small first history file, folded later


def _value(j: int, r: int) -> int:
    """Round r's value of key j: every third key never changes (its later rows are skip records)."""
    return 0 if j % 3 == 0 else r * j + 1


def _expected(day: int, deleted: tuple[int, ...] = DELETED) -> dict[str, int]:
    """The as-of state at ``day`` (days after T0), from how the rows were written."""
    out = {}
    for j in range(KEYS):
        rounds = [r for r in range(4) if 40 * r <= day and (r != 1 or j < ROUND1_KEYS)]
        if not rounds:
            continue
        if j in deleted and 90 <= day < 120:
            continue
        out[f"k{j:05d}"] = _value(j, rounds[-1])
    return out


def _write_round(store: koru.Store, r: int) -> None:
    rows = [{"id": f"k{j:05d}", "n": _value(j, r)} for j in range(KEYS if r != 1 else ROUND1_KEYS)]
    store.upsert("users", rows, key="id", valid_from=T0 + timedelta(days=40 * r))


def _state(store: koru.Store, day: int) -> dict[str, int]:
    t = store.as_of("users", at=T0 + timedelta(days=day))
    return dict(zip(t["id"].to_pylist(), t["n"].to_pylist(), strict=True))


def _files(store: koru.Store, kind: str) -> list[koru.Source]:
    return [s for s in store.plan("users", shape="versions").candidates if s.kind == kind]


def test_a_run_by_key_range_keeps_every_answer(tmp_path: Path) -> None:
    assert range_rows(LIMIT) * 2 < KEYS, "the runs below must take more than one key range"
    store = koru.open(tmp_path / "s", auto_consolidate=False, memory_limit=LIMIT)
    _write_round(store, 0)
    _write_round(store, 1)
    assert store.consolidate().namespaces == ("users",)
    _write_round(store, 2)
    for j in DELETED:
        store.delete("users", f"k{j:05d}", valid_from=T0 + timedelta(days=90))
    _write_round(store, 3)
    days = (-1, 0, 39, 40, 85, 90, 100, 120, 500)
    before = {d: _state(store, d) for d in days}
    history_before = store.history("users", "k00004")
    assert store.consolidate().namespaces == ("users",)
    for d in days:
        assert _state(store, d) == _expected(d) == before[d], f"as-of at day {d}"
    history = store.history("users", "k00004")
    assert history["n"].to_pylist() == [_value(4, r) for r in range(4)]
    assert history.equals(history_before)
    assert [v["n"] for v in store.history("users", "k04321").to_pylist()] == [
        _value(4321, 0), _value(4321, 2), None, _value(4321, 3)]

    states = sorted(_files(store, "state"), key=lambda s: s.uri)
    keys = [k for s in states for k in pq.read_table(s.uri, columns=["_key"])["_key"].to_pylist()]
    assert sorted(keys) == [f"k{j:05d}" for j in range(KEYS)], "one state row per key"
    histories = _files(store, "history")
    assert len(histories) == 1, "every range's closed versions and the small older history in one file"
    closed = pq.read_table(histories[0].uri)
    assert closed.num_rows == store.versions("users").num_rows - KEYS
    assert closed.equals(closed.sort_by(HISTORY_ORDER)), "history is sorted by valid time, then key"
    assert closed["_valid_to"].null_count == 0
    store.close()
    again = koru.open(tmp_path / "s", memory_limit=LIMIT)
    assert _state(again, 100) == _expected(100)
    again.close()


def test_late_rows_in_a_range_take_the_whole_run(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s", auto_consolidate=False, memory_limit=LIMIT)
    for r in range(3):
        _write_round(store, r)
    store.consolidate()
    backfill = [{"id": f"k{j:05d}", "n": -j} for j in range(0, KEYS, 2)]  # before their day-80 versions
    store.upsert("users", backfill, key="id", valid_from=T0 + timedelta(days=20))
    store.consolidate()
    at30 = _state(store, 30)
    assert at30 == {k: (-int(k[1:]) if int(k[1:]) % 2 == 0 else v) for k, v in _expected(30, ()).items()}
    assert len(at30) == KEYS
    assert _state(store, 100) == _expected(100, ())
    assert [v["n"] for v in store.history("users", "k00002").to_pylist()] == [
        _value(2, 0), -2, _value(2, 1), _value(2, 2)]
    assert [v["n"] for v in store.history("users", "k02002").to_pylist()] == [_value(2002, 0), -2002, _value(2002, 2)]
    store.close()
