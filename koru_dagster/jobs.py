"""Store maintenance as Dagster jobs (asset checks are in :mod:`koru_dagster.checks`).

Each job is one op using the :class:`~koru_dagster.KoruResource` under resource
key ``"koru"``; its output metadata reports what the action changed (from
:class:`koru_core.MaintenanceResult`): ``koru/action``, ``koru/files_before`` /
``_after``, ``koru/bytes_before`` / ``_after`` (bytes), ``koru/versions_before`` /
``_after`` and ``koru/namespaces``.

Example:
    >>> import tempfile
    >>> from koru_dagster import KoruResource
    >>> job = build_consolidation_job()
    >>> job.execute_in_process(resources={"koru": KoruResource(store=tempfile.mkdtemp())}).success
    True
"""

# no `from __future__ import annotations`: Dagster reads op annotations at runtime

from datetime import timedelta
from typing import Any

from dagster import (
    Config,
    JobDefinition,
    MetadataValue,
    Output,
    job,
    op,
)
from pydantic import Field

from koru_core import MaintenanceResult
from koru_dagster.resource import KoruResource

__all__ = [
    "RESOURCE_KEY",
    "build_consolidation_job",
    "build_distillation_job",
    "build_vacuum_job",
    "maintenance_metadata",
]

RESOURCE_KEY = "koru"
"""The resource key the maintenance ops and checks use for their :class:`KoruResource`."""


class NamespaceConfig(Config):  # type: ignore[misc]
    """Run config of the consolidation and distillation ops."""

    namespace: str | None = Field(
        default=None, description="Act on this namespace only; default: every namespace."
    )


class VacuumConfig(Config):  # type: ignore[misc]
    """Run config of the vacuum op."""

    retain_seconds: float | None = Field(
        default=None,
        description="Keep replaced files younger than this many seconds (default: job's retain).",
    )


def maintenance_metadata(result: MaintenanceResult) -> dict[str, Any]:
    """The output metadata of one maintenance action (see the module docstring)."""
    return {
        "koru/action": result.action,
        "koru/files_before": result.files_before,
        "koru/files_after": result.files_after,
        "koru/bytes_before": result.bytes_before,
        "koru/bytes_after": result.bytes_after,
        "koru/versions_before": result.versions_before,
        "koru/versions_after": result.versions_after,
        "koru/namespaces": MetadataValue.json(list(result.namespaces)),
    }


def build_consolidation_job(*, name: str = "koru_consolidation") -> JobDefinition:
    """Build a job that merges warm files into cold ones (:meth:`koru_core.Store.consolidate`).

    Args:
        name: The job's name.

    Returns:
        A job with one op, ``{name}_op``, configurable by ``namespace``.

    Example:
        >>> build_consolidation_job().name
        'koru_consolidation'
    """

    @op(name=f"{name}_op", description="Consolidate warm files into cold ones.")
    def consolidate(config: NamespaceConfig, koru: KoruResource) -> Output[None]:
        with koru.open() as store:
            result = store.consolidate(namespace=config.namespace)
        return Output(None, metadata=maintenance_metadata(result))

    @job(name=name, description="koru: consolidate warm files into cold ones.")
    def consolidation() -> None:
        consolidate()

    return consolidation


def build_distillation_job(policies: Any, *, name: str = "koru_distillation") -> JobDefinition:
    """Build a job that applies retention policies (:meth:`koru_core.Store.distill`).

    Args:
        policies: What :meth:`koru_core.Store.distill` takes, from
            :mod:`koru_core.lifecycle.policies` (``KeepLast(5)``, ``KeepFor(...)`` …).
        name: The job's name.

    Returns:
        A job with one op, ``{name}_op``, configurable by ``namespace``.

    Example:
        >>> from koru_core import KeepAll
        >>> build_distillation_job(KeepAll()).name
        'koru_distillation'
    """

    @op(name=f"{name}_op", description="Distill: drop versions no retention policy keeps.")
    def distill(config: NamespaceConfig, koru: KoruResource) -> Output[None]:
        with koru.open() as store:
            result = store.distill(policies, namespace=config.namespace)
        return Output(None, metadata=maintenance_metadata(result))

    @job(name=name, description="koru: apply retention policies (distillation).")
    def distillation() -> None:
        distill()

    return distillation


def build_vacuum_job(
    *, retain: timedelta = timedelta(days=7), name: str = "koru_vacuum"
) -> JobDefinition:
    """Build a job that deletes files no reader needs any more (:meth:`koru_core.Store.vacuum`).

    Args:
        retain: Keep replaced files younger than this (readers may still use them).
        name: The job's name.

    Example:
        >>> build_vacuum_job(retain=timedelta(hours=1)).name
        'koru_vacuum'
    """

    @op(name=f"{name}_op", description="Vacuum: delete replaced files past the retention window.")
    def vacuum(config: VacuumConfig, koru: KoruResource) -> Output[None]:
        keep = retain if config.retain_seconds is None else timedelta(seconds=config.retain_seconds)
        with koru.open() as store:
            result = store.vacuum(retain=keep)
        return Output(None, metadata=maintenance_metadata(result))

    @job(name=name, description="koru: delete files replaced by consolidation or distillation.")
    def vacuuming() -> None:
        vacuum()

    return vacuuming
