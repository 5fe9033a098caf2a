"""KoruIOManager with real `materialize` runs on the example flights project (issue 6)."""

from __future__ import annotations

import pytest

pytest.importorskip("dagster")
pytest.importorskip("polars")

import pyarrow as pa  # noqa: E402
from dagster import DagsterInstance, materialize  # noqa: E402
from dagster_project.assets import DAYS, aircraft_positions, raw_flights, route_statistics  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager  # noqa: E402

DAY_KEYS = DAYS.get_partition_keys()


def run_project(store_path: str, instance: DagsterInstance) -> list:
    """Materialize every raw-flights partition, then the two downstream assets."""
    io = KoruIOManager(store=store_path)
    results = [
        materialize(
            [raw_flights], partition_key=day, resources={"io_manager": io}, instance=instance
        )
        for day in DAY_KEYS
    ]
    results.append(
        materialize(
            [raw_flights.to_source_asset(), aircraft_positions, route_statistics],
            resources={"io_manager": io},
            instance=instance,
        )
    )
    assert all(r.success for r in results)
    return results


def meta(result, node: str) -> dict:
    """The output metadata of the (single) materialization of ``node``, as plain values."""
    [m] = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in m.metadata.items()}


def data_version(result, node: str) -> str:
    [m] = result.asset_materializations_for_node(node)
    return m.tags["dagster/data_version"]


def test_materialize_twice_second_run_is_unchanged(store_path, instance):
    first = run_project(store_path, instance)
    with koru.open(store_path) as store:
        commits = len(store.commits())
        versions = {ns: store.versions(ns).num_rows for ns in store.namespaces()}
    assert commits == 5  # 3 partitions + positions + statistics
    second = run_project(store_path, instance)
    with koru.open(store_path) as store:
        assert len(store.commits()) == commits  # nothing changed → no new commit
        assert {ns: store.versions(ns).num_rows for ns in store.namespaces()} == versions
    for node in ("aircraft_positions", "route_statistics"):
        before, after = meta(first[-1], node), meta(second[-1], node)
        assert after["koru/rows_written"] == 0
        assert after["koru/rows_unchanged"] == before["koru/rows_written"] > 0
        assert after["koru/commit"] == before["koru/commit"]  # the namespace's last commit
        assert data_version(second[-1], node) == data_version(first[-1], node)
    assert data_version(second[0], "raw_flights") == data_version(first[0], "raw_flights")
    assert data_version(first[0], "raw_flights") != data_version(first[1], "raw_flights")


def test_output_metadata_matches_store(store_path, instance):
    results = run_project(store_path, instance)
    m = meta(results[-1], "aircraft_positions")
    with koru.open(store_path) as store:
        state = store.as_of("aircraft_positions")
        assert m["koru/commit"] == state["_commit"].to_pylist()[0] == 4
        assert m["koru/namespace"] == "aircraft_positions"
        assert m["koru/store"] == str(store.path)
        assert m["dagster/row_count"] == m["koru/rows_written"] == state.num_rows
        assert m["koru/rows_unchanged"] == m["koru/rows_deleted"] == 0
        columns = [c.name for c in m["dagster/column_schema"].columns]
        assert columns == [
            "tailnum",
            "carrier",
            "flight",
            "origin",
            "airport",
            "distance",
            "last_seen",
        ]
        [commit] = [c for c in store.commits() if c.commit == 4]
        assert (commit.actor, commit.run_id) == ("dagster", results[-1].run_id)
    day = meta(results[1], "raw_flights")
    assert day["koru/commit"] == 2 and day["dagster/row_count"] == day["koru/rows_written"] > 800


def test_partitions_set_valid_time_and_range_loads_every_day(store_path, instance):
    run_project(store_path, instance)
    with koru.open(store_path) as store:
        raw = store.as_of("raw_flights")
        starts = sorted({t.isoformat() for t in raw["_valid_from"].to_pylist()})
        assert starts == [f"{d}T00:00:00+00:00" for d in DAY_KEYS]
        positions = store.as_of("aircraft_positions")
    # the unpartitioned downstream loaded the whole range: every aircraft that flew on any day
    tails = {t for t in raw["tailnum"].to_pylist() if t is not None}
    assert set(positions["tailnum"].to_pylist()) == tails
    assert max(positions["last_seen"].to_pylist()).startswith(
        "2013-01-04"
    )  # day 3's late flights, UTC


def test_lineage_reaches_upstream_versions_and_run_ids(store_path, instance):
    results = run_project(store_path, instance)
    with koru.open(store_path) as store:
        stats = store.as_of("route_statistics")
        route = stats.filter(pa.compute.equal(stats["aircraft"], pa.compute.max(stats["aircraft"])))
        key = route["_key"][0].as_py()
        graph = store.lineage("route_statistics", key)
        nodes = graph.nodes.to_pylist()
        by_ns: dict[str, list[dict]] = {}
        for n in nodes:
            by_ns.setdefault(n["namespace"], []).append(n)
        assert set(by_ns) == {"route_statistics", "aircraft_positions", "raw_flights"}
        # per-row lineage: one position per aircraft counted, one raw flight per position
        assert len(by_ns["aircraft_positions"]) == route["aircraft"][0].as_py()
        assert len(by_ns["raw_flights"]) == len(by_ns["aircraft_positions"])
        positions = store.as_of("aircraft_positions")
        wanted = {
            r["_write_id"] for r in positions.to_pylist() if f"{r['origin']}|{r['airport']}" == key
        }
        assert {n["_write_id"] for n in by_ns["aircraft_positions"]} == wanted
        run_ids = {r.run_id for r in results}
        assert {n["_run_id"] for n in nodes} <= run_ids
        assert by_ns["route_statistics"][0]["_run_id"] == results[-1].run_id
        assert {n["_actor"] for n in nodes} == {"dagster"}
        # the raw flight named by a position is the flight it was computed from
        tail = by_ns["aircraft_positions"][0]["_key"]
        [raw_node] = [
            n
            for n in nodes
            if n["namespace"] == "raw_flights"
            and any(
                e["child"] == by_ns["aircraft_positions"][0]["_write_id"]
                and e["parent"] == n["_write_id"]
                for e in graph.edges.to_pylist()
            )
        ]
        raw = store.as_of("raw_flights")
        [row] = [r for r in raw.to_pylist() if r["_write_id"] == raw_node["_write_id"]]
        assert row["tailnum"] == tail
