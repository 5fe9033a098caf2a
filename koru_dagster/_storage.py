"""Reads and writes for the IO manager, on plain requests: no Dagster in here.

The data version of an output is derived from content: blake3 over the Arrow
IPC stream of its slice's as-of state (value columns and ``_key``, sorted by
``_key``), so an output whose rows are all unchanged keeps its data version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import blake3
import pyarrow as pa
import pyarrow.compute as pc

import koru_core as koru
from koru_core import InvalidInputError
from koru_dagster._context import ReadRequest, Slice, WriteRequest

__all__ = ["WriteOutcome", "read", "write"]

_SYSTEM = ("_key", "_valid_from", "_system_from", "_commit", "_write_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOutcome:
    """What one output write did, and the state it left.

    Attributes:
        result: The store's :class:`koru_core.CommitResult`.
        commit: The commit the written state is read at: the new commit, or the
            store's latest when nothing changed.
        rows: Live records in the written slice after the write.
        schema: Arrow schema of the rows as given (system columns removed).
        data_version: 64 hex chars, content-derived (see the module docstring).
        namespace, store: Where it went.
    """

    result: koru.CommitResult
    commit: int
    rows: int
    schema: pa.Schema
    data_version: str
    namespace: str
    store: str


def write(store: koru.Store, request: WriteRequest, table: pa.Table) -> WriteOutcome:
    """Upsert ``table`` into the request's namespace as one commit.

    Rows carrying ``_write_id`` or ``_parents`` (from a koru read) get per-row
    parents; otherwise every row gets ``request.parents``. With
    ``delete_missing``, live keys of the request's slice that the table lacks
    are tombstoned in the same commit.

    Raises:
        InvalidInputError: a partition column in the data disagrees with the
            partition, or the data is refused by :meth:`koru_core.Store.upsert`.
    """
    table = _with_columns(request, table)
    per_row = "_write_id" in table.column_names or "_parents" in table.column_names
    parents = () if per_row else request.parents
    whole = request.scope == Slice()
    with store.transaction(actor=request.actor, run_id=request.run_id) as tx:
        tx.upsert(
            request.namespace,
            table,
            key=list(request.key),
            valid_from=request.valid_from,
            delete_missing=request.delete_missing and whole,
            parents=parents,
        )
        if request.delete_missing and not whole:
            since = request.valid_from if isinstance(request.valid_from, datetime) else None
            for key in _missing(store, request, table):
                tx.delete(request.namespace, key, valid_from=since, parents=parents)
    result = tx.result
    assert result is not None  # set on a clean exit
    commit = result.commit if result.commit is not None else _latest_commit(store)
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
    )


def read(store: koru.Store, request: ReadRequest) -> pa.Table:
    """Return the as-of state of the request's slice (its partition columns filtered).

    Returns:
        As :meth:`koru_core.Store.as_of`: value columns, then ``_key``,
        ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``.

    Raises:
        NamespaceNotFoundError: the upstream was never written.
    """
    columns = None
    if request.columns is not None:
        columns = list(dict.fromkeys([*request.columns, *(c for c, _ in request.scope.equals)]))
    table = store.as_of(request.namespace, at=request.at, version=request.version, columns=columns)
    for column, allowed in request.scope.equals:
        table = table.filter(pc.is_in(table[column], value_set=pa.array(allowed, pa.string())))
    if request.columns is not None:
        table = table.select([*request.columns, *_SYSTEM])
    return table


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


def _latest_commit(store: koru.Store) -> int:
    commits = store.commits()
    return commits[-1].commit if commits else 0


def _state_of_slice(store: koru.Store, request: WriteRequest, *, version: int | None) -> pa.Table:
    """The as-of state (now) of the records in the request's partition slice, at commit ``version``."""
    slice_request = ReadRequest(
        namespace=request.namespace, asset=request.asset, scope=request.scope,
        at=None, version=version, columns=None,
    )
    return read(store, slice_request)


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
