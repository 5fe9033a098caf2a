"""Peak memory while loading many versions: 1M keys × 10 versions as 100k-row upserts.

Prints the versions written, the time, the hot tier's estimated bytes against
``memory_limit``, Arrow's live allocation, and the process's peak RSS. For
reference it first measures the peak RSS of generating the same data without
koru (in a subprocess), since that part is the benchmark's, not koru's.

    python benchmarks/ingest_memory.py --keys 1000000 --versions 10 --batch 100000 --changed 1.0
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def batches(keys: int, versions: int, batch: int, changed: float = 1.0):
    """Yield (version, table) with columns id, qty, name; a share ``changed`` of the
    keys gets a new qty in each version after the first (the rest are unchanged rows)."""
    rng = np.random.default_rng(0)
    # keys as one Arrow array (12 bytes a key), not a million Python strings (~100 MiB)
    names = pc.binary_join_element_wise("k", pc.utf8_lpad(pa.array(np.arange(keys)).cast(pa.string()), 7, "0"), "")
    qty = rng.integers(0, 100, keys)
    for v in range(versions):
        if v:
            fresh = qty + rng.integers(1, 100, keys)  # always a different value
            qty = np.where(rng.random(keys) < changed, fresh, qty)
        for a in range(0, keys, batch):
            b = min(batch, keys - a)
            yield v, pa.table({"id": names.slice(a, b), "qty": pa.array(qty[a:a + b]),
                               "name": pa.repeat(pa.scalar("abc"), b)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--versions", type=int, default=10)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--changed", type=float, default=1.0, help="share of keys changed per version (1.0: every row is a version)")
    p.add_argument("--only-generate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 - MiB on Linux
    if args.only_generate:
        for _ in batches(args.keys, args.versions, args.batch, args.changed):
            pass
        print(f"{peak():.0f}")
        return
    cmd = [sys.executable, __file__, "--only-generate", "--keys", str(args.keys), "--versions", str(args.versions),
           "--batch", str(args.batch), "--changed", str(args.changed)]
    baseline = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    import koru_core as koru

    store = koru.open(tempfile.mkdtemp())
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    started, written = time.perf_counter(), 0
    for v, table in batches(args.keys, args.versions, args.batch, args.changed):
        written += store.upsert("bench", table, key="id", valid_from=base + timedelta(days=v)).written
    elapsed = time.perf_counter() - started
    hot = sum(store._writer.memory_bytes().values())
    print(f"offered {args.keys * args.versions:,} rows, wrote {written:,} versions in {elapsed:.1f} s")
    print(f"hot tier {hot / 2**20:.0f} MiB (memory_limit {store._writer.memory_limit / 2**20:.0f} MiB); "
          f"Arrow live {pa.total_allocated_bytes() / 2**20:.0f} MiB")
    print(f"peak RSS {peak():.0f} MiB; generating the data alone: {baseline} MiB")


if __name__ == "__main__":
    main()
