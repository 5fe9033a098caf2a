"""Observable source assets: a namespace written outside Dagster, versioned by commit."""

# no `from __future__ import annotations`: Dagster reads op annotations at runtime

import warnings

from dagster import AssetKey, BetaWarning, DataVersion, SourceAsset, observable_source_asset

from koru_dagster._context import namespace_for
from koru_dagster.resource import KoruResource

__all__ = ["build_observable_source"]


def build_observable_source(
    asset_key: str | list[str] | AssetKey, *, namespace: str | None = None
) -> SourceAsset:
    """Build an observable source asset whose data version is the namespace's last commit.

    Each observation reads the commit log and reports ``DataVersion(str(commit))``
    for the latest commit that wrote the namespace (``"0"`` if none did), so
    downstream assets become stale exactly when a writer outside Dagster changed it.
    Assets reading it through :class:`KoruIOManager` then read the latest state.

    Args:
        asset_key: The source asset's key.
        namespace: The namespace observed; default :func:`namespace_for` the key.

    Returns:
        A source asset using the :class:`KoruResource` under resource key ``"koru"``.

    Example:
        >>> build_observable_source("users").key
        AssetKey(['users'])
    """
    key = AssetKey.from_coercible(asset_key)
    observed = namespace or namespace_for(key)

    def source(koru: KoruResource) -> DataVersion:
        with koru.open() as store:
            commits = [c.commit for c in store.commits() if observed in c.namespaces]
        return DataVersion(str(commits[-1] if commits else 0))

    with warnings.catch_warnings():  # observable_source_asset is beta in Dagster 1.13; we chose it
        warnings.simplefilter("ignore", BetaWarning)
        decorator = observable_source_asset(
            key=key, description=f"koru namespace {observed!r}, versioned by commit."
        )
        return decorator(source)
