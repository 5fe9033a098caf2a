"""The read path: one plan (``plan``), its pyarrow translation (``execute``), the rules (``rules``).

``reads`` holds what the :class:`~koru_core.Store` facade's read methods call.
"""

from koru_core.read.plan import CANDIDATE_FILTER, EXACT_FILTER, ReadPlan, Source
from koru_core.read.rules import (
    AS_OF_SYSTEM_COLUMNS,
    CHANGE_COLUMNS,
    as_of_rule,
    change_feed,
    history_order,
    latest_per_key,
    row_value,
    value_columns,
    with_valid_to,
)

__all__ = [
    "AS_OF_SYSTEM_COLUMNS",
    "CANDIDATE_FILTER",
    "CHANGE_COLUMNS",
    "EXACT_FILTER",
    "ReadPlan",
    "Source",
    "as_of_rule",
    "change_feed",
    "history_order",
    "latest_per_key",
    "row_value",
    "value_columns",
    "with_valid_to",
]
