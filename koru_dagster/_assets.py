"""Asset keys from whatever a user hands a ``build_*`` function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import AssetKey

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["asset_keys"]


def asset_keys(assets: Sequence[Any]) -> list[AssetKey]:
    """The keys of asset definitions, specs, source assets, keys or strings, in order.

    Example:
        >>> asset_keys(["users", AssetKey(["nyc", "flights"])])
        [AssetKey(['users']), AssetKey(['nyc', 'flights'])]
    """
    keys: list[AssetKey] = []
    for item in assets:
        if isinstance(item, AssetKey):
            keys.append(item)
        elif hasattr(item, "keys") and not isinstance(item, (str, dict)):
            keys.extend(item.keys)  # an AssetsDefinition
        elif hasattr(item, "key"):
            keys.append(item.key)  # an AssetSpec or SourceAsset
        else:
            keys.append(AssetKey.from_coercible(item))
    return keys
