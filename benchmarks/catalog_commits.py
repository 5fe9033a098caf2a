"""Catalog transaction latency: ``record_commit`` on SQLite vs PostgreSQL, 1/2/4 committers (issue 15).

Each committer is a process with its own catalog handle. It loops: read the head,
build a small commit (one namespace, a 3-row pending blob of about 1 KB, like a
durable ``put``), call ``record_commit``; on ``HeadMovedError`` it rebases on the new
head and calls again. Nothing else runs: this is the catalog's share of a commit, not
a store's (no Parquet, no hashing of versions).

Printed per backend and committer count:

- ``commits/s``: acknowledged commits over the wall time of the run;
- ``call p50/p99``: one ``record_commit`` call (won or refused), ms;
- ``commit p50/p99``: from the first head read to the acknowledged commit, retries
  included, ms: what a writer waits;
- ``calls/commit``: record_commit calls per acknowledged commit (1.0: no contention).

Durability is the real one on both: SQLite ``synchronous=FULL`` in WAL mode (one fsync
a commit) on the local disk; PostgreSQL started here with ``fsync=on``,
``synchronous_commit=on`` (one WAL flush a commit), on 127.0.0.1. ``--pg URL`` uses an
existing server instead, ``--pg-fast`` starts one with the tests' settings (no fsync).

    python benchmarks/catalog_commits.py                    # 30-60 s: 150 commits per case
    python benchmarks/catalog_commits.py --commits 1000 --writers 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (HERE.parent, HERE.parent / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def _draft(base: int, tag: str) -> Any:
    import pyarrow as pa
    from blake3 import blake3

    from koru_core.catalog import CommitDraft, PendingBlob, encode_table

    table = pa.table({"_key": [f"{tag}-{i}" for i in range(3)], "value": ["x" * 300] * 3})
    data, checksum = encode_table(table)
    blob = PendingBlob(namespace="bench", commit=0, system_time=0, kind="versions", rows=3, data=data,
                       checksum=checksum)
    return CommitDraft(base=base, system_time=time.time_ns(), actor="bench", run_id=None, metadata=None,
                       namespaces=("bench",), written=3, unchanged=0, deleted=0, first_write_id=None,
                       last_write_id=None, body=blake3(tag.encode()).digest(), schemas={}, blobs=(blob,))


def _worker(target: str, name: str, quota: int, ready: Any, start: Any, out: Any) -> None:
    from koru_core.catalog import open_catalog
    from koru_core.errors import HeadMovedError

    catalog = open_catalog(target)
    catalog.head()  # connected before the start
    _draft(0, "warm-up")
    ready.put(name)
    calls: list[int] = []
    commits: list[int] = []
    start.wait()
    for i in range(quota):
        began = time.perf_counter_ns()
        base = catalog.head()[0]
        while True:
            t0 = time.perf_counter_ns()
            try:
                catalog.record_commit(_draft(base, f"{name}-{i}"))
                calls.append(time.perf_counter_ns() - t0)
                break
            except HeadMovedError as e:
                calls.append(time.perf_counter_ns() - t0)
                base = e.head
        commits.append(time.perf_counter_ns() - began)
    catalog.close()
    out.put((calls, commits))


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def run_case(target: str, *, writers: int, commits: int) -> dict[str, Any]:
    """Run ``writers`` committer processes sharing ``commits`` commits on a fresh catalog ``target``."""
    from koru_core.catalog import open_catalog

    open_catalog(target, create=True).close()
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    quota = commits // writers
    procs = [ctx.Process(target=_worker, args=(target, f"w{k}", quota, ready, start, out)) for k in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:  # every process has imported koru and connected
        ready.get(timeout=300)
    began = time.perf_counter()
    start.set()
    results = [out.get(timeout=300) for _ in procs]
    wall = time.perf_counter() - began
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            msg = f"a committer exited with {p.exitcode}"
            raise RuntimeError(msg)
    calls = [c for r in results for c in r[0]]
    done = [c for r in results for c in r[1]]
    catalog = open_catalog(target)
    try:
        head = catalog.head()[0]
        numbers = [c.commit for c in catalog.commits()]
    finally:
        catalog.close()
    assert head == len(done) == quota * writers and numbers == list(range(1, head + 1)), "commits lost or gapped"
    return {
        "writers": writers, "commits": len(done), "commits_per_s": len(done) / wall,
        "call_p50_ms": statistics.median(calls) / 1e6, "call_p99_ms": _pct(calls, 0.99),
        "commit_p50_ms": statistics.median(done) / 1e6, "commit_p99_ms": _pct(done, 0.99),
        "calls_per_commit": len(calls) / len(done),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every case and print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=150, help="acknowledged commits per case (default 150)")
    parser.add_argument("--writers", default="1,2,4", help="committer counts (default 1,2,4)")
    parser.add_argument("--pg", help="libpq URL of an existing PostgreSQL database (default: start one here)")
    parser.add_argument("--pg-fast", action="store_true", help="start PostgreSQL with fsync off (the tests' settings)")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated (default sqlite,postgres)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.writers.split(",")]
    backends = args.backends.split(",")
    server = None
    rows: list[dict[str, Any]] = []
    try:
        if "postgres" in backends and args.pg is None:
            import servers

            durable = {} if args.pg_fast else {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            server = servers.start_postgres(settings=durable)
        with tempfile.TemporaryDirectory(prefix="koru-catalog-bench-") as tmp:
            for backend in backends:
                for n, writers in enumerate(counts):
                    if backend == "sqlite":
                        target = str(Path(tmp) / f"c{n}.sqlite")
                    else:
                        url = args.pg or (server.url if server else "")
                        target = f"{url}{'&' if '?' in url else '?'}koru_schema=bench_{n}_{time.time_ns() % 10**9}"
                    row = run_case(target, writers=writers, commits=args.commits)
                    row["backend"] = backend
                    rows.append(row)
                    print(f"  {backend:8} {writers} writer(s): {row['commits_per_s']:8.0f} commits/s", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    pg_mode = "existing server" if args.pg else ("fsync off" if args.pg_fast else "fsync on, synchronous_commit on")
    print(f"\nrecord_commit, {args.commits} commits per case "
          f"(SQLite WAL synchronous=FULL; PostgreSQL 127.0.0.1, {pg_mode})\n")
    head = (f"{'backend':9} {'writers':>7} {'commits/s':>10} {'call p50':>9} {'call p99':>9} {'commit p50':>11} "
            f"{'commit p99':>11} {'calls/commit':>13}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:9} {r['writers']:>7} {r['commits_per_s']:>10.0f} {r['call_p50_ms']:>7.2f}ms "
              f"{r['call_p99_ms']:>7.2f}ms {r['commit_p50_ms']:>9.2f}ms {r['commit_p99_ms']:>9.2f}ms "
              f"{r['calls_per_commit']:>13.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
