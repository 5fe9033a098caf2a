"""Vector search: build time, query latency and recall@10 of koru's HNSW path
against its exact path, on random vectors (issue 7).

Run: python benchmarks/vector_search.py [--n 100000] [--dim 128] [--queries 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa

import koru_core
from koru_core.vector import nearest as vector_search


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--metric", default="cosine")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = rng.random((args.n, args.dim), dtype=np.float32)
    queries = rng.random((args.queries, args.dim), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        store = koru_core.open(f"{tmp}/s")
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), args.dim)
        table = pa.table({"id": [f"k{i:07d}" for i in range(args.n)], "embedding": embedding})
        t = time.perf_counter()
        store.upsert("vectors", table, key="id")
        print(f"upsert {args.n} x {args.dim}: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        store.search("vectors", queries[0], metric=args.metric)
        print(f"first search (builds the index): {time.perf_counter() - t:.1f} s")
        hits, hnsw_s, exact_s = 0, 0.0, 0.0
        for q in queries:
            t = time.perf_counter()
            got = store.search("vectors", q, metric=args.metric)["_key"].to_pylist()
            hnsw_s += time.perf_counter() - t
            t = time.perf_counter()
            vector_search.EXACT_BELOW = args.n + 1
            want = store.search("vectors", q, metric=args.metric)["_key"].to_pylist()
            vector_search.EXACT_BELOW = 10_000
            exact_s += time.perf_counter() - t
            hits += len(set(got) & set(want))
        print(f"recall@10 {hits / (10 * args.queries):.3f}; per query: hnsw path {1000 * hnsw_s / args.queries:.0f} ms, "
              f"exact path {1000 * exact_s / args.queries:.0f} ms")
        first = store.commits()[-1].commit
        changed = args.n // 10
        update = pa.table({"id": table["id"][:changed], "embedding": embedding[args.n - changed:]})
        store.upsert("vectors", update, key="id")
        t = time.perf_counter()
        store.search("vectors", queries[0], metric=args.metric)
        print(f"first search after updating {changed} keys (adds them to the index): {time.perf_counter() - t:.1f} s")
        for label, point in (("current", {}), ("as of the first commit", {"version": first})):
            t = time.perf_counter()
            for q in queries:
                store.search("vectors", q, metric=args.metric, **point)
            print(f"time-travel search, {label}: {1000 * (time.perf_counter() - t) / args.queries:.0f} ms per query")
        store.close()


if __name__ == "__main__":
    main()
