"""Distillation: dropping the versions no retention policy keeps, keeping their skeleton.

For each namespace, distillation first consolidates it (so every full version
but the newest lives in cold files), then decides per version with the
namespace's policies (:mod:`.policies`, composed by union). A version is
always kept when it is its key's current version (largest (``_valid_from``,
``_commit``) with ``_valid_from`` ≤ now, tombstones included), when its valid
time is in the future, when a tag pins its commit (:meth:`Store.tag`; a pin
keeps the commit's versions and each key's version current at it), or when it
is not yet consolidated (written during the run).

Dropped versions leave the cold files (the files holding any are rewritten
without them) and their *causal skeleton* — every system column (key, valid
and system times, commit, write id, previous write id, content id, tombstone
flag, provenance), no values — goes to one deep-tier file per run::

    deep/namespace=<ns>/snapshot-<head commit:09d>-<8 hex>.parquet

Deep files are not in :attr:`ScanPlan.files`, so ``as_of``, DuckDB and Polars
read retained versions only, and ``as_of`` at any point whose versions are
retained is unchanged. ``history()`` adds the skeletons back, with a trailing
bool column ``_pruned`` (true for them; their value columns are null), once a
namespace has been distilled. ``verify()`` still checks the commit hash chain
over them: it covers write ids and content ids, which skeletons keep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._lock import WriteLock
from koru_core._parquet import read_files
from koru_core._time import now_ns
from koru_core.catalog import Catalog, FileEntry
from koru_core.errors import InvalidInputError
from koru_core.lifecycle._swap import part_name, swap, totals, write_part
from koru_core.lifecycle.consolidate import COLD_ROW_GROUP_ROWS, consolidate_namespace
from koru_core.lifecycle.leases import Leases
from koru_core.lifecycle.policies import KeepAll, Policy, PolicyContext, pinned
from koru_core.model import SYSTEM_COLUMNS, SYSTEM_SCHEMA, MaintenanceResult
from koru_core.read import with_valid_to
from koru_core.scan import stored_schema
from koru_core.schema import conform

__all__ = ["Policies", "distill", "resolve_policies"]

Policies = Policy | Sequence[Policy] | Mapping[str, Policy | Sequence[Policy]] | None
"""One policy or a list for every namespace, or a dict namespace → policy or list (others: keep all)."""

_DECIDE = ["_key", "_valid_from", "_system_from", "_commit", "_write_id"]
_ATTEMPTS = 3


def _as_list(value: Any, where: str) -> list[Policy]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for p in items:
        if not callable(getattr(p, "keep", None)):
            msg = f"{where}: expected a retention policy (KeepAll, KeepLast, KeepFor, Thinning, Pin), got {p!r}"
            raise InvalidInputError(msg)
    return items


def resolve_policies(policies: Policies, namespaces: Sequence[str]) -> dict[str, list[Policy]]:
    """Return the policy list of each namespace.

    Raises:
        InvalidInputError: a value is not a policy, or the dict names an unknown namespace.
    """
    if policies is None:
        return {ns: [KeepAll()] for ns in namespaces}
    if isinstance(policies, Mapping):
        unknown = sorted(set(policies) - set(namespaces))
        if unknown:
            msg = f"policies name unknown namespaces {unknown} (namespaces: {sorted(namespaces)})"
            raise InvalidInputError(msg)
        return {ns: _as_list(policies[ns], f"namespace {ns!r}") if ns in policies else [KeepAll()] for ns in namespaces}
    items = _as_list(policies, "policies")
    return {ns: items for ns in namespaces}


def distill(
    root: Path, catalog: Catalog, *, lock: WriteLock, leases: Leases, policies: Policies,
    namespace: str | None = None, now: int | None = None,
) -> MaintenanceResult:
    """Apply ``policies`` to one namespace (or all) and report what changed."""
    names = [namespace] if namespace is not None else catalog.namespaces()
    chosen = resolve_policies(policies, catalog.namespaces() if namespace is None else names)
    before = totals(catalog)
    acted = []
    token = leases.acquire()
    try:
        for ns in names:
            consolidate_namespace(root, catalog, lock=lock, namespace=ns)
            for attempt in range(_ATTEMPTS):
                with lock if attempt == _ATTEMPTS - 1 else contextlib.nullcontext():
                    outcome = _attempt(root, catalog, lock=lock, namespace=ns, policies=chosen[ns], now=now or now_ns())
                if outcome is not None:
                    break
            if outcome:
                acted.append(ns)
    finally:
        leases.release(token)
    after = totals(catalog)
    return before.result("distill", after, acted)


def _decide(versions: pa.Table, policies: list[Policy], context: PolicyContext, head: int) -> np.ndarray:
    """bool per version (sorted, with ``_valid_to``): kept."""
    keep = pinned(versions, commit=head, now=context.now)  # current versions (and the last commit's)
    keep |= versions["_valid_from"].cast(pa.int64()).to_numpy() > context.now
    keep |= versions["__file"].to_numpy() < 0
    for commit in set(context.tags.values()):
        keep |= pinned(versions, commit=commit, now=context.now)
    for policy in policies:
        if keep.all():
            break
        keep |= np.asarray(policy.keep(versions, context), dtype=bool)
    return keep


def _attempt(
    root: Path, catalog: Catalog, *, lock: WriteLock, namespace: str, policies: list[Policy], now: int,
) -> bool | None:
    with catalog.read() as con:
        head = catalog.head()[0]
        entries = [e for e in catalog.files(namespace) if e.tier != "deep"]
        value_schema = catalog.schema(namespace)
        tags = dict(con.execute("SELECT name, commit_number FROM tags").fetchall())
        pending = catalog.pending(namespace)
    if value_schema is None or not any(e.tier == "cold" for e in entries):
        return False
    schema = stored_schema(value_schema)
    parts = [
        _tagged(read_files(root, [e], schema=schema, columns=_DECIDE), i if e.tier == "cold" else -1)
        for i, e in enumerate(entries)
    ]
    parts += [_tagged(conform(t, schema).select(_DECIDE), -1) for t in pending]
    versions = with_valid_to(pa.concat_tables(parts))
    keep = _decide(versions, policies, PolicyContext(now=now, tags=tags), head)
    if keep.all():
        return False
    dropped = versions.filter(pa.array(~keep))
    removed: list[FileEntry] = []
    added: list[FileEntry] = []
    skeletons = []
    for i in pc.unique(dropped["__file"]).to_pylist():
        entry = entries[i]
        full = read_files(root, [entry], schema=_with_valid_to(schema))  # cold files store _valid_to
        gone = pc.is_in(full["_write_id"], value_set=dropped["_write_id"].combine_chunks())
        skeletons.append(full.filter(gone).select(list(SYSTEM_COLUMNS)))
        rest = full.filter(pc.invert(gone))
        removed.append(entry)
        if rest.num_rows:
            folder = entry.path.rsplit("/", 1)[0]
            added.append(write_part(root, rest, namespace=namespace, tier="cold",
                                    rel=f"{folder}/{part_name(head)}", row_group_size=COLD_ROW_GROUP_ROWS))
    skeleton = pa.concat_tables(skeletons).sort_by([("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
    rel = f"deep/namespace={namespace}/snapshot-{part_name(head).removeprefix('part-')}"
    added.append(write_part(root, skeleton, namespace=namespace, tier="deep", rel=rel, row_group_size=COLD_ROW_GROUP_ROWS))
    with lock:
        ok = swap(catalog, namespace=namespace, remove=removed, add=added)
    if not ok:
        for e in added:
            (root / e.path).unlink(missing_ok=True)
        return None
    return True


def _tagged(table: pa.Table, file_index: int) -> pa.Table:
    return table.append_column("__file", pa.repeat(pa.scalar(file_index, pa.int64()), table.num_rows))


def _with_valid_to(schema: pa.Schema) -> pa.Schema:
    return schema.insert(schema.get_field_index("_valid_from") + 1, SYSTEM_SCHEMA.field("_valid_to"))
