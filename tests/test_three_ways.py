"""The as-of answer three ways (koru_core, DuckDB SQL, Polars) on consolidated data.

Consolidation stores ``_valid_to`` in cold files, computed over the rows one
run merges, and every reader uses it to skip rows before choosing the latest
version per key. That shortcut is only sound because a stored ``_valid_to`` is
never earlier than the true one at the latest commit. These tests build the
histories that could break it: late-arriving rows and same-time corrections
landing in later consolidation runs, warm rows on top of cold ones, and a
distillation that drops versions other rows' ``_valid_to`` pointed at.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

import koru_core as koru

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")

import koru_duckdb  # noqa: E402
from koru_core.lifecycle.policies import KeepLast, Pin  # noqa: E402
from koru_polars import scan_koru  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
KEYS = [f"k{i:03d}" for i in range(60)]


def _day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def _write_round(store: koru.Store, rng: random.Random, round_: int) -> None:
    """A batch over many keys at one valid time, then late rows and corrections."""
    rows = [{"id": k, "n": rng.randrange(5), "r": round_} for k in KEYS if rng.random() < 0.7]
    store.upsert("items", rows, key="id", valid_from=_day(10 * round_))
    for k in rng.sample(KEYS, 8):  # late arrivals, earlier than the key's current version
        store.put("items", k, {"id": k, "n": 100 + round_, "r": round_}, valid_from=_day(10 * round_ - rng.randrange(1, 25)))
    for k in rng.sample(KEYS, 4):  # a correction at exactly the round's valid time
        store.put("items", k, {"id": k, "n": -round_, "r": round_}, valid_from=_day(10 * round_))
    for k in rng.sample(KEYS, 2):
        try:
            store.delete("items", k, valid_from=_day(10 * round_ + 3))
        except koru.KeyNotFoundError:
            pass


def _core(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    table = store.as_of("items", at=t)
    return sorted(zip(table["_key"].to_pylist(), table["n"].to_pylist()))


def _reference(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    """The as-of rule applied by koru_core.read to every version, no shortcut."""
    from koru_core.read import as_of_rule
    from koru_core._time import to_ns

    versions = store.versions("items")
    state = as_of_rule(versions, valid_at=to_ns(t, what="t"), max_commit=None)
    return sorted(zip(state["_key"].to_pylist(), state["n"].to_pylist()))


def _duckdb(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    con = koru_duckdb.connect(store)
    rows = con.execute("SELECT _key, n FROM items AT (TIMESTAMP => ?)", [t]).fetchall()
    return sorted((k, n) for k, n in rows)


def _polars(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    frame = scan_koru(store, "items", at=t).select("_key", "n").collect()
    return sorted(zip(frame["_key"].to_list(), frame["n"].to_list()))


def _check_all(store: koru.Store) -> int:
    checked = 0
    for d in range(-20, 75, 3):
        want = _reference(store, _day(d + 0.5))
        assert _core(store, _day(d + 0.5)) == want, f"core at day {d}"
        assert _duckdb(store, _day(d + 0.5)) == want, f"duckdb at day {d}"
        assert _polars(store, _day(d + 0.5)) == want, f"polars at day {d}"
        checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_consolidated_answers_agree_three_ways(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    store = koru.open(tmp_path / "store")
    for round_ in range(1, 4):
        _write_round(store, rng, round_)
        store.consolidate()  # each run computes _valid_to over its own rows only
    _write_round(store, rng, 4)  # warm and pending rows on top of cold ones
    stats = {(r["namespace"], r["tier"]) for r in store.stats().to_pylist()}
    assert ("items", "cold") in stats
    assert _check_all(store) > 20


@pytest.mark.parametrize("seed", [7, 8])
def test_distilled_namespace_agrees_three_ways(tmp_path, seed: int) -> None:
    """Keeping each key's current version and commit 1 whole drops the versions
    in between, which commit 1's stored _valid_to points at."""
    store = koru.open(tmp_path / "store")
    rng = random.Random(seed)
    for round_ in range(1, 5):
        _write_round(store, rng, round_)
    store.consolidate()
    result = store.distill([KeepLast(1), Pin(commit=1)])
    assert result.versions_after < result.versions_before
    assert _check_all(store) > 20


def test_the_cold_files_do_carry_valid_to(tmp_path) -> None:
    store = koru.open(tmp_path / "store")
    _write_round(store, random.Random(3), 1)
    store.consolidate()
    import pyarrow.parquet as pq

    cold = [store.path / e.path for e in store.scan_plan("items").entries if e.tier == "cold"]
    assert cold
    table = pq.read_table(cold[0])
    assert "_valid_to" in table.column_names
    assert table["_valid_to"].null_count < table.num_rows
    assert isinstance(table, pa.Table)


@pytest.mark.parametrize("seed", [4, 5])
def test_one_consolidation_run_is_read_by_its_intervals(tmp_path, seed: int) -> None:
    """Every version in the cold files of one run: readers take the rows whose
    stored interval holds the time, with no per-key choice, and still agree."""
    rng = random.Random(seed)
    store = koru.open(tmp_path / "store")
    for round_ in range(1, 5):
        _write_round(store, rng, round_)
    store.consolidate()
    assert store.scan_plan("items").has_exact_valid_to
    assert not store.scan_plan("items", version=2).has_exact_valid_to  # an older commit: no shortcut
    assert _check_all(store) > 20


def test_two_runs_or_newer_rows_are_not_exact(tmp_path) -> None:
    store = koru.open(tmp_path / "store")
    rng = random.Random(11)
    _write_round(store, rng, 1)
    store.consolidate()
    assert store.scan_plan("items").has_exact_valid_to
    _write_round(store, rng, 2)
    assert not store.scan_plan("items").has_exact_valid_to  # pending rows on top
    store.consolidate()  # a second run: the first run's large parts stay as they are
    runs = {e.path.rsplit("/", 1)[1].split("-")[1] for e in store.scan_plan("items").entries}
    assert store.scan_plan("items").has_exact_valid_to == (len(runs) == 1)
    assert _check_all(store) > 20
