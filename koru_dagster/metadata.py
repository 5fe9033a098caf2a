"""The ``koru/*`` metadata keys users may set on assets and inputs, and their one parser.

Set them on an asset (``@asset(metadata={...})``) to shape its writes, and on an
input (``AssetIn(metadata={...})``) to shape its reads:

=====================  =========  ==================================================
key                    where      value
=====================  =========  ==================================================
``koru/key``           asset      key column (str) or columns (list of str)
``koru/valid_from``    asset      name of a timestamp column (tz-aware) holding each
                                  row's valid time; overrides the partition start
``koru/mode``          asset      ``"replace"`` (default): the output is the whole
                                  state of the asset, or of its partition; records
                                  it no longer holds become tombstones in the same
                                  commit. ``"upsert"``: an incremental asset that
                                  adds or changes records only
``koru/at``            input      valid time to read at: tz-aware datetime or ISO str
``koru/version``       input      commit number to read at (system-time travel)
``koru/pin``           input      bool, default True: read the upstream as of the
                                  commit its latest Dagster materialization wrote
                                  (see :mod:`koru_dagster._pins`); False reads the
                                  latest state, writes made outside Dagster included
=====================  =========  ==================================================

``koru/delete_missing`` (before issue 14) is gone: replacing is now the default,
and the key is refused with a message saying so.

Dagster's own ``columns`` input metadata (a list of names) projects value columns,
as in dagster-duckdb. Any other key starting with ``koru/`` is an
:class:`koru_core.InvalidInputError`, so a typo cannot be silently ignored.

The keys koru *records* are declared here too; they are outputs, not options:
on each Dagster materialization (:data:`COMMIT` … :data:`INPUT_RANGES`), and in the
metadata of each koru commit a materialization makes (:data:`COMMIT_ASSET` …
:data:`COMMIT_INPUTS`), which is how a run with a fresh Dagster instance still
finds the commit an upstream materialization wrote.

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
    "COMMIT_ASSET",
    "COMMIT_INPUTS",
    "COMMIT_PARTITION",
    "COMMIT_PARTITIONS",
    "COMMIT_RUN_ID",
    "DATA_VERSION",
    "INPUTS",
    "INPUT_RANGES",
    "KEY",
    "MODE",
    "NAMESPACE",
    "PIN",
    "ROWS_DELETED",
    "ROWS_UNCHANGED",
    "ROWS_WRITTEN",
    "STORE",
    "VALID_FROM",
    "VERSION",
    "KoruOptions",
    "Mode",
    "parse_options",
]

KEY = "koru/key"
VALID_FROM = "koru/valid_from"
MODE = "koru/mode"
AT = "koru/at"
VERSION = "koru/version"
PIN = "koru/pin"
COLUMNS = "columns"
"""Dagster's conventional input metadata key for column projection."""

Mode = Literal["replace", "upsert"]
"""How an output is written: the whole state of its asset or partition, or rows to add."""
_MODES = ("replace", "upsert")
_ASSET_KEYS = (KEY, VALID_FROM, MODE)
_INPUT_KEYS = (AT, VERSION, PIN)
_REMOVED = {
    "koru/delete_missing": (
        "was removed (issue 14): an output now replaces its asset or partition by default, "
        "so records it no longer holds become tombstones; set 'koru/mode': 'upsert' for an "
        "asset that only adds or changes records"
    ),
}

# Recorded on every materialization (read back to pin downstream inputs).
COMMIT = "koru/commit"
"""int: the commit at which the asset's written state can be read: the new commit, or,
when every row was unchanged, the last commit that wrote the namespace (0: none yet)."""
NAMESPACE = "koru/namespace"
STORE = "koru/store"
ROWS_WRITTEN = "koru/rows_written"
ROWS_UNCHANGED = "koru/rows_unchanged"
ROWS_DELETED = "koru/rows_deleted"
DATA_VERSION = "koru/data_version"
HEAD_HASH = "koru/head_hash"
"""str, 64 hex: the hash of the commit at :data:`COMMIT` (``koru_core.Commit.hash``; the head of
the store's hash chain then). Dagster's event log keeps it, so it anchors the chain:
``store.verify(expected_head=…)`` / ``koru verify --head …`` catches a store rewritten since."""
INPUTS = "koru/inputs"
"""JSON, upstream asset → the commit its records were read at (an int), or, when the
partitions read were pinned to different commits, partition key → commit."""
INPUT_RANGES = "koru/input_ranges"
"""JSON, upstream asset → ``[since, until]``: the upstream commits this materialization
reacts to, from the one the asset's previous materialization read (0: none) to the one
it read now; ``store.changes(ns, since=since, until=until)`` lists the changes."""

# Recorded in the metadata (str → str) of every koru commit a materialization writes.
COMMIT_ASSET = "dagster/asset"
"""The asset key written, as Dagster prints it (``a/b``)."""
COMMIT_PARTITION = "dagster/partition"
"""The partition key written, when the run wrote one partition."""
COMMIT_PARTITIONS = "dagster/partitions"
"""A JSON list of the partition keys written, when the run wrote several (a range)."""
COMMIT_RUN_ID = "dagster/run_id"
"""The Dagster run id."""
COMMIT_INPUTS = "koru/inputs"
"""JSON, as :data:`INPUTS`: the upstream commits the written records were computed from
(namespace-level lineage)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KoruOptions:
    """The parsed ``koru/*`` options of one asset or input.

    Attributes:
        key: Key columns, or None to use the IO manager's default.
        valid_from: Name of the valid-time column, or None.
        mode: ``"replace"`` or ``"upsert"`` (see the module docstring).
        at: Valid time to read at (tz-aware), or None for now.
        version: Commit number to read at, or None.
        pin: Read the upstream at its recorded commit (True) or latest (False).
        columns: Value columns to read, or None for all.
    """

    key: tuple[str, ...] | None = None
    valid_from: str | None = None
    mode: Mode = "replace"
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
        if name in _REMOVED:
            msg = f"metadata key {name!r} {_REMOVED[name]}"
            raise InvalidInputError(msg)
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
        mode=_mode(raw),
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


def _mode(raw: Mapping[str, Any]) -> Mode:
    value = raw.get(MODE)
    if value is None:
        return "replace"
    if value not in _MODES:
        msg = f"metadata {MODE!r} must be one of {list(_MODES)}, got {value!r}"
        raise InvalidInputError(msg)
    return value  # type: ignore[no-any-return]


def _version(raw: Mapping[str, Any]) -> int | None:
    value = _typed(raw, VERSION, int)
    if value is not None and value < 1:
        msg = f"metadata {VERSION!r} must be a commit number (>= 1), got {value!r}"
        raise InvalidInputError(msg)
    return value
