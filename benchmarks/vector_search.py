"""Vector search side by side: koru, raw hnswlib and LanceDB on the same vectors (issue 7).

For each size, one set of random float32 vectors (uniform in [0, 1), default
128 dims, cosine) and one set of query vectors from the same distribution go
through every system:

* ``hnswlib``: a bare ``hnswlib.Index`` with the parameters koru uses
  (``M``, ``ef_construction`` from :mod:`koru_core.vector.index`, query ``ef``
  from :mod:`koru_core.vector.nearest`), built with all cores.
* ``koru``: ``store.upsert`` of a table ``id`` + ``embedding``
  (``fixed_size_list<float32>[d]``), then ``store.search(ns, q, k=10)``; the
  first search builds the HNSW index. Then its exact path (forced through
  ``nearest.EXACT_BELOW``), and time travel: after updating 10 % of the keys
  with new vectors, ``search(..., version=<first commit>)`` and
  ``search(..., at=<first commit's time>)``, each checked against the exact
  neighbours of the as-of state.
* ``lancedb``: ``create_table``, a brute-force search (``bypass_vector_index``)
  before any index, then an ANN index (``--lance-index``) and its search.

Ground truth is a numpy brute force (cosine) computed once per size. Each
query loop runs single queries one after the other, ``k`` = 10; recall@10 is
the share of the exact 10 nearest ids found. Ratios are against raw hnswlib.
The last thing printed is a markdown table of every size.

Run (in a venv with ``pip install -e '.[all]' lancedb``):

    python benchmarks/vector_search.py                             # 100k and 1M (~40 min)
    python benchmarks/vector_search.py --sizes 20000 --queries 50  # quick check (~1 min)
    python benchmarks/vector_search.py --sizes 100000 --systems hnswlib,koru
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import koru_core
from koru_core.vector import index as vector_index
from koru_core.vector import nearest as vector_search

SYSTEMS = ("hnswlib", "koru", "lancedb")
LANCE_INDEXES = ("IVF_PQ", "IVF_HNSW_SQ")
NAMESPACE = "vectors"
M = vector_index.DEFAULT_M
EF_CONSTRUCTION = vector_index.DEFAULT_EF_CONSTRUCTION


@dataclass
class Row:
    """One line of the results table.

    ``ingest_s`` is the time to load the vectors (koru: ``upsert``; LanceDB:
    ``create_table``), ``index_s`` the time to build the ANN index (koru: the
    first ``search``). ``None`` prints as a dash. ``full_build`` is False for
    the row whose times are those of an update, not of loading every vector.
    """

    n: int
    system: str
    ingest_s: float | None = None
    index_s: float | None = None
    qps: float | None = None
    recall: float | None = None
    queries: int = 0
    full_build: bool = True

    @property
    def build_s(self) -> float | None:
        """Ingest plus index time, or None when neither was measured."""
        parts = [p for p in (self.ingest_s, self.index_s) if p is not None]
        return sum(parts) if parts else None


def exact_neighbours(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Return the ids (rows of ``data``) of the ``k`` rows nearest to each query
    by cosine, nearest first."""
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 50):  # 50 x 1M float32 similarities: 200 MB at a time
        q = queries[start:start + 50]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start:start + len(q)] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    """Share of the true neighbours (rows of ``truth``) present in ``found``
    (one id list per query)."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k]) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def query_loop(search: Any, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Run ``search(q) -> list of ids`` once per query, one after the other;
    return (queries/s, recall@k)."""
    found = []
    t = time.perf_counter()
    for q in queries:
        found.append(search(q))
    elapsed = time.perf_counter() - t
    return len(queries) / elapsed, recall(found, truth)


def log(message: str) -> None:
    """Print a progress line at once (the 1M run takes a while)."""
    print(message, flush=True)


def bench_hnswlib(n: int, data: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                  k: int) -> list[Row]:
    """Build a bare hnswlib index with koru's parameters and time single-query search."""
    import hnswlib

    t = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=data.shape[1])
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION)
    index.add_items(data, np.arange(n), num_threads=os.cpu_count() or 1)
    build = time.perf_counter() - t
    index.set_ef(max(vector_search.DEFAULT_EF, k))

    def search(q: np.ndarray) -> list[int]:
        return index.knn_query(q[None, :], k=k, num_threads=1)[0][0].tolist()

    qps, rec = query_loop(search, queries, truth)
    log(f"  hnswlib: build {build:.1f} s, {qps:.0f} queries/s, recall@{k} {rec:.3f}")
    return [Row(n, "hnswlib", index_s=build, qps=qps, recall=rec, queries=len(queries))]


def _keys(table: pa.Table) -> list[int]:
    return [int(key[1:]) for key in table["_key"].to_pylist()]


def _vectors(data: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), data.shape[1])


def bench_koru(n: int, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, *,
               new: np.ndarray, truth_new: np.ndarray, exact_queries: int) -> list[Row]:
    """koru: upsert, first search (index build), HNSW and exact search, then
    time travel after an update.

    ``new`` holds the new vectors of the first ``len(new)`` keys, ``truth_new``
    the exact neighbours after that update.
    """
    rows = []
    ids = pa.array([f"k{i:07d}" for i in range(n)])
    few, few_truth = queries[:exact_queries], truth[:exact_queries]
    with tempfile.TemporaryDirectory() as tmp:
        store = koru_core.open(f"{tmp}/store")
        try:
            t = time.perf_counter()
            store.upsert(NAMESPACE, pa.table({"id": ids, "embedding": _vectors(data)}), key="id")
            ingest = time.perf_counter() - t
            t = time.perf_counter()
            store.search(NAMESPACE, queries[0], k=k)
            build = time.perf_counter() - t
            log(f"  koru: upsert {ingest:.1f} s, first search (builds the index) {build:.1f} s")

            def search(**point: Any) -> Any:
                return lambda q: _keys(store.search(NAMESPACE, q, k=k, **point))

            qps, rec = query_loop(search(), queries, truth)
            rows.append(Row(n, "koru", ingest_s=ingest, index_s=build, qps=qps, recall=rec,
                            queries=len(queries)))
            log(f"  koru: {qps:.1f} queries/s, recall@{k} {rec:.3f}")
            rows.append(_koru_exact(n, "koru exact path", search(), few, few_truth))

            first = store.commits()[-1]
            update = pa.table({"id": ids[:len(new)], "embedding": _vectors(new)})
            t = time.perf_counter()
            store.upsert(NAMESPACE, update, key="id")
            update_s = time.perf_counter() - t
            t = time.perf_counter()
            store.search(NAMESPACE, queries[0], k=k)
            refresh_s = time.perf_counter() - t
            log(f"  koru: upsert of {len(new)} new vectors {update_s:.1f} s, first search after "
                f"it (adds them to the index) {refresh_s:.1f} s")
            loops = (
                (f"koru after updating {len(new):,} keys, current", {}, truth_new),
                (f"koru after update, version={first.commit}", {"version": first.commit}, truth),
                ("koru after update, at=first commit's time", {"at": first.system_time}, truth),
            )
            for label, point, want in loops:
                qps, rec = query_loop(search(**point), queries, want)
                row = Row(n, label, qps=qps, recall=rec, queries=len(queries))
                if not point:
                    row.ingest_s, row.index_s, row.full_build = update_s, refresh_s, False
                rows.append(row)
                log(f"  {label}: {qps:.1f} queries/s, recall@{k} {rec:.3f}")
            rows.append(_koru_exact(n, f"koru exact path, version={first.commit}",
                                    search(version=first.commit), few, few_truth))
        finally:
            store.close()
    return rows


def _koru_exact(n: int, label: str, search: Any, queries: np.ndarray, truth: np.ndarray) -> Row:
    """koru's exact path: ``EXACT_BELOW`` above the state's size during the loop."""
    before = vector_search.EXACT_BELOW
    vector_search.EXACT_BELOW = 2 * n + 1
    try:
        qps, rec = query_loop(search, queries, truth)
    finally:
        vector_search.EXACT_BELOW = before
    log(f"  {label}: {qps:.2f} queries/s over {len(queries)} queries, "
        f"recall@{truth.shape[1]} {rec:.3f}")
    return Row(n, label, qps=qps, recall=rec, queries=len(queries))


def bench_lancedb(n: int, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, *,
                  kind: str, flat_queries: int) -> list[Row]:
    """LanceDB: create_table, brute-force search, then an ANN index of type
    ``kind`` and its search.

    ``IVF_PQ`` (LanceDB's default index type): LanceDB's default number of
    partitions (about one per 8,192 rows: 12 for 100k, 122 for 1M), ``dim / 4``
    sub-vectors of 8 bits (the default ``dim / 16`` finds ~20 % of the
    neighbours of these random vectors) and, per query, ``nprobes`` = 100 and
    ``refine_factor`` = 20 (the 200 best PQ candidates are re-ranked on the
    full vectors). On these vectors neighbours spread over many partitions: at
    1M, LanceDB's automatic ``nprobes`` finds about half of them, 50 probes
    0.83, 100 probes 0.95-0.97. The automatic ``nprobes`` is a second row,
    on the same index.

    ``IVF_HNSW_SQ`` uses koru's ``M``, ``ef_construction`` and query ``ef``,
    and LanceDB's default partitioning (one partition up to ~1M rows). Its
    build runs on one core: ~20 min for 1M on the 2-core machine.
    """
    import lancedb
    from lancedb.index import HnswSq, IvfPq

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = lancedb.connect(tmp)
        t = time.perf_counter()
        data_table = pa.table({"id": pa.array(np.arange(n)), "vector": _vectors(data)})
        table = db.create_table("vectors", data_table)
        ingest = time.perf_counter() - t

        def search(tune: Any) -> Any:
            def run(q: np.ndarray) -> list[int]:
                query = tune(table.search(q).distance_type("cosine")).limit(k)
                return query.select(["id", "_distance"]).to_arrow()["id"].to_pylist()
            return run

        few, few_truth = queries[:flat_queries], truth[:flat_queries]
        qps, rec = query_loop(search(lambda s: s.bypass_vector_index()), few, few_truth)
        rows.append(Row(n, "lancedb, no index", ingest_s=ingest, qps=qps, recall=rec,
                        queries=len(few)))
        log(f"  lancedb: create_table {ingest:.1f} s; no index: {qps:.1f} queries/s over "
            f"{len(few)} queries, recall@{k} {rec:.3f}")
        if kind == "IVF_HNSW_SQ":
            config: Any = HnswSq(distance_type="cosine", m=M, ef_construction=EF_CONSTRUCTION)
            ef = max(vector_search.DEFAULT_EF, k)
            tunes = {f"lancedb {kind} (m={M}, ef={ef})": lambda s: s.ef(ef)}
        else:
            config = IvfPq(distance_type="cosine", num_sub_vectors=max(data.shape[1] // 4, 1))
            tunes = {
                f"lancedb {kind} (nprobes=100, refine=20)": lambda s: s.nprobes(100).refine_factor(20),
                f"lancedb {kind} (automatic nprobes, refine=20)": lambda s: s.refine_factor(20),
            }
        t = time.perf_counter()
        table.create_index("vector", config=config)
        build: float | None = time.perf_counter() - t
        log(f"  lancedb: {kind} index {build:.1f} s")
        for label, tune in tunes.items():
            qps, rec = query_loop(search(tune), queries, truth)
            rows.append(Row(n, label, ingest_s=ingest if build else None, index_s=build, qps=qps,
                            recall=rec, queries=len(queries)))
            log(f"  {label}: {qps:.1f} queries/s, recall@{k} {rec:.3f}")
            build = None  # same index: its build is on the first row only
    return rows


def run_size(n: int, args: argparse.Namespace) -> list[Row]:
    """Generate one size's vectors and ground truth, then run every selected system on them."""
    rng = np.random.default_rng(n)
    data = rng.random((n, args.dim), dtype=np.float32)
    queries = rng.random((args.queries, args.dim), dtype=np.float32)
    new = rng.random((n // 10, args.dim), dtype=np.float32)
    t = time.perf_counter()
    truth = exact_neighbours(data, queries, args.k)
    updated = data.copy()
    updated[: len(new)] = new
    truth_new = exact_neighbours(updated, queries, args.k)
    del updated
    log(f"{n:,} x {args.dim} vectors, {args.queries} queries; "
        f"exact neighbours (numpy) {time.perf_counter() - t:.1f} s")
    rows: list[Row] = []
    for system in args.systems:
        t = time.perf_counter()
        try:
            if system == "hnswlib":
                rows += bench_hnswlib(n, data, queries, truth, args.k)
            elif system == "koru":
                rows += bench_koru(n, data, queries, truth, args.k, new=new, truth_new=truth_new,
                                   exact_queries=min(args.exact_queries, args.queries))
            else:
                rows += bench_lancedb(n, data, queries, truth, args.k, kind=args.lance_index,
                                      flat_queries=min(args.flat_queries, args.queries))
        except ImportError as e:
            log(f"  {system}: skipped, {e}")
        log(f"  ({system}: {time.perf_counter() - t:.0f} s wall)")
    return rows


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "—" if value is None or not base else f"{value / base:.2f}x"


def markdown(rows: list[Row]) -> str:
    """The results as a markdown table; build time and queries/s also as
    ratios to raw hnswlib on the same vectors."""
    lines = [
        "| vectors | system | ingest s | index s | build vs hnswlib | queries/s | ms/query | "
        "queries/s vs hnswlib | recall@10 | queries |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r.n: r for r in rows if r.system == "hnswlib"}
    for r in rows:
        b = base.get(r.n)
        build = _ratio(r.build_s if r.full_build else None, b.build_s if b else None)
        ms = _fmt(1000 / r.qps if r.qps else None, 2)
        lines.append(
            f"| {r.n:,} | {r.system} | {_fmt(r.ingest_s)} | {_fmt(r.index_s)} | {build} | "
            f"{_fmt(r.qps)} | {ms} | {_ratio(r.qps, b.qps if b else None)} | "
            f"{_fmt(r.recall, 3)} | {r.queries} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run every size and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated vector counts")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200, help="queries per timed loop")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--lance-index", choices=LANCE_INDEXES, default="IVF_PQ")
    parser.add_argument("--exact-queries", type=int, default=20,
                        help="queries for koru's (slow) exact path")
    parser.add_argument("--flat-queries", type=int, default=50,
                        help="queries for LanceDB without an index")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    log(f"koru M={M}, ef_construction={EF_CONSTRUCTION}, ef={vector_search.DEFAULT_EF}; "
        f"{os.cpu_count()} cores; metric cosine, k={args.k}")
    start = time.perf_counter()
    rows = []
    for n in sizes:
        rows += run_size(n, args)
    log(f"\nwall time {time.perf_counter() - start:.0f} s\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
