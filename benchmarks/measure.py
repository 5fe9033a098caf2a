"""Run one system through one workload and measure it; timing and correctness helpers.

All times come from `time.perf_counter`. Query metrics run once to warm up, then
repeat (at least 3 times, at most `reps`, stopping after `budget_s` seconds) and
report the median. A failing step is recorded under `errors` and the next step
still runs; a failing setup or ingest ends that system's run only.

Result dict per (system, workload), units in the key names:
`ingest_s`, `ingest_rows_per_s`, `commit_s` (list), `as_of_ms`, `as_of_rows`,
`as_of_count_ms`, `history_ms`, `history_rows`, `get_us`, `put_us` (median),
`put_p99_us`, `disk_bytes` (store folder after ingest), `check` (as-of vs brute force).

Example:
    >>> stats, out = timed_median(lambda: 42, reps=3, budget_s=1.0)
    >>> (out, stats["reps"])
    (42, 3)
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pyarrow as pa

from koru_system import SystemUnavailableError

if TYPE_CHECKING:
    from workloads import Workload


def log(msg: str) -> None:
    """Progress line on stderr, so stdout keeps only the report."""
    print(msg, file=sys.stderr, flush=True)


def timed_median(fn: Callable[[], Any], *, reps: int, budget_s: float) -> tuple[dict, Any]:
    """Warm up once, then time up to `reps` calls (>= 3 unless over budget); seconds."""
    out = fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "reps": len(times)}, out


def disk_bytes(path: Path) -> int:
    """Total size in bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _column(table: pa.Table, names: list[str]) -> pa.ChunkedArray:
    for n in names:
        if n in table.column_names:
            return table[n]
    msg = f"none of the columns {names} in the as-of result {table.column_names}"
    raise LookupError(msg)


def check_as_of(result: Any, wl: Workload, expected: pa.Table) -> dict:
    """Compare an as-of result with the brute force `expected` (one row per key, by key).

    `count_ok`: same number of rows. `values_ok`: same keys and, per key, the same
    values in every value column the result has (`value_columns` names them).
    `valid_from_same`: same valid time per key; informational, as a system that
    skips unchanged rows rightly keeps the valid time of the last change.
    """
    table = result.to_arrow() if hasattr(result, "to_arrow") else result
    out: dict[str, Any] = {"expected_rows": expected.num_rows, "rows": table.num_rows}
    out["count_ok"] = table.num_rows == expected.num_rows
    common = [c for c in expected.column_names
              if c not in (wl.key, wl.valid) and c in table.column_names]
    got = pa.table({"key": _column(table, ["_key", wl.key]).cast(pa.string()),
                    **{c: table[c].cast(expected[c].type) for c in common},
                    "valid": _column(table, ["_valid_from", "valid_from", wl.valid])
                    .cast(expected[wl.valid].type)}).sort_by("key")
    want = pa.table({"key": expected[wl.key], **{c: expected[c] for c in common},
                     "valid": expected[wl.valid]})
    out["value_columns"] = common
    out["values_ok"] = out["count_ok"] and got.drop(["valid"]).equals(want.drop(["valid"]))
    out["valid_from_same"] = out["count_ok"] and got["valid"].equals(want["valid"])
    return out


def _step(res: dict, name: str, fn: Callable[[], None]) -> None:
    """Run one measurement; on failure record and print the error, then carry on."""
    try:
        fn()
    except Exception as e:
        res["errors"][name] = f"{type(e).__name__}: {e}"
        res["tracebacks"][name] = traceback.format_exc(limit=6)
        log(f"    {res['system']}: {name} failed: {type(e).__name__}: {e}")


def _measure_as_of(res: dict, sysm: Any, wl: Workload, expected: pa.Table,
                   reps: int, budget_s: float) -> None:
    at, c = wl.as_of_at, wl.as_of_commit

    def as_of() -> None:
        stats, table = timed_median(lambda: sysm.as_of(at, c), reps=reps, budget_s=budget_s)
        res["as_of_ms"], res["as_of_reps"] = stats["median"] * 1e3, stats["reps"]
        res["as_of_rows"] = len(table)
        res["check"] = check_as_of(table, wl, expected)

    def count() -> None:
        stats, n = timed_median(lambda: sysm.as_of_count(at, c), reps=reps, budget_s=budget_s)
        res["as_of_count_ms"], res["as_of_count"] = stats["median"] * 1e3, int(n)
        res.setdefault("check", {})["as_of_count_ok"] = int(n) == expected.num_rows

    _step(res, "as_of", as_of)
    _step(res, "as_of_count", count)


def _new_result(name: str, wl: Workload) -> dict:
    return {"system": name, "workload": wl.name, "status": "ok", "errors": {}, "tracebacks": {}}


def run_reader(reader: Any, base: Any, wl: Workload, expected: pa.Table, *,
               reps: int, budget_s: float) -> dict:
    """Attach a reader system to its base system's store and measure the as-of query."""
    res = _new_result(reader.name, wl)
    try:
        reader.attach(base)
    except SystemUnavailableError as e:
        res.update(status="skipped", reason=str(e))
        log(f"  {reader.name}: skipped: {e}")
        return res
    except Exception as e:
        res.update(status="error", reason=f"{type(e).__name__}: {e}")
        log(f"  {reader.name}: attach failed: {res['reason']}")
        return res
    _measure_as_of(res, reader, wl, expected, reps, budget_s)
    return res


def _ingest(res: dict, sysm: Any, wl: Workload) -> None:
    commit_s = []
    t_all = time.perf_counter()
    for i, table in enumerate(wl.commits):
        t0 = time.perf_counter()
        sysm.ingest(table, i)
        commit_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    sysm.finish_ingest()
    res["finish_s"] = time.perf_counter() - t0
    res["ingest_s"] = time.perf_counter() - t_all
    res["ingest_rows_per_s"] = wl.rows / res["ingest_s"]
    res["commit_s"] = commit_s
    log(f"  {res['system']}: ingest {wl.rows:,} rows in {len(commit_s)} commits: "
        f"{res['ingest_s']:.2f} s ({res['ingest_rows_per_s']:,.0f} rows/s)")


def _measure_puts(res: dict, sysm: Any, puts: int) -> None:
    times = []
    for i in range(puts + 1):  # put 0 creates what the puts need; not timed
        t0 = time.perf_counter()
        sysm.put(i)
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    res["put_us"] = statistics.median(times) * 1e6
    res["put_p99_us"] = times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6
    res["put_n"] = len(times)


def run_system(sysm: Any, readers: list[Any], wl: Workload, root: Path, expected: pa.Table,
               *, reps: int, budget_s: float, puts: int) -> list[dict]:
    """Set up, ingest, query and put; returns the system's result, then its readers'."""
    res = _new_result(sysm.name, wl)
    if root.exists():  # a store left by an earlier run with the same --out
        log(f"  replacing {root}")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log(f"[{wl.name}] {sysm.name} in {root}")
    try:
        sysm.setup(root, wl)
    except SystemUnavailableError as e:
        res.update(status="skipped", reason=str(e))
        log(f"  {sysm.name}: skipped: {e}")
        return [res] + [dict(_new_result(r.name, wl), status="skipped",
                             reason=f"base system {sysm.name} unavailable") for r in readers]
    try:
        _ingest(res, sysm, wl)
    except Exception as e:
        res.update(status="error", reason=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc(limit=8))
        log(f"  {sysm.name}: failed: {res['reason']}")
        return [res] + [dict(_new_result(r.name, wl), status="skipped",
                             reason=f"base system {sysm.name} failed") for r in readers]
    res["disk_bytes"] = disk_bytes(root)
    if hasattr(sysm, "ingest_summary"):
        _step(res, "ingest_summary", lambda: res.update(ingest_summary=sysm.ingest_summary()))
    _measure_as_of(res, sysm, wl, expected, reps, budget_s)

    def history() -> None:
        stats, t = timed_median(lambda: sysm.history(wl.history_key), reps=reps,
                                budget_s=budget_s)
        res["history_ms"], res["history_rows"] = stats["median"] * 1e3, len(t)

    def get() -> None:
        stats, v = timed_median(lambda: sysm.get(wl.get_key), reps=max(reps, 100),
                                budget_s=budget_s)
        res["get_us"], res["get_value"] = stats["median"] * 1e6, repr(v)[:200]

    _step(res, "history", history)
    _step(res, "get", get)
    out = [res] + [run_reader(r, sysm, wl, expected, reps=reps, budget_s=budget_s)
                   for r in readers]
    if getattr(sysm, "supports_put", False) and puts > 0:
        _step(res, "put", lambda: _measure_puts(res, sysm, puts))
    _step(res, "close", sysm.close)
    res["disk_bytes_after_puts"] = disk_bytes(root)
    log(f"  {sysm.name}: done: " + ", ".join(
        f"{k}={res[k]:,.1f}" for k in ("as_of_ms", "history_ms", "get_us", "put_us") if k in res))
    return out
