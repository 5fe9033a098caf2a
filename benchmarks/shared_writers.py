"""Many writers on one store: PostgreSQL + S3 (SeaweedFS) against the embedded SQLite store (issue 15).

Each writer is a process with its own ``koru.open``. It makes ``--commits`` upserts to
namespace ``bench``, on keys of its own (blind writes that never conflict, the common
pipeline case), of two sizes:

- ``small``: 3 rows a commit: the versions go into the catalog (a pending blob), so a
  commit is catalog round trips only;
- ``batch``: 5,000 rows a commit: one warm Parquet file PUT to the object store, then
  the catalog transaction.

Automatic maintenance stays on (what a user runs), so consolidation runs inside the
measured time. Printed per store and writer count: commits/s and rows/s over the wall
time, and a commit's p50/p99 latency as its writer saw it (retries included). Then the
catalog's share: ``record_commit`` alone, p50/p99, from ``benchmarks/catalog_commits.py``.

PostgreSQL is started here with ``fsync=on`` and ``synchronous_commit=on`` (one WAL
flush a commit), SeaweedFS as the tests start it, both on 127.0.0.1; SQLite is WAL
``synchronous=FULL`` on the local disk, where writers of other processes take turns on
the store's file lock.

    python benchmarks/shared_writers.py                     # about 3 min on 2 cores
    python benchmarks/shared_writers.py --commits 100 --writers 1,2,4,8 --json out.json
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
for _p in (HERE.parent, HERE.parent / "tests", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

SIZES = {"small": 3, "batch": 5000}


def _worker(spec: dict[str, Any], name: str, ready: Any, start: Any, out: Any) -> None:
    import pyarrow as pa

    import koru_core as koru

    store = koru.open(spec["location"], catalog=spec.get("catalog"), storage_options=spec.get("storage_options"),
                      lock_timeout=120)
    rows = spec["rows"]
    tables = [pa.table({"id": [f"{name}-{(i * rows + j) % 50_000}" for j in range(rows)],
                        "v": [f"{name}-{i}-{j}" for j in range(rows)]}) for i in range(spec["commits"])]
    store.version()
    ready.put(name)
    start.wait()
    latencies = []
    for table in tables:
        t0 = time.perf_counter_ns()
        store.upsert("bench", table, key="id")
        latencies.append(time.perf_counter_ns() - t0)
    store.close()
    out.put(latencies)


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def run_case(spec: dict[str, Any], *, writers: int) -> dict[str, Any]:
    """Run ``writers`` writer processes on the (fresh) store of ``spec``; returns one row."""
    import koru_core as koru

    koru.open(spec["location"], catalog=spec.get("catalog"), storage_options=spec.get("storage_options")).close()
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(spec, f"w{k}", ready, start, out)) for k in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    began = time.perf_counter()
    start.set()
    results = [out.get(timeout=1800) for _ in procs]
    wall = time.perf_counter() - began
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            msg = f"a writer exited with {p.exitcode}"
            raise RuntimeError(msg)
    lat = [x for r in results for x in r]
    with koru.open(spec["location"], catalog=spec.get("catalog"), storage_options=spec.get("storage_options"),
                   read_only=True) as store:
        commits = store.commits()
        assert [c.commit for c in commits] == list(range(1, len(lat) + 1)), "commits lost or gapped"
        assert store.verify().is_ok
    return {"writers": writers, "commits": len(lat), "rows": len(lat) * spec["rows"], "wall_s": wall,
            "commits_per_s": len(lat) / wall, "rows_per_s": len(lat) * spec["rows"] / wall,
            "commit_p50_ms": statistics.median(lat) / 1e6, "commit_p99_ms": _pct(lat, 0.99)}


def main(argv: list[str] | None = None) -> int:
    """Run every case and print the tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=60, help="commits per writer (default 60)")
    parser.add_argument("--writers", default="1,2,4", help="writer counts (default 1,2,4)")
    parser.add_argument("--sizes", default="small,batch", help="comma-separated of small,batch")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    import catalog_commits
    import servers

    counts = [int(x) for x in args.writers.split(",")]
    rows: list[dict[str, Any]] = []
    pg = servers.start_postgres(settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"})
    s3 = servers.start_seaweedfs()
    try:
        with tempfile.TemporaryDirectory(prefix="koru-writers-bench-") as tmp:
            for size in args.sizes.split(","):
                for system in ("sqlite", "postgres+s3"):
                    for writers in counts:
                        spec: dict[str, Any] = {"rows": SIZES[size], "commits": args.commits}
                        if system == "sqlite":
                            spec["location"] = str(Path(tmp) / f"{size}-{writers}")
                        else:
                            bucket = s3.create_bucket()
                            spec.update(location=f"{bucket.url}/lake", catalog=pg.create_database(),
                                        storage_options=bucket.storage_options)
                        row = run_case(spec, writers=writers)
                        row.update(system=system, size=size)
                        rows.append(row)
                        print(f"  {size:5} {system:12} {writers} writer(s): {row['commits_per_s']:7.1f} commits/s "
                              f"{row['rows_per_s']:10.0f} rows/s", file=sys.stderr)
            catalog = [dict(catalog_commits.run_case(f"{pg.url}?koru_schema=cat_{w}", writers=w, commits=150),
                            backend="postgres") for w in counts]
            catalog += [dict(catalog_commits.run_case(str(Path(tmp) / f"cat{w}.sqlite"), writers=w, commits=150),
                             backend="sqlite") for w in counts]
    finally:
        pg.stop()
        s3.stop()
    print(f"\nMany writers, {args.commits} upserts per writer, keys of its own (automatic maintenance on)\n")
    head = (f"{'size':6} {'store':12} {'writers':>7} {'commits/s':>10} {'rows/s':>10} {'commit p50':>11} "
            f"{'commit p99':>11} {'vs sqlite':>10}")
    print(head)
    print("-" * len(head))
    base = {(r["size"], r["writers"]): r["rows_per_s"] for r in rows if r["system"] == "sqlite"}
    for r in rows:
        ratio = r["rows_per_s"] / base[(r["size"], r["writers"])]
        print(f"{r['size']:6} {r['system']:12} {r['writers']:>7} {r['commits_per_s']:>10.1f} {r['rows_per_s']:>10.0f} "
              f"{r['commit_p50_ms']:>9.1f}ms {r['commit_p99_ms']:>9.1f}ms {ratio:>9.2f}x")
    print("\nThe catalog transaction alone (record_commit, 150 commits, durable)\n")
    print(f"{'backend':9} {'writers':>7} {'commits/s':>10} {'call p50':>9} {'call p99':>9} {'calls/commit':>13}")
    for r in catalog:
        print(f"{r['backend']:9} {r['writers']:>7} {r['commits_per_s']:>10.0f} {r['call_p50_ms']:>7.2f}ms "
              f"{r['call_p99_ms']:>7.2f}ms {r['calls_per_commit']:>13.2f}")
    if args.json:
        args.json.write_text(json.dumps({"stores": rows, "catalog": catalog}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
