"""A commit large enough to be consolidated at once goes straight to the cold layout
(issue 16: each version encoded once, not into a warm file first). Its answers are the
same as the warm path's, before and after reopening, and a commit that cannot take it
(the namespace holds warm or pending versions) takes a warm file as before."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

import koru_core as koru
from koru_core.lifecycle.auto import AUTO_ROWS
from koru_core.write import persist

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
KEYS = AUTO_ROWS * 4 // 3 + 4_000  # an upsert of every key writes (3/4 of them) past the automatic threshold


def _value(j: int, r: int) -> int:
    """Round r's value of key j; every fourth key keeps its value (a skip record)."""
    return j if j % 4 == 0 else 1_000 * r + j


def _rows(r: int, keys: range) -> pa.Table:
    return pa.table({"id": [f"k{j:06d}" for j in keys], "n": [_value(j, r) for j in keys]})


def _day(r: int) -> datetime:
    return T0 + timedelta(days=10 * r)


@pytest.fixture
def warm_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The namespaces of the warm files written (a spy on the real writer)."""
    seen: list[str] = []
    real = persist._warm

    def spy(ctx, namespace, kind, table):  # type: ignore[no-untyped-def]
        seen.append(namespace)
        return real(ctx, namespace, kind, table)

    monkeypatch.setattr(persist, "_warm", spy)
    return seen


def _state(store: koru.Store, day: datetime) -> dict[str, int]:
    t = store.as_of("users", at=day)
    return dict(zip(t["id"].to_pylist(), t["n"].to_pylist(), strict=True))


def test_large_commits_go_straight_to_cold_files_and_answer_as_written(tmp_path: Path,
                                                                      warm_writes: list[str]) -> None:
    store = koru.open(tmp_path / "s")
    for r in range(3):
        res = store.upsert("users", _rows(r, range(KEYS)), key="id", valid_from=_day(r))
        assert res.written == (KEYS if r == 0 else KEYS - len(range(0, KEYS, 4)))
    # a late backfill of every key, valid between rounds 0 and 1: its history is pulled
    late = store.upsert("users", _rows(7, range(KEYS)), key="id", valid_from=_day(0) + timedelta(days=5))
    assert late.written > 0
    assert warm_writes == []  # every commit went straight to the cold layout
    tiers = {(r["tier"]) for r in store.stats().to_pylist() if r["versions"]}
    assert tiers == {"cold"}

    def check(s: koru.Store) -> None:
        for day, want in [
            (_day(0), {f"k{j:06d}": _value(j, 0) for j in range(KEYS)}),
            (_day(0) + timedelta(days=6), {f"k{j:06d}": _value(j, 7) for j in range(KEYS)}),
            (_day(1), {f"k{j:06d}": _value(j, 1) for j in range(KEYS)}),
            (_day(2) + timedelta(days=1), {f"k{j:06d}": _value(j, 2) for j in range(KEYS)}),
        ]:
            assert _state(s, day) == want, day
        h = s.history("users", "k000001")
        assert h["n"].to_pylist() == [_value(1, r) for r in (0, 7, 1, 2)]
        assert s.history("users", "k000004")["n"].to_pylist() == [4]  # its later rows are skip records

    check(store)
    report = store.verify()
    assert report.is_ok, report.problems
    store.close()
    reopened = koru.open(tmp_path / "s")
    check(reopened)
    reopened.close()


def test_a_commit_onto_pending_versions_takes_a_warm_file(tmp_path: Path, warm_writes: list[str]) -> None:
    store = koru.open(tmp_path / "s")
    store.put("users", "k000001", {"n": -1}, valid_from=_day(0) - timedelta(days=1))  # a pending version
    store.upsert("users", _rows(0, range(KEYS)), key="id", valid_from=_day(0))
    assert warm_writes == ["users"]
    assert _state(store, _day(0)) == {f"k{j:06d}": _value(j, 0) for j in range(KEYS)}
    assert store.history("users", "k000001")["n"].to_pylist() == [-1, 1]
    store.close()
