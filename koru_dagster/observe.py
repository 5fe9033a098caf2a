"""Reacting to commits made outside Dagster: observable source assets and a change sensor.

A namespace written by a loader script, ``koru import`` or another team's writer
is, in Dagster, a source asset whose **data version is the namespace's head**:
the last commit that wrote it (``DataVersion("12")``). Two ways to tell Dagster
about a new head; both let downstream assets with ``AutomationCondition.eager()``
re-materialize (the automation daemon requests them), and both read the store's
commit log, so they see writes from any process:

* :func:`build_observable_source`: the source asset observes itself (on a
  schedule, with ``auto_observe_interval_minutes``, or when its observation job runs);
* :func:`build_change_sensor`: a sensor that follows the commit log with
  :meth:`koru_core.Store.watch` (its cursor is the last commit it has seen) and,
  on each tick with new commits, reports an observation per changed namespace
  (the new data version, and ``koru/commit_range``: the previous and the new
  head, ``[since, until]`` for ``store.changes(ns, since=…, until=…)``) and, when
  given a ``target``, requests a run of it whose tags carry the commit range
  (``koru/since``, ``koru/until``, ``koru/namespaces``).

Commits written by a Dagster materialization of the watched asset itself are
known to Dagster already and are left out.
"""

# no `from __future__ import annotations`: Dagster reads op and sensor annotations at runtime

import warnings
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    BetaWarning,
    DataVersion,
    DefaultSensorStatus,
    ObserveResult,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    SourceAsset,
    observable_source_asset,
    sensor,
)

from koru_core.watch import head
from koru_dagster import metadata as md
from koru_dagster._assets import asset_keys
from koru_dagster._context import namespace_for
from koru_dagster.resource import KoruResource

__all__ = ["build_change_sensor", "build_observable_source"]

_DATA_VERSION_TAG = "dagster/data_version"
"""The tag that carries an observation's data version (as ``DataVersion`` results set it)."""


def build_observable_source(
    asset_key: str | list[str] | AssetKey,
    *,
    namespace: str | None = None,
    auto_observe_interval_minutes: float | None = None,
    group_name: str | None = None,
) -> SourceAsset:
    """Build an observable source asset whose data version is the namespace's head commit.

    Each observation reports ``DataVersion(str(commit))`` for the latest commit
    that wrote the namespace (``"0"`` if none did), with metadata ``koru/commit``
    and ``koru/namespace``, so downstream assets become stale (and eager ones
    re-materialize) exactly when a writer outside Dagster changed it. Assets
    reading it through :class:`KoruIOManager` then read the latest state.

    Args:
        asset_key: The source asset's key.
        namespace: The namespace observed; default :func:`namespace_for` the key.
        auto_observe_interval_minutes: Let the daemon observe it this often (None: only on demand).
        group_name: The asset group shown in the UI.

    Returns:
        A source asset using the :class:`KoruResource` under resource key ``"koru"``.

    Example:
        >>> build_observable_source("users").key
        AssetKey(['users'])
    """
    key = AssetKey.from_coercible(asset_key)
    observed = namespace or namespace_for(key)

    def source(koru: KoruResource) -> ObserveResult:
        with koru.open() as store:
            commit = head(store, observed)
        return ObserveResult(
            data_version=DataVersion(str(commit)),
            metadata={md.COMMIT: commit, md.NAMESPACE: observed},
        )

    with warnings.catch_warnings():  # observable_source_asset is beta in Dagster 1.13; we chose it
        warnings.simplefilter("ignore", BetaWarning)
        decorator = observable_source_asset(
            key=key,
            description=f"koru namespace {observed!r}, versioned by commit.",
            auto_observe_interval_minutes=auto_observe_interval_minutes,
            group_name=group_name,
        )
        return decorator(source)


def build_change_sensor(
    assets: Sequence[Any],
    *,
    target: Any = None,
    name: str = "koru_changes",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """Build a sensor that reports new commits to the namespaces of ``assets``.

    On each tick it reads the commits made since its cursor (the last commit it
    saw; none on the first tick, so the first tick reports the current heads).
    For each asset whose namespace changed it reports an ``AssetObservation``
    with data version = the namespace's head commit and metadata
    ``koru/commit``, ``koru/namespace`` and ``koru/commit_range`` (``[previous
    head, head]``, for ``store.changes(ns, since=…, until=…)``). With a ``target`` it
    also requests one run of it per tick with changes (run key
    ``{name}:{until}``), tagged ``koru/since`` (the sensor's previous cursor),
    ``koru/until`` (the store's last commit at this tick) and ``koru/namespaces``
    (the changed ones): every change the run reacts to is in ``(since, until]``.

    Args:
        assets: The watched source assets (definitions, specs or keys); each is
            the namespace :func:`namespace_for` its key.
        target: What to run on a change (assets, a selection or a job), or None
            to only report observations (downstream ``eager()`` assets then run).
        name: The sensor's name.
        minimum_interval_seconds: Seconds between two ticks.
        default_status: Whether the sensor runs as soon as it is loaded.

    Returns:
        A sensor using the :class:`KoruResource` under resource key ``"koru"``.

    Example:
        >>> build_change_sensor(["raw_orders"]).name
        'koru_changes'
    """
    watched = {namespace_for(k): k for k in asset_keys(assets)}

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        target=target,
        description=f"koru: new commits to {sorted(watched)}",
    )
    def change_sensor(context: SensorEvaluationContext, koru: KoruResource) -> SensorResult:
        since = int(context.cursor) if context.cursor else 0
        with koru.open() as store:
            until = head(store)
            events = [e for e in store.watch(list(watched), since=since, timeout=0) if e.commit <= until]
            changed = {
                ns: _range(store, ns, since)
                for ns, key in watched.items()
                if any(ns in e.namespaces and e.metadata.get(md.COMMIT_ASSET) != key.to_user_string()
                       for e in events)
            }
        if not changed:
            return SensorResult(skip_reason=SkipReason(f"no new commit to {sorted(watched)} after {since}"),
                                cursor=str(until))
        observations = [
            AssetObservation(
                asset_key=watched[ns],
                tags={_DATA_VERSION_TAG: str(commit)},
                metadata={md.COMMIT: commit, md.NAMESPACE: ns, "koru/commit_range": [before, commit]},
            )
            for ns, (before, commit) in sorted(changed.items())
        ]
        tags = {"koru/since": str(since), "koru/until": str(until), "koru/namespaces": ",".join(sorted(changed))}
        runs = [RunRequest(run_key=f"{name}:{until}", tags=tags)] if target is not None else None
        return SensorResult(asset_events=observations, run_requests=runs, cursor=str(until))

    return change_sensor


def _range(store: Any, namespace: str, since: int) -> tuple[int, int]:
    """(the namespace's head at commit ``since``, its head now): its previous and new data versions."""
    commits = [c.commit for c in store.commits(namespace=namespace)]
    return max((c for c in commits if c <= since), default=0), commits[-1]
