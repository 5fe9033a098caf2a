"""The cost of re-checking a plan's files (README, "Integrity"): one ``stat`` per file.

A store with `files` warm files (one upsert each, no consolidation) is planned once
(which hashes every file), then, once the files are older than the racy window, planned
`reps` times more; it prints the time per file and plan. Each plan checks every file
with one ``stat`` (size, times, inode) and hashes none again.

    python benchmarks/revalidation.py              # 60 files, 20 plans
    python benchmarks/revalidation.py --files 500

Example:
    >>> import tempfile, pathlib
    >>> r = revalidation(pathlib.Path(tempfile.mkdtemp()) / "s", files=3, reps=2, wait=False)
    >>> r["files"], r["us_per_file"] > 0
    (3, True)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import pyarrow as pa  # noqa: E402


def revalidation(path: Path, *, files: int = 60, rows: int = 1100, reps: int = 20, wait: bool = True) -> dict:
    """Build the store at `path` and time `reps` plans over its `files` files.

    Returns:
        ``{"files", "reps", "first_ms", "us_per_file"}``: the first plan (which hashes
        every file) in ms, then µs per file and plan for the later ones.
    """
    import koru_core as koru
    from koru_core.storage import parquet

    store = koru.open(path, auto_consolidate=False)
    try:
        for i in range(files):
            store.upsert("t", pa.table({"id": [f"k{i}-{j}" for j in range(rows)], "x": [i] * rows}), key="id")
        if wait:
            time.sleep(parquet.RACY_NS / 1e9)  # older than the racy window: their times can be trusted
        t0 = time.perf_counter()
        store.plan("t")  # hashes every file once
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(reps):
            store.plan("t")
        per_file = (time.perf_counter() - t0) / reps / files
    finally:
        store.close()
    return {"files": files, "reps": reps, "first_ms": first * 1e3, "us_per_file": per_file * 1e6}


def main(argv: list[str] | None = None) -> int:
    """Command line: run in a temporary store and print the cost per file."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=60)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="koru-revalidation-"))
    try:
        r = revalidation(root / "s", files=args.files, reps=args.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{r['files']} files: first plan (hashes each) {r['first_ms']:.1f} ms; "
          f"later plans {r['us_per_file']:.1f} µs per file (one stat each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
