"""Vector search over versioned embeddings, with time travel (issue 7).

An embedding is a value column of type ``fixed_size_list<float32>[d]`` (a
``list<float>`` column whose rows all have the same length works too). The
public entry point is :meth:`koru_core.Store.search`, which calls
:func:`search` here; :func:`build_index` (re)builds a namespace's HNSW index
with chosen ``m`` and ``ef_construction``.

hnswlib and numpy are imported only when a search runs (the ``koru-lake[vector]``
extra), so ``import koru_core`` stays free of them.
"""

from __future__ import annotations

from koru_core.vector.index import IndexInfo, build_index
from koru_core.vector.nearest import EXACT_BELOW, EXACT_FRACTION, METRICS, search

__all__ = ["EXACT_BELOW", "EXACT_FRACTION", "METRICS", "IndexInfo", "build_index", "search"]
