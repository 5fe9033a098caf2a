"""Print the results (rich if installed, else plain text): writes, reads, koru/peer ratios.

The goals table is `goals.py`'s. Read cells show the median and, in parentheses,
the first call after the store was reopened.

Example:
    >>> fmt_checks({"as_of": {"ok": True}, "history": {"ok": True}})
    '✓ 2'
    >>> fmt_num(1234.5), fmt_num(0.01234), fmt_num(None)
    ('1,234', '0.0123', '-')
"""

from __future__ import annotations

from typing import Any

# (result key, column header) of the write table
WRITE_METRICS = [
    ("ingest_rows_per_s", "ingest rows/s"),
    ("ingest_s", "ingest s"),
    ("close_s", "close s"),
    ("maintain_s", "consolidate s"),
    ("reopen_s", "reopen s"),
    ("disk_mib", "disk MiB"),
    ("put_us", "put µs"),
    ("put_p99_us", "put p99 µs"),
]
# (metric, unit, column header) of the read table
READ_METRICS = [
    ("as_of", "ms", "as-of mid ms"),
    ("as_of_now", "ms", "as-of now ms"),
    ("as_of_count", "ms", "count ms"),
    ("agg", "ms", "filter+agg ms"),
    ("history", "ms", "history ms"),
    ("get_at", "us", "get(at=) µs"),
    ("get", "us", "get µs"),
]
# koru-side system -> the peers it is compared with in the ratio table
PAIRS = {
    "koru": ("duckdb_scd2", "deltalake"),
    "koru_duckdb": ("duckdb_scd2", "deltalake"),
    "koru_polars": ("polars_delta", "deltalake"),
}
PAIRS |= {k.replace("koru", "koru_cold", 1): v for k, v in PAIRS.items()}
RATIO_METRICS = [("ingest_rows_per_s", "ingest", True), ("as_of_ms", "as-of mid", False),
                 ("as_of_now_ms", "as-of now", False), ("as_of_count_ms", "count", False),
                 ("agg_ms", "filter+agg", False), ("history_ms", "history", False),
                 ("get_at_us", "get(at=)", False), ("get_us", "get", False),
                 ("put_us", "put", False), ("disk_bytes", "disk", False)]


def fmt_num(x: float | None) -> str:
    """Three significant figures, thousands separated; '-' for a missing value."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_checks(checks: dict | None) -> str:
    """'✓ n' if all n checks against the brute force hold, else the failing ones."""
    if not checks:
        return "-"
    bad = [k for k, c in checks.items() if not c.get("ok")]
    return f"✗ {', '.join(bad)}" if bad else f"✓ {len(checks)}"


def render(title: str, headers: list[str], rows: list[list[str]], *, left: tuple[int, ...] = (0, 1)) -> None:
    """Print a table: rich if it imports, else aligned plain text; columns `left` align left."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        print(f"\n{title}")
        for r in [headers, *rows]:
            print("  ".join(c.ljust(w) if i in left else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        return
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i in left else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


def by_system(results: list[dict]) -> dict[tuple[str, str], dict]:
    """{(workload, system): result} of the results that ran."""
    return {(r["workload"], r["system"]): r for r in results if r.get("status") == "ok"}


def ratios(results: list[dict]) -> list[dict]:
    """koru-side system / peer, per workload and metric (`PAIRS`; both must have it)."""
    ok = by_system(results)
    out = []
    for (wl, name), r in ok.items():
        for peer in PAIRS.get(name, ()):
            p = ok.get((wl, peer))
            if not p:
                continue
            for m, _, higher in RATIO_METRICS:
                if r.get(m) and p.get(m):
                    out.append({"workload": wl, "system": name, "peer": peer, "metric": m,
                                "ratio": r[m] / p[m], "higher_is_better": higher})
    return out


def _read_cell(r: dict, metric: str, unit: str) -> str:
    v = r.get(f"{metric}_{unit}")
    if v is None:
        return "-"
    first = r.get(f"{metric}_first_{unit}")
    return f"{fmt_num(v)} ({fmt_num(first)})"


def print_tables(results: list[dict], infos: dict[str, dict]) -> list[dict]:
    """Print the workloads, the write and read tables and the ratios; return the ratios."""
    for name, i in infos.items():
        print(f"{name}: {i['rows']:,} rows in {i['commits']} commits; as-of at {i['as_of_at']} "
              f"expects {i['as_of_expected_rows']:,} keys; history of {i['history_key']!r} has "
              f"{i['history_raw_rows']} raw rows; get {i['get_key']!r}; agg {i['agg']}; {i['notes']}")
    runs = [r for r in results if r.get("workload") in infos]
    for r in runs:
        if r.get("disk_bytes"):
            r["disk_mib"] = r["disk_bytes"] / 2**20
    write_rows = [[r["workload"], r["system"], r["status"]] + [fmt_num(r.get(m)) for m, _ in WRITE_METRICS]
                  for r in runs if "reader_of" not in r]
    render("writes (ingest: commits + finish + close; disk after reopen; puts: durable, single)",
           ["workload", "system", "status"] + [h for _, h in WRITE_METRICS], write_rows)
    read_rows = [[r["workload"], r["system"]] + [_read_cell(r, m, u) for m, u, _ in READ_METRICS]
                 + [fmt_num(r.get("history_rows")), fmt_checks(r.get("checks"))]
                 for r in runs if r.get("status") == "ok" and r.get("checks")]
    render("reads after reopen: median (first call); checked against brute force",
           ["workload", "system"] + [h for _, _, h in READ_METRICS] + ["hist rows", "checks"], read_rows)
    for r in runs:
        if r["status"] != "ok" or r.get("errors"):
            why = r.get("reason") or "; ".join(f"{k}: {v}" for k, v in r["errors"].items())
            print(f"  {r['workload']}/{r['system']}: {r['status']}: {why}")
    rat = ratios(results)
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    for x in rat:
        cells.setdefault((x["workload"], x["system"], x["peer"]), {})[x["metric"]] = x["ratio"]
    if cells:
        render("koru / peer ratios (ingest: > 1 is better; times and disk: < 1 is better)",
               ["workload", "koru system", "peer"] + [h for _, h, _ in RATIO_METRICS],
               [[*k] + [f"{v[m]:.3g}x" if m in v else "-" for m, _, _ in RATIO_METRICS]
                for k, v in cells.items()])
    else:
        print("\nNo koru/peer ratios: no koru system and peer both ran.")
    return rat


def print_extras(extras: dict[str, Any]) -> None:
    """Print the put curve, the small-commits table and the memory table, if they ran."""
    import ingest_memory
    import put_curve
    import small_commits

    if extras.get("put_curve"):
        print("\n" + put_curve.curve_text(extras["put_curve"]))
    if extras.get("small_commits"):
        print("\n" + small_commits.table_text(extras["small_commits"]))
    if extras.get("memory"):
        print("\n" + ingest_memory.table_text(extras["memory"]))
    for name, err in extras.get("errors", {}).items():
        print(f"  {name}: failed: {err}")
