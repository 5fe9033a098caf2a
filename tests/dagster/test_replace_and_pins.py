"""Write semantics and pinning (issue 14).

What broke: a re-run of a partition without a cancelled order left the order live
(``koru/delete_missing`` defaulted to False), so ``customer_totals`` still counted
it; and inputs were pinned only when the Dagster instance held the upstream's
materialization, so ``materialize()`` (a fresh instance per call) read writes made
outside Dagster. Every test runs with no instance and with a persistent one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("dagster")
pl = pytest.importorskip("polars")

import pyarrow as pa  # noqa: E402
from dagster import AssetIn, DagsterInstance, DailyPartitionsDefinition, asset, materialize  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager  # noqa: E402

DAYS = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-03")
ORDERS: dict[str, list[dict]] = {}
SOURCE: list[dict] = []


@asset(partitions_def=DAYS, metadata={"koru/key": "order_id"})
def orders(context) -> pa.Table:
    return pa.Table.from_pylist(ORDERS[context.partition_key])


@asset(metadata={"koru/key": "customer"})
def customer_totals(orders: pl.DataFrame) -> pl.DataFrame:
    return (
        orders.group_by("customer")
        .agg(pl.col("amount").sum().alias("total"), pl.len().alias("orders"))
        .sort("customer")
    )


@asset(partitions_def=DAYS, metadata={"koru/key": "order_id", "koru/mode": "upsert"})
def order_log(context) -> pa.Table:
    return pa.Table.from_pylist(ORDERS[context.partition_key])


@asset(metadata={"koru/key": "sensor"})
def source() -> pa.Table:
    return pa.Table.from_pylist(SOURCE)


@asset(metadata={"koru/key": "sensor"})
def pinned_copy(source: pa.Table) -> pa.Table:
    return source.select(["sensor", "value"])


@asset(ins={"source": AssetIn(metadata={"koru/pin": False})}, metadata={"koru/key": "sensor"})
def latest_copy(source: pa.Table) -> pa.Table:
    return source.select(["sensor", "value"])


@pytest.fixture(params=["no instance", "persistent instance"])
def run(request, tmp_path: Path):
    """``run(assets, **kw)``: materialize with no instance (a throwaway one per call, as
    tests, notebooks and scripts do), or with one persistent on-disk instance."""
    store = str(tmp_path / "store.koru")
    resources = {"io_manager": KoruIOManager(store=store)}
    instance = None
    if request.param == "persistent instance":
        (tmp_path / "dagster_home").mkdir()
        instance = DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home"))

    def go(assets, **kwargs):
        extra = {"instance": instance} if instance is not None else {}
        result = materialize(assets, resources=resources, **extra, **kwargs)
        assert result.success
        return result

    go.store = store
    yield go
    if instance is not None:
        instance.dispose()


def meta(result, node: str) -> dict:
    [m] = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in m.metadata.items()}


def order(order_id: str, customer: str, amount: int) -> dict:
    return {"order_id": order_id, "customer": customer, "amount": amount}


def totals(store_path: str) -> dict[str, tuple[int, int]]:
    with koru.open(store_path) as store:
        return {r["customer"]: (r["total"], r["orders"]) for r in store.as_of("customer_totals").to_pylist()}


def test_rerun_without_a_cancelled_order_gives_the_right_total(run):
    """The issue's scenario: day 1 re-run without the cancelled order o2."""
    ORDERS.update({
        "2024-05-01": [order("o1", "ann", 10), order("o2", "ann", 5), order("o3", "bob", 7)],
        "2024-05-02": [order("o4", "ann", 1)],
    })
    for day in ("2024-05-01", "2024-05-02"):
        run([orders], partition_key=day)
    run([orders.to_source_asset(), customer_totals])
    assert totals(run.store) == {"ann": (16, 3), "bob": (7, 1)}

    ORDERS["2024-05-01"] = [order("o1", "ann", 10), order("o3", "bob", 7)]  # o2 cancelled
    again = meta(run([orders], partition_key="2024-05-01"), "orders")
    assert (again["koru/rows_written"], again["koru/rows_deleted"], again["dagster/row_count"]) == (0, 1, 2)
    run([orders.to_source_asset(), customer_totals])
    assert totals(run.store) == {"ann": (11, 2), "bob": (7, 1)}
    with koru.open(run.store) as store:
        assert store.get("orders", "2024-05-02|o4")["amount"] == 1  # the other day is untouched
        with pytest.raises(koru.KeyNotFoundError):
            store.get("orders", "2024-05-01|o2")
        assert store.get("orders", "2024-05-01|o2", version=1)["amount"] == 5  # history kept
        commits = len(store.commits())

    unchanged = meta(run([orders], partition_key="2024-05-01"), "orders")  # the same output again
    assert (unchanged["koru/rows_written"], unchanged["koru/rows_deleted"]) == (0, 0)
    with koru.open(run.store) as store:
        assert len(store.commits()) == commits  # no new commit


def test_upsert_mode_keeps_rows_the_output_no_longer_holds(run):
    ORDERS["2024-05-01"] = [order("o1", "ann", 10), order("o2", "ann", 5)]
    run([order_log], partition_key="2024-05-01")
    ORDERS["2024-05-01"] = [order("o3", "bob", 7)]
    m = meta(run([order_log], partition_key="2024-05-01"), "order_log")
    assert (m["koru/rows_written"], m["koru/rows_deleted"]) == (1, 0)
    with koru.open(run.store) as store:
        assert sorted(store.as_of("order_log")["order_id"].to_pylist()) == ["o1", "o2", "o3"]


def test_unpartitioned_replace_tombstones_missing_records(run):
    SOURCE[:] = [{"sensor": "a", "value": 1}, {"sensor": "b", "value": 2}]
    run([source])
    SOURCE[:] = [{"sensor": "a", "value": 1}]
    m = meta(run([source]), "source")
    assert (m["koru/rows_written"], m["koru/rows_unchanged"], m["koru/rows_deleted"]) == (0, 1, 1)


def test_each_commit_records_asset_partition_and_run_id(run):
    ORDERS.update({"2024-05-01": [order("o1", "ann", 10)], "2024-05-02": [order("o4", "ann", 1)]})
    first = run([orders], partition_key="2024-05-01")
    run([orders], partition_key="2024-05-02")
    down = run([orders.to_source_asset(), customer_totals])
    with koru.open(run.store) as store:
        [c] = store.commits(metadata={"dagster/asset": "orders", "dagster/partition": "2024-05-01"})
        assert (c.commit, c.metadata["dagster/run_id"], c.run_id) == (1, first.run_id, first.run_id)
        [t] = store.commits(metadata={"dagster/asset": "customer_totals"})
        assert "dagster/partition" not in t.metadata and t.metadata["dagster/run_id"] == down.run_id
        assert json.loads(t.metadata["koru/inputs"]) == {"orders": 2}  # namespace-level lineage


def test_a_pinned_input_ignores_a_write_made_outside_dagster(run):
    SOURCE[:] = [{"sensor": "a", "value": 1}, {"sensor": "b", "value": 2}]
    run([source])  # commit 1
    with koru.open(run.store) as store:  # a loader script, outside Dagster
        assert store.upsert("source", [{"sensor": "a", "value": 100}], key="sensor").commit == 2
    result = run([source.to_source_asset(), pinned_copy, latest_copy])
    with koru.open(run.store) as store:
        assert store.get("pinned_copy", "a")["value"] == 1
        assert store.get("latest_copy", "a")["value"] == 100  # koru/pin: False reads the latest
    assert meta(result, "pinned_copy")["koru/inputs"] == {"source": 1}
    assert meta(result, "latest_copy")["koru/inputs"] == {"source": 2}

    SOURCE[:] = [{"sensor": "a", "value": 3}, {"sensor": "b", "value": 2}]
    run([source])  # commit 5 (the copies wrote 3 and 4): a Dagster materialization moves the pin
    again = run([source.to_source_asset(), pinned_copy])
    m = meta(again, "pinned_copy")
    assert m["koru/inputs"] == {"source": 5} and m["koru/input_ranges"] == {"source": [1, 5]}
    with koru.open(run.store) as store:
        assert store.get("pinned_copy", "a")["value"] == 3


def test_partitions_are_pinned_each_to_its_own_commit(run):
    """Day 1 was changed outside Dagster before day 2 was re-materialized: the
    downstream reads day 1 as its materialization wrote it, day 2 as re-run."""
    ORDERS.update({"2024-05-01": [order("o1", "ann", 10)], "2024-05-02": [order("o4", "ann", 1)]})
    run([orders], partition_key="2024-05-01")  # commit 1
    run([orders], partition_key="2024-05-02")  # commit 2
    with koru.open(run.store) as store:  # commit 3: a fix made by hand
        store.put("orders", "2024-05-01|o1", {"partition": "2024-05-01", "order_id": "o1",
                                               "customer": "ann", "amount": 999})
    ORDERS["2024-05-02"] = [order("o4", "ann", 2)]
    run([orders], partition_key="2024-05-02")  # commit 4
    result = run([orders.to_source_asset(), customer_totals])
    assert totals(run.store) == {"ann": (12, 2)}
    assert meta(result, "customer_totals")["koru/inputs"] == {"orders": {"2024-05-01": 1, "2024-05-02": 4}}


def test_with_no_out_of_band_write_partitions_are_read_in_one_pass(run):
    ORDERS.update({"2024-05-01": [order("o1", "ann", 10)], "2024-05-02": [order("o4", "ann", 1)]})
    run([orders], partition_key="2024-05-01")
    run([orders], partition_key="2024-05-02")
    ORDERS["2024-05-01"] = [order("o1", "ann", 11)]
    run([orders], partition_key="2024-05-01")  # commit 3
    result = run([orders.to_source_asset(), customer_totals])
    assert meta(result, "customer_totals")["koru/inputs"] == {"orders": 3}
    assert totals(run.store) == {"ann": (12, 2)}


def test_an_upstream_never_materialized_by_dagster_is_read_at_the_latest_commit(run):
    with koru.open(run.store) as store:
        store.upsert("source", [{"sensor": "a", "value": 7}], key="sensor")
        store.upsert("source", [{"sensor": "a", "value": 8}], key="sensor")
    result = run([source.to_source_asset(), pinned_copy])
    assert meta(result, "pinned_copy")["koru/inputs"] == {"source": 2}
    with koru.open(run.store) as store:
        assert store.get("pinned_copy", "a")["value"] == 8


def test_delete_missing_was_replaced_by_mode(tmp_path):
    @asset(name="old_style", metadata={"koru/key": "id", "koru/delete_missing": True})
    def old_style() -> pa.Table:
        return pa.table({"id": ["a"]})

    with pytest.raises(koru.InvalidInputError, match="'koru/mode': 'upsert'"):
        materialize([old_style], resources={"io_manager": KoruIOManager(store=str(tmp_path / "s"))})

    @asset(name="bad_mode", metadata={"koru/key": "id", "koru/mode": "append"})
    def bad_mode() -> pa.Table:
        return pa.table({"id": ["a"]})

    with pytest.raises(koru.InvalidInputError, match="must be one of"):
        materialize([bad_mode], resources={"io_manager": KoruIOManager(store=str(tmp_path / "s"))})


def test_key_may_be_a_column_name_or_a_list(tmp_path):
    """issue 14: `KoruIOManager(store=..., key="id")`, as the README shows, raised a ValidationError."""
    @asset
    def people() -> pa.Table:
        return pa.table({"id": ["a", "b"], "dept": ["x", "y"], "age": [1, 2]})

    for name, key, expected in (("one", "id", ["a", "b"]), ("two", ["dept", "id"], ["x|a", "y|b"])):
        store = str(tmp_path / name)  # one store per key: a namespace keeps its key columns
        assert materialize([people], resources={"io_manager": KoruIOManager(store=store, key=key)}).success
        with koru.open(store) as s:
            assert sorted(s.as_of("people")["_key"].to_pylist()) == expected
