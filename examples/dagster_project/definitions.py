"""Definitions: the flights assets on KoruIOManager, plus koru's maintenance jobs.

The store folder is ``$KORU_STORE`` (default ``koru-data``). Check and serve with::

    dagster definitions validate -f examples/dagster_project/definitions.py
    dagster dev -f examples/dagster_project/definitions.py
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # `dagster -f` runs this file as a script

from dagster import Definitions  # noqa: E402

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
)

STORE = os.environ.get("KORU_STORE", "koru-data")
ASSETS = [raw_flights, aircraft_positions, route_statistics]
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
    asset_checks=[*build_integrity_checks(ASSETS), *build_retention_checks(ASSETS, POLICIES)],
    jobs=[consolidation, distillation, vacuum],
    schedules=build_maintenance_schedules(
        consolidation_job=consolidation, distillation_job=distillation, vacuum_job=vacuum
    ),
    resources={"io_manager": KoruIOManager(store=STORE), "koru": KoruResource(store=STORE)},
)
