"""Run koru and its peers through the same workloads in one process; print and save results.

Usage:
    python benchmarks/run.py                          # flights + synthetic 1M x 10, all systems
    python benchmarks/run.py --workload synthetic --keys 100000 --versions 10 \\
        --systems koru,duckdb_scd2,deltalake --out /tmp/koru-bench

Systems: `koru`, `duckdb_scd2`, `deltalake` (each with its own store) and the readers
`koru_duckdb`, `koru_polars` (as-of on koru's store) and `polars_delta` (as-of on
the Delta table). A system that cannot be imported or fails is reported and the
others still run. Stores go to `<out>/<workload>/<system>/` (a temporary folder,
removed at the end, unless `--out` is given); results go to
`<results>/<UTC timestamp>.json`. See benchmarks/README.md for the metrics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # sibling modules, then the koru packages of this checkout
    if str(_p) not in sys.path:
        sys.path.insert(0 if _p == HERE else 1, str(_p))

import measure  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402
from koru_system import (  # noqa: E402
    KoruColdDuckDB,
    KoruColdPolars,
    KoruColdSystem,
    KoruDuckDB,
    KoruPolars,
    KoruSystem,
)
from peers import DeltaLakeSystem, DuckDBSCD2, PolarsDelta  # noqa: E402

SYSTEMS = {c.name: c for c in (KoruSystem, KoruColdSystem, DuckDBSCD2, DeltaLakeSystem)}
READERS = {c.name: c for c in (KoruDuckDB, KoruPolars, KoruColdDuckDB, KoruColdPolars, PolarsDelta)}
DEFAULT_SYSTEMS = (
    "koru,koru_cold,duckdb_scd2,deltalake,koru_duckdb,koru_polars,koru_cold_duckdb,koru_cold_polars,polars_delta"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults (the issue's 1M x 10) take ~4-6 min on 2 cores."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=["flights", "synthetic", "all"], default="all")
    p.add_argument("--keys", type=int, default=1_000_000, help="synthetic: keys per commit")
    p.add_argument("--versions", type=int, default=10, help="synthetic: commits")
    p.add_argument("--flights-commits", type=int, default=20)
    p.add_argument("--systems", default=DEFAULT_SYSTEMS,
                   help=f"comma-separated, from {', '.join([*SYSTEMS, *READERS])}")
    p.add_argument("--out", type=Path, help="folder for the stores (kept); default: a temp dir")
    p.add_argument("--results", type=Path, default=HERE / "results", help="folder for the JSON")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per query metric")
    p.add_argument("--budget", type=float, default=10.0,
                   help="seconds per query metric after which repetitions stop (min 3 reps)")
    p.add_argument("--puts", type=int, default=1000, help="single durable puts to time (0: skip)")
    args = p.parse_args(argv)
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.system_list if s not in SYSTEMS and s not in READERS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {[*SYSTEMS, *READERS]}")
    return args


def build_workloads(args: argparse.Namespace) -> list[tuple[workloads.Workload, float]]:
    """Build the selected workloads once; returns (workload, build seconds) pairs."""
    out = []
    if args.workload in ("flights", "all"):
        t0 = time.perf_counter()
        out.append((workloads.flights_workload(commits=args.flights_commits),
                    time.perf_counter() - t0))
    if args.workload in ("synthetic", "all"):
        t0 = time.perf_counter()
        out.append((workloads.synthetic_workload(keys=args.keys, versions=args.versions),
                    time.perf_counter() - t0))
    return out


def run_workload(wl: workloads.Workload, args: argparse.Namespace, root: Path) -> tuple[list, dict]:
    """Every selected system through one workload; returns (results, workload info)."""
    t0 = time.perf_counter()
    expected = workloads.expected_as_of(wl)
    info = {"rows": wl.rows, "commits": len(wl.commits), "key": wl.key, "valid": wl.valid,
            "as_of_at": wl.as_of_at.isoformat(), "as_of_commit": wl.as_of_commit,
            "as_of_expected_rows": expected.num_rows, "history_key": wl.history_key,
            "get_key": wl.get_key, "notes": wl.notes,
            "history_raw_rows": workloads.raw_rows_of_key(wl, wl.history_key),
            "brute_force_s": time.perf_counter() - t0}
    measure.log(f"[{wl.name}] {wl.rows:,} rows in {len(wl.commits)} commits; as-of at "
                f"{wl.as_of_at.isoformat()} (end of commit {wl.as_of_commit}): "
                f"{expected.num_rows:,} keys by brute force; notes {wl.notes}")
    results = []
    chosen = args.system_list
    for name in chosen:
        if name in READERS and READERS[name].base not in chosen:
            reason = f"needs base system {READERS[name].base!r} in --systems"
            results.append({"system": name, "workload": wl.name, "status": "skipped",
                            "reason": reason, "errors": {}})
    for name in (n for n in chosen if n in SYSTEMS):
        readers = [READERS[r]() for r in chosen if r in READERS and READERS[r].base == name]
        try:
            results += measure.run_system(
                SYSTEMS[name](), readers, wl, root / wl.name / name, expected,
                reps=args.reps, budget_s=args.budget, puts=args.puts)
        except Exception as e:  # the harness itself must never take the others down
            results.append({"system": name, "workload": wl.name, "status": "error",
                            "reason": f"{type(e).__name__}: {e}", "errors": {}})
        gc.collect()
    return results, info


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "cpus": os.cpu_count()}
    for pkg in ("pyarrow", "duckdb", "deltalake", "polars", "pandas", "koru"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; writes `<results>/<timestamp>.json` and prints the report."""
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    t_start = time.perf_counter()
    root = args.out or Path(tempfile.mkdtemp(prefix="koru-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    all_results, infos = [], {}
    try:
        for wl, build_s in build_workloads(args):
            results, info = run_workload(wl, args, root)
            info["build_s"] = build_s
            all_results += results
            infos[wl.name] = info
            del wl
            gc.collect()
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    total_s = time.perf_counter() - t_start
    rat, tg = report.print_report(all_results, infos)
    print(f"\ntotal {total_s:.1f} s; stores in {root}" + ("" if args.out else " (removed)"))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    doc = {"started": started.isoformat(), "argv": sys.argv, "total_s": total_s,
           "args": {k: str(v) for k, v in vars(args).items()}, "environment": _versions(),
           "workloads": infos, "results": all_results, "ratios": rat, "targets": tg}
    path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
