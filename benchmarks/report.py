"""Print the results (rich if installed, else plain text): the table, koru/peer ratios, targets.

The targets are the issue's: koru ingest >= deltalake rows/s; as-of <= 1.5x DuckDB
SCD2 and <= 0.5x deltalake; history <= DuckDB SCD2; get <= 2 µs for a recently
written key; durable put <= 100 µs median.

Example:
    >>> fmt_check({"count_ok": True, "values_ok": True, "rows": 5, "expected_rows": 5})
    '✓ 5/5'
"""

from __future__ import annotations

from typing import Any

# (result key, column header, higher is better)
METRICS = [
    ("ingest_rows_per_s", "ingest rows/s", True),
    ("as_of_ms", "as-of ms", False),
    ("as_of_count_ms", "count ms", False),
    ("history_ms", "history ms", False),
    ("get_us", "get µs", False),
    ("put_us", "put µs", False),
]

# (label, koru metric, peer system or None for an absolute bound, bound: ratio or value)
TARGETS = [
    ("ingest >= deltalake", "ingest_rows_per_s", "deltalake", 1.0),
    ("as-of <= 1.5x duckdb_scd2", "as_of_ms", "duckdb_scd2", 1.5),
    ("as-of <= 0.5x deltalake", "as_of_ms", "deltalake", 0.5),
    ("history <= duckdb_scd2", "history_ms", "duckdb_scd2", 1.0),
    ("get <= 2 µs", "get_us", None, 2.0),
    ("durable put <= 100 µs median", "put_us", None, 100.0),
]
HIGHER_IS_BETTER = {m: h for m, _, h in METRICS}


def fmt_num(x: float | None) -> str:
    """Three significant figures, thousands separated; '-' for a missing value."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_check(check: dict | None) -> str:
    """'✓ got/expected' if the as-of matches the brute force, else what failed."""
    if not check or "count_ok" not in check:
        return "-"
    n = f"{check['rows']}/{check['expected_rows']}"
    if check.get("values_ok"):
        return f"✓ {n}"
    return f"count ✓ {n}, values ✗" if check["count_ok"] else f"✗ {n}"


def _render(title: str, headers: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        print(f"\n{title}")
        for r in [headers, *rows]:
            print("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))))
        return
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=160).print(table)


def _by(results: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["workload"], r["system"]): r for r in results if r.get("status") == "ok"}


def ratios(results: list[dict]) -> list[dict]:
    """koru-family system / peer, per workload and metric (both must have the metric)."""
    ok = _by(results)
    out = []
    for (wl, sysname), r in ok.items():
        if not sysname.startswith("koru"):
            continue
        for (wl2, peer), p in ok.items():
            if wl2 != wl or peer.startswith("koru"):
                continue
            for m, _, higher in METRICS:
                if r.get(m) and p.get(m):
                    out.append({"workload": wl, "system": sysname, "peer": peer, "metric": m,
                                "ratio": r[m] / p[m], "higher_is_better": higher})
    return out


def targets(results: list[dict], workloads: list[str]) -> list[dict]:
    """The issue's targets for the `koru` system, per workload; ok is None if unmeasured."""
    ok = _by(results)
    out = []
    for wl in workloads:
        k = ok.get((wl, "koru"), {})
        for label, m, peer, bound in TARGETS:
            value = k.get(m)
            ref = ok.get((wl, peer), {}).get(m) if peer else 1.0
            passed = None
            if value is not None and ref:
                ratio = value / ref
                passed = ratio >= bound if HIGHER_IS_BETTER[m] else ratio <= bound
            out.append({"workload": wl, "target": label, "value": value,
                        "reference": ref if peer else None, "ok": passed})
    return out


def print_report(results: list[dict], infos: dict[str, dict]) -> tuple[list, list]:
    """Print the results table, ratios and targets; return (ratios, targets) for the JSON.

    `infos` maps each workload name to its description (rows, commits, as-of time …).
    """
    for name, i in infos.items():
        print(f"{name}: {i['rows']:,} rows in {i['commits']} commits; as-of at {i['as_of_at']} "
              f"expects {i['as_of_expected_rows']:,} keys; history of {i['history_key']!r} has "
              f"{i['history_raw_rows']} raw rows; get {i['get_key']!r}; {i['notes']}")
    rows = []
    for r in results:
        disk = r.get("disk_bytes")
        rows.append([r["workload"], r["system"], r["status"]]
                    + [fmt_num(r.get(m)) for m, _, _ in METRICS]
                    + [fmt_num(r.get("history_rows")),
                       fmt_num(disk / 2**20) if disk else "-", fmt_check(r.get("check"))])
    _render("koru vs peers (medians; as-of check vs brute force)",
            ["workload", "system", "status"] + [h for _, h, _ in METRICS]
            + ["hist rows", "disk MiB", "as-of check"],
            rows)
    for r in results:
        if r["status"] != "ok" or r.get("errors"):
            why = r.get("reason") or "; ".join(f"{k}: {v}" for k, v in r["errors"].items())
            print(f"  {r['workload']}/{r['system']}: {r['status']}: {why}")
    rat = ratios(results)
    if rat:
        _render("koru / peer ratios (ingest: >1 is better; times: <1 is better)",
                ["workload", "koru system", "peer", "metric", "ratio"],
                [[x["workload"], x["system"], x["peer"], x["metric"], f"{x['ratio']:.3g}x"]
                 for x in rat])
    else:
        print("\nNo koru/peer ratios: no koru system ran successfully.")
    tg = targets(results, list(infos))
    if any(t["value"] is not None for t in tg):
        mark = {True: "✓", False: "✗", None: "?"}
        _render("targets (system koru)", ["workload", "target", "koru", "peer", "met"],
                [[t["workload"], t["target"], fmt_num(t["value"]), fmt_num(t["reference"]),
                  mark[t["ok"]]] for t in tg])
    return rat, tg
