"""Provenance graphs: from a version, follow ``_parents`` across namespaces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._hex import to_hex
from koru_core.errors import KeyNotFoundError
from koru_core.model import TIMESTAMP, Lineage
from koru_core.read import execute
from koru_core.read.plan import plan_versions

if TYPE_CHECKING:
    from koru_core.store import Store

__all__ = ["NODE_SCHEMA", "lineage", "lookup_write_ids"]

NODE_SCHEMA = pa.schema(
    [
        ("_write_id", pa.string()), ("namespace", pa.string()), ("_key", pa.string()),
        ("_commit", pa.int64()), ("_valid_from", TIMESTAMP), ("_system_from", TIMESTAMP),
        ("_content_id", pa.string()), ("_actor", pa.string()), ("_run_id", pa.string()),
        ("depth", pa.int64()),
    ]
)
EDGE_SCHEMA = pa.schema([("child", pa.string()), ("parent", pa.string()), ("kind", pa.string())])
_COLUMNS = ["_write_id", "_key", "_commit", "_valid_from", "_system_from", "_content_id", "_actor", "_run_id", "_parents"]


def lookup_write_ids(store: Store, write_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Find versions by write id, in any namespace.

    The catalog records the write-id range of every commit, so only the
    namespaces that commit wrote are searched, and only files holding that
    commit. Ids that match nothing (or are not write ids) are left out.

    Returns:
        write id → row dict with ``namespace`` and the columns of :data:`NODE_SCHEMA`
        plus ``_parents``.
    """
    ctx = store._ctx
    by_commit: dict[int, list[str]] = {}
    for wid in write_ids:
        try:
            value = int(wid, 16) if len(wid) == 16 else None
        except ValueError:
            value = None
        if value is not None and value >= 2**63:
            value = None  # not of the write-id sequence
        commit = None if value is None else ctx.catalog.commit_of_write_id(value)
        if commit is not None:
            by_commit.setdefault(commit, []).append(wid)
    found: dict[str, dict[str, Any]] = {}
    for commit, ids in by_commit.items():
        record = ctx.catalog.commits(since=commit - 1, until=commit)
        for namespace in record[0].namespaces if record else ():
            plan = plan_versions(ctx, namespace)
            for src in plan.candidates:
                e = src.entry
                if e is not None and not e.min_commit <= commit <= e.max_commit:
                    continue
                t = execute.read_source(ctx, plan, src, _COLUMNS)
                t = t.filter(pc.equal(t["_commit"], commit))
                t = t.set_column(0, "_write_id", to_hex(t["_write_id"]))
                t = t.set_column(5, "_content_id", to_hex(t["_content_id"]))
                for row in t.filter(pc.is_in(t["_write_id"], value_set=pa.array(ids))).to_pylist():
                    found[row["_write_id"]] = {"namespace": namespace, **row}
    return found


def lineage(store: Store, namespace: str, key: str, *, max_depth: int | None = None) -> Lineage:
    """Return the ancestors of ``key``'s latest written version (see :meth:`Store.lineage`).

    Returns:
        :class:`~koru_core.model.Lineage`: ``nodes`` (:data:`NODE_SCHEMA`; a
        parent that no stored version matches appears with null namespace) and
        ``edges`` (``child``, ``parent``, ``kind`` = ``"parent"``).

    Raises:
        KeyNotFoundError: the key has no versions.
    """
    history = store.history(namespace, key)
    if history.num_rows == 0:
        msg = f"namespace {namespace!r}: no key {key!r}"
        raise KeyNotFoundError(msg)
    latest = history.take([pc.index(history["_write_id"], pc.max(history["_write_id"])).as_py()])
    start = {"namespace": namespace, **latest.select(_COLUMNS).to_pylist()[0]}
    nodes = {start["_write_id"]: {**start, "depth": 0}}
    edges: list[dict[str, str]] = []
    frontier = [start]
    depth = 0
    while frontier and (max_depth is None or depth < max_depth):
        depth += 1
        wanted: list[str] = []
        for node in frontier:
            for parent in node.get("_parents") or ():
                edges.append({"child": node["_write_id"], "parent": parent, "kind": "parent"})
                if parent not in nodes and parent not in wanted:
                    wanted.append(parent)
        found = lookup_write_ids(store, wanted)
        frontier = []
        for wid in wanted:
            row = found.get(wid, {"_write_id": wid, "namespace": None})
            nodes[wid] = {**row, "depth": depth}
            if wid in found:
                frontier.append(row)
    node_rows = [{f: n.get(f) for f in NODE_SCHEMA.names} for n in nodes.values()]
    return Lineage(
        nodes=pa.Table.from_pylist(node_rows, schema=NODE_SCHEMA),
        edges=pa.Table.from_pylist(edges, schema=EDGE_SCHEMA),
        root=start["_write_id"],
    )
