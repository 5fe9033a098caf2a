"""Definitions: the flights assets on KoruIOManager, a SQL view, and koru's maintenance jobs.

The store folder is ``$KORU_STORE`` (default ``koru-data``). Check, run and serve with::

    dagster definitions validate -f examples/dagster_project/definitions.py
    dagster asset materialize -f examples/dagster_project/definitions.py --select raw_flights --partition 2013-01-01
    dagster asset materialize -f examples/dagster_project/definitions.py --select aircraft_positions,route_statistics
    dagster dev -f examples/dagster_project/definitions.py

``raw_flights`` is partitioned by day: materialize one partition (``--partition``)
or a range at a time; the downstream assets are not partitioned and read every
day, each pinned to the commit its materialization wrote. ``carrier_delays`` is a
SQL view over ``raw_flights`` that refreshes itself (``eager``) when the daemon
runs (``dagster dev``) and a day is materialized. Steps run in one process: one
koru store takes one writer at a time, so parallel steps would only queue.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # `dagster -f` runs this file as a script

from dagster import AutomationCondition, Definitions, in_process_executor  # noqa: E402

from dagster_project.assets import aircraft_positions, raw_flights, route_statistics  # noqa: E402
from koru_core import KeepFor, KeepLast  # noqa: E402
from koru_dagster import (  # noqa: E402
    KoruIOManager,
    KoruResource,
    build_consolidation_job,
    build_distillation_job,
    build_integrity_checks,
    build_maintenance_schedules,
    build_retention_checks,
    build_vacuum_job,
    koru_sql_asset,
)

STORE = os.environ.get("KORU_STORE", "koru-data")
carrier_delays = koru_sql_asset(
    "carrier_delays",
    "SELECT carrier, count(*) AS flights, round(avg(dep_delay), 1) AS avg_dep_delay FROM raw_flights GROUP BY ALL",
    key="carrier",
    deps=[raw_flights],
    automation_condition=AutomationCondition.eager(),
    group_name="flights",
)
ASSETS = [raw_flights, aircraft_positions, route_statistics, carrier_delays]
POLICIES = {
    "aircraft_positions": [
        KeepLast(10),
        KeepFor(timedelta(days=30)),
    ],  # positions churn: keep a month
    "route_statistics": KeepLast(3),
}  # raw_flights: no policy, every version is kept
"""Retention policies per namespace (see koru_core.lifecycle.policies)."""

consolidation = build_consolidation_job()
distillation = build_distillation_job(POLICIES)
vacuum = build_vacuum_job(retain=timedelta(days=1))

defs = Definitions(
    assets=ASSETS,
    executor=in_process_executor,
    asset_checks=[*build_integrity_checks(ASSETS), *build_retention_checks(ASSETS, POLICIES)],
    jobs=[consolidation, distillation, vacuum],
    schedules=build_maintenance_schedules(
        consolidation_job=consolidation, distillation_job=distillation, vacuum_job=vacuum
    ),
    resources={"io_manager": KoruIOManager(store=STORE), "koru": KoruResource(store=STORE)},
)
