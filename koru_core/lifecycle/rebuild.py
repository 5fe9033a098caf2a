"""Writing a whole new store from every one of its versions: restoring a bundle, upgrading a store.

:func:`build_store` is what :func:`koru_core.restore` (from a snapshot bundle,
:mod:`koru_core.lifecycle.snapshot`) and ``koru upgrade`` (from a store of on-disk
format 1, :mod:`koru_core.lifecycle.upgrade`) share: given each namespace's versions,
skip records and pruned skeletons, the commit log, tags and cursors, it creates the
catalog, writes each namespace's cold layout at the last commit
(:func:`koru_core.lifecycle.consolidate.write_layout`: state and history files, every
interval closed) and the deep-tier skeletons, then records everything in one catalog
transaction (:meth:`koru_core.catalog.base.Catalog.bootstrap`). Until that transaction
commits the folder holds no commit; the callers delete it on any failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from koru_core.catalog.entries import CommitRecord, FileEntry, NamespaceInfo
from koru_core.layout import COLD_SCHEMA, SKIP_SCHEMA

__all__ = ["NamespaceContent", "build_store"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceContent:
    """Everything a new store holds of one namespace.

    Attributes:
        name: The namespace.
        schema: Its value schema.
        key_columns: Its key columns (empty when none are known).
        created_commit, schema_commit: The commits that created it and last changed its schema.
        versions: Every retained version: :data:`~koru_core.layout.COLD_SCHEMA` columns
            (binary ids; ``_valid_to`` and ``_valid_to_commit`` are computed) and the value
            columns; None for none.
        skips: Its skip records (:data:`~koru_core.layout.SKIP_SCHEMA`, ``_commit`` set), or None.
        pruned: Skeletons of versions retention dropped (``COLD_SCHEMA`` columns, intervals
            set), or None.
        retention: The description of the retention that pruned them.
    """

    name: str
    schema: pa.Schema
    key_columns: tuple[str, ...] = ()
    created_commit: int
    schema_commit: int
    versions: pa.Table | None = None
    skips: pa.Table | None = None
    pruned: pa.Table | None = None
    retention: str = ""


def build_store(
    root: Path, *, content_format: int, namespaces: Sequence[NamespaceContent], commits: Sequence[CommitRecord],
    tags: Mapping[str, int], cursors: Mapping[str, int] | None = None, meta: Mapping[str, str] | None = None,
) -> None:
    """Create a store in ``root`` (an existing empty folder) holding exactly what is given.

    Args:
        root: The new store's folder.
        content_format: Its content-id format (:mod:`koru_core.hashing`), recorded in meta.
        namespaces: Each namespace's content.
        commits: The whole commit log, oldest first (hashes as given: nothing is rechained).
        tags, cursors: Name → commit.
        meta: Further catalog meta entries (e.g. ``format1_commits``).

    Raises:
        KoruError: the catalog refuses the content; the caller removes ``root``.
    """
    from koru_core.catalog.sqlite import SQLiteCatalog
    from koru_core.lifecycle.consolidate import write_layout
    from koru_core.lifecycle.distill import _write_skeleton
    from koru_core.opening import close_context, open_context

    head = commits[-1].commit if commits else 0
    SQLiteCatalog(root / "catalog.sqlite", create=True, content_format=content_format).close()
    ctx = open_context(root, durability="full", lock_timeout=10.0, auto_consolidate=False,
                       memory_limit=256 * 1024 * 1024, create=False, read_only=False)
    try:
        files: list[FileEntry] = []
        infos = []
        last_write = 0
        for ns in namespaces:
            versions = ns.versions if ns.versions is not None else pa.schema([*COLD_SCHEMA, *ns.schema]).empty_table()
            skips = ns.skips if ns.skips is not None else SKIP_SCHEMA.empty_table()
            files += write_layout(ctx, ns.name, ns.schema, versions, skips.cast(SKIP_SCHEMA), head)
            if ns.pruned is not None and ns.pruned.num_rows:
                files.append(_write_skeleton(ctx, ns.name, head, ns.pruned.select(COLD_SCHEMA.names), ns.retention))
            infos.append(NamespaceInfo(name=ns.name, schema=ns.schema, key_columns=ns.key_columns,
                                       created_commit=ns.created_commit, schema_commit=ns.schema_commit,
                                       cold_commit=head))
            for t in (versions, ns.pruned):
                if t is not None and t.num_rows:
                    last_write = max(last_write, int.from_bytes(pc.max(t["_write_id"]).as_py(), "big"))
        ctx.catalog.bootstrap(commits=commits, namespaces=infos, files=files, tags=dict(tags),
                              next_write_id=last_write + 1, cursors=dict(cursors or {}), meta=dict(meta or {}))
    finally:
        close_context(ctx)
