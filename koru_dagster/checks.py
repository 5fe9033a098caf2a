"""Asset checks over a koru store: integrity (``verify``) and retention compliance.

Both use the :class:`~koru_dagster.KoruResource` under resource key ``"koru"``.
"""

# no `from __future__ import annotations`: Dagster reads check annotations at runtime
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from koru_core import VerifyReport
from koru_core.lifecycle.policies import PolicyContext
from koru_dagster._assets import asset_keys
from koru_dagster._context import namespace_for
from koru_dagster.resource import KoruResource

__all__ = ["build_integrity_checks", "build_retention_checks", "over_retained", "verify_metadata"]


def build_integrity_checks(assets: Sequence[Any]) -> list[AssetChecksDefinition]:
    """Build one ``koru_integrity`` asset check per asset: :meth:`koru_core.Store.verify`.

    The check fails (severity ERROR) when the store's verify report lists
    problems; its metadata holds the counts checked and the first 20 problems.

    Args:
        assets: Asset definitions, specs or keys stored with :class:`KoruIOManager`.

    Example:
        >>> [c.name for c in build_integrity_checks([AssetKey("users")])[0].check_specs]
        ['koru_integrity']
    """
    return [_integrity_check(key) for key in asset_keys(assets)]


def build_retention_checks(assets: Sequence[Any], policies: Any) -> list[AssetChecksDefinition]:
    """Build one ``koru_retention`` asset check per asset: no version outlives the policies.

    The check counts the versions still stored that ``policies`` would not keep
    (see :func:`over_retained`) and passes when there are none; otherwise it
    warns (severity WARN) until the next distillation run drops them.

    Args:
        assets: Asset definitions, specs or keys stored with :class:`KoruIOManager`.
        policies: As for :meth:`koru_core.Store.distill`: a policy, a list, or a
            dict namespace → policy or list (other namespaces keep everything).

    Example:
        >>> from koru_core import KeepLast
        >>> [checks] = build_retention_checks([AssetKey("users")], KeepLast(3))
        >>> [c.name for c in checks.check_specs]
        ['koru_retention']
    """
    return [_retention_check(key, policies) for key in asset_keys(assets)]


def over_retained(versions: pa.Table, policies: Sequence[Any], *, now: datetime) -> pa.Table:
    """Return the versions no policy keeps and distillation would drop.

    Args:
        versions: :meth:`koru_core.Store.versions` of one namespace.
        policies: The namespace's policies (a version is kept if any keeps it).
        now: The reference time (tz-aware).

    Returns:
        The rows of ``versions`` (sorted by ``_key``, ``_valid_from``, ``_commit``)
        that are not kept: not current (the largest (``_valid_from``, ``_commit``)
        of their key with ``_valid_from`` ≤ now), not valid in the future, and
        kept by no policy. Versions pinned by tags are not known here and count.
    """
    rows = versions.sort_by(
        [("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")]
    )
    now_ns = int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1_000
    valid = rows["_valid_from"].cast(pa.int64()).to_numpy()
    keys = rows["_key"].to_numpy(zero_copy_only=False)
    keep = valid > now_ns
    live = np.flatnonzero(valid <= now_ns)  # sorted: the last live row of each key is current
    if len(live):
        last = np.append(keys[live][1:] != keys[live][:-1], True)
        keep[live[last]] = True
    context = PolicyContext(now=now_ns, tags={})
    for policy in policies:
        keep |= np.asarray(policy.keep(rows, context), dtype=bool)
    return rows.filter(pa.array(~keep))


def verify_metadata(report: VerifyReport, key: AssetKey | None = None) -> dict[str, Any]:
    """The metadata of a verify run: counts checked and (up to 20) problems."""
    return {
        **({"koru/namespace": namespace_for(key)} if key is not None else {}),
        "koru/commits_checked": report.commits_checked,
        "koru/files_checked": report.files_checked,
        "koru/versions_checked": report.versions_checked,
        "koru/problems": MetadataValue.json(list(report.problems[:20])),
    }


def _integrity_check(key: AssetKey) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name="koru_integrity",
        description="koru: verify checksums and catalog invariants.",
    )
    def integrity(koru: KoruResource) -> AssetCheckResult:
        with koru.open() as store:
            report = store.verify()
        return AssetCheckResult(
            passed=report.is_ok,
            severity=AssetCheckSeverity.ERROR,
            metadata=verify_metadata(report, key),
        )

    return integrity


def _retention_check(key: AssetKey, policies: Any) -> AssetChecksDefinition:
    namespace = namespace_for(key)
    given = policies.get(namespace) if isinstance(policies, dict) else policies  # None: keep all
    chosen = list(given) if isinstance(given, (list, tuple)) else [] if given is None else [given]

    @asset_check(
        asset=key,
        name="koru_retention",
        description="koru: no version outlives the retention policies.",
    )
    def retention(koru: KoruResource) -> AssetCheckResult:
        with koru.open() as store:
            versions = (
                store.versions(namespace) if chosen and namespace in store.namespaces() else None
            )
        extra = (
            0
            if versions is None
            else over_retained(versions, chosen, now=datetime.now(timezone.utc)).num_rows
        )
        return AssetCheckResult(
            passed=extra == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "koru/namespace": namespace,
                "koru/versions": 0 if versions is None else versions.num_rows,
                "koru/over_retained": extra,
                "koru/policies": MetadataValue.json([repr(p) for p in chosen]),
            },
        )

    return retention
