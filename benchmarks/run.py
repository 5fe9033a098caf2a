"""Measure every goal of issues 16 and 17 in one run: koru and its peers on the same data.

Usage:
    python benchmarks/run.py                       # everything at the issues' sizes
    python benchmarks/run.py --workload synthetic --keys 20000 --flights-commits 5 \\
        --puts-curve 3000 --small-commits 500 --memory-import-rows 0 --memory-upsert-rows 0

Per workload (`flights`, `synthetic`: ~70 % unchanged rows, `synthetic_all`: every
row changes), every selected system ingests the commits, is closed and reopened,
answers the reads (each checked against brute force) and makes durable puts:
`koru` (as ingest and its automatic maintenance leave it), `koru_cold` (after an
explicit `consolidate()`, on a copy of koru's store), `duckdb_scd2`, `deltalake`
and the readers `koru_duckdb`, `koru_polars`, `koru_cold_duckdb`,
`koru_cold_polars`, `polars_delta`. Also per workload: SQLite WAL FULL single-row
commits on the same disk and the as-of floor (the alive rows read from zstd
Parquet). Then the put curve (`put_curve.py`), the small-commits reads
(`small_commits.py`) and peak memory (`ingest_memory.py`). It prints the tables,
the koru/peer ratios and the goals table, and writes everything to
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
import traceback
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # sibling modules, then the koru packages of this checkout
    if str(_p) not in sys.path:
        sys.path.insert(0 if _p == HERE else 1, str(_p))

import baselines  # noqa: E402
import checks  # noqa: E402
import goals  # noqa: E402
import ingest_memory  # noqa: E402
import measure  # noqa: E402
import put_curve  # noqa: E402
import report  # noqa: E402
import small_commits  # noqa: E402
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
WORKLOADS = ("flights", "synthetic", "synthetic_all")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults are the issues' sizes (see README.md for timings)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", default="all",
                   help=f"comma-separated, from {', '.join(WORKLOADS)}; or all (default)")
    p.add_argument("--keys", type=int, default=1_000_000, help="synthetic*: keys per commit")
    p.add_argument("--versions", type=int, default=10, help="synthetic*: commits")
    p.add_argument("--flights-commits", type=int, default=20)
    p.add_argument("--systems", default=DEFAULT_SYSTEMS,
                   help=f"comma-separated, from {', '.join([*SYSTEMS, *READERS])}")
    p.add_argument("--out", type=Path, help="folder for the stores (kept); default: a temp dir")
    p.add_argument("--results", type=Path, default=HERE / "results", help="folder for the JSON")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per query metric")
    p.add_argument("--budget", type=float, default=10.0,
                   help="seconds per query metric after which repetitions stop (min 3 reps)")
    p.add_argument("--puts", type=int, default=1000,
                   help="single durable puts per system and workload, and SQLite commits (0: skip)")
    p.add_argument("--puts-curve", type=int, default=101_000, help="puts of the put curve (0: skip)")
    p.add_argument("--puts-curve-budget", type=float, default=600.0,
                   help="seconds after which the put curve stops")
    p.add_argument("--small-commits", type=int, default=5000, help="small commits (0: skip)")
    p.add_argument("--small-commits-reps", type=int, default=20,
                   help="timed repetitions per small-commits read and checkpoint")
    p.add_argument("--memory-upsert-rows", type=int, default=1_000_000,
                   help="rows of the one-upsert memory cases (0: skip them)")
    p.add_argument("--memory-import-rows", type=int, default=10_000_000,
                   help="rows of the koru import memory cases (0: skip them)")
    p.add_argument("--memory-data", type=Path, help="folder for the import files (kept, reused)")
    args = p.parse_args(argv)
    args.system_list = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.system_list if s not in SYSTEMS and s not in READERS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {[*SYSTEMS, *READERS]}")
    args.workload_list = list(WORKLOADS) if args.workload == "all" else [
        w.strip() for w in args.workload.split(",") if w.strip()]
    bad = [w for w in args.workload_list if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {list(WORKLOADS)} or all")
    return args


def build_workload(name: str, args: argparse.Namespace) -> workloads.Workload:
    """Build one workload (they are built one at a time, to bound the harness's memory)."""
    if name == "flights":
        return workloads.flights_workload(commits=args.flights_commits)
    return workloads.synthetic_workload(keys=args.keys, versions=args.versions,
                                        changed="all" if name == "synthetic_all" else "30%")


def _info(wl: workloads.Workload, truth: checks.Truth) -> dict:
    return {"rows": wl.rows, "commits": len(wl.commits), "key": wl.key, "valid": wl.valid,
            "as_of_at": wl.as_of_at.isoformat(), "as_of_commit": wl.as_of_commit,
            "as_of_expected_rows": truth.as_of.num_rows, "now_expected_rows": truth.now.num_rows,
            "history_key": wl.history_key, "history_raw_rows": truth.history_raw_rows,
            "history_changes": len(truth.history), "get_key": wl.get_key, "agg": list(wl.agg),
            "notes": wl.notes}


def run_workload(wl: workloads.Workload, args: argparse.Namespace, root: Path) -> tuple[list, dict]:
    """Every selected system through one workload, plus its baselines; returns (results, info)."""
    t0 = time.perf_counter()
    truth = checks.brute_force(wl)
    info = dict(_info(wl, truth), brute_force_s=time.perf_counter() - t0)
    measure.log(f"[{wl.name}] {wl.rows:,} rows in {len(wl.commits)} commits; as-of at "
                f"{wl.as_of_at.isoformat()} (end of commit {wl.as_of_commit}): "
                f"{truth.as_of.num_rows:,} keys by brute force; notes {wl.notes}")
    chosen = args.system_list
    results = [{"system": n, "workload": wl.name, "status": "skipped", "reader_of": READERS[n].base,
                "reason": f"needs base system {READERS[n].base!r} in --systems", "errors": {}}
               for n in chosen if n in READERS and READERS[n].base not in chosen]
    seed = root / wl.name / "koru_seed"
    share = "koru" in chosen and "koru_cold" in chosen
    for name in sorted((n for n in chosen if n in SYSTEMS), key=list(SYSTEMS).index):
        readers = [READERS[r]() for r in chosen if r in READERS and READERS[r].base == name]
        sysm = KoruColdSystem(seed=seed if share else None) if name == "koru_cold" else SYSTEMS[name]()
        try:
            results += measure.run_system(
                sysm, readers, wl, root / wl.name / name, truth, reps=args.reps,
                budget_s=args.budget, puts=args.puts,
                copy_to=seed if share and name == "koru" else None)
        except Exception as e:  # the harness itself must never take the others down
            results.append({"system": name, "workload": wl.name, "status": "error",
                            "reason": f"{type(e).__name__}: {e}", "errors": {},
                            "traceback": traceback.format_exc(limit=8)})
        gc.collect()
    shutil.rmtree(seed, ignore_errors=True)
    if args.puts > 0:
        results.append(dict(baselines.sqlite_commits(root / wl.name / "sqlite", commits=args.puts),
                            workload=wl.name))
    if any(n.startswith("koru") for n in chosen):
        info["floor"] = baselines.as_of_floor(truth.as_of, root / wl.name / "floor", reps=max(args.reps, 5))
    return results, info


def run_extras(args: argparse.Namespace, root: Path) -> dict:
    """The put curve, the small commits and the memory cases (each skipped at 0)."""
    out: dict = {"errors": {}}
    steps = []
    if args.puts_curve > 0:
        steps.append(("put_curve", lambda: put_curve.put_curve(
            root / "put_curve" / "store.koru", puts=args.puts_curve, budget_s=args.puts_curve_budget)))
    if args.small_commits > 0:
        steps.append(("small_commits", lambda: small_commits.small_commits(
            root / "small_commits" / "store.koru", commits=args.small_commits,
            reps=args.small_commits_reps)))
    cases = [c for c in ingest_memory.CASES if args.memory_upsert_rows > 0 or c.startswith("import")]
    cases = [c for c in cases if args.memory_import_rows > 0 or not c.startswith("import")]
    if cases:
        steps.append(("memory", lambda: ingest_memory.run(
            cases, upsert_rows=args.memory_upsert_rows or 1, import_rows=args.memory_import_rows or 1,
            data=args.memory_data or root / "memory_data", work=root / "memory")))
    for name, fn in steps:
        measure.log(f"[{name}]")
        t0 = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as e:
            out["errors"][name] = f"{type(e).__name__}: {e}"
            out.setdefault("tracebacks", {})[name] = traceback.format_exc(limit=8)
        out[f"{name}_s"] = time.perf_counter() - t0
        measure.log(f"[{name}] {out[f'{name}_s']:.1f} s")
    return out


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "cpus": os.cpu_count()}
    for pkg in ("pyarrow", "duckdb", "deltalake", "polars", "pandas", "koru-lake"):  # koru's distribution
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
        for name in args.workload_list:
            t0 = time.perf_counter()
            wl = build_workload(name, args)
            build_s = time.perf_counter() - t0
            results, info = run_workload(wl, args, root)
            info["build_s"], info["run_s"] = build_s, time.perf_counter() - t0
            all_results += results
            infos[wl.name] = info
            del wl
            gc.collect()
        extras = run_extras(args, root)
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    total_s = time.perf_counter() - t_start
    rat = report.print_tables(all_results, infos)
    report.print_extras(extras)
    extras.update(workloads=list(infos), floors={k: v["floor"] for k, v in infos.items() if "floor" in v})
    rows = goals.evaluate(all_results, extras)
    goals.print_goals(rows)
    print(f"\ntotal {total_s:.1f} s; stores in {root}" + ("" if args.out else " (removed)"))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    doc = {"started": started.isoformat(), "argv": sys.argv, "total_s": total_s,
           "args": {k: str(v) for k, v in vars(args).items()}, "environment": _versions(),
           "workloads": infos, "results": all_results, "ratios": rat, "goals": rows,
           "put_curve": extras.get("put_curve"), "small_commits": extras.get("small_commits"),
           "memory": extras.get("memory"),
           "extras_s": {k: v for k, v in extras.items() if k.endswith("_s")},
           "extras_errors": extras.get("errors"), "extras_tracebacks": extras.get("tracebacks")}
    path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
