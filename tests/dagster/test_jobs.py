"""Maintenance as Dagster: jobs, asset checks, schedules, observable sources (issue 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("dagster")
pytest.importorskip("polars")

import pyarrow as pa  # noqa: E402
from dagster import asset, materialize  # noqa: E402
from dagster_project.assets import DAYS, aircraft_positions, raw_flights, route_statistics  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_dagster import (  # noqa: E402
    KoruIOManager,
    KoruResource,
    build_consolidation_job,
    build_distillation_job,
    build_integrity_checks,
    build_maintenance_schedules,
    build_observable_source,
    build_retention_checks,
    build_vacuum_job,
)


def run_project(store_path: str, instance, checks=()) -> object:
    resources = {
        "io_manager": KoruIOManager(store=store_path),
        "koru": KoruResource(store=store_path),
    }
    for day in DAYS.get_partition_keys():
        assert materialize(
            [raw_flights], partition_key=day, resources=resources, instance=instance
        ).success
    result = materialize(
        [raw_flights.to_source_asset(), aircraft_positions, route_statistics, *checks],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    return result


def job_metadata(result, op_name: str) -> dict:
    [event] = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == op_name
    ]
    return {k: getattr(v, "value", v) for k, v in event.step_output_data.metadata.items()}


def states(store_path: str) -> dict:
    with koru.open(store_path) as store:
        return {ns: store.as_of(ns).sort_by("_key").to_pylist() for ns in store.namespaces()}


def test_consolidation_then_vacuum_jobs_report_and_keep_every_record(store_path, instance):
    assert run_project(store_path, instance).success
    before = states(store_path)
    resources = {"koru": KoruResource(store=store_path)}
    done = build_consolidation_job().execute_in_process(resources=resources, instance=instance)
    assert done.success
    m = job_metadata(done, "koru_consolidation_op")
    assert m["koru/action"] == "consolidate"
    assert m["koru/versions_before"] == m["koru/versions_after"] == 2699 + 1351 + 165
    assert m["koru/files_after"] >= 1 and m["koru/bytes_after"] > 0
    assert sorted(m["koru/namespaces"]) == ["aircraft_positions", "raw_flights", "route_statistics"]
    with koru.open(store_path) as store:
        tiers = {(r["namespace"], r["tier"]) for r in store.stats().to_pylist() if r["versions"]}
        assert ("raw_flights", "cold") in tiers
    assert states(store_path) == before

    vacuumed = build_vacuum_job().execute_in_process(
        resources=resources,
        instance=instance,
        run_config={"ops": {"koru_vacuum_op": {"config": {"retain_seconds": 0.0}}}},
    )
    v = job_metadata(vacuumed, "koru_vacuum_op")
    assert v["koru/action"] == "vacuum" and v["koru/files_after"] <= v["koru/files_before"]
    assert states(store_path) == before
    with koru.open(store_path) as store:
        assert store.verify().is_ok


def test_integrity_check_passes_then_fails_on_a_corrupted_file(store_path, instance):
    checks = build_integrity_checks([aircraft_positions])
    result = run_project(store_path, instance, checks)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.check_name == "koru_integrity"
    assert (
        evaluation.metadata["koru/commits_checked"].value >= 4
    )  # runs right after positions (commit 4)
    with koru.open(store_path) as store:
        store.flush()
    [victim] = list(Path(store_path).rglob("*route_statistics*/*.parquet")) or list(
        p for p in Path(store_path).rglob("*.parquet") if "route_statistics" in str(p)
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = run_project(store_path, instance, checks)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "route_statistics" in " ".join(evaluation.metadata["koru/problems"].value)


COUNTER = {"value": 0}


@asset(metadata={"koru/key": "id"})
def counter() -> pa.Table:
    return pa.table({"id": ["a", "b"], "value": [COUNTER["value"], -COUNTER["value"]]})


def test_distillation_job_drops_what_the_policy_does_not_keep(store_path, instance):
    from koru_core import KeepLast

    policies = {"counter": KeepLast(2)}
    resources = {
        "io_manager": KoruIOManager(store=store_path),
        "koru": KoruResource(store=store_path),
    }
    for value in range(1, 6):  # five versions of each key
        COUNTER["value"] = value
        assert materialize([counter], resources=resources, instance=instance).success
    before = states(store_path)
    checks = build_retention_checks([counter], policies)
    result = materialize([counter, *checks], resources=resources, instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    assert (
        not evaluation.passed and evaluation.metadata["koru/over_retained"].value == 6
    )  # 3 per key

    done = build_distillation_job(policies).execute_in_process(
        resources=resources, instance=instance
    )
    m = job_metadata(done, "koru_distillation_op")
    assert (m["koru/action"], m["koru/namespaces"]) == ("distill", ["counter"])
    assert (m["koru/versions_before"], m["koru/versions_after"]) == (10, 4)
    assert states(store_path) == before  # the as-of state is untouched
    with koru.open(store_path) as store:
        history = store.history("counter", "a")
        assert history["_pruned"].to_pylist() == [True, True, True, False, False]
        assert history["value"].to_pylist()[-2:] == [4, 5]
    result = materialize([counter, *checks], resources=resources, instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["koru/versions"].value == 4


def test_maintenance_schedules_name_and_time_their_jobs():
    from koru_core import KeepAll

    schedules = build_maintenance_schedules(
        consolidation_job=build_consolidation_job(),
        distillation_job=build_distillation_job(KeepAll()),
        vacuum_job=build_vacuum_job(),
        vacuum_cron="0 5 * * 1",
    )
    assert [(s.name, s.job_name, s.cron_schedule) for s in schedules] == [
        ("koru_consolidation_schedule", "koru_consolidation", "0 * * * *"),
        ("koru_distillation_schedule", "koru_distillation", "30 2 * * *"),
        ("koru_vacuum_schedule", "koru_vacuum", "0 5 * * 1"),
    ]


# Dagster 1.13 itself reads the deprecated OpDefinition.version when it wraps a source asset
@pytest.mark.filterwarnings(
    "ignore:Property `OpDefinition.version` is deprecated:DeprecationWarning"
)
def test_observable_source_reports_the_namespace_commit(store_path, instance):
    from dagster import Definitions, define_asset_job

    source = build_observable_source("users")
    resources = {"koru": KoruResource(store=store_path)}
    with koru.open(store_path) as store:
        store.put("other", "x", {"v": 1})
        store.put("users", "alice", {"age": 31})
        store.put("other", "x", {"v": 2})
    defs = Definitions(
        assets=[source], jobs=[define_asset_job("observe_users", [source.key])], resources=resources
    )
    result = defs.resolve_job_def("observe_users").execute_in_process(instance=instance)
    [observation] = result.asset_observations_for_node(source.node_def.name)
    assert observation.tags["dagster/data_version"] == "2"


def test_example_project_definitions_are_loadable():
    from dagster import Definitions
    from dagster_project.definitions import defs

    Definitions.validate_loadable(defs)
    for name in ("koru_consolidation", "koru_distillation", "koru_vacuum"):
        assert defs.resolve_job_def(name).name == name
        assert defs.resolve_schedule_def(f"{name}_schedule").job_name == name
    checks = {key.name for c in defs.asset_checks for key in c.check_keys}
    assert checks == {"koru_integrity", "koru_retention"}
