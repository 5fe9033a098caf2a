"""The ``koru/*`` metadata keys users may set on assets and inputs, and their one parser.

Set them on an asset (``@asset(metadata={...})``) to shape its writes, and on an
input (``AssetIn(metadata={...})``) to shape its reads:

=====================  =========  ==================================================
key                    where      value
=====================  =========  ==================================================
``koru/key``           asset      key column (str) or columns (list of str)
``koru/valid_from``    asset      name of a timestamp column (tz-aware) holding each
                                  row's valid time; overrides the partition start
``koru/delete_missing`` asset     bool: tombstone live keys (of the partition, if
                                  partitioned) that the output no longer holds
``koru/at``            input      valid time to read at: tz-aware datetime or ISO str
``koru/version``       input      commit number to read at (system-time travel)
``koru/pin``           input      bool, default True: read the upstream as of the
                                  commit its latest materialization recorded;
                                  False reads the latest state
=====================  =========  ==================================================

Dagster's own ``columns`` input metadata (a list of names) projects value columns,
as in dagster-duckdb. Any other key starting with ``koru/`` is an
:class:`koru_core.InvalidInputError`, so a typo cannot be silently ignored.

The keys koru *records* on each materialization are declared here too
(:data:`COMMIT` …); they are outputs, not options.

Example:
    >>> parse_options({"koru/key": ["carrier", "flight"], "owner": "me"}, where="asset").key
    ('carrier', 'flight')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from koru_core import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AT",
    "COLUMNS",
    "COMMIT",
    "DATA_VERSION",
    "DELETE_MISSING",
    "KEY",
    "NAMESPACE",
    "PIN",
    "ROWS_DELETED",
    "ROWS_UNCHANGED",
    "ROWS_WRITTEN",
    "STORE",
    "VALID_FROM",
    "VERSION",
    "KoruOptions",
    "parse_options",
]

KEY = "koru/key"
VALID_FROM = "koru/valid_from"
DELETE_MISSING = "koru/delete_missing"
AT = "koru/at"
VERSION = "koru/version"
PIN = "koru/pin"
COLUMNS = "columns"
"""Dagster's conventional input metadata key for column projection."""

_ASSET_KEYS = (KEY, VALID_FROM, DELETE_MISSING)
_INPUT_KEYS = (AT, VERSION, PIN)

# Recorded on every materialization (read back to pin downstream inputs).
COMMIT = "koru/commit"
"""int: the commit at which the asset's written state can be read (the new commit, or
the store's latest commit when every row was unchanged)."""
NAMESPACE = "koru/namespace"
STORE = "koru/store"
ROWS_WRITTEN = "koru/rows_written"
ROWS_UNCHANGED = "koru/rows_unchanged"
ROWS_DELETED = "koru/rows_deleted"
DATA_VERSION = "koru/data_version"


@dataclass(frozen=True, slots=True, kw_only=True)
class KoruOptions:
    """The parsed ``koru/*`` options of one asset or input.

    Attributes:
        key: Key columns, or None to use the IO manager's default.
        valid_from: Name of the valid-time column, or None.
        delete_missing: Tombstone keys the output no longer holds.
        at: Valid time to read at (tz-aware), or None for now.
        version: Commit number to read at, or None.
        pin: Read the upstream at its recorded commit (True) or latest (False).
        columns: Value columns to read, or None for all.
    """

    key: tuple[str, ...] | None = None
    valid_from: str | None = None
    delete_missing: bool = False
    at: datetime | None = None
    version: int | None = None
    pin: bool = True
    columns: tuple[str, ...] | None = None


def parse_options(
    metadata: Mapping[str, Any] | None, *, where: Literal["asset", "input"]
) -> KoruOptions:
    """Parse the ``koru/*`` keys (and ``columns`` for inputs) of a metadata mapping.

    Args:
        metadata: Definition metadata; raw values or Dagster ``MetadataValue``s.
        where: ``"asset"`` (write options) or ``"input"`` (read options).

    Returns:
        A :class:`KoruOptions`; keys not starting with ``koru/`` are ignored.

    Raises:
        InvalidInputError: an unknown ``koru/*`` key, a key used in the wrong
            place, or a value of the wrong type (the message names the key).

    Example:
        >>> parse_options({"koru/pin": False}, where="input").pin
        False
    """
    raw = {k: _unwrap(v) for k, v in (metadata or {}).items()}
    allowed = _ASSET_KEYS if where == "asset" else _INPUT_KEYS
    for name in raw:
        if not name.startswith("koru/"):
            continue
        if name not in _ASSET_KEYS + _INPUT_KEYS:
            msg = f"unknown metadata key {name!r}; koru reads {sorted(_ASSET_KEYS + _INPUT_KEYS)}"
            raise InvalidInputError(msg)
        if name not in allowed:
            place = "inputs (AssetIn metadata)" if where == "asset" else "assets"
            msg = f"metadata key {name!r} applies to {place}, not to an {where}"
            raise InvalidInputError(msg)
    return KoruOptions(
        key=_names(raw, KEY),
        valid_from=_typed(raw, VALID_FROM, str),
        delete_missing=_typed(raw, DELETE_MISSING, bool) or False,
        at=_datetime(raw, AT),
        version=_version(raw),
        pin=True if raw.get(PIN) is None else bool(_typed(raw, PIN, bool)),
        columns=_names(raw, COLUMNS) if where == "input" else None,
    )


def _unwrap(value: Any) -> Any:
    # Dagster may hand back MetadataValue objects (e.g. JsonMetadataValue); take their payload.
    return (
        value.value
        if type(value).__module__.startswith("dagster") and hasattr(value, "value")
        else value
    )


def _typed(raw: Mapping[str, Any], name: str, kind: type) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        msg = f"metadata {name!r} must be a {kind.__name__}, got {value!r}"
        raise InvalidInputError(msg)
    return value


def _names(raw: Mapping[str, Any], name: str) -> tuple[str, ...] | None:
    value = raw.get(name)
    if value is None:
        return None
    names = (
        (value,)
        if isinstance(value, str)
        else tuple(value)
        if isinstance(value, (list, tuple))
        else None
    )
    if not names or not all(isinstance(n, str) and n for n in names):
        msg = f"metadata {name!r} must be a column name or a non-empty list of names, got {value!r}"
        raise InvalidInputError(msg)
    return names


def _datetime(raw: Mapping[str, Any], name: str) -> datetime | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            msg = f"metadata {name!r} must be an ISO 8601 time with a zone, got {value!r}"
            raise InvalidInputError(msg) from e
    if not isinstance(value, datetime) or value.tzinfo is None:
        msg = f"metadata {name!r} must be a tz-aware datetime (koru guesses no zone), got {value!r}"
        raise InvalidInputError(msg)
    return value


def _version(raw: Mapping[str, Any]) -> int | None:
    value = _typed(raw, VERSION, int)
    if value is not None and value < 1:
        msg = f"metadata {VERSION!r} must be a commit number (>= 1), got {value!r}"
        raise InvalidInputError(msg)
    return value
