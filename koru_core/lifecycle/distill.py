"""Distillation: dropping the versions no retention policy keeps, keeping their skeleton.

For each namespace, distillation first consolidates it (so every version lives in
cold files), then decides per version with the namespace's policies (:mod:`.policies`, composed by union). A version is
always kept when it is its key's current version (largest (``_valid_from``,
``_commit``) with ``_valid_from`` ≤ now, tombstones included), when its valid
time is in the future, when a tag pins its commit (:meth:`Store.tag`; a pin
keeps the commit's versions and each key's version current at it), or when it
is not yet consolidated (written during the run).

Dropped versions leave the history files (the files holding any are rewritten
without them) and their *causal skeleton* — every system column (key, valid
and system times, commit, write id, previous write id, content id, tombstone
flag, provenance), no values — goes to one deep-tier file per run::

    cold/…/deep-<head commit:09d>-<8 hex>.parquet   (tier deep, kind skeleton)

with the run's policies in its Parquet metadata (``koru.retention``). Deep files are
never read as versions, so ``as_of``, DuckDB and Polars read retained versions only.
The catalog records the span the dropped versions covered (valid times
``min_valid`` … ``max_valid_to``, commits from ``min_commit``): an as-of read inside
it raises :class:`~koru_core.errors.PrunedError` naming the retention (the read
planner checks it for every engine), so no answer is silently incomplete.
``history()`` adds the skeletons back, with a trailing bool column ``_pruned``.
``verify()`` still checks the commit hash chain over them: skeletons keep every
chained column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from koru_core._time import now_ns
from koru_core.catalog.entries import FileEntry
from koru_core.context import RETENTION_KEY
from koru_core.errors import InvalidInputError
from koru_core.layout import COLD_SCHEMA, cold_name
from koru_core.lifecycle.consolidate import COLD_ROW_GROUP_ROWS, _entry, _write, consolidate_namespace
from koru_core.lifecycle.policies import KeepAll, Policy, PolicyContext, pinned
from koru_core.schema import conform

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["Policies", "distill", "resolve_policies"]

Policies = Policy | Sequence[Policy] | Mapping[str, Policy | Sequence[Policy]] | None
"""One policy or a list for every namespace, or a dict namespace → policy or list (others: keep all)."""

_DECIDE = ["_key", "_valid_from", "_valid_to", "_system_from", "_commit", "_write_id"]


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


def distill(ctx: StoreContext, *, policies: Policies, namespace: str | None = None, now: int | None = None) -> list[str]:
    """Apply ``policies`` to one namespace (or all); returns the namespaces that dropped versions."""
    names = [namespace] if namespace is not None else ctx.catalog.namespaces()
    chosen = resolve_policies(policies, ctx.catalog.namespaces() if namespace is None else names)
    acted = []
    token = ctx.leases.acquire()
    try:
        for ns in names:
            consolidate_namespace(ctx, ns)
            with ctx.lock:  # nothing may be committed or consolidated between the decision and the swap
                consolidate_namespace(ctx, ns)
                if _distill_namespace(ctx, ns, chosen[ns], now or now_ns()):
                    acted.append(ns)
    finally:
        ctx.leases.release(token)
    return acted


def _decide(versions: pa.Table, policies: list[Policy], context: PolicyContext, head: int) -> np.ndarray:
    """bool per version (sorted, with ``_valid_to``): kept."""
    keep = pinned(versions, commit=head, now=context.now)  # current versions (and the last commit's)
    keep |= versions["_valid_from"].cast(pa.int64()).to_numpy() > context.now
    keep |= versions["__state"].to_numpy()
    for commit in set(context.tags.values()):
        keep |= pinned(versions, commit=commit, now=context.now)
    for policy in policies:
        if keep.all():
            break
        keep |= np.asarray(policy.keep(versions, context), dtype=bool)
    return keep


def _distill_namespace(ctx: StoreContext, namespace: str, policies: list[Policy], now: int) -> bool:
    with ctx.catalog.snapshot():
        head = ctx.catalog.head()[0]
        info = ctx.catalog.namespace(namespace)
        files = [e for e in ctx.catalog.files(namespace) if e.tier == "cold" and e.kind in ("state", "history")]
        tags = ctx.catalog.tags()
    if info is None or not files:
        return False
    schema = pa.schema([*COLD_SCHEMA, *info.schema])
    parts = []
    for i, e in enumerate(files):
        t = ctx.files.read(e, _DECIDE)
        parts.append(t.append_column("__file", pa.repeat(pa.scalar(i, pa.int64()), t.num_rows))
                      .append_column("__state", pa.repeat(pa.scalar(e.kind == "state"), t.num_rows)))
    versions = pa.concat_tables(parts).sort_by([("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
    keep = _decide(versions, policies, PolicyContext(now=now, tags=tags), head)
    if keep.all():
        return False
    dropped = versions.filter(pa.array(~keep))
    removed: list[FileEntry] = []
    added: list[FileEntry] = []
    skeletons = []
    try:
        for i in pc.unique(dropped["__file"]).to_pylist():
            entry = files[i]
            full = conform(ctx.files.read(entry, schema.names), schema)
            gone = pc.is_in(full["_write_id"], value_set=dropped["_write_id"].combine_chunks())
            skeletons.append(full.filter(gone).select(COLD_SCHEMA.names))
            rest = full.filter(pc.invert(gone))
            removed.append(entry)
            if rest.num_rows:  # the same kind, in the same order (a filter keeps it)
                added.append(_write(ctx, namespace, entry.kind, head, rest))
        skeleton = pa.concat_tables(skeletons).sort_by([("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
        added.append(_write_skeleton(ctx, namespace, head, skeleton, ", ".join(map(repr, policies))))
        ok = ctx.catalog.swap_files(namespace, remove=removed, add=added, retired_at=None)
    except BaseException:
        for e in added:
            ctx.storage.delete(e.path)
        raise
    if not ok:
        for e in added:
            ctx.storage.delete(e.path)
    return ok


def _write_skeleton(ctx: StoreContext, namespace: str, head: int, skeleton: pa.Table, retention: str) -> FileEntry:
    """Write a deep-tier file of skeletons, ``retention`` (the policies' description) in its metadata."""
    rel = cold_name(namespace, "deep", head).replace("cold/", "deep/", 1)
    table = skeleton.replace_schema_metadata({RETENTION_KEY: retention.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=COLD_ROW_GROUP_ROWS, write_page_checksum=True)
    data = sink.getvalue()
    ctx.storage.write(rel, memoryview(data))
    from blake3 import blake3

    e = _entry(namespace, "skeleton", rel, table, data.size, blake3(data).digest())
    import dataclasses

    return dataclasses.replace(e, tier="deep")
