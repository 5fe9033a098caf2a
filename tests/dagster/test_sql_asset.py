"""Versioned materialized views: ``koru_sql_asset`` (issue 14: the seed's self-refreshing
materialized views had no Dagster form).

The view refreshes (``AutomationCondition.eager()``) when its input changes, reads
its input at the pinned commit, and its history answers ``AT (VERSION => …)``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("dagster")
koru_duckdb = pytest.importorskip("koru_duckdb")

import pyarrow as pa  # noqa: E402
from dagster import AssetSelection, AutomationCondition, Definitions, asset, evaluate_automation_conditions, materialize  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager, KoruResource, build_observable_source, koru_sql_asset  # noqa: E402

# Dagster 1.13 reads its own deprecated OpDefinition.version for observable source assets
pytestmark = pytest.mark.filterwarnings("ignore:Property `OpDefinition.version` is deprecated:DeprecationWarning")
FLIGHTS: list[tuple[str, str, str]] = []


@asset(metadata={"koru/key": "id"})
def flights() -> pa.Table:
    ids, origins, dests = zip(*FLIGHTS, strict=True)
    return pa.table({"id": list(ids), "origin": list(origins), "dest": list(dests)})


route_stats = koru_sql_asset(
    "route_stats",
    "SELECT origin, dest, count(*) AS n FROM flights GROUP BY ALL",
    key=["origin", "dest"],
    deps=[flights],
    automation_condition=AutomationCondition.eager(),
)


def resources(store_path: str) -> dict:
    return {"io_manager": KoruIOManager(store=store_path), "koru": KoruResource(store=store_path)}


def at(store_path: str, version: int) -> list[tuple]:
    with koru.open(store_path) as store:
        con = koru_duckdb.connect(store)
        return con.sql(f"SELECT origin, dest, n FROM route_stats AT (VERSION => {version}) ORDER BY ALL").fetchall()


def meta(result, node: str) -> dict:
    [m] = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in m.metadata.items()}


def test_the_view_refreshes_when_its_input_changes_and_its_history_time_travels(store_path, instance):
    defs = Definitions(assets=[flights, route_stats], resources=resources(store_path))
    selection = AssetSelection.assets(route_stats)
    evaluation = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
    assert evaluation.total_requested == 0  # its input is missing
    FLIGHTS[:] = [("1", "JFK", "LAX"), ("2", "JFK", "LAX"), ("3", "EWR", "SFO")]
    assert materialize([flights], instance=instance, resources=resources(store_path)).success  # commit 1
    evaluation = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                cursor=evaluation.cursor)
    assert evaluation.total_requested == 1
    first = materialize([flights, route_stats], selection=[route_stats], instance=instance,
                        resources=resources(store_path))  # commit 2
    m = meta(first, "route_stats")
    assert (m["koru/commit"], m["koru/rows_written"], m["koru/inputs"]) == (2, 2, {"flights": 1})
    evaluation = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                cursor=evaluation.cursor)
    assert evaluation.total_requested == 0  # nothing changed since

    FLIGHTS[:] = [("1", "JFK", "LAX"), ("4", "LGA", "ORD")]  # flights 2 and 3 gone, 4 new
    assert materialize([flights], instance=instance, resources=resources(store_path)).success  # commit 3
    evaluation = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                cursor=evaluation.cursor)
    assert evaluation.total_requested == 1
    second = materialize([flights, route_stats], selection=[route_stats], instance=instance,
                         resources=resources(store_path))  # commit 4
    m = meta(second, "route_stats")
    assert (m["koru/commit"], m["koru/rows_deleted"]) == (4, 1)  # EWR→SFO no longer returned
    assert m["koru/input_ranges"] == {"flights": [1, 3]}

    assert at(store_path, 2) == [("EWR", "SFO", 1), ("JFK", "LAX", 2)]
    assert at(store_path, 4) == [("JFK", "LAX", 1), ("LGA", "ORD", 1)]
    with koru.open(store_path) as store:
        [c] = store.commits(metadata={"dagster/asset": "route_stats", "dagster/run_id": second.run_id})
        assert json.loads(c.metadata["koru/inputs"]) == {"flights": 3}  # namespace-level lineage


def test_the_view_reads_its_input_pinned_not_writes_made_outside_dagster(store_path):
    """With no instance (a throwaway one per `materialize`): the pin comes from the store."""
    FLIGHTS[:] = [("1", "JFK", "LAX")]
    assert materialize([flights], resources=resources(store_path)).success  # commit 1
    with koru.open(store_path) as store:
        store.upsert("flights", [{"id": "9", "origin": "BOS", "dest": "MIA"}], key="id")  # commit 2
    result = materialize([flights, route_stats], selection=[route_stats], resources=resources(store_path))
    assert meta(result, "route_stats")["koru/inputs"] == {"flights": 1}
    assert at(store_path, 3) == [("JFK", "LAX", 1)]
    again = materialize([flights, route_stats], selection=[route_stats], resources=resources(store_path))
    assert meta(again, "route_stats")["koru/rows_written"] == 0  # unchanged inputs: no commit
    with koru.open(store_path) as store:
        assert len(store.commits()) == 3


def test_a_view_over_a_source_written_outside_dagster_reads_its_latest_and_per_row_parents(store_path):
    with koru.open(store_path) as store:
        store.upsert("raw", [{"id": "a", "g": "x", "v": 1}, {"id": "b", "g": "x", "v": 2}], key="id")
        wanted = sorted(store.as_of("raw")["_write_id"].to_pylist())
    by_group = koru_sql_asset(
        "by_group",
        "WITH t AS (SELECT * FROM raw) SELECT g, sum(v) AS total, list(_write_id) AS _parents FROM t GROUP BY g",
        key="g",
    )
    assert [k.to_user_string() for k in by_group.dependency_keys] == ["raw"]  # found in the query
    source = build_observable_source("raw")
    result = materialize([source, by_group], selection=[by_group], resources=resources(store_path))
    assert meta(result, "by_group")["koru/inputs"] == {"raw": 1}
    with koru.open(store_path) as store:
        assert store.get("by_group", "x")["total"] == 3
        parents = {n["_write_id"] for n in store.lineage("by_group", "x").nodes.to_pylist() if n["namespace"] == "raw"}
        assert sorted(parents) == wanted  # per-row lineage where the query selects it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad name", "SELECT 1"), "must match"),
        (("v", "  ;"), "the query is empty"),
        (("v", "SELECT 1 AS k"), "reads no table"),
    ],
)
def test_bad_definitions_are_refused(args, message):
    with pytest.raises(koru.InvalidInputError, match=message):
        koru_sql_asset(*args, key="k")


def test_a_view_over_partitions_pinned_to_different_commits(store_path):
    """Day 1 changed by hand after its materialization: the view reads day 1 as materialized."""
    from dagster import DailyPartitionsDefinition

    days = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-03")

    @asset(partitions_def=days, metadata={"koru/key": "id"})
    def legs(context) -> pa.Table:
        return pa.table({"id": ["a", "b"], "km": [10, 20] if context.partition_key == "2024-05-01" else [1, 2]})

    total = koru_sql_asset("total_km", "SELECT 'all' AS k, sum(km) AS km, count(*) AS n FROM legs", key="k",
                           deps=[legs])
    assert materialize([legs], partition_key="2024-05-01", resources=resources(store_path)).success  # commit 1
    with koru.open(store_path) as store:
        store.put("legs", "2024-05-01|a", {"partition": "2024-05-01", "id": "a", "km": 999})  # commit 2
    assert materialize([legs], partition_key="2024-05-02", resources=resources(store_path)).success  # commit 3
    result = materialize([legs, total], selection=[total], resources=resources(store_path))
    assert meta(result, "total_km")["koru/inputs"] == {"legs": {"2024-05-01": 1, "2024-05-02": 3}}
    with koru.open(store_path) as store:
        assert store.get("total_km", "all") == {"k": "all", "km": 33, "n": 4}
