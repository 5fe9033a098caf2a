"""The as-of answer three ways (koru_core, DuckDB SQL, Polars) on consolidated data,
each compared with the reference model (``tests/model.py``) fed the same writes.

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
from recording import Recorded  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
KEYS = [f"k{i:03d}" for i in range(60)]


def _day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def _write_round(rec: Recorded, rng: random.Random, round_: int) -> None:
    """A batch over many keys at one valid time, then late rows and corrections."""
    rows = [{"id": k, "n": rng.randrange(5), "r": round_} for k in KEYS if rng.random() < 0.7]
    rec.upsert("items", rows, key="id", valid_from=_day(10 * round_))
    for k in rng.sample(KEYS, 8):  # late arrivals, earlier than the key's current version
        rec.put("items", k, {"id": k, "n": 100 + round_, "r": round_}, valid_from=_day(10 * round_ - rng.randrange(1, 25)))
    for k in rng.sample(KEYS, 4):  # a correction at exactly the round's valid time
        rec.put("items", k, {"id": k, "n": -round_, "r": round_}, valid_from=_day(10 * round_))
    for k in rng.sample(KEYS, 2):
        rec.delete("items", k, valid_from=_day(10 * round_ + 3))


def _core(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    table = store.as_of("items", at=t)
    return sorted(zip(table["_key"].to_pylist(), table["n"].to_pylist()))


def _reference(rec: Recorded, t: datetime) -> list[tuple[str, int]]:
    """The model's answer: DESIGN.md's rule over every row written."""
    return sorted((k, content["n"]) for k, content in rec.as_of("items", t).items())


def _duckdb(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    con = koru_duckdb.connect(store)
    rows = con.execute("SELECT _key, n FROM items AT (TIMESTAMP => ?)", [t]).fetchall()
    return sorted((k, n) for k, n in rows)


def _polars(store: koru.Store, t: datetime) -> list[tuple[str, int]]:
    frame = scan_koru(store, "items", at=t).select("_key", "n").collect()
    return sorted(zip(frame["_key"].to_list(), frame["n"].to_list()))


def _check_all(rec: Recorded) -> int:
    """Compare the three engines with the model at many valid times; return how many
    points answered. A point where distillation dropped versions that hold there
    raises :class:`koru.PrunedError` in every engine alike."""
    store = rec.store
    checked = 0
    for d in range(-20, 75, 3):
        at = _day(d + 0.5)
        try:
            got = _core(store, at)
        except koru.PrunedError:
            with pytest.raises(duckdb.Error, match="PrunedError"):
                _duckdb(store, at)
            with pytest.raises(koru.PrunedError):
                _polars(store, at)
            continue
        want = _reference(rec, at)
        assert got == want, f"core at day {d}"
        assert _duckdb(store, at) == want, f"duckdb at day {d}"
        assert _polars(store, at) == want, f"polars at day {d}"
        checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_consolidated_answers_agree_three_ways(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    rec = Recorded(store := koru.open(tmp_path / "store"))
    for round_ in range(1, 4):
        _write_round(rec, rng, round_)
        store.consolidate()  # each run computes _valid_to over its own rows only
    _write_round(rec, rng, 4)  # warm and pending rows on top of cold ones
    stats = {(r["namespace"], r["tier"]) for r in store.stats().to_pylist()}
    assert ("items", "cold") in stats
    assert _check_all(rec) > 20


@pytest.mark.parametrize("seed", [7, 8])
def test_distilled_namespace_agrees_three_ways(tmp_path, seed: int) -> None:
    """Keeping each key's current version and commit 1 whole drops the versions
    in between, which commit 1's stored _valid_to points at."""
    rec = Recorded(store := koru.open(tmp_path / "store"))
    rng = random.Random(seed)
    for round_ in range(1, 5):
        _write_round(rec, rng, round_)
    store.consolidate()
    result = store.distill([KeepLast(1), Pin(commit=1)])
    assert result.versions_after < result.versions_before
    assert _check_all(rec) >= 5  # the current state and the points only commit 1 decides


def test_the_cold_files_do_carry_valid_to(tmp_path) -> None:
    rec = Recorded(store := koru.open(tmp_path / "store"))
    _write_round(rec, random.Random(3), 1)
    store.consolidate()
    import pyarrow.parquet as pq

    assert {s.kind for s in store.plan("items").sources} == {"state"}  # now: ended versions pruned away
    sources = store.plan("items", shape="versions").sources
    assert {s.kind for s in sources} == {"state", "history"}  # current versions, then the ended ones
    table = pq.read_table([s.uri for s in sources if s.kind == "history"][0])
    assert "_valid_to" in table.column_names
    assert table["_valid_to"].null_count < table.num_rows
    assert isinstance(table, pa.Table)


@pytest.mark.parametrize("seed", [4, 5])
def test_consolidated_data_is_read_by_its_intervals(tmp_path, seed: int) -> None:
    """Every version in cold files: readers take the rows whose stored interval
    holds the time, with no per-key choice, and still agree with the model."""
    rng = random.Random(seed)
    rec = Recorded(store := koru.open(tmp_path / "store"))
    for round_ in range(1, 5):
        _write_round(rec, rng, round_)
    store.consolidate()
    assert store.plan("items").strategy == "intervals"
    assert store.plan("items", version=2).strategy == "latest"  # an older commit: no shortcut
    assert _check_all(rec) > 20


def test_newer_rows_on_cold_ones_are_merged(tmp_path) -> None:
    rec = Recorded(store := koru.open(tmp_path / "store"))
    rng = random.Random(11)
    _write_round(rec, rng, 1)
    store.consolidate()
    assert store.plan("items").strategy == "intervals"
    _write_round(rec, rng, 2)
    assert store.plan("items").strategy == "merge"  # pending and warm rows on top
    assert _check_all(rec) > 20
    store.consolidate()  # a second run
    assert store.plan("items").strategy == "intervals"
    assert _check_all(rec) > 20


def test_a_correction_before_skipped_rows_leaves_later_answers_alone(tmp_path) -> None:
    """Issue 11: 1955..1970 equal 1950's value; a revision of 1952 must not change 1971."""
    utc = timezone.utc
    store = koru.open(tmp_path / "store")
    rows = [{"id": "k", "x": 0.0, "t": datetime(y, 1, 1, tzinfo=utc)} for y in (1950, 1955, 1960, 1965, 1970)]
    first = store.upsert("m", rows, key="id", valid_from="t")
    assert (first.written, first.unchanged) == (1, 4)
    store.upsert("m", [{"id": "k", "x": 1.0, "t": datetime(1952, 1, 1, tzinfo=utc)}], key="id", valid_from="t")
    want = {1951: 0.0, 1953: 1.0, 1956: 0.0, 1971: 0.0}
    con = koru_duckdb.connect(store)
    for year, x in want.items():
        at = datetime(year, 1, 2, tzinfo=utc)
        assert store.as_of("m", at=at)["x"].to_pylist() == [x], ("as_of", year)
        assert store.get("m", "k", at=at)["x"] == x, ("get", year)
        assert con.execute("SELECT x FROM m AT (TIMESTAMP => ?)", [at]).fetchall() == [(x,)], ("duckdb", year)
        assert scan_koru(store, "m", at=at).collect()["x"].to_list() == [x], ("polars", year)
    # as of commit 1 nothing had changed: 0.0 throughout
    assert store.get("m", "k", at=datetime(1953, 1, 2, tzinfo=utc), version=1)["x"] == 0.0
