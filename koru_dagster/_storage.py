"""Reads and writes for the IO manager, on plain requests: no Dagster in here.

Writes (:func:`write`): one commit per output. In ``"replace"`` mode (the
default) the output is the whole state of its asset, or of its partition(s):
the live keys of that slice it no longer holds become tombstones in the same
commit (a partition's keys are its records' partition column values, see
:mod:`koru_dagster._partitions`). ``"upsert"`` only adds and changes. Unchanged
rows are skipped, so an unchanged re-run writes nothing and makes no commit.
Each commit records in its metadata the asset, partition(s) and run id
(:data:`koru_dagster.metadata.COMMIT_ASSET` …) and the upstream commits read
(:data:`koru_dagster.metadata.COMMIT_INPUTS`).

Reads (:func:`read`): the request's slice at the commit(s) :func:`koru_dagster._pins.resolve` picks.

The data version of an output is derived from content: blake3 over the Arrow
IPC stream of its slice's as-of state (value columns and ``_key``, sorted by
``_key``), so an output whose rows are all unchanged keeps its data version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import blake3
import pyarrow as pa
import pyarrow.compute as pc

import koru_core as koru
from koru_core import InvalidInputError
from koru_core.watch import head
from koru_dagster import _pins
from koru_dagster import metadata as md
from koru_dagster._requests import PartitionRef, ReadRequest, Slice, WriteRequest

__all__ = ["ReadOutcome", "WriteOutcome", "read", "write"]

_SYSTEM = ("_key", "_valid_from", "_system_from", "_commit", "_write_id")
_SEP = "\x1f"  # joins multi-partition column values into one comparable string


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOutcome:
    """What one output write did, and the state it left.

    Attributes:
        result: The store's :class:`koru_core.CommitResult`.
        commit: The commit the written state is read at: the new commit, or, when
            nothing changed, the last commit that wrote the namespace (0: none).
        rows: Live records in the written slice after the write.
        schema: Arrow schema of the rows as given (system columns removed).
        data_version: 64 hex chars, content-derived (see the module docstring).
        namespace, store: Where it went.
        inputs: As :data:`koru_dagster.metadata.INPUTS`.
        input_ranges: As :data:`koru_dagster.metadata.INPUT_RANGES`.
        head_hash: As :data:`koru_dagster.metadata.HEAD_HASH` ("" when the store holds no commit).
    """

    result: koru.CommitResult
    commit: int
    rows: int
    schema: pa.Schema
    data_version: str
    namespace: str
    store: str
    inputs: dict[str, int | dict[str, int]] = field(default_factory=dict)
    input_ranges: dict[str, list[int]] = field(default_factory=dict)
    head_hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadOutcome:
    """An input's records and the commit(s) they were read at.

    Attributes:
        table: As :meth:`koru_core.Store.as_of`: value columns, then ``_key``,
            ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``.
        pin: The commit read (int), or partition key → commit when they differ.
    """

    table: pa.Table
    pin: int | dict[str, int]


def write(store: koru.Store, request: WriteRequest, table: pa.Table) -> WriteOutcome:
    """Upsert ``table`` into the request's namespace as one commit (see the module docstring).

    Rows carrying ``_write_id`` or ``_parents`` (from a koru read) get per-row
    parents; otherwise every row gets ``request.parents``.

    Raises:
        InvalidInputError: a partition column in the data disagrees with the
            partition, or the data is refused by :meth:`koru_core.Store.upsert`.
    """
    table = _with_columns(request, table)
    per_row = "_write_id" in table.column_names or "_parents" in table.column_names
    parents = () if per_row else request.parents
    whole = request.scope == Slice()
    replace = request.mode == "replace"
    ranges = _input_ranges(store, request)
    with store.transaction(actor=request.actor, run_id=request.run_id, metadata=_commit_metadata(request)) as tx:
        tx.upsert(
            request.namespace, table, key=list(request.key), valid_from=request.valid_from,
            delete_missing=replace and whole, parents=parents,
        )
        if replace and not whole:
            since = request.valid_from if isinstance(request.valid_from, datetime) else None
            for key in _missing(store, request, table):
                tx.delete(request.namespace, key, valid_from=since, parents=parents)
    result = tx.result
    assert result is not None  # set on a clean exit
    commit = result.commit if result.commit is not None else head(store, request.namespace)
    if request.namespace in store.namespaces():
        state = _state_of_slice(store, request, version=commit)
    else:  # an empty first output creates nothing
        state = pa.table({"_key": pa.array([], pa.string())})
    values = state.select([n for n in state.column_names if n not in _SYSTEM] + ["_key"])
    return WriteOutcome(
        result=result,
        commit=commit,
        rows=state.num_rows,
        data_version=_digest(values),
        schema=pa.schema(
            [f for f in table.schema if not f.name.startswith("_") and f.name != request.valid_from]
        ),
        namespace=request.namespace,
        store=str(store.path),
        inputs=dict(request.inputs),
        input_ranges=ranges,
        head_hash=_hash_of(store, commit),
    )


def _hash_of(store: koru.Store, commit: int) -> str:
    """The hash of ``commit`` (the store's last one when 0), "" when there is none (issue 12 item 16)."""
    number = commit or store.version()
    found = store.commits(since=max(number - 1, 0))
    return found[0].hash if found and found[0].commit == number else ""


def read(store: koru.Store, request: ReadRequest) -> ReadOutcome:
    """Return the request's slice at its pinned commit(s) (see :mod:`koru_dagster._pins`).

    Raises:
        NamespaceNotFoundError: the upstream was never written.
    """
    pin = _pins.resolve(store, request)
    columns = None
    if request.columns is not None:
        columns = list(dict.fromkeys([*request.columns, *(c for c, _ in request.scope.equals)]))
    parts = []
    for commit, partitions in pin.groups:
        table = store.as_of(request.namespace, at=request.at, version=commit or None, columns=columns)
        parts.append(_filter(table, request.scope, partitions))
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    if request.columns is not None:
        table = table.select([*request.columns, *_SYSTEM])
    return ReadOutcome(table=table, pin=pin.summary)


def _filter(table: pa.Table, scope: Slice, partitions: tuple[PartitionRef, ...] | None) -> pa.Table:
    if partitions is None:
        for column, allowed in scope.equals:
            table = table.filter(pc.is_in(table[column], value_set=pa.array(allowed, pa.string())))
        return table
    names = [c for c, _ in partitions[0].values]
    wanted = pa.array([_SEP.join(v for _, v in p.values) for p in partitions], pa.string())
    joined = table[names[0]] if len(names) == 1 else pc.binary_join_element_wise(
        *(table[n] for n in names), _SEP
    )
    return table.filter(pc.is_in(joined, value_set=wanted))


def _commit_metadata(request: WriteRequest) -> dict[str, str]:
    meta = {md.COMMIT_ASSET: request.asset, md.COMMIT_RUN_ID: request.run_id}
    if len(request.partitions) == 1:
        meta[md.COMMIT_PARTITION] = request.partitions[0]
    elif request.partitions:
        meta[md.COMMIT_PARTITIONS] = json.dumps(list(request.partitions))
    if request.inputs:
        meta[md.COMMIT_INPUTS] = json.dumps(request.inputs, sort_keys=True)
    return meta


def _input_ranges(store: koru.Store, request: WriteRequest) -> dict[str, list[int]]:
    """Upstream asset → [commit the previous materialization read, commit read now]."""
    if not request.inputs:
        return {}
    previous = _pins.last_materialization(
        store, asset=request.asset, namespace=request.namespace, partitions=request.partitions
    )
    before = json.loads(previous.metadata.get(md.COMMIT_INPUTS, "{}")) if previous else {}
    return {
        asset: [_pins.commit_of(before[asset]) if asset in before else 0, _pins.commit_of(now)]
        for asset, now in request.inputs.items()
    }


def _with_columns(request: WriteRequest, table: pa.Table) -> pa.Table:
    for column, value in request.columns:
        if column not in table.column_names:
            table = table.append_column(column, pa.array([value] * table.num_rows, pa.string()))
            continue
        found = pc.unique(table[column].cast(pa.string())).to_pylist()
        if found not in ([], [value]):
            msg = (
                f"asset {request.asset!r}: column {column!r} holds {found!r}, "
                f"but the partition is {value!r}"
            )
            raise InvalidInputError(msg)
    return table


def _state_of_slice(store: koru.Store, request: WriteRequest, *, version: int | None) -> pa.Table:
    """The as-of state (now) of the records in the request's partition slice, at commit ``version``."""
    table = store.as_of(request.namespace, version=version or None)
    return _filter(table, request.scope, None)


def _missing(store: koru.Store, request: WriteRequest, table: pa.Table) -> list[str]:
    """Keys live in the request's slice whose key columns do not occur in ``table``."""
    if request.namespace not in store.namespaces():
        return []
    live = _state_of_slice(store, request, version=None)
    if live.num_rows == 0:
        return []
    names = list(request.key)
    given = set(zip(*(table[n].cast(pa.string()).to_pylist() for n in names), strict=True))
    held = zip(
        *(live[n].cast(pa.string()).to_pylist() for n in names),
        live["_key"].to_pylist(),
        strict=True,
    )
    return [row[-1] for row in held if tuple(row[:-1]) not in given]


def _digest(table: pa.Table) -> str:
    table = table.replace_schema_metadata(None).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return blake3.blake3(sink.getvalue().to_pybytes()).hexdigest()
