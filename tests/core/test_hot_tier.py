"""The hot tier: bounded by ``memory_limit``, and its cache hit rate in ``stats()``."""

from __future__ import annotations

from pathlib import Path

import pytest

import koru_core as koru


def _rows(n: int, value: int) -> list[dict[str, object]]:
    return [{"id": f"k{i:05d}", "v": value} for i in range(n)]


def _hot(store: koru.Store) -> dict[str, dict[str, object]]:
    return {r["namespace"]: r for r in store.stats().to_pylist() if r["tier"] == "hot"}


def test_memory_limit_evicts_the_least_recently_used_index(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s", memory_limit=150_000)
    store.upsert("a", _rows(3000, 1), key="id")
    first = _hot(store)["a"]["memory_bytes"]
    assert first > 0
    store.upsert("b", _rows(3000, 1), key="id")
    hot = _hot(store)
    assert hot["b"]["memory_bytes"] > 0
    assert hot.get("a", {}).get("memory_bytes", 0) == 0, "a's index was evicted to stay under the limit"
    # an evicted index is rebuilt from the files: unchanged rows are still recognised
    result = store.upsert("a", _rows(3000, 1), key="id")
    assert (result.commit, result.unchanged) == (None, 3000)
    assert store.upsert("a", _rows(10, 2), key="id").written == 10


def test_a_large_limit_keeps_every_index(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s")
    store.upsert("a", _rows(3000, 1), key="id")
    store.upsert("b", _rows(3000, 1), key="id")
    hot = _hot(store)
    assert hot["a"]["memory_bytes"] > 0 and hot["b"]["memory_bytes"] > 0


def test_hit_rate_counts_cached_reads(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s")
    store.put("u", "x", {"v": 1})
    store.put("u", "y", {"v": 1})  # cached when written (the namespace's schema is known)
    store.get("u", "y")  # hit
    store.get("u", "x")  # miss, then cached
    store.get("u", "x")  # hit
    assert _hot(store)["u"]["hit_rate"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1GB"])
def test_memory_limit_must_be_positive_bytes(tmp_path: Path, bad: object) -> None:
    with pytest.raises(koru.InvalidInputError, match="memory_limit"):
        koru.open(tmp_path / "s", memory_limit=bad)  # type: ignore[arg-type]
