"""The hot tier of one store: current-state indexes and recently written values, in memory.

DESIGN.md's hot tier is memory. It holds, per namespace, a
:class:`~koru_core.hot.index.HeadIndex` (each key's last version, for the write
path's unchanged rule and chaining) and the current values of recently written or
read keys (so ``get`` of a current value reads nothing). Both are bounded:
:meth:`HotTier.enforce` keeps them under their share of ``memory_limit`` by emptying
the value cache first, then dropping the least recently used indexes (rebuilt from
the files when next needed). Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from koru_core.hot.index import HeadIndex

__all__ = ["CACHE_ENTRY_BYTES", "TOMBSTONE", "HotTier"]

CACHE_ENTRY_BYTES = 512
"""Estimated memory of one cached value (dict, key and tuple overheads)."""

TOMBSTONE = object()
"""What the value cache holds for a key whose current version is a tombstone."""


class HotTier:
    """Indexes and cached values of one store (see the module docstring).

    Args:
        limit: Bytes the indexes and cached values may hold together.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self._indexes: OrderedDict[str, HeadIndex] = OrderedDict()
        self._values: dict[str, dict[str, Any]] = {}
        self._values_commit = -1
        self.hits: dict[str, list[int]] = {}
        self._lock = threading.RLock()

    # -- indexes ----------------------------------------------------------------

    def index(self, namespace: str) -> HeadIndex | None:
        """Return the namespace's index (most recently used now), or None if not built."""
        with self._lock:
            index = self._indexes.get(namespace)
            if index is not None:
                self._indexes.move_to_end(namespace)
            return index

    def set_index(self, namespace: str, index: HeadIndex) -> None:
        """Keep ``index`` as the namespace's index."""
        with self._lock:
            self._indexes[namespace] = index
            self._indexes.move_to_end(namespace)

    def drop_index(self, namespace: str) -> None:
        """Forget the namespace's index (it is rebuilt when next needed)."""
        with self._lock:
            self._indexes.pop(namespace, None)

    # -- values -------------------------------------------------------------------

    def cached(self, namespace: str, key: str, *, head: int) -> Any:
        """Return the cached current value of a key (:data:`TOMBSTONE` for a deleted one),
        or None when unknown or when the cache is older than commit ``head``."""
        with self._lock:
            counts = self.hits.setdefault(namespace, [0, 0])
            value = self._values.get(namespace, {}).get(key) if head == self._values_commit else None
            counts[value is None] += 1
            return value

    def remember(self, namespace: str, key: str, value: Any, *, commit: int) -> None:
        """Cache a key's current value, read or written at the store's last commit ``commit``."""
        with self._lock:
            if commit != self._values_commit:
                if commit < self._values_commit:
                    return
                self._values.clear()
                self._values_commit = commit
            self._values.setdefault(namespace, {})[key] = value
        self.enforce()

    def advance(self, commit: int, *, keep: dict[str, dict[str, Any]] | None = None, forget: set[str] = frozenset()) -> None:
        """Move the value cache to ``commit`` (a commit this process made): values of
        ``forget`` namespaces are dropped, ``keep`` values are set."""
        with self._lock:
            if self._values_commit != commit - 1:
                self._values.clear()
            self._values_commit = commit
            for ns in forget:
                self._values.pop(ns, None)
            for ns, values in (keep or {}).items():
                slot = self._values.setdefault(ns, {})
                for k, v in values.items():
                    if v is None:
                        slot.pop(k, None)
                    else:
                        slot[k] = v
        self.enforce()

    # -- memory -------------------------------------------------------------------

    def memory_bytes(self) -> dict[str, int]:
        """Estimated bytes per namespace: its index and its cached values."""
        with self._lock:
            out = {ns: index.nbytes() for ns, index in self._indexes.items()}
            for ns, values in self._values.items():
                out[ns] = out.get(ns, 0) + CACHE_ENTRY_BYTES * len(values)
            return out

    def enforce(self) -> None:
        """Keep indexes and values under ``limit`` (values go first, then LRU indexes)."""
        with self._lock:
            indexes = sum(i.nbytes() for i in self._indexes.values())
            if indexes + CACHE_ENTRY_BYTES * sum(map(len, self._values.values())) <= self.limit:
                return
            self._values.clear()
            while len(self._indexes) > 1 and indexes > self.limit:
                _, dropped = self._indexes.popitem(last=False)
                indexes -= dropped.nbytes()

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._indexes.clear()
            self._values.clear()
            self._values_commit = -1
