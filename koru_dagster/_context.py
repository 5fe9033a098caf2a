"""The only module that reads Dagster contexts.

It turns an ``OutputContext`` into a frozen :class:`WriteRequest` and an
``InputContext`` into a frozen :class:`ReadRequest` (as dagster-duckdb's
``TableSlice``), so the storage code in ``_storage.py`` never sees Dagster:

* asset key → namespace (:func:`namespace_for`);
* run id → provenance (actor ``"dagster"``, the run id);
* partition → a :class:`Slice` of the namespace. The partition key is a string
  column, ``partition`` (a multi-partition: one column per dimension), added to
  the output and put first in the record key, so each partition holds its own
  records and re-materializing one adds versions to its records only. A time
  window (or a multi-partition's time dimension) also sets valid time: the
  window start, unless ``koru/valid_from`` names a column. Reads filter on the
  partition column(s), so a partition reads exactly what it last wrote, even rows
  equal to another partition's (which a valid-time window alone would lose to
  koru's unchanged-row rule);
* upstream write ids → parents (the io manager collects them per op);
* the upstream's latest materialization → the commit an input is pinned to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    InitResourceContext,
    InputContext,
    MetadataValue,
    MultiPartitionsDefinition,
    OutputContext,
    TableColumn,
    TableSchema,
    TimeWindowPartitionsDefinition,
)

from koru_core import InvalidInputError
from koru_dagster import metadata as md

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from koru_dagster._storage import WriteOutcome

__all__ = [
    "ACTOR",
    "PARTITION_COLUMN",
    "ReadRequest",
    "Slice",
    "WriteRequest",
    "instance_of",
    "namespace_for",
    "op_of",
    "read_request",
    "record_output",
    "wanted_type",
    "write_request",
]

ACTOR = "dagster"
"""The actor recorded on every version the IO manager writes."""
PARTITION_COLUMN = "partition"
"""The column that holds a static or dynamic partition key."""
_INVALID = re.compile(r"[^A-Za-z0-9_]")


def namespace_for(asset_key: AssetKey) -> str:
    """Map an asset key to a namespace (a SQL identifier ``[A-Za-z_][A-Za-z0-9_]*``).

    The key's path parts are joined with ``__``; every character outside
    ``[A-Za-z0-9_]`` becomes ``_``; a leading digit gets a ``_`` prefix.

    Example:
        >>> namespace_for(AssetKey(["nyc", "raw-flights"]))
        'nyc__raw_flights'
    """
    name = "__".join(_INVALID.sub("_", part) for part in asset_key.path)
    return f"_{name}" if name[:1].isdigit() or not name else name


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice:
    """The part of a namespace one partition (or range of them) covers.

    Attributes:
        since, until: The time window ``[since, until)`` (UTC) of a time partition, or None.
        equals: ``(column, allowed values)`` pairs: the partition columns.
    """

    since: datetime | None = None
    until: datetime | None = None
    equals: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRequest:
    """Everything needed to write one output, with no Dagster object in it.

    Attributes:
        namespace: Target namespace.
        asset: The asset key as a user reads it (``a/b``), for messages.
        key: Key columns (partition columns first).
        valid_from: A datetime for every row, a column name, or None (commit time).
        delete_missing: Tombstone live keys of ``scope`` absent from the output.
        columns: ``(column, value)`` pairs to add to (or check in) every row.
        scope: The slice of the namespace this output replaces.
        actor, run_id, parents: Provenance.
    """

    namespace: str
    asset: str
    key: tuple[str, ...]
    valid_from: datetime | str | None
    delete_missing: bool
    columns: tuple[tuple[str, str], ...]
    scope: Slice
    actor: str
    run_id: str
    parents: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRequest:
    """Everything needed to load one input.

    Attributes:
        namespace: Upstream namespace.
        asset: The upstream asset key, for messages.
        scope: The slice to read.
        at: Valid time to read at, or None (now, or the end of ``scope``).
        version: Commit bounding system time (explicit or pinned), or None (latest).
        columns: Value columns to return, or None for all.
    """

    namespace: str
    asset: str
    scope: Slice
    at: datetime | None
    version: int | None
    columns: tuple[str, ...] | None


def instance_of(context: InitResourceContext) -> DagsterInstance | None:
    """Return the Dagster instance a resource was initialised with (None in direct calls)."""
    return context.instance


def op_of(context: InputContext | OutputContext) -> str:
    """Return the name of the op loading an input or handling an output."""
    return context.op_def.name


def wanted_type(context: InputContext) -> Any:
    """Return the Python type the input is annotated with (``typing.Any`` if none)."""
    return context.dagster_type.typing_type


def write_request(
    context: OutputContext, *, default_key: Sequence[str] | None, parents: Sequence[str]
) -> WriteRequest:
    """Turn an output context into a :class:`WriteRequest`.

    Raises:
        InvalidInputError: bad ``koru/*`` metadata, no key column configured, or a
            multi-partition time range written without a ``koru/valid_from`` column.
    """
    asset = context.asset_key.to_user_string()
    options = md.parse_options(context.definition_metadata, where="asset")
    key = options.key or (tuple(default_key) if default_key else None)
    if not key:
        msg = f"asset {asset!r}: no key column; set metadata {md.KEY!r} or the IO manager's `key`"
        raise InvalidInputError(msg)
    scope = _slice(context) if context.has_asset_partitions else Slice()
    columns = tuple((c, vs[0]) for c, vs in scope.equals if len(vs) == 1)
    valid_from: datetime | str | None = options.valid_from
    if valid_from is None and scope.since is not None:
        if len(context.asset_partition_keys) > 1:
            msg = (
                f"asset {asset!r}: a run over several time partitions needs a valid-time "
                f"column ({md.VALID_FROM!r})"
            )
            raise InvalidInputError(msg)
        valid_from = scope.since
    partition_key = tuple(c for c, _ in scope.equals if c not in key)
    return WriteRequest(
        namespace=namespace_for(context.asset_key),
        asset=asset,
        key=partition_key + tuple(key),
        valid_from=valid_from,
        delete_missing=options.delete_missing,
        columns=columns,
        scope=scope,
        actor=ACTOR,
        run_id=context.run_id,
        parents=tuple(parents),
    )


def read_request(context: InputContext, *, instance: DagsterInstance | None) -> ReadRequest:
    """Turn an input context into a :class:`ReadRequest`, resolving the pinned commit.

    The default read is pinned: the commit recorded (``koru/commit``) by the
    latest materialization of the upstream (of the partitions read). With no such
    record (the asset was written outside this Dagster instance) it reads the latest.

    Raises:
        InvalidInputError: bad ``koru/*`` or ``columns`` metadata.
    """
    options = md.parse_options(context.definition_metadata, where="input")
    scope = _slice(context) if context.has_asset_partitions else Slice()
    version = options.version
    if version is None and options.pin and instance is not None:
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else None
        version = _recorded_commit(instance, context.asset_key, partitions)
    return ReadRequest(
        namespace=namespace_for(context.asset_key),
        asset=context.asset_key.to_user_string(),
        scope=scope,
        at=options.at,
        version=version,
        columns=options.columns,
    )


def _recorded_commit(
    instance: DagsterInstance, asset_key: AssetKey, partitions: list[str] | None
) -> int | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(md.COMMIT)
    return int(value.value) or None if value is not None else None  # 0: nothing was written


def _slice(context: InputContext | OutputContext) -> Slice:
    definition = context.asset_partitions_def
    keys = list(context.asset_partition_keys)
    if isinstance(definition, TimeWindowPartitionsDefinition):
        window = context.asset_partitions_time_window
        return Slice(
            since=window.start, until=window.end, equals=((PARTITION_COLUMN, tuple(keys)),)
        )
    if isinstance(definition, MultiPartitionsDefinition):
        return _multi_slice(definition, keys)
    return Slice(equals=((PARTITION_COLUMN, tuple(keys)),))


def _multi_slice(definition: MultiPartitionsDefinition, keys: Sequence[Any]) -> Slice:
    since = until = None
    equals: list[tuple[str, tuple[str, ...]]] = []
    for dimension in definition.partitions_defs:
        values = sorted({_dimension_key(definition, k, dimension.name) for k in keys})
        inner = dimension.partitions_def
        if isinstance(inner, TimeWindowPartitionsDefinition):
            windows = [inner.time_window_for_partition_key(v) for v in values]
            since, until = min(w.start for w in windows), max(w.end for w in windows)
        equals.append((dimension.name, tuple(values)))
    return Slice(since=since, until=until, equals=tuple(equals))


def _dimension_key(definition: MultiPartitionsDefinition, key: Any, dimension: str) -> str:
    by_dimension = getattr(key, "keys_by_dimension", None)
    if by_dimension is None:
        by_dimension = definition.get_partition_key_from_str(str(key)).keys_by_dimension
    return str(by_dimension[dimension])


def record_output(context: OutputContext, outcome: WriteOutcome) -> None:
    """Attach what a person checks in the UI, and the content-derived data version.

    Metadata: ``koru/commit``, ``koru/namespace``, ``koru/store``,
    ``koru/rows_written`` / ``_unchanged`` / ``_deleted``, ``koru/data_version``,
    ``dagster/row_count`` (live records of the slice) and ``dagster/column_schema``.
    """
    from koru_dagster import _compat

    result = outcome.result
    context.add_output_metadata(
        {
            md.COMMIT: outcome.commit,
            md.NAMESPACE: outcome.namespace,
            md.STORE: MetadataValue.path(outcome.store),
            md.ROWS_WRITTEN: result.written,
            md.ROWS_UNCHANGED: result.unchanged,
            md.ROWS_DELETED: result.deleted,
            md.DATA_VERSION: outcome.data_version,
            "dagster/row_count": outcome.rows,
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(name=f.name, type=str(f.type)) for f in outcome.schema]
            ),
        }
    )
    _compat.set_data_version(context, outcome.data_version)
