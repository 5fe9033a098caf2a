"""The one place koru_dagster goes beyond Dagster's public API (tested with Dagster 1.13).

An IO manager has no public way to set the data version of the materialization it
stores (Dagster issue 15584). Assets can (``Output(data_version=...)``,
``context.set_data_version``); the IO manager reaches the same per-step data
version cache through ``OutputContext.step_context``. If that attribute is gone in
a later Dagster, the data version is still reported as ``koru/data_version``
metadata and Dagster falls back to its own (code-version based) data version.
"""

from __future__ import annotations

from typing import Any

from dagster import DataVersion

__all__ = ["TESTED_DAGSTER", "set_data_version"]

TESTED_DAGSTER = "1.13"
"""The Dagster minor version this shim was written and tested against."""


def set_data_version(context: Any, value: str) -> bool:
    """Make ``value`` the data version of the asset ``context`` is storing.

    Returns:
        True when the data version was set; False when this Dagster offers no
        way (e.g. an ``OutputContext`` built by ``build_output_context``).
    """
    try:
        step = context.step_context
    except Exception:  # DagsterInvariantViolationError: no step (a direct handle_output call)
        return False
    setter = getattr(step, "set_data_version", None)
    if setter is None or step.has_data_version(context.asset_key):
        return False  # an asset that set its own data version wins
    setter(context.asset_key, DataVersion(value))
    return True
