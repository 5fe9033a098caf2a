"""Nearest-neighbour search over the as-of state of a namespace: exact or HNSW.

The answer is defined by the exact search: take the as-of state at (``at``,
``version``) (:meth:`koru_core.Store.as_of`, i.e. the as-of rule of
:func:`koru_core.read.as_of_rule`), keep the rows matching ``where`` whose
vector is present and finite, compute each one's distance to the query and
return the ``k`` nearest, ties broken by key.

The HNSW index (:mod:`koru_core.vector.index`) answers the same question
approximately. The rule for using it (with the constants below):

* the candidate rows number at least :data:`EXACT_BELOW` (10,000); below
  that, exact search over numpy is as fast as the graph and exact;
* every candidate row's version is in the index (it always is after the
  index is brought up to the latest commit, unless versions failed to index);
* the candidates are at least :data:`EXACT_FRACTION` (10%) of the indexed
  items: a more selective filter (an old as-of state after many updates, or
  a narrow ``where``) makes a filtered graph walk slow and inaccurate.

Otherwise the search is exact: over the candidates, with the index's copy of
their vectors, once the namespace has an index (at least :data:`EXACT_BELOW`
versions), else over the state read with its vectors. When the index is used, the graph is walked
with a filter to the candidates' labels (none when the candidates are all the
indexed items), and the distances returned are recomputed exactly from the
stored vectors (the index keeps a copy of them, so the vector column of the
data files is not decoded), so both paths return the same numbers for the
same rows. The candidates of one as-of point (the state's rows and their
labels) are kept for the next searches at that point, so a query costs a
graph walk, not a read of the state.

Distances (as hnswlib, and LanceDB for ``l2``/``dot``): ``cosine`` is
``1 - cos(q, x)`` (a zero vector has cosine 0), ``l2`` is the *squared*
Euclidean distance, ``ip`` is ``1 - q·x``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from koru_core._time import now_ns
from koru_core.errors import InvalidInputError
from koru_core.vector.index import _LOCK, matrix, open_index, require, vector_column

if TYPE_CHECKING:
    from koru_core.read.plan import ReadPlan
    from koru_core.store import Store

__all__ = ["DEFAULT_EF", "EXACT_BELOW", "EXACT_FRACTION", "METRICS", "search"]

METRICS = ("cosine", "l2", "ip")
EXACT_BELOW = 10_000
"""Searches over fewer candidate rows than this are exact."""
EXACT_FRACTION = 0.1
"""Searches over fewer than this fraction of the indexed items are exact."""
DEFAULT_EF = 800
"""hnswlib's query-time beam width when ``ef`` is not given (at least ``k``).

High because it is cheap here: on 100k uniform random 128-d vectors (a hard
set) with M=32, ef_construction=200, raw hnswlib's recall@10 is 0.69 at ef=100,
0.92 at 400 and 0.98 at 800, at ≤ 2 ms a query (``benchmarks/vector_search.py``;
at 1M such vectors, 0.81 at 800: the graph, not koru, is the limit there)."""


def search(
    store: Store, namespace: str, query: Any, *, k: int = 10, column: str | None = None,
    metric: str = "cosine", at: datetime | None = None, version: int | None = None,
    where: pc.Expression | Mapping[str, Any] | None = None, ef: int | None = None,
) -> pa.Table:
    """Return the ``k`` rows of the as-of state nearest to ``query``; see :meth:`koru_core.Store.search`.

    Example:
        >>> import pyarrow as pa
        >>> vectors = pa.array([[1, 0], [0, 1], [1, 1]], pa.list_(pa.float32(), 2))
        >>> _ = store.upsert("docs", pa.table({"id": ["a", "b", "c"], "embedding": vectors}), key="id")
        >>> koru.vector.search(store, "docs", [1.0, 0.1], k=2)["_key"].to_pylist()
        ['a', 'c']
    """
    _, np = require()
    _check_options(namespace, k=k, metric=metric, ef=ef)
    plan = store.plan(namespace, shape="versions")
    schema = plan.schema
    column = vector_column(namespace, schema, column)
    q = _query(namespace, query, metric)
    expected = schema.field(column).type
    if pa.types.is_fixed_size_list(expected) and expected.list_size != len(q):
        msg = f"namespace {namespace!r}: query has {len(q)} dims, column {column!r} has {expected.list_size}"
        raise InvalidInputError(msg)
    condition = _where(namespace, where, schema)
    found = _search_index(store, plan, column, metric, q, k=k, ef=ef, at=at, version=version, condition=condition)
    if found is not None:
        return found
    state = store.as_of(namespace, at=at, version=version)
    if condition is not None:
        try:
            state = state.filter(condition)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            msg = f"namespace {namespace!r}: where={where!r} cannot filter the value columns: {e}"
            raise InvalidInputError(msg) from e
    state = state.filter(pc.is_valid(state[column]))
    vectors = matrix(namespace, column, state[column])
    if state.num_rows and vectors.shape[1] != len(q):
        msg = f"namespace {namespace!r}: query has {len(q)} dims, column {column!r} has {vectors.shape[1]}"
        raise InvalidInputError(msg)
    finite = np.isfinite(vectors).all(axis=1) if state.num_rows else np.zeros(0, bool)
    if not finite.all():
        state, vectors = state.filter(pa.array(finite)), vectors[finite]
    if state.num_rows == 0:
        return _result(state, np.zeros(0))
    distances = distance(vectors, q, metric)
    order = np.lexsort((np.arange(len(distances)), distances))[:k]
    return _result(state.take(pa.array(order)), distances[order])


def distance(vectors: Any, q: Any, metric: str) -> Any:
    """Return the distances (float64, shape (n,)) of the rows of ``vectors`` to ``q``."""
    _, np = require()
    x = vectors.astype(np.float64, copy=False)
    qq = q.astype(np.float64)
    if metric == "l2":
        return ((x - qq) ** 2).sum(axis=1)
    dots = x @ qq
    if metric == "ip":
        return 1.0 - dots
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(qq)
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return np.clip(1.0 - cos, 0.0, 2.0)  # rounding can put cos a hair past ±1


@dataclass(slots=True)
class _Candidates:
    """An as-of state (without the vector column) whose rows all have a label in
    an index, the label in column ``__label``; reused by the searches at the same point."""

    rows: pa.Table
    valid_until: int | None  # for a search "now": the next valid time (ns) that changes the state
    allowed: Callable[[int], bool] | None = None  # hnswlib's filter to exactly these rows, built on need


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# the candidates live in each store's context (``ctx.vector["candidates"]``), emptied by Store.close()
_CANDIDATES_SIZE = 4
"""As-of states kept per process (each about the size of the state without its vectors)."""


def _candidates(store: Store, namespace: str, column: str, values: list[str], loaded: Any, *,
                at: datetime | None, version: int | None, files: int) -> _Candidates:
    """The as-of state at (``at``, ``version``) with each row's index label; call with ``_LOCK`` held.

    The state is read at the index's commit at most, so every version in it
    with a finite vector has a label (rows without one hold no vector). Searches
    at the same point reuse it: reading the state and matching a million write
    ids costs hundreds of ms, walking the graph a few. A search "now" (``at``
    None) reuses it until the next stored valid time passes. ``files``
    identifies the data files read, so no state is reused across consolidation
    or distillation.
    """
    _, np = require()
    point = loaded.info.commit if version is None else min(version, loaded.info.commit)
    key = (str(store.path), namespace, column, loaded.info.metric, id(loaded), loaded.info.count, point, at, files)
    _CANDIDATES = store._ctx.vector.setdefault("candidates", OrderedDict())
    cached = _CANDIDATES.get(key)
    now = now_ns() // 1000 * 1000  # in µs, as a datetime holds it
    if cached is not None and (cached.valid_until is None or now < cached.valid_until):
        _CANDIDATES.move_to_end(key)
        return cached
    when = _EPOCH + timedelta(microseconds=now // 1000) if at is None else at
    state = store.as_of(namespace, at=when, version=point, columns=[n for n in values if n != column])
    labels = pc.index_in(state["_write_id"], value_set=loaded.write_ids)
    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    if labels.null_count:
        has_vector = labels.is_valid()
        state, labels = state.filter(has_vector), labels.filter(has_vector)
    rows = state.append_column("__label", labels.cast(pa.int64()))
    valid_until = None
    if at is None:  # the state holds until a version stored with a later valid time starts
        valid_until = np.iinfo(np.int64).max
        from koru_core.read import execute

        plan = store.plan(namespace, shape="versions", version=point)
        ts = pa.scalar(now, pa.timestamp("ns", tz="UTC"))
        for src in plan.candidates:
            if src.entry is not None and src.entry.max_valid <= now:
                continue
            later = execute.read_source(store._ctx, plan, src, ["_valid_from", "_commit"])
            later = later.filter(pc.and_(pc.greater(later["_valid_from"], ts), pc.less_equal(later["_commit"], point)))
            if later.num_rows:
                valid_until = min(valid_until, pc.min(later["_valid_from"]).cast(pa.int64()).as_py())
    found = _Candidates(rows, valid_until)
    _CANDIDATES[key] = found
    while len(_CANDIDATES) > _CANDIDATES_SIZE:
        _CANDIDATES.popitem(last=False)
    return found


def _search_index(store: Store, plan: ReadPlan, column: str, metric: str, q: Any, *, k: int,
                  ef: int | None, at: datetime | None, version: int | None,
                  condition: pc.Expression | None) -> pa.Table | None:
    """The search through the HNSW index, or None when the rule says exact.

    ``plan`` is the namespace's latest. The candidates are the as-of state's
    rows (:func:`_candidates`), filtered by ``condition``; the vectors of the
    nearest labels come from the index's copy.
    """
    _, np = require()
    namespace, schema = plan.namespace, plan.schema
    values = [n for n in schema.names if not n.startswith("_")]
    stored = sum(s.entry.rows if s.entry is not None else s.table.num_rows for s in plan.candidates)  # type: ignore[union-attr]
    if stored < EXACT_BELOW:
        return None  # no state has more rows than there are versions: exact, and no index built
    files = hash(tuple(s.entry.path if s.entry is not None else s.commit for s in plan.candidates))
    with _LOCK:
        loaded = open_index(store, namespace, column, metric, plan=plan)
        candidates = _candidates(store, namespace, column, values, loaded, at=at, version=version, files=files)
        rows = candidates.rows
        if condition is not None:
            try:
                rows = rows.filter(condition)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return None  # e.g. it names the vector column: the exact path filters, or says what is wrong
        n, count = rows.num_rows, loaded.info.count
        labels = rows["__label"].to_numpy()
        if n < EXACT_BELOW or n < EXACT_FRACTION * count:
            # exact over the candidates, their vectors from the index's copy (not the data files)
            raw = loaded.values.take(pa.array(labels))
            return _nearest(namespace, column, schema, values, rows, raw, q, metric, k, np.arange(n))
        row_of = np.full(count, -1, np.int64)
        row_of[labels] = np.arange(n)
        allowed = None
        if n < count:
            if condition is None and candidates.allowed is not None:
                allowed = candidates.allowed
            else:
                mask = np.zeros(count, bool)
                mask[labels] = True
                allowed = mask.tolist().__getitem__
                if condition is None:
                    candidates.allowed = allowed
        loaded.hnsw.set_ef(max(ef or DEFAULT_EF, k))
        try:
            found, _ = loaded.hnsw.knn_query(q[None, :], k=min(k, n), num_threads=1, filter=allowed)
        except RuntimeError:  # hnswlib found fewer than k: the graph cannot answer, exact can
            return None
        chosen = found[0].astype(np.int64)
        raw = loaded.values.take(pa.array(chosen))
    return _nearest(namespace, column, schema, values, rows, raw, q, metric, k, row_of[chosen])


def _nearest(namespace: str, column: str, schema: pa.Schema, values: list[str], rows: pa.Table, raw: pa.Array,
             q: Any, metric: str, k: int, picks: Any) -> pa.Table:
    """The ``k`` nearest of the vectors ``raw`` (of the candidate rows ``picks``), ties by row, as the result."""
    _, np = require()
    if len(raw) == 0:
        return _result(rows.slice(0, 0).drop_columns(["__label"]).add_column(
            values.index(column), schema.field(column), pa.array([], schema.field(column).type)), np.zeros(0))
    vectors = matrix(namespace, column, raw)
    if vectors.shape[1] != len(q):
        msg = f"namespace {namespace!r}: query has {len(q)} dims, column {column!r} has {vectors.shape[1]}"
        raise InvalidInputError(msg)
    distances = distance(vectors, q, metric)
    order = np.lexsort((picks, distances))[:k]
    picked = rows.take(pa.array(picks[order])).drop_columns(["__label"])
    vector = raw.take(pa.array(order)).cast(schema.field(column).type)
    picked = picked.add_column(values.index(column), schema.field(column), vector)
    return _result(picked, distances[order])


def _check_options(namespace: str, *, k: int, metric: str, ef: int | None) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        msg = f"namespace {namespace!r}: k must be an int ≥ 1, got {k!r}"
        raise InvalidInputError(msg)
    if metric not in METRICS:
        msg = f"namespace {namespace!r}: metric must be one of {METRICS}, got {metric!r}"
        raise InvalidInputError(msg)
    if ef is not None and (not isinstance(ef, int) or isinstance(ef, bool) or ef < 1):
        msg = f"namespace {namespace!r}: ef must be an int ≥ 1 or None, got {ef!r}"
        raise InvalidInputError(msg)


def _query(namespace: str, query: Any, metric: str) -> Any:
    """The query as a finite 1-d float32 numpy array."""
    _, np = require()
    try:
        q = np.asarray(query.to_pylist() if isinstance(query, (pa.Array, pa.Scalar)) else query, dtype=np.float32)
    except (TypeError, ValueError) as e:
        msg = f"namespace {namespace!r}: query must be a sequence of numbers, got {query!r}"
        raise InvalidInputError(msg) from e
    if q.ndim != 1 or len(q) == 0:
        msg = f"namespace {namespace!r}: query must be one non-empty vector, got shape {q.shape}"
        raise InvalidInputError(msg)
    if not np.isfinite(q).all():
        msg = f"namespace {namespace!r}: query holds NaN or infinite values"
        raise InvalidInputError(msg)
    if metric == "cosine" and not q.any():
        msg = f"namespace {namespace!r}: a zero query vector has no cosine distance"
        raise InvalidInputError(msg)
    return q


def _where(namespace: str, where: Any, schema: pa.Schema) -> pc.Expression | None:
    """``where`` as an expression: a dict means column == value (None: is null), all ANDed."""
    if where is None or isinstance(where, pc.Expression):
        return where
    if not isinstance(where, Mapping):
        msg = f"namespace {namespace!r}: where must be a pyarrow.compute.Expression or a dict, got {where!r}"
        raise InvalidInputError(msg)
    values = [n for n in schema.names if not n.startswith("_")]
    condition = None
    for name, value in where.items():
        if name not in values:
            msg = f"namespace {namespace!r}: where names no value column {name!r} (columns: {values})"
            raise InvalidInputError(msg)
        term = pc.field(name).is_null() if value is None else pc.field(name) == value
        condition = term if condition is None else condition & term
    return condition


def _result(rows: pa.Table, distances: Any) -> pa.Table:
    names = [n for n in rows.column_names if n != "_key"]
    return pa.table(
        {"_key": rows["_key"], "_distance": pa.array(distances, pa.float64()), **{n: rows[n] for n in names}}
    )
