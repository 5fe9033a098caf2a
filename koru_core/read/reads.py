"""The reads behind the :class:`~koru_core.Store` facade: plan, execute, shape for the API.

Each function plans with :mod:`koru_core.read.plan`, executes with
:mod:`koru_core.read.execute` and returns what the facade documents (ids as hex,
value columns first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._time import now_ns, to_ns
from koru_core.catalog.entries import CommitRecord, NamespaceInfo
from koru_core.errors import InvalidInputError, KeyNotFoundError, NamespaceNotFoundError
from koru_core.hot.tier import TOMBSTONE
from koru_core.input import check_namespace
from koru_core.keys import encode_key, key_fields
from koru_core.model import Commit, CommitResult, Version, version_from_row
from koru_core.read import execute, rules
from koru_core.read.plan import ReadPlan, plan_as_of, plan_history, plan_versions, plan_window
from koru_core._time import exact, from_ns

if TYPE_CHECKING:
    from koru_core.context import StoreContext
    from koru_core.write.versions import Prepared

__all__ = [
    "as_of", "changes", "check_bool", "commit_at", "commits", "get", "history", "key_of", "plan", "provenance",
    "require_namespace", "version_at", "version_written", "versions",
]

_VERSION_ROW = ("_key", "_valid_from", "_write_id", "_prev_write_id", "_content_id", "_deleted", "_actor", "_run_id",
                "_parents")
"""The columns of a put's prepared version that its :class:`Version` shows (the value is the caller's)."""


# -- arguments -------------------------------------------------------------------


def require_namespace(ctx: StoreContext, namespace: str) -> NamespaceInfo:
    """Return the namespace's catalog info.

    Raises:
        InvalidInputError: not a namespace name.
        NamespaceNotFoundError: never written.
    """
    check_namespace(namespace)
    info = ctx.catalog.namespace(namespace)
    if info is None:
        msg = f"namespace {namespace!r} does not exist (namespaces: {ctx.catalog.namespaces()})"
        raise NamespaceNotFoundError(msg)
    return info


def key_of(ctx: StoreContext, namespace: str, key: object) -> str:
    """The ``_key`` of a key as written (:mod:`koru_core.keys`), for this namespace's key columns.

    Raises:
        InvalidInputError: a bad namespace name or a key of the wrong shape (names the key columns).
    """
    check_namespace(namespace)
    if isinstance(key, str):
        return encode_key(namespace, key)
    info = ctx.catalog.namespace(namespace)
    return encode_key(namespace, key, info.key_columns if info is not None else ())


def key_and_fields(ctx: StoreContext, namespace: str, key: object) -> tuple[str, dict[str, Any]]:
    """The ``_key`` of a key as written and the key columns' values it gives
    (:func:`koru_core.keys.key_fields`): what ``put`` stores beside the value."""
    check_namespace(namespace)
    info = ctx.catalog.namespace(namespace)
    if info is None or not info.key_columns:
        return encode_key(namespace, key), {}
    types = {f.name: f.type for f in info.schema}
    strings = [c for c in info.key_columns
               if c in types and (pa.types.is_string(types[c]) or pa.types.is_large_string(types[c]))]
    text = encode_key(namespace, key) if isinstance(key, str) else encode_key(namespace, key, info.key_columns)
    return text, key_fields(key, info.key_columns, strings)


def provenance(actor: object, run_id: object) -> tuple[str | None, str | None]:
    """Check ``actor`` and ``run_id`` (None or a str).

    Raises:
        InvalidInputError: another type.
    """
    for name, value in (("actor", actor), ("run_id", run_id)):
        if value is not None and not isinstance(value, str):
            msg = f"{name} must be a str or None, got {value!r}"
            raise InvalidInputError(msg)
    return actor, run_id  # type: ignore[return-value]


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool.

    Raises:
        InvalidInputError: otherwise.
    """
    if not isinstance(value, bool):
        msg = f"{name} must be True or False, got {value!r}"
        raise InvalidInputError(msg)
    return value


# -- plans and as-of ---------------------------------------------------------------


def plan(ctx: StoreContext, namespace: str, *, at: datetime | None, version: int | None, key: Any,
         shape: str, columns: Sequence[str] | None) -> ReadPlan:
    """See :meth:`koru_core.Store.plan`."""
    check_namespace(namespace)
    key_text = None if key is None else key_of(ctx, namespace, key)
    if shape == "as_of":
        return plan_as_of(ctx, namespace, at=at, version=version, key=key_text, columns=columns)
    if shape == "history":
        if key_text is None:
            msg = f"namespace {namespace!r}: a history plan needs a key"
            raise InvalidInputError(msg)
        return plan_history(ctx, namespace, key=key_text, version=version)
    if shape == "versions":
        return plan_versions(ctx, namespace, version=version)
    msg = f"shape must be 'as_of', 'history' or 'versions', got {shape!r}"
    raise InvalidInputError(msg)


def as_of(ctx: StoreContext, namespace: str, *, at: datetime | None, version: int | None,
          columns: Sequence[str] | None, sort: bool) -> pa.Table:
    """See :meth:`koru_core.Store.as_of`."""
    check_namespace(namespace)
    p = plan_as_of(ctx, namespace, at=at, version=version, columns=columns)
    state = execute.to_api(execute.as_of(ctx, p))
    if sort:
        state = state.take(pc.sort_indices(state["_key"]))
    return state


def _point(at: datetime | None, version: int | None) -> str:
    parts = ([f"at {at.isoformat()}"] if at else []) + ([f"version {version}"] if version else [])
    return f" ({', '.join(parts)})" if parts else ""


def _one(ctx: StoreContext, namespace: str, key: Any, at: datetime | None, version: int | None,
         columns: Sequence[str] | None = None) -> tuple[ReadPlan, pa.Table]:
    key_text = key_of(ctx, namespace, key)
    p = plan_as_of(ctx, namespace, at=at, version=version, key=key_text, columns=columns)
    return p, execute.as_of(ctx, p)


def get(ctx: StoreContext, namespace: str, key: Any, *, at: datetime | None, version: int | None) -> Any:
    """See :meth:`koru_core.Store.get`."""
    if at is None and version is None and isinstance(key, str):
        head = ctx.catalog.head()[0]
        hit = ctx.hot.cached(namespace, key, head=head)
        if hit is not None:
            if hit is TOMBSTONE:
                raise KeyNotFoundError(f"namespace {namespace!r}: no live key {key!r}")
            return dict(hit) if isinstance(hit, dict) else hit
    p, state = _one(ctx, namespace, key, at, version)
    if state.num_rows == 0:
        msg = f"namespace {namespace!r}: no live key {p.key!r}" + _point(at, version)
        raise KeyNotFoundError(msg)
    names = list(p.columns)
    value = rules.row_value(state.select(names).to_pylist()[0], names)
    if at is None and version is None and p.commit == p.head:
        valid = state["_valid_from"].cast(pa.int64())[0].as_py()
        if valid <= (p.valid_at or now_ns()) and not _has_future(ctx, namespace, p):
            ctx.hot.remember(namespace, p.key or "", value, commit=p.head)
    return value


def _has_future(ctx: StoreContext, namespace: str, p: ReadPlan) -> bool:
    """True when the key has a version valid after now (its current value will change by itself)."""
    index = ctx.hot.index(namespace)
    if index is not None and index.commit == p.head:
        head = index.get(p.key or "")
        return head is None or head.valid_from > (p.valid_at or 0)
    return True


def version_at(ctx: StoreContext, namespace: str, key: Any, *, at: datetime | None, version: int | None) -> Version:
    """See :meth:`koru_core.Store.version_at`: the planner's as-of answer for one key, then
    that version's row of the key's history (bounded by the same commit) for the rest."""
    p, state = _one(ctx, namespace, key, at, version)
    if state.num_rows == 0:
        msg = f"namespace {namespace!r}: no live key {p.key!r}" + _point(at, version)
        raise KeyNotFoundError(msg)
    write_id = execute.to_api(state.select(["_write_id"]))["_write_id"][0].as_py()
    hist = history(ctx, namespace, p.key, version=p.commit)
    row = next(r for r in hist.to_pylist() if r["_write_id"] == write_id)
    names = list(p.columns)
    return version_from_row(namespace, row, rules.row_value({n: row[n] for n in names}, names), is_unchanged=False)


# -- history and change feed ---------------------------------------------------------


def _values_first(table: pa.Table) -> pa.Table:
    names = rules.value_columns(table)
    return table.select(names + [n for n in table.column_names if n not in names])


def history(ctx: StoreContext, namespace: str, key: Any, *, version: int | None = None) -> pa.Table:
    """See :meth:`koru_core.Store.history`."""
    key_text = key_of(ctx, namespace, key)
    p = plan_history(ctx, namespace, key=key_text, version=version)
    table = execute.versions(ctx, p, pruned=bool(p.pruned))
    ordered = rules.with_valid_to(table)
    if p.pruned:
        ordered = ordered.select([c for c in ordered.column_names if c != "_pruned"] + ["_pruned"])
    return _values_first(execute.to_api(ordered))


def versions(ctx: StoreContext, namespace: str, *, version: int | None) -> pa.Table:
    """See :meth:`koru_core.Store.versions`."""
    check_namespace(namespace)
    p = plan_versions(ctx, namespace, version=version)
    return _values_first(execute.to_api(rules.with_valid_to(execute.versions(ctx, p))))


def changes(ctx: StoreContext, namespace: str, *, since: Any, until: Any) -> pa.Table:
    """See :meth:`koru_core.Store.changes`."""
    check_namespace(namespace)
    head = ctx.catalog.head()[0]
    kind, lo, hi = plan_window(namespace, since, until, head)
    p = plan_versions(ctx, namespace, version=(hi or None) if kind == "commit" and hi else None)
    all_versions = execute.versions(ctx, p)
    column = all_versions["_commit"] if kind == "commit" else all_versions["_valid_from"].cast(pa.int64())
    mask = pa.array([True] * all_versions.num_rows, pa.bool_())
    if lo is not None:
        mask = pc.and_(mask, pc.greater(column, lo))
    if hi is not None:
        mask = pc.and_(mask, pc.less_equal(column, hi))
    mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    return execute.to_api(rules.change_feed(all_versions, in_window=mask))


# -- writes' results and the commit log ----------------------------------------------


def version_written(
    ctx: StoreContext, namespace: str, key: str, result: CommitResult, prepared: list[Prepared],
    valid_from: datetime | None, value: Any, *, record: CommitRecord | None = None,
) -> Version:
    """The :class:`Version` a ``put``/``delete`` wrote, or the version it equalled (``is_unchanged``).
    ``record``: the commit's catalog record, when the writer returned it (spares a query)."""
    versions_ = prepared[0].versions if prepared else None
    if result.commit is not None and versions_ is not None and versions_.num_rows:
        single = prepared[0].row
        if single is None:
            row = execute.row_to_api(versions_, _VERSION_ROW)
        else:  # the version's Python values, as reads show them
            row = execute.ids_as_hex({c: single[c] for c in _VERSION_ROW})
            valid = single["_valid_from"]
            row["_valid_from"] = exact(valid) if valid % 1000 else from_ns(valid)
        if record is None or record.commit != result.commit:
            record = ctx.catalog.commits(since=result.commit - 1, until=result.commit)[0]
        row.update({"_commit": record.commit, "_system_from": from_ns(record.system_time)})
        return version_from_row(namespace, row, value, is_unchanged=False)
    at = valid_from
    p = plan_as_of(ctx, namespace, at=at, key=key)
    state = execute.to_api(execute.as_of(ctx, p))
    hist = history(ctx, namespace, key)
    rows = [r for r in hist.to_pylist() if r["_write_id"] in set(state["_write_id"].to_pylist())]
    if not rows:  # the key's state there is a tombstone: describe the latest version before the point
        t = p.valid_at or now_ns()
        rows = [max((r for r in hist.to_pylist() if to_ns(r["_valid_from"], what="v") <= t),
                    key=lambda r: (r["_valid_from"], r["_commit"]))]
    return version_from_row(namespace, rows[0], None if rows[0]["_deleted"] else value, is_unchanged=True)


def check_commit(value: object, name: str) -> int:
    """Return ``value`` if it is a commit number ≥ 0 (bools refused).

    Raises:
        InvalidInputError: otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{name} must be a commit number (an int >= 0), got {value!r}"
        raise InvalidInputError(msg)
    return value


def commits(ctx: StoreContext, *, namespace: str | None, metadata: dict[str, str], since: int = 0) -> list[Commit]:
    """See :meth:`koru_core.Store.commits`."""
    return [
        _commit(c) for c in ctx.catalog.commits(since=since)
        if (namespace is None or namespace in c.namespaces) and all(c.metadata.get(k) == v for k, v in metadata.items())
    ]


def _commit(c: CommitRecord) -> Commit:
    return Commit(
        commit=c.commit, system_time=from_ns(c.system_time), actor=c.actor, run_id=c.run_id,
        namespaces=c.namespaces, written=c.written, unchanged=c.unchanged, deleted=c.deleted,
        metadata=dict(c.metadata), hash=c.hash.hex(),
    )


def commit_at(ctx: StoreContext, system_time: datetime) -> int:
    """See :meth:`koru_core.Store.commit_at`."""
    return ctx.catalog.commit_at(to_ns(system_time, what="system_time"))
