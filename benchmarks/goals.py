"""The goals of issues 16 (write path) and 17 (read path), evaluated on one run's results.

A goal compares a koru-side system's metric with a peer's (a ratio bound) or with
a fixed value. Each read goal is evaluated for koru as ingest and its automatic
maintenance leave it (`koru`, `koru_duckdb`, `koru_polars`) and after an explicit
`consolidate()` (`koru_cold`, …). A goal whose answer failed its brute-force check
fails, whatever the time. A goal that could not be measured shows ``?``.

Example:
    >>> results = [{"workload": "flights", "system": "koru", "status": "ok", "ingest_rows_per_s": 3e5},
    ...            {"workload": "flights", "system": "deltalake", "status": "ok", "ingest_rows_per_s": 2e5}]
    >>> rows = evaluate(results, {"workloads": ["flights"]})
    >>> [(r["goal"], r["ratio"], r["ok"]) for r in rows][:2]
    [('ingest >= 1.0x deltalake', 1.5, True), ('durable put median <= 1.5x SQLite WAL FULL commit', None, None)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from report import by_system, fmt_num, render

WORKLOADS = ("flights", "synthetic", "synthetic_all")
SYNTHETIC = ("synthetic", "synthetic_all")


def _both(*names: str) -> tuple[str, ...]:
    """The systems as ingest leaves them, then after an explicit consolidate()."""
    return names + tuple(n.replace("koru", "koru_cold", 1) for n in names)


@dataclass(frozen=True)
class Goal:
    """`metric` of each of `systems` against `peer`'s (or against `bound` itself if no peer)."""

    issue: int
    label: str
    metric: str
    systems: tuple[str, ...]
    peer: str | None
    bound: float
    workloads: tuple[str, ...] = WORKLOADS
    higher_is_better: bool = False
    check: str | None = None  # the brute-force check that must hold as well


AS_OF_READERS = _both("koru", "koru_duckdb", "koru_polars")
GOALS = [
    Goal(16, "ingest >= 1.0x deltalake", "ingest_rows_per_s", ("koru",), "deltalake", 1.0,
         higher_is_better=True),
    Goal(16, "durable put median <= 1.5x SQLite WAL FULL commit", "put_us", _both("koru"),
         "sqlite_wal_full", 1.5),
    Goal(17, "as-of mid <= 1.5x duckdb_scd2", "as_of_ms", AS_OF_READERS, "duckdb_scd2", 1.5,
         workloads=("flights",), check="as_of"),
    Goal(17, "as-of mid <= 0.5x deltalake", "as_of_ms", AS_OF_READERS, "deltalake", 0.5, check="as_of"),
    Goal(17, "as-of now <= 1x duckdb_scd2", "as_of_now_ms", _both("koru"), "duckdb_scd2", 1.0,
         check="as_of_now"),
    Goal(17, "history of one key <= 1x duckdb_scd2", "history_ms", _both("koru"), "duckdb_scd2", 1.0,
         check="history"),
    Goal(17, "get(at=) past time <= 1x SCD2 point read", "get_at_us", _both("koru"), "duckdb_scd2", 1.0,
         check="get_at"),
    Goal(17, "DuckDB AT count(*) <= 2x SCD2 SQL", "as_of_count_ms", _both("koru_duckdb"), "duckdb_scd2",
         2.0, check="as_of_count"),
    Goal(17, "DuckDB AT filter+aggregate <= 2x SCD2 SQL", "agg_ms", _both("koru_duckdb"), "duckdb_scd2",
         2.0, check="agg"),
    Goal(17, "DuckDB AT SELECT * <= 2x SCD2 SQL", "as_of_ms", _both("koru_duckdb"), "duckdb_scd2", 2.0,
         check="as_of"),
    Goal(17, "Polars as-of+filter+group-by <= 0.5x scan_delta", "agg_ms", _both("koru_polars"),
         "polars_delta", 0.5, check="agg"),
    Goal(17, "disk <= 2x duckdb_scd2", "disk_bytes", _both("koru"), "duckdb_scd2", 2.0,
         workloads=("flights",)),
    Goal(17, "disk <= 1x deltalake", "disk_bytes", _both("koru"), "deltalake", 1.0, workloads=SYNTHETIC),
]


def _row(issue: int, workload: str, goal: str, system: str, value: float | None, ref: float | None,
         ok: bool | None, *, unit: str = "", note: str = "", info: bool = False) -> dict:
    """One goal row; `info`: reported for reference, with no bound to pass or fail."""
    ratio = value / ref if value is not None and ref else None
    return {"issue": issue, "workload": workload, "goal": goal, "system": system, "value": value,
            "reference": ref, "ratio": ratio, "ok": ok, "unit": unit, "note": note, "info": info}


def _unit(metric: str) -> str:
    if metric.endswith("rows_per_s"):
        return "rows/s"
    return {"bytes": "B", "us": "µs", "ms": "ms"}.get(metric.rsplit("_", 1)[-1], "")


def _peer_goals(results: list[dict], workloads: list[str]) -> list[dict]:
    ok = by_system(results)
    out = []
    for g in GOALS:
        for wl in (w for w in workloads if w in g.workloads):
            ref = ok.get((wl, g.peer), {}).get(g.metric) if g.peer else g.bound
            for name in g.systems:
                r = ok.get((wl, name))
                if r is None and not any(x.get("system") == name and x.get("workload") == wl for x in results):
                    continue  # not selected in this run
                value = (r or {}).get(g.metric)
                passed, note = None, ""
                if value is not None and ref:
                    ratio = value / ref
                    passed = ratio >= g.bound if g.higher_is_better else ratio <= g.bound
                    check = (r or {}).get("checks", {}).get(g.check) if g.check else None
                    if g.check and not (check and check.get("ok")):
                        passed, note = False, f"answer failed the {g.check} check"
                out.append(_row(g.issue, wl, g.label, name, value, ref, passed, unit=_unit(g.metric),
                                note=note))
    return out


def _floor_rows(results: list[dict], floors: dict[str, dict]) -> list[dict]:
    """The named bound of the as-of read: the alive rows from zstd Parquet and a DuckDB table."""
    ok = by_system(results)
    out = []
    for wl, f in floors.items():
        note = f"{f['rows']:,} rows x {f['columns']} cols; DuckDB table {f['duckdb_ms']:.3g} ms"
        out.append(_row(17, wl, "bound: alive rows from zstd Parquet (pyarrow)", "floor", f["parquet_ms"],
                        None, None, unit="ms", note=note, info=True))
        for name in AS_OF_READERS:
            v = ok.get((wl, name), {}).get("as_of_ms")
            if v is not None:
                out.append(_row(17, wl, "as-of mid vs the Parquet floor", name, v, f["parquet_ms"], None,
                                unit="ms", info=True))
    return out


def _curve_rows(c: dict) -> list[dict]:
    from put_curve import FLAT_RATIO

    label = (f"put median, last {c['window']:,} <= {FLAT_RATIO}x first {c['window']:,} "
             f"({c['puts_done']:,} puts)")
    note = "stopped early (budget): not the full curve" if c["stopped_early"] else ""
    ok = c["ratio"] <= FLAT_RATIO and not c["stopped_early"]
    return [_row(16, "put_curve", label, "koru", c["last_median_us"], c["first_median_us"], ok,
                 unit="µs", note=note),
            _row(16, "put_curve", "put p99 (all puts; reported)", "koru", c["p99_us"], None, None,
                 unit="µs", info=True)]


def _small_rows(s: dict) -> list[dict]:
    from small_commits import READS

    points = [c for c in s["checkpoints"] if isinstance(c["commits"], int)]
    out = []
    for read in READS:
        worst = max(c[f"{read}_ms"] for c in s["checkpoints"])
        right = all(c[f"{read}_ok"] for c in s["checkpoints"])
        out.append(_row(17, "small_commits", f"{read} <= {s['bound_ms']} ms at every checkpoint (worst)",
                        "koru", worst, s["bound_ms"], worst <= s["bound_ms"] and right, unit="ms",
                        note="" if right else "an answer failed its check"))
        first, last = points[0][f"{read}_ms"], points[-1][f"{read}_ms"]
        out.append(_row(17, "small_commits", f"{read} flat: at {points[-1]['commits']:,} commits "
                        f"<= {s['flat_ratio']}x at {points[0]['commits']:,}", "koru", last, first,
                        last / first <= s["flat_ratio"], unit="ms"))
    return out


def _memory_rows(mem: list[dict]) -> list[dict]:
    return [_row(16, "memory", f"peak RSS <= memory_limit: {m['case']} ({m['rows']:,} rows)", "koru",
                 m["peak_mib"], m["limit_mib"], m["ok"], unit="MiB",
                 note=f"exit {m['returncode']}" if m["returncode"] else "")
            for m in mem if "ok" in m]


def evaluate(results: list[dict], extras: dict[str, Any]) -> list[dict]:
    """Every goal row: `issue`, `workload`, `goal`, `system`, `value`, `reference`, `ratio`, `ok`.

    `extras` may hold ``workloads`` (names run), ``floors`` ({workload: as-of floor}),
    ``put_curve``, ``small_commits`` and ``memory`` (the results of those benchmarks).
    """
    rows = _peer_goals(results, extras.get("workloads", list(WORKLOADS)))
    rows += _floor_rows(results, extras.get("floors", {}))
    if extras.get("put_curve"):
        rows += _curve_rows(extras["put_curve"])
    if extras.get("small_commits"):
        rows += _small_rows(extras["small_commits"])
    if extras.get("memory"):
        rows += _memory_rows(extras["memory"])
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "B":
        return f"{fmt_num(v / 2**20)} MiB"
    return f"{fmt_num(v)} {unit}".strip()


def print_goals(rows: list[dict]) -> None:
    """Print the goals table and a one-line tally."""
    mark = {True: "✓ pass", False: "✗ fail", None: "?"}
    table = [[str(r["issue"]), r["workload"], r["goal"], r["system"], _fmt(r["value"], r["unit"]),
              _fmt(r["reference"], r["unit"]), f"{r['ratio']:.3g}x" if r["ratio"] is not None else "-",
              "info" if r["info"] else mark[r["ok"]], r["note"]]
             for r in rows]
    render("goals of issues 16 and 17 (koru = as ingest and automatic maintenance leave it; "
           "koru_cold = after consolidate())",
           ["issue", "workload", "goal", "system", "koru", "peer / bound", "ratio", "met", "note"], table,
           left=(0, 1, 2, 3, 8))
    count = {k: sum(1 for r in rows if r["ok"] is k and not r["info"]) for k in (True, False, None)}
    print(f"goals: {count[True]} pass, {count[False]} fail, {count[None]} not measured "
          f"({sum(1 for r in rows if r['info'])} rows for reference)")
