"""Run one system through one workload and measure it, as a new user would.

The steps, per system: set up an empty store; ingest every commit (timed: the
commits, `finish_ingest()` and `close()`, so whatever the store does by itself
during or after the writes counts); for `koru_cold`, reopen, `maintain()` (the
explicit `consolidate()`, timed apart) and close; reopen (a new session, timed);
disk size; every query in `QUERIES` the system has; its readers; the durable puts.

Query metrics run once (that first call after the reopen is reported as
`<metric>_first_<unit>`), then repeat (at least 3 times, at most `reps` or the
query's own minimum, stopping after `budget_s` seconds) and report the median.
All times come from `time.perf_counter`. Every answer is checked against the brute
force (`checks.py`) under `checks[<metric>]`. A failing step is recorded under
`errors` and the next step still runs; a failing setup or ingest ends that
system's run only.

Result dict per (system, workload), units in the key names: `ingest_s`,
`ingest_rows_per_s`, `commit_s` (list), `finish_s`, `close_s`, `maintain_s`,
`reopen_s`, `disk_bytes`, per query `<metric>_<unit>` and `<metric>_first_<unit>`,
`as_of_rows`, `history_rows`, `put_us` (median), `put_p99_us`, `checks`, `layout`.

Example:
    >>> stats, out = timed_median(lambda: 42, reps=3, budget_s=1.0)
    >>> (out, stats["reps"], stats["first"] >= 0)
    (42, 3, True)
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import checks
from baselines import percentiles_us
from koru_system import SystemUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from checks import Truth
    from workloads import Workload


def log(msg: str) -> None:
    """Progress line on stderr, so stdout keeps only the report."""
    print(msg, file=sys.stderr, flush=True)


def timed_median(fn: Callable[[], Any], *, reps: int, budget_s: float) -> tuple[dict, Any]:
    """Time one first call, then up to `reps` calls (>= 3 unless over budget); seconds."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "first": first,
            "reps": len(times)}, out


def disk_bytes(path: Path) -> int:
    """Total size in bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


@dataclass(frozen=True)
class Query:
    """One timed read: `method(*args(wl))` on a system, checked by `check`."""

    metric: str
    method: str
    unit: str  # "ms" or "us"
    args: Callable[[Workload], tuple]
    check: Callable[[Any, Workload, Truth, Any], dict]
    min_reps: int = 0


_MID = lambda wl: (wl.as_of_at, wl.as_of_commit)  # noqa: E731
QUERIES = [
    Query("as_of", "as_of", "ms", _MID, lambda r, wl, t, s: checks.check_table(r, wl, t.as_of)),
    Query("as_of_now", "as_of_now", "ms", lambda wl: (),
          lambda r, wl, t, s: checks.check_table(r, wl, t.now)),
    Query("as_of_count", "as_of_count", "ms", _MID, lambda r, wl, t, s: checks.check_count(r, t.as_of)),
    Query("agg", "agg", "ms", _MID, lambda r, wl, t, s: checks.check_agg(r, t.agg)),
    Query("history", "history", "ms", lambda wl: (wl.history_key,),
          lambda r, wl, t, s: checks.check_history(
              r, wl, t, per_commit=getattr(s, "history_per_commit", False))),
    Query("get_at", "get_at", "us", lambda wl: (wl.history_key, wl.as_of_at, wl.as_of_commit),
          lambda r, wl, t, s: checks.check_value(r, wl, t.get_at), min_reps=20),
    Query("get", "get", "us", lambda wl: (wl.get_key,),
          lambda r, wl, t, s: checks.check_value(r, wl, t.get), min_reps=100),
]
SCALE = {"ms": 1e3, "us": 1e6}


def _step(res: dict, name: str, fn: Callable[[], None]) -> None:
    """Run one measurement; on failure record and print the error, then carry on."""
    try:
        fn()
    except Exception as e:
        res["errors"][name] = f"{type(e).__name__}: {e}"
        res["tracebacks"][name] = traceback.format_exc(limit=6)
        log(f"    {res['system']}: {name} failed: {type(e).__name__}: {e}")


def _measure_queries(res: dict, sysm: Any, wl: Workload, truth: Truth, *,
                     reps: int, budget_s: float) -> None:
    for q in QUERIES:
        fn = getattr(sysm, q.method, None)
        if fn is None:
            continue

        def one(q: Query = q, fn: Callable = fn) -> None:
            args = q.args(wl)
            stats, out = timed_median(lambda: fn(*args), reps=max(reps, q.min_reps), budget_s=budget_s)
            scale = SCALE[q.unit]
            res[f"{q.metric}_{q.unit}"] = stats["median"] * scale
            res[f"{q.metric}_first_{q.unit}"] = stats["first"] * scale
            res[f"{q.metric}_reps"] = stats["reps"]
            if q.metric in ("as_of", "history"):
                res[f"{q.metric}_rows"] = len(out)
            res["checks"][q.metric] = q.check(out, wl, truth, sysm)

        _step(res, q.metric, one)


def _new_result(name: str, wl: Workload) -> dict:
    return {"system": name, "workload": wl.name, "status": "ok", "errors": {}, "tracebacks": {},
            "checks": {}}


def run_reader(reader: Any, base: Any, wl: Workload, truth: Truth, *,
               reps: int, budget_s: float) -> dict:
    """Attach a reader system to its base system's (reopened) store and measure its queries."""
    res = dict(_new_result(reader.name, wl), reader_of=base.name)
    try:
        t0 = time.perf_counter()
        reader.attach(base)
        res["attach_s"] = time.perf_counter() - t0
    except SystemUnavailableError as e:
        res.update(status="skipped", reason=str(e))
        log(f"  {reader.name}: skipped: {e}")
        return res
    except Exception as e:
        res.update(status="error", reason=f"{type(e).__name__}: {e}")
        log(f"  {reader.name}: attach failed: {res['reason']}")
        return res
    _measure_queries(res, reader, wl, truth, reps=reps, budget_s=budget_s)
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
    t0 = time.perf_counter()
    sysm.close()
    res["close_s"] = time.perf_counter() - t0
    res["ingest_s"] = time.perf_counter() - t_all
    res["ingest_rows_per_s"] = wl.rows / res["ingest_s"]
    res["commit_s"] = commit_s
    log(f"  {res['system']}: ingest {wl.rows:,} rows in {len(commit_s)} commits: "
        f"{res['ingest_s']:.2f} s ({res['ingest_rows_per_s']:,.0f} rows/s; close {res['close_s']:.2f} s)")


def _measure_puts(res: dict, sysm: Any, puts: int) -> None:
    times = []
    for i in range(puts + 1):  # put 0 creates what the puts need; not timed
        t0 = time.perf_counter()
        sysm.put(i)
        if i:
            times.append(time.perf_counter() - t0)
    res.update(percentiles_us(times))


def _skipped_readers(readers: list[Any], wl: Workload, why: str) -> list[dict]:
    return [dict(_new_result(r.name, wl), status="skipped", reason=why, reader_of=r.base) for r in readers]


def _prepare(res: dict, sysm: Any, wl: Workload, root: Path, copy_to: Path | None) -> str | None:
    """Setup, ingest (or the seed), copy, maintenance, reopen; returns why it stopped, or None."""
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
        return "unavailable"
    try:
        if getattr(sysm, "seeded", False):
            res["ingest"] = "shared: a copy of koru's store after its ingest"
        else:
            _ingest(res, sysm, wl)
            if copy_to is not None:
                shutil.copytree(sysm.path, copy_to)
        if hasattr(sysm, "maintain"):
            sysm.reopen()
            t0 = time.perf_counter()
            sysm.maintain()
            res["maintain_s"] = time.perf_counter() - t0
            sysm.close()
            log(f"  {sysm.name}: maintenance (consolidate) {res['maintain_s']:.2f} s")
        t0 = time.perf_counter()
        sysm.reopen()
        res["reopen_s"] = time.perf_counter() - t0
    except Exception as e:
        res.update(status="error", reason=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc(limit=8))
        log(f"  {sysm.name}: failed: {res['reason']}")
        return "failed"
    return None


def run_system(sysm: Any, readers: list[Any], wl: Workload, root: Path, truth: Truth, *,
               reps: int, budget_s: float, puts: int, copy_to: Path | None = None) -> list[dict]:
    """Prepare, query and put; returns the system's result, then its readers'.

    Args:
        copy_to: If given, koru's store folder is copied there right after the ingest
            (the seed of `koru_cold`, so both states hold the same files).
    """
    res = _new_result(sysm.name, wl)
    stopped = _prepare(res, sysm, wl, root, copy_to)
    if stopped:
        return [res, *_skipped_readers(readers, wl, f"base system {sysm.name} {stopped}")]
    res["disk_bytes"] = disk_bytes(root)
    if hasattr(sysm, "layout"):
        _step(res, "layout", lambda: res.update(layout=sysm.layout()))
    if hasattr(sysm, "ingest_summary") and not getattr(sysm, "seeded", False):
        _step(res, "ingest_summary", lambda: res.update(ingest_summary=sysm.ingest_summary()))
    _measure_queries(res, sysm, wl, truth, reps=reps, budget_s=budget_s)
    out = [res] + [run_reader(r, sysm, wl, truth, reps=reps, budget_s=budget_s) for r in readers]
    if getattr(sysm, "supports_put", False) and puts > 0:
        _step(res, "put", lambda: _measure_puts(res, sysm, puts))
    _step(res, "close", sysm.close)
    res["disk_bytes_after_puts"] = disk_bytes(root)
    log(f"  {sysm.name}: done: " + ", ".join(
        f"{k}={res[k]:,.1f}" for k in ("as_of_ms", "history_ms", "get_at_us", "put_us") if k in res))
    return out
