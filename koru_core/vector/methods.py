"""The vector search method of :class:`~koru_core.store.Store`, kept beside the
vector code so the store facade stays small; :class:`Store` inherits it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from koru_core.store import Store

__all__ = ["VectorMethods"]


class VectorMethods:
    """Nearest-neighbour search over a namespace's vectors (mixed into :class:`Store`)."""

    def search(
        self, namespace: str, query: Any, *, k: int = 10, column: str | None = None, metric: str = "cosine",
        at: datetime | None = None, version: int | None = None, where: Any = None, ef: int | None = None,
    ) -> pa.Table:
        """Return the ``k`` records of the as-of state whose vectors are nearest to ``query``.

        Exact over small states; over large ones an HNSW index (hnswlib, kept in
        ``<store>/vector/``, built and brought up to date here) walked with a filter
        to the as-of state. The rule and distances: :mod:`koru_core.vector.nearest`.

        Args:
            namespace: Existing namespace.
            query: The query vector (sequence of numbers, numpy or Arrow), finite, of the column's dimension.
            k: How many records to return (≥ 1).
            column: The vector column (``fixed_size_list<float32>[d]`` or equal-length
                ``list<float>``); default the namespace's only one.
            metric: ``"cosine"`` (1 - cos), ``"l2"`` (squared Euclidean) or ``"ip"`` (1 - dot).
            at: Valid time (tz-aware), as in :meth:`as_of`. Defaults to now.
            version: Commit number bounding system time, as in :meth:`as_of`.
            where: A filter on value columns: a ``pyarrow.compute.Expression``, or a
                dict of column → value (equality, None meaning null, all ANDed).
            ef: HNSW query beam width (default 800, at least ``k``; lower is faster, less exact).

        Returns:
            Nearest first (ties by key): ``_key`` (string), ``_distance`` (float64),
            the value columns, then ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``.

        Raises:
            ImportError: hnswlib or numpy is missing (``pip install 'koru-lake[vector]'``).
            NamespaceNotFoundError: if ``namespace`` was never written.
            InvalidInputError: dimension mismatch, NaN in the query, unknown column
                or metric, ``k`` < 1, a bad ``where``, ``at`` or ``version``.

        Example:
            >>> import pyarrow as pa
            >>> vectors = pa.array([[1, 0], [0, 1], [1, 1]], pa.list_(pa.float32(), 2))
            >>> _ = store.upsert("docs", pa.table({"id": ["a", "b", "c"], "embedding": vectors}), key="id")
            >>> store.search("docs", [0.9, 0.1], k=2)["_key"].to_pylist()
            ['a', 'c']
        """
        from koru_core.vector import search

        return search(self._store(), namespace, query, k=k, column=column, metric=metric, at=at, version=version,
                      where=where, ef=ef)

    def _store(self) -> Store:
        return self  # type: ignore[return-value]
