"""koru for Dagster: an IO manager with record-level audit lineage, pinned inputs, SQL
views, reacting to commits made outside Dagster, and maintenance jobs.

Example:
    >>> import tempfile
    >>> from koru_dagster import KoruIOManager
    >>> KoruIOManager(store=tempfile.mkdtemp()).key is None
    True
"""

try:
    import dagster  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    msg = "koru_dagster needs Dagster: pip install 'koru-lake[dagster]'"
    raise ImportError(msg) from e

from koru_dagster._context import namespace_for
from koru_dagster.checks import build_integrity_checks, build_retention_checks
from koru_dagster.io_manager import KoruIOManager
from koru_dagster.jobs import build_consolidation_job, build_distillation_job, build_vacuum_job
from koru_dagster.observe import build_change_sensor, build_observable_source
from koru_dagster.resource import KoruResource
from koru_dagster.schedules import build_maintenance_schedules
from koru_dagster.sql import koru_sql_asset

__all__ = [
    "KoruIOManager",
    "KoruResource",
    "build_change_sensor",
    "build_consolidation_job",
    "build_distillation_job",
    "build_integrity_checks",
    "build_maintenance_schedules",
    "build_observable_source",
    "build_retention_checks",
    "build_vacuum_job",
    "koru_sql_asset",
    "namespace_for",
]
