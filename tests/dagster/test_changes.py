"""Reacting to commits made outside Dagster (issue 14: nothing let a pipeline react to
a loader script, `koru import` or another team's writer).

A `koru import` in a subprocess changes a namespace; a sensor tick (or an observation
of the source asset) tells Dagster, and the automation daemon's evaluation
(``evaluate_automation_conditions``) requests the downstream ``eager()`` asset.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dagster")

import pyarrow as pa  # noqa: E402
from dagster import (  # noqa: E402
    AssetSelection,
    AutomationCondition,
    DagsterInstance,
    Definitions,
    asset,
    build_sensor_context,
    define_asset_job,
    evaluate_automation_conditions,
    materialize,
)

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager, KoruResource, build_change_sensor, build_observable_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Dagster 1.13 reads its own deprecated OpDefinition.version for observable source assets
pytestmark = pytest.mark.filterwarnings("ignore:Property `OpDefinition.version` is deprecated:DeprecationWarning")
SOURCE = build_observable_source("raw_orders")


@asset(metadata={"koru/key": "customer"}, automation_condition=AutomationCondition.eager())
def order_totals(raw_orders: pa.Table) -> pa.Table:
    rows: dict[str, int] = {}
    for r in raw_orders.to_pylist():
        rows[r["customer"]] = rows.get(r["customer"], 0) + r["amount"]
    return pa.table({"customer": list(rows), "total": list(rows.values())})


def koru_import(store_path: str, csv_text: str, tmp_path: Path) -> None:
    """Write to namespace raw_orders with the real `koru import`, in another process."""
    data = tmp_path / f"orders-{len(list(tmp_path.glob('orders-*')))}.csv"
    data.write_text(csv_text)
    done = subprocess.run(
        [sys.executable, "-m", "koru_core.cli", "--store", store_path, "import", "raw_orders", str(data),
         "--key", "id"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr


def resources(store_path: str) -> dict:
    return {"io_manager": KoruIOManager(store=store_path), "koru": KoruResource(store=store_path)}


def tick(sensor, instance: DagsterInstance, cursor: str | None, store_path: str):
    """One sensor tick, its observations recorded on the instance as the daemon does."""
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources(store_path)) as context:
        result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def evaluate(defs: Definitions, instance: DagsterInstance, cursor):
    result = evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=AssetSelection.assets(order_totals), cursor=cursor
    )
    return result, [r.key for r in result.results if r.true_subset.size]


def totals(store_path: str) -> dict[str, int]:
    with koru.open(store_path) as store:
        return {r["customer"]: r["total"] for r in store.as_of("order_totals").to_pylist()}


def test_a_koru_import_triggers_the_eager_downstream_through_the_change_sensor(store_path, instance, tmp_path):
    koru_import(store_path, "id,customer,amount\no1,ann,10\no2,bob,5\n", tmp_path)  # commit 1
    sensor = build_change_sensor([SOURCE])
    defs = Definitions(assets=[SOURCE, order_totals], sensors=[sensor], resources=resources(store_path))
    evaluation, requested = evaluate(defs, instance, None)
    assert requested == []  # the source was never observed: nothing to react to yet

    first = tick(sensor, instance, None, store_path)
    [seen] = first.asset_events
    assert (seen.tags["dagster/data_version"], first.cursor) == ("1", "1")
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == [order_totals.key]
    assert materialize([SOURCE, order_totals], selection=[order_totals], instance=instance,
                       resources=resources(store_path)).success
    assert totals(store_path) == {"ann": 10, "bob": 5}

    quiet = tick(sensor, instance, first.cursor, store_path)
    assert quiet.asset_events == [] and quiet.cursor == "2"  # order_totals wrote commit 2: not watched
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == []  # nothing changed: no run

    koru_import(store_path, "id,customer,amount\no3,ann,7\n", tmp_path)  # commit 3 (commit 2: order_totals)
    changed = tick(sensor, instance, quiet.cursor, store_path)
    [seen] = changed.asset_events
    assert seen.tags["dagster/data_version"] == "3"
    assert seen.metadata["koru/commit_range"].value == [1, 3]
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == [order_totals.key]
    result = materialize([SOURCE, order_totals], selection=[order_totals], instance=instance,
                         resources=resources(store_path))
    assert totals(store_path) == {"ann": 17, "bob": 5}
    [m] = result.asset_materializations_for_node("order_totals")
    assert m.metadata["koru/inputs"].value == {"raw_orders": 3}
    assert m.metadata["koru/input_ranges"].value == {"raw_orders": [1, 3]}  # the commits it reacts to


def test_a_change_sensor_with_a_target_requests_a_run_tagged_with_the_commit_range(
    store_path, instance, tmp_path
):
    koru_import(store_path, "id,customer,amount\no1,ann,10\n", tmp_path)
    with koru.open(store_path) as store:
        store.put("unrelated", "x", {"v": 1})  # commit 2, not watched
    sensor = build_change_sensor([SOURCE], target=[order_totals], name="orders_changed")
    first = tick(sensor, instance, None, store_path)
    [request] = first.run_requests
    assert request.run_key == "orders_changed:2"
    assert request.tags == {"koru/since": "0", "koru/until": "2", "koru/namespaces": "raw_orders"}
    run = materialize([SOURCE, order_totals], selection=[order_totals], instance=instance,
                      resources=resources(store_path), tags=request.tags)
    assert run.dagster_run.tags["koru/until"] == "2"
    assert totals(store_path) == {"ann": 10}

    with koru.open(store_path) as store:
        store.put("unrelated", "x", {"v": 2})
    quiet = tick(sensor, instance, first.cursor, store_path)  # order_totals and unrelated moved, not raw_orders
    assert quiet.run_requests == [] and quiet.cursor == "4"
    koru_import(store_path, "id,customer,amount\no2,bob,5\n", tmp_path)  # commit 5
    again = tick(sensor, instance, quiet.cursor, store_path)
    assert [r.tags["koru/since"] for r in again.run_requests] == ["4"]
    assert [r.tags["koru/until"] for r in again.run_requests] == ["5"]


def test_an_observable_source_versioned_by_head_drives_eager_assets(store_path, instance, tmp_path):
    koru_import(store_path, "id,customer,amount\no1,ann,10\n", tmp_path)
    defs = Definitions(
        assets=[SOURCE, order_totals], jobs=[define_asset_job("observe_orders", [SOURCE.key])],
        resources=resources(store_path),
    )
    observe = defs.resolve_job_def("observe_orders")

    def observed_version() -> str:
        done = observe.execute_in_process(instance=instance)
        [observation] = done.asset_observations_for_node(SOURCE.node_def.name)
        return observation.tags["dagster/data_version"]

    evaluation, _ = evaluate(defs, instance, None)
    assert observed_version() == "1"
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == [order_totals.key]
    assert materialize([SOURCE, order_totals], selection=[order_totals], instance=instance,
                       resources=resources(store_path)).success
    assert observed_version() == "1"  # observed again, unchanged: no new run
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == []
    koru_import(store_path, "id,customer,amount\no1,ann,12\n", tmp_path)
    assert observed_version() == "3"
    evaluation, requested = evaluate(defs, instance, evaluation.cursor)
    assert requested == [order_totals.key]
