"""Lifecycle benchmark (issue 5): consolidation, reads before/after, distillation, verify.

Loads ``--keys`` keys × ``--commits`` commits (every commit changes every key;
valid times a week apart, so the versions span several monthly epochs), then
measures:

- peak RSS after loading (``resource.getrusage``; the hot tier has no memory bound yet);
- ``as_of`` (now, and a mid-history valid time) and ``history`` (one key)
  latency, median of ``--repeat`` runs, on warm files and after consolidation;
- consolidation throughput (versions/s), and an incremental run after adding
  1 % new versions, against the first run;
- disk bytes of data files before/after ``distill(KeepLast(2))`` + ``vacuum``;
- ``verify()`` time.

Usage::

    PYTHONPATH=. python benchmarks/lifecycle.py --keys 1000000 --commits 10
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

import koru_core as koru

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for d in ("warm", "cold", "deep") for p in (path / d).rglob("*") if p.is_file())


def _batch(keys: int, commit: int, *, step: int = 1, payload: int = 0) -> pa.Table:
    ids = pa.array([f"key-{j:08d}" for j in range(0, keys, step)])
    n = len(ids)
    table = pa.table({"id": ids, "amount": pa.array(range(commit, commit + n), pa.int64()),
                      "status": pa.array(["open", "paid", "late"][commit % 3:commit % 3 + 1] * n)})
    if payload:  # a text field of ~payload bytes, different per key and commit (compresses like prose)
        words = [f"w{(j * 7919 + commit * 104729) % 5000}" for j in range(n)]
        text = pa.compute.binary_repeat(pa.array([w + " " for w in words]), payload // 6 + 1)
        table = table.append_column("note", text)
    return table


def _reads(store: koru.Store, key: str, mid: datetime, repeat: int) -> dict[str, float]:
    return {
        "as_of_now_s": _median(lambda: store.as_of("orders"), repeat),
        "as_of_mid_s": _median(lambda: store.as_of("orders", at=mid), repeat),
        "history_s": _median(lambda: store.history("orders", key), repeat),
    }


def run(keys: int, commits: int, repeat: int, folder: Path, payload: int = 0) -> dict[str, object]:
    out: dict[str, object] = {"keys": keys, "commits": commits, "payload_bytes": payload}
    store = koru.open(folder / "bench.koru", durability="process")
    start = time.perf_counter()
    for c in range(commits):
        store.upsert("orders", _batch(keys, c, payload=payload), key="id", valid_from=T0 + timedelta(days=7 * c))
    out["load_s"] = time.perf_counter() - start
    out["versions"] = keys * commits
    out["peak_rss_after_load_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    key, mid = f"key-{keys // 2:08d}", T0 + timedelta(days=7 * (commits // 2) + 1)
    out["warm"] = _reads(store, key, mid, repeat) | {"bytes": _disk(store.path)}

    start = time.perf_counter()
    result = store.consolidate()
    took = time.perf_counter() - start
    out["consolidate"] = {"s": took, "versions_per_s": result.versions_after / took, "files": result.files_after}
    store.vacuum(retain=timedelta(0))
    out["cold"] = _reads(store, key, mid, repeat) | {"bytes": _disk(store.path)}

    step = max(1, round(100 / commits))  # 1 % of the versions stored: every step-th key changes
    store.upsert("orders", _batch(keys, commits, step=step, payload=payload), key="id", valid_from=T0 + timedelta(days=7 * commits))
    start = time.perf_counter()
    result = store.consolidate()
    out["consolidate_incremental_1pct"] = {"s": time.perf_counter() - start, "new_versions": len(range(0, keys, step)),
                                           "files": result.files_after}

    start = time.perf_counter()
    report = store.verify()
    out["verify"] = {"s": time.perf_counter() - start, "is_ok": report.is_ok, "versions": report.versions_checked}

    store.vacuum(retain=timedelta(0))
    before = _disk(store.path)
    start = time.perf_counter()
    result = store.distill(koru.KeepLast(2))
    out["distill_s"] = time.perf_counter() - start
    store.vacuum(retain=timedelta(0))
    out["distill_keep_last_2"] = {"bytes_before": before, "bytes_after": _disk(store.path),
                                  "versions_before": result.versions_before, "versions_after": result.versions_after}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--payload", type=int, default=0, help="Bytes of text per version (a 'note' field).")
    parser.add_argument("--dir", type=Path, default=None, help="Where to build the store (default: a temp folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print(json.dumps(run(args.keys, args.commits, args.repeat, Path(folder), args.payload), indent=1))


if __name__ == "__main__":
    main()
