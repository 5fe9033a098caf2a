"""Schedules for koru's maintenance jobs."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, JobDefinition, ScheduleDefinition

__all__ = ["build_maintenance_schedules"]


def build_maintenance_schedules(
    *,
    consolidation_job: JobDefinition | None = None,
    distillation_job: JobDefinition | None = None,
    vacuum_job: JobDefinition | None = None,
    consolidation_cron: str = "0 * * * *",
    distillation_cron: str = "30 2 * * *",
    vacuum_cron: str = "30 3 * * 0",
    timezone: str = "UTC",
    is_running: bool = False,
) -> list[ScheduleDefinition]:
    """Build one schedule per maintenance job given.

    Defaults: consolidate hourly, distill daily at 02:30, vacuum weekly on Sunday
    at 03:30 (after distillation has replaced files). Jobs left as None get no schedule.

    Args:
        consolidation_job, distillation_job, vacuum_job: From the ``build_*_job`` functions.
        consolidation_cron, distillation_cron, vacuum_cron: Cron strings.
        timezone: IANA time zone the crons are read in.
        is_running: Start the schedules as soon as they are loaded (default: stopped).

    Returns:
        Schedules named ``{job name}_schedule``, in the order above.

    Example:
        >>> from koru_dagster import build_consolidation_job
        >>> schedules = build_maintenance_schedules(consolidation_job=build_consolidation_job())
        >>> [s.name for s in schedules]
        ['koru_consolidation_schedule']
    """
    status = DefaultScheduleStatus.RUNNING if is_running else DefaultScheduleStatus.STOPPED
    pairs = (
        (consolidation_job, consolidation_cron),
        (distillation_job, distillation_cron),
        (vacuum_job, vacuum_cron),
    )
    return [
        ScheduleDefinition(
            name=f"{job.name}_schedule",
            job=job,
            cron_schedule=cron,
            execution_timezone=timezone,
            default_status=status,
            description=f"koru maintenance: run {job.name} on {cron!r} ({timezone}).",
        )
        for job, cron in pairs
        if job is not None
    ]
