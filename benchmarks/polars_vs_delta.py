"""Benchmark: as-of + filter + group-by through ``scan_koru`` vs ``pl.scan_delta(version=n)``.

Not collected by pytest (the name does not start with ``test_``). The same
workload (``benchmarks/workloads.py``) is written to a koru store (one upsert per
commit, valid time from the data) and to a Delta table (one MERGE of the latest
row per key per commit), then the same query is timed on both at the middle
commit, best of ``--repeat`` runs, in one process.

Usage::

    PYTHONPATH=. python benchmarks/polars_vs_delta.py --workload flights --root /tmp/kbench
    PYTHONPATH=. python benchmarks/polars_vs_delta.py --workload synthetic --root /tmp/kbench

The stores are built once under ``--root`` (``--build-only`` to just build) and
reused; the printed JSON has both timings, their ratio and whether the answers agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import koru_core as koru  # noqa: E402
from workloads import flights_workload, synthetic_workload  # noqa: E402

QUERIES = {
    "flights": (pl.col("dep_delay") > 30, "origin", pl.col("distance").mean().alias("mean_distance")),
    "synthetic": (pl.col("qty") > 500_000, "tag", pl.col("price").sum().alias("price_sum")),
}


def _latest_per_key(table: pa.Table, key: str, valid: str) -> pa.Table:
    df = pl.from_arrow(table)
    return df.sort(valid, maintain_order=True).unique(key, keep="last", maintain_order=True).to_arrow()


def build(wl, root: Path) -> dict:
    """Write the workload to ``root/koru`` and ``root/delta`` unless already there."""
    from deltalake import DeltaTable, write_deltalake

    meta_path = root / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    root.mkdir(parents=True, exist_ok=True)
    store = koru.open(root / "koru", durability="process")
    commits, versions, times = [], [], []
    dt_ = None
    t_koru = t_delta = 0.0
    for i, part in enumerate(wl.commits):
        t = time.perf_counter()
        res = store.upsert(wl.name, part, key=wl.key, valid_from=wl.valid)
        t_koru += time.perf_counter() - t
        commits.append(res.commit)
        t = time.perf_counter()
        latest = _latest_per_key(part, wl.key, wl.valid)
        if dt_ is None:
            write_deltalake(str(root / "delta"), latest, mode="error")
            dt_ = DeltaTable(str(root / "delta"))
        else:
            (dt_.merge(latest, predicate=f's."{wl.key}" = t."{wl.key}"', source_alias="s", target_alias="t")
             .when_matched_update_all().when_not_matched_insert_all().execute())
        t_delta += time.perf_counter() - t
        versions.append(dt_.version())
        times.append(wl.commits[i][wl.valid].to_pylist()[-1].isoformat())
        print(f"commit {i}: koru {res.commit} delta v{dt_.version()}", flush=True)
    store.close()
    meta = {"commits": commits, "delta_versions": versions, "ingest_s": {"koru": t_koru, "delta": t_delta},
            "rows": wl.rows}
    meta_path.write_text(json.dumps(meta))
    return meta


def _best(fn, repeat: int) -> tuple[float, object]:
    fn()
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(wl, root: Path, meta: dict, repeat: int) -> dict:
    import koru_polars

    pred, by, agg = QUERIES[wl.name]
    i = wl.as_of_commit
    commit, delta_version = meta["commits"][i], meta["delta_versions"][i]

    def query(lf: pl.LazyFrame) -> pl.DataFrame:
        return lf.filter(pred).group_by(by).agg(pl.len(), agg).sort(by).collect()

    store = koru.open(root / "koru")
    t_koru, r_koru = _best(lambda: query(koru_polars.scan_koru(store, wl.name, at=wl.as_of_at, version=commit)), repeat)
    t_delta, r_delta = _best(lambda: query(pl.scan_delta(str(root / "delta"), version=delta_version)), repeat)
    same = r_koru.select(by, "len").equals(r_delta.select(by, "len"))
    store.close()
    return {"workload": wl.name, "rows": meta["rows"], "commit": commit, "delta_version": delta_version,
            "scan_koru_s": round(t_koru, 4), "scan_delta_s": round(t_delta, 4),
            "ratio": round(t_koru / t_delta, 3), "same_answer": same, "ingest_s": meta["ingest_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["flights", "synthetic"], required=True)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--versions", type=int, default=10)
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    if args.workload == "flights":
        wl, root = flights_workload(commits=args.commits), args.root / f"flights-{args.commits}"
    else:
        wl = synthetic_workload(keys=args.keys, versions=args.versions)
        root = args.root / f"synthetic-{args.keys}x{args.versions}"
    meta = build(wl, root)
    if not args.build_only:
        print(json.dumps(measure(wl, root, meta, args.repeat)))


if __name__ == "__main__":
    main()
