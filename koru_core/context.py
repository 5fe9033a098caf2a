"""What every part of an open store shares, handed over explicitly (never the whole ``Store``).

A :class:`StoreContext` is made by :func:`koru_core.open` and passed to the write
path, the read planner and executor, and maintenance. It owns no logic of its own
beyond reading a retention description; each cache it holds belongs to this store
and is emptied by :meth:`StoreContext.close`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

if TYPE_CHECKING:
    from koru_core._lock import WriteLock
    from koru_core.catalog.base import Catalog
    from koru_core.catalog.entries import FileEntry
    from koru_core.hot.pending import PendingCache
    from koru_core.hot.tier import HotTier
    from koru_core.lifecycle.catalog_leases import CatalogLeases
    from koru_core.lifecycle.leases import Leases
    from koru_core.storage import Storage
    from koru_core.storage.parquet import FileCache

__all__ = ["StoreContext"]

RETENTION_KEY = b"koru.retention"
"""Parquet key-value metadata of a deep-tier file: the retention that pruned its versions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreContext:
    """The parts of one open store.

    Attributes:
        root: The store folder (``Path``), or the ``s3://`` URL of a store on object storage (str).
        storage: Where data files are written and read.
        catalog: The store's catalog.
        files: Verified files and decoded row groups.
        pending: Decoded pending versions.
        hot: Current-state indexes and recently written values.
        leases: Reader leases (what vacuum must keep): lease files, or catalog rows on a shared store.
        lock: The write lock (one writer at a time; on a shared store, this process's threads only).
        memory_limit: Bytes the caches may hold together.
        auto_maintain: Consolidate and vacuum after commits (see ``lifecycle/auto.py``).
    """

    root: Path | str
    storage: Storage
    catalog: Catalog
    files: FileCache
    pending: PendingCache
    hot: HotTier
    leases: Leases | CatalogLeases
    lock: WriteLock
    memory_limit: int
    auto_maintain: bool = True
    read_only: bool = False
    vector: dict[str, object] = field(default_factory=dict)
    """Loaded vector indexes and search candidates of this store (:mod:`koru_core.vector`)."""
    overlay: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Per namespace, its overlay as of a commit: (commit, commits, versions, state rows),
    kept by :mod:`koru_core.lifecycle.auto` so a small commit needs no catalog read to decide."""
    _retention: dict[str, str] = field(default_factory=dict)

    @property
    def content_format(self) -> int:
        """The store's content-id format (1 or 2)."""
        return self.catalog.content_format

    def retention_of(self, entry: FileEntry) -> str:
        """The description of the retention run that wrote a deep-tier file."""
        text = self._retention.get(entry.path)
        if text is None:
            try:
                meta = pq.read_metadata(self.storage.source(entry.path)).metadata or {}
                text = meta.get(RETENTION_KEY, b"retention policy unknown").decode()
            except OSError:
                text = "retention policy unknown"
            self._retention[entry.path] = text
        return text

    def close(self) -> None:
        """Empty every cache of this store."""
        self.files.clear()
        self.pending.clear()
        self.hot.clear()
        self.vector.clear()
        self.overlay.clear()
