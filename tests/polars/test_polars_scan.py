"""scan_koru / read_koru: same answers as koru_core, native plans, pushdown that keeps the as-of rule."""

from __future__ import annotations

import re

import pytest

pl = pytest.importorskip("polars")

import pyarrow as pa  # noqa: E402
from polars_checks import as_frame, assert_same_rows, day  # noqa: E402

import koru_core as koru  # noqa: E402
import koru_polars  # noqa: E402
from koru_polars import read_koru, scan_koru  # noqa: E402

POINTS = [(day(0.5), None), (day(1), None), (day(2), None), (day(2.5), None), (day(9), None),
          (day(9), 1), (day(9), 2), (day(9), 3), (day(2.5), 2), (None, None), (None, 3)]


@pytest.mark.parametrize(("at", "version"), POINTS)
def test_as_of_equals_core(users, at, version):
    actual = scan_koru(users, "users", at=at, version=version).collect()
    assert_same_rows(actual, as_frame(users.as_of("users", at=at, version=version)))


def test_value_filter_is_applied_after_the_latest_version_is_chosen(users):
    """Filter-then-as-of would return alice (age 40 before her correction) and carol
    (60 before her tombstone); as-of-then-filter returns nobody at day 2.5."""
    lf = scan_koru(users, "users", at=day(2.5))
    assert lf.filter(pl.col("age") > 30).collect().height == 0
    wrong = (
        koru_polars.scan.versions_frame(users.plan("users", shape="versions"))
        .filter((pl.col("age") > 30) & (pl.col("_valid_from") <= day(2.5)))
        .group_by("_key").agg(pl.all().sort_by("_valid_from", "_commit").last())
        .filter(~pl.col("_deleted")).collect()
    )
    assert sorted(wrong["_key"]) == ["alice", "carol"]  # the data really separates the two orders
    now = scan_koru(users, "users").filter(pl.col("age") > 30).select("_key", "age").collect()
    assert now.rows() == [("bob", 50)]
    expected = as_frame(users.as_of("users", at=day(2.5))).filter(pl.col("age") > 30)
    assert_same_rows(lf.filter(pl.col("age") > 30).collect(), expected)


@pytest.mark.parametrize(("version", "planned"), [(2, 'col("_valid_to").is_null()'), (1, '(col("_commit") <= 1)')])
def test_key_filter_is_pushed_into_the_parquet_scan(users, version, planned):
    """The planner's filter and a later ``_key`` filter both reach the Parquet scan, with a
    projection: at commit 2 (the cold files' own) the exact filter on ``_valid_to``; at commit 1,
    before the cold files' commit, the candidate filter on ``_commit``."""
    assert users.plan("users", version=version).strategy == ("intervals" if version == 2 else "latest")
    plan = scan_koru(users, "users", version=version).filter(pl.col("_key") == "bob").select("age").explain()
    scan = plan[plan.index("Parquet SCAN"):]
    selection = scan[scan.index("SELECTION:"):].splitlines()[0]
    assert planned in selection
    assert 'col("_valid_from") <=' in selection
    assert 'col("_key") == "bob"' in selection
    projected, total = map(int, re.search(r"PROJECT (\d+)/(\d+) COLUMNS", scan).groups())
    assert projected < total


def test_value_filter_is_not_pushed_into_the_scan(users):
    plan = scan_koru(users, "users").filter(pl.col("age") > 30).explain()
    scan = plan[plan.index("Parquet SCAN"):]
    assert "age" not in scan[scan.index("SELECTION:"):].splitlines()[0]
    above = plan[: plan.index("AGGREGATE")]
    assert 'col("age") > 30' in above


def test_key_filter_reads_one_row_group(tmp_path, capfd):
    store = koru.open(tmp_path / "big.koru")
    keys = [f"k{i:06d}" for i in range(50_000)]
    store.upsert("big", pa.table({"id": keys, "n": list(range(50_000))}), key="id", valid_from=day(1))
    store.consolidate()  # cold files: sorted by key, row groups of some thousand rows
    lf = scan_koru(store, "big").filter(pl.col("_key") == "k025000").select("n")
    capfd.readouterr()
    with pl.Config(verbose=True):
        assert lf.collect().item() == 25_000
    err = capfd.readouterr().err
    counts = re.findall(r"reading (\d+) / (\d+) row groups", err)
    assert counts, err[-2000:]
    read, total = map(int, counts[0])
    assert total > 1
    assert read == 1


def test_files_with_later_valid_times_are_not_scanned(users):
    early = scan_koru(users, "users", at=day(0.5)).explain()
    assert "Parquet SCAN" not in early  # both data files start at day 1
    assert scan_koru(users, "users", at=day(0.5)).collect().height == 0


def test_select_head_and_filter(users):
    expected = as_frame(users.as_of("users"))
    ages = scan_koru(users, "users").select("_key", "age").collect()
    assert_same_rows(ages, expected.select("_key", "age"))
    head = scan_koru(users, "users").head(1).collect()
    assert head.height == 1
    assert head.row(0) in expected.rows()
    bob = scan_koru(users, "users").filter(pl.col("_key") == "bob").collect()
    assert_same_rows(bob, expected.filter(pl.col("_key") == "bob"))


def test_join_of_two_namespaces_at_one_instant(users):
    users.upsert("orders", [{"order": "o1", "user": "alice", "total": 5},
                            {"order": "o2", "user": "bob", "total": 7},
                            {"order": "o3", "user": "carol", "total": 9}], key="order", valid_from=day(1))
    users.put("orders", "o2", {"order": "o2", "user": "alice", "total": 8}, valid_from=day(2))
    for at in (day(1.5), day(2.5)):
        joined = (
            scan_koru(users, "orders", at=at).select("order", "user", "total")
            .join(scan_koru(users, "users", at=at).select("_key", "age"), left_on="user", right_on="_key")
            .collect()
        )
        orders = as_frame(users.as_of("orders", at=at)).select("order", "user", "total")
        people = as_frame(users.as_of("users", at=at)).select("_key", "age")
        assert_same_rows(joined, orders.join(people, left_on="user", right_on="_key"), by=("order",))
    assert scan_koru(users, "orders", at=day(2.5)).join(
        scan_koru(users, "users", at=day(2.5)), left_on="user", right_on="_key"
    ).collect()["order"].sort().to_list() == ["o1", "o2"]  # carol was deleted at day 2


def test_older_files_with_fewer_columns_and_narrower_types(store):
    """Two warm files (commits of more rows than stay pending): the older lacks ``y`` and
    stores ``x`` as int32 and ``f`` as float32; a pending version lacks ``f``."""
    n = 1500
    first = [f"k{i:05d}" for i in range(n)]
    second = [f"k{i:05d}" for i in range(n // 2, n + n // 2)]
    store.upsert("m", pa.table({"id": first, "x": pa.array(range(n), pa.int32()),
                                "f": pa.array([1.5] * n, pa.float32())}), key="id", valid_from=day(1))
    store.upsert("m", pa.table({"id": second, "x": pa.array([2**40 + i for i in range(n)], pa.int64()),
                                "f": [0.1] * n, "y": ["new"] * n}), key="id", valid_from=day(2))
    store.put("m", "d", {"id": "d", "x": 4, "y": "pending"}, valid_from=day(3))
    plan = store.plan("m")
    assert [s.kind for s in plan.sources] == ["versions", "versions", "pending"]
    for at in (day(1), day(2), day(3)):
        actual = scan_koru(store, "m", at=at).collect()
        assert actual.schema["x"] == pl.Int64
        assert actual.schema["f"] == pl.Float64
        assert_same_rows(actual, as_frame(store.as_of("m", at=at)))
    assert read_koru(store, "m").filter(pl.col("_key") == "k00000")["y"].to_list() == [None]


def test_nanosecond_valid_times(store):
    pd = pytest.importorskip("pandas")
    t = pd.Timestamp("2024-01-01 00:00:00.000000001", tz="UTC")
    store.put("ns", "k", {"v": 1}, valid_from=t)
    assert read_koru(store, "ns", at=t).height == 1
    assert read_koru(store, "ns", at=t - pd.Timedelta(1, "ns")).height == 0


def test_history_equals_versions(users):
    for version in (None, 2, 4):
        actual = scan_koru(users, "users", version=version, history=True).collect()
        expected = as_frame(users.versions("users", version=version))
        assert actual.columns == expected.columns
        assert actual.equals(expected)  # same order too: _key, _valid_from, _commit
    bounded = read_koru(users, "users", history=True, at=day(1.5))
    assert bounded["_valid_from"].max() <= day(1.5)
    alice = bounded.filter(pl.col("_key") == "alice")
    assert alice["_valid_to"].to_list() == [day(2)]  # a later version still ends the interval


def test_history_filter_keeps_valid_to_of_the_unfiltered_history(users):
    """A value filter must not change which version is 'next' for ``_valid_to``."""
    actual = scan_koru(users, "users", history=True).filter(pl.col("age") > 30).collect()
    expected = as_frame(users.versions("users")).filter(pl.col("age") > 30)
    assert actual.equals(expected)
    assert actual.filter(pl.col("_key") == "alice")["_valid_to"].to_list() == [day(2)]


def test_plan_is_fixed_when_scan_koru_is_called(users):
    lf = scan_koru(users, "users", at=day(9))
    users.put("users", "dave", {"id": "dave", "age": 1}, valid_from=day(1))
    assert "dave" not in lf.collect()["_key"].to_list()
    assert "dave" in scan_koru(users, "users", at=day(9)).collect()["_key"].to_list()


def test_nothing_is_read_before_collect(users):
    lf = scan_koru(users, "users", at=day(9))
    for path in users.plan("users").files:
        with open(path, "r+b") as f:
            f.truncate(8)
    with pytest.raises(Exception):  # noqa: B017,PT011 - whatever Polars raises for a broken file
        lf.collect()
    with pytest.raises(koru.CorruptionError, match="parquet"):
        scan_koru(users, "users")


def test_path_source_and_empty_results(users, tmp_path):
    path = users.path
    assert_same_rows(read_koru(path, "users"), as_frame(users.as_of("users")))
    assert_same_rows(read_koru(str(path), "users", at=day(1)), as_frame(users.as_of("users", at=day(1))))
    users.delete("users", "alice")
    users.delete("users", "bob")
    empty = read_koru(users, "users")
    assert empty.height == 0
    assert empty.columns == [*as_frame(users.as_of("users")).columns]


def test_errors(users, tmp_path):
    import datetime as dt

    with pytest.raises(koru.InvalidInputError, match="naive"):
        scan_koru(users, "users", at=dt.datetime(2024, 1, 1))
    with pytest.raises(koru.NamespaceNotFoundError, match="nope"):
        scan_koru(users, "nope")
    for bad in (0, 99, True):
        with pytest.raises(koru.InvalidInputError, match="version"):
            scan_koru(users, "users", version=bad)
    missing = tmp_path / "missing.koru"
    with pytest.raises(koru.InvalidInputError, match="no koru store"):
        scan_koru(missing, "users")
    assert not missing.exists()  # a read never creates a store
    with pytest.raises(koru.InvalidInputError, match="source"):
        scan_koru(42, "users")  # type: ignore[arg-type]


@pytest.mark.parametrize("by_path", [False, True])
def test_a_lazy_frame_keeps_its_files_through_consolidation_and_vacuum(users, by_path):
    import datetime as dt
    import gc

    expected = as_frame(users.as_of("users", at=day(9)))
    lf = scan_koru(users.path if by_path else users, "users", at=day(9)).filter(pl.col("age") > 0)
    warm = users.plan("users").files
    users.consolidate()
    gc.collect()
    users.vacuum(retain=dt.timedelta(0))
    from pathlib import Path

    assert all(Path(f).exists() for f in warm)  # leased by lf
    assert_same_rows(lf.collect(), expected)
    assert_same_rows(scan_koru(users, "users", at=day(9)).collect(), expected)  # the cold files
    del lf
    gc.collect()
    users.vacuum(retain=dt.timedelta(0))
    assert not any(Path(f).exists() for f in warm)  # the lease was what kept them
