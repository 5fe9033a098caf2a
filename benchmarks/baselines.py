"""Reference costs measured in the same run, on the same disk: what the goals are bounded by.

* `sqlite_commits`: single-row commits into a SQLite database in WAL mode with
  ``synchronous=FULL`` (issue 16: a durable koru ``put`` median must be ≤ 1.5× this
  median), plus a bare ``write`` + ``fsync`` of 100 bytes for reference.
* `as_of_floor`: reading the alive rows of an as-of state (the brute-force answer)
  from one zstd Parquet file with pyarrow, and from a DuckDB table (issue 17: "name
  the bound" of the as-of read on the synthetic workloads).

Example:
    >>> import tempfile, pathlib
    >>> r = sqlite_commits(pathlib.Path(tempfile.mkdtemp()), commits=5)
    >>> (r["system"], r["put_n"], r["put_us"] > 0)
    ('sqlite_wal_full', 5, True)
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from pathlib import Path


def percentiles_us(times_s: list[float]) -> dict:
    """Median and p99 (µs) and the count of a list of durations in seconds."""
    ordered = sorted(times_s)
    return {"put_us": statistics.median(ordered) * 1e6,
            "put_p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
            "put_n": len(ordered)}


def sqlite_commits(root: Path, *, commits: int) -> dict:
    """Time `commits` single-row INSERT transactions in SQLite WAL ``synchronous=FULL``.

    Args:
        root: Folder for the database file (created).
        commits: Transactions to time (one warm-up transaction is not timed).

    Returns:
        A result row for system ``sqlite_wal_full``: ``put_us`` (median),
        ``put_p99_us``, ``put_n``, and ``fsync_us``: the median of bare 100-byte
        ``os.write`` + ``os.fsync`` calls on a file in the same folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / "bench.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE IF NOT EXISTS t (k TEXT, a INTEGER, b TEXT)")
    times = []
    for i in range(commits + 1):
        t0 = time.perf_counter()
        con.execute("BEGIN")
        con.execute("INSERT INTO t VALUES ('k1', ?, 'x')", (i,))
        con.execute("COMMIT")
        if i:
            times.append(time.perf_counter() - t0)
    con.close()
    fsyncs = []
    fd = os.open(root / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(max(commits // 4, 5)):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fsync(fd)
            fsyncs.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return {"system": "sqlite_wal_full", "status": "ok", "errors": {}, **percentiles_us(times),
            "fsync_us": statistics.median(fsyncs) * 1e6}


def _median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def as_of_floor(state: pa.Table, root: Path, *, reps: int) -> dict:
    """Time reading `state` (the alive rows) back from zstd Parquet (pyarrow) and a DuckDB table.

    Returns:
        ``{"rows", "columns", "parquet_ms", "parquet_bytes", "duckdb_ms"}`` (medians).
    """
    import duckdb

    root.mkdir(parents=True, exist_ok=True)
    path = root / "alive.parquet"
    pq.write_table(state, path, compression="zstd")
    out = {"rows": state.num_rows, "columns": state.num_columns,
           "parquet_bytes": path.stat().st_size,
           "parquet_ms": _median_ms(lambda: pq.read_table(path), reps)}
    con = duckdb.connect(str(root / "alive.duckdb"))
    con.register("state", state)
    con.execute("CREATE OR REPLACE TABLE alive AS SELECT * FROM state")
    con.unregister("state")
    con.execute("CHECKPOINT")
    out["duckdb_ms"] = _median_ms(lambda: con.sql("SELECT * FROM alive").to_arrow_table(), reps)
    con.close()
    return out
