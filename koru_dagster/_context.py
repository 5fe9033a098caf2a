"""The only module that reads Dagster contexts.

It turns an ``OutputContext`` (or the ``AssetExecutionContext`` of a SQL asset)
into a frozen :class:`WriteRequest` and an ``InputContext`` (or a SQL asset's
dependency) into a frozen :class:`ReadRequest` (as dagster-duckdb's
``TableSlice``), so the storage code never sees Dagster:

* asset key → namespace (:func:`namespace_for`);
* run id → provenance (actor ``"dagster"``, the run id) and commit metadata
  (asset, partition(s), run id: :data:`koru_dagster.metadata.COMMIT_ASSET` …);
* partition → a :class:`Slice` of the namespace (see :mod:`koru_dagster._partitions`);
* upstream write ids → parents (the io manager collects them per op);
* the Dagster instance's latest materialization of the upstream (per partition)
  → the commit it recorded, the first choice for pinning (:mod:`koru_dagster._pins`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterInvariantViolationError,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
    TimeWindowPartitionsDefinition,
)

from koru_core import InvalidInputError
from koru_dagster import metadata as md
from koru_dagster._partitions import partition_refs, slice_for
from koru_dagster._requests import ReadRequest, Slice, WriteRequest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from koru_dagster._storage import WriteOutcome

__all__ = [
    "ACTOR",
    "dependencies_of",
    "instance_of",
    "namespace_for",
    "op_of",
    "output_metadata",
    "read_request",
    "record_output",
    "wanted_type",
    "write_request",
]

ACTOR = "dagster"
"""The actor recorded on every version the IO manager writes."""
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
    context: OutputContext | AssetExecutionContext,
    *,
    default_key: Sequence[str] | None,
    parents: Sequence[str],
    inputs: Mapping[str, int | dict[str, int]],
    metadata: Mapping[str, Any] | None = None,
) -> WriteRequest:
    """Turn an output context (or a SQL asset's context) into a :class:`WriteRequest`.

    Args:
        metadata: The ``koru/*`` options; default: the output's definition metadata.

    Raises:
        InvalidInputError: bad ``koru/*`` metadata, no key column configured, or a
            multi-partition time range written without a ``koru/valid_from`` column.
    """
    asset_key = context.asset_key
    asset = asset_key.to_user_string()
    given = context.definition_metadata if metadata is None else metadata
    options = md.parse_options(given, where="asset")
    key = options.key or (tuple(default_key) if default_key else None)
    if not key:
        msg = f"asset {asset!r}: no key column; set metadata {md.KEY!r} or the IO manager's `key`"
        raise InvalidInputError(msg)
    definition, keys, run_id = _output_facts(context)
    scope = Slice() if definition is None else slice_for(definition, keys, window=_window(context, definition))
    valid_from: datetime | str | None = options.valid_from
    if valid_from is None and scope.since is not None:
        if len(keys) > 1:
            msg = (
                f"asset {asset!r}: a run over several time partitions needs a valid-time "
                f"column ({md.VALID_FROM!r})"
            )
            raise InvalidInputError(msg)
        valid_from = scope.since
    partition_key = tuple(c for c, _ in scope.equals if c not in key)
    return WriteRequest(
        namespace=namespace_for(asset_key),
        asset=asset,
        key=partition_key + tuple(key),
        valid_from=valid_from,
        mode=options.mode,
        columns=tuple((c, vs[0]) for c, vs in scope.equals if len(vs) == 1),
        scope=scope,
        partitions=tuple(keys),
        actor=ACTOR,
        run_id=run_id,
        parents=tuple(parents),
        inputs=dict(inputs),
    )


def read_request(context: InputContext, *, instance: DagsterInstance | None) -> ReadRequest:
    """Turn an input context into a :class:`ReadRequest`, with the instance's recorded commits.

    Raises:
        InvalidInputError: bad ``koru/*`` or ``columns`` metadata.
    """
    options = md.parse_options(context.definition_metadata, where="input")
    definition = context.asset_partitions_def if context.has_asset_partitions else None
    keys = list(context.asset_partition_keys) if definition is not None else []
    return _read_request(
        context.asset_key, definition, keys, window=_window(context, definition),
        options=options, instance=instance,
    )


def dependencies_of(context: AssetExecutionContext) -> list[ReadRequest]:
    """The :class:`ReadRequest` of each dependency of a (SQL) asset, pinned by default."""
    requests = []
    for name in context.op_def.ins:
        key = context.asset_key_for_input(name)
        try:
            definition = context.asset_partitions_def_for_input(name)
        except DagsterInvariantViolationError:  # Dagster's way of saying "not partitioned"
            definition = None
        keys = list(context.asset_partition_keys_for_input(name)) if definition is not None else []
        requests.append(
            _read_request(
                key, definition, keys, window=None,
                options=md.KoruOptions(), instance=context.instance,
            )
        )
    return requests


def _read_request(
    asset_key: AssetKey, definition: Any, keys: list[Any], *, window: Any,
    options: md.KoruOptions, instance: DagsterInstance | None,
) -> ReadRequest:
    look = options.pin and options.version is None and instance is not None
    if definition is None:
        recorded = _recorded(instance, asset_key, None).get("") if look else None
        scope, partitions = Slice(), None
    else:
        found = _recorded(instance, asset_key, [str(k) for k in keys]) if look else {}
        scope = slice_for(definition, keys, window=window)
        partitions = partition_refs(definition, keys, recorded=found)
    return ReadRequest(
        namespace=namespace_for(asset_key),
        asset=asset_key.to_user_string(),
        scope=scope,
        at=options.at,
        version=options.version,
        pin=options.pin,
        recorded=recorded if definition is None else None,
        partitions=partitions,
        columns=options.columns,
    )


def _recorded(
    instance: DagsterInstance | None, asset_key: AssetKey, partitions: list[str] | None
) -> dict[str, int]:
    """Partition ("" if unpartitioned) → the ``koru/commit`` of its latest materialization here."""
    if instance is None:
        return {}
    if partitions is None:
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key), limit=1).records
    else:
        ids = instance.get_latest_storage_id_by_partition(
            asset_key, DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
        )
        if not ids:
            return {}
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())), limit=len(ids)
        ).records
    found = {}
    for record in records:
        event = record.asset_materialization
        value = event.metadata.get(md.COMMIT) if event is not None else None
        if value is not None and int(value.value) > 0:  # 0: that run wrote nothing
            found[event.partition or ""] = int(value.value)
    return found


def _output_facts(context: OutputContext | AssetExecutionContext) -> tuple[Any, list[str], str]:
    """(partitions definition or None, partition keys written, run id) of an output."""
    if isinstance(context, OutputContext):
        if not context.has_asset_partitions:
            return None, [], context.run_id
        return context.asset_partitions_def, [str(k) for k in context.asset_partition_keys], context.run_id
    definition = context.assets_def.partitions_def
    keys = [str(k) for k in context.partition_keys] if definition is not None else []
    return definition, keys, context.run.run_id


def _window(context: InputContext | OutputContext | AssetExecutionContext, definition: Any) -> Any:
    """The time window of the partitions in play, for a time-window definition (else None)."""
    if not isinstance(definition, TimeWindowPartitionsDefinition):
        return None
    if isinstance(context, AssetExecutionContext):
        return context.partition_time_window
    return context.asset_partitions_time_window


def output_metadata(outcome: WriteOutcome) -> dict[str, Any]:
    """What a person checks in the UI (see :func:`record_output`)."""
    result = outcome.result
    found: dict[str, Any] = {
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
    if outcome.head_hash:
        found[md.HEAD_HASH] = outcome.head_hash
    if outcome.inputs:
        found[md.INPUTS] = MetadataValue.json(outcome.inputs)
        found[md.INPUT_RANGES] = MetadataValue.json(outcome.input_ranges)
    return found


def record_output(context: OutputContext, outcome: WriteOutcome) -> None:
    """Attach what a person checks in the UI, and the content-derived data version.

    Metadata: ``koru/commit``, ``koru/head_hash``, ``koru/namespace``, ``koru/store``,
    ``koru/rows_written`` / ``_unchanged`` / ``_deleted``, ``koru/data_version``,
    ``koru/inputs`` and ``koru/input_ranges`` (when inputs were read from koru),
    ``dagster/row_count`` (live records of the slice) and ``dagster/column_schema``.
    """
    from koru_dagster import _compat

    context.add_output_metadata(output_metadata(outcome))
    _compat.set_data_version(context, outcome.data_version)
