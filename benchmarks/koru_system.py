"""koru as a benchmark system, through its public API only (see `peers` for the surface).

`KoruSystem` writes and reads through `koru_core` (`open`, `upsert`, `as_of`,
`history`, `get`, `put`). The readers `KoruDuckDB` and `KoruPolars` answer the
as-of query on the same store through `koru_duckdb` (SQL `AT (TIMESTAMP => …)`) and
`koru_polars` (`scan_koru(...).collect()`). While the API is still being written,
a missing or failing import raises `SystemUnavailableError` with the reason; the
harness prints it and runs the other systems.

Example:
    >>> KoruSystem.name, KoruDuckDB.base, KoruPolars.name
    ('koru', 'koru', 'koru_polars')
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from workloads import Workload


class SystemUnavailableError(RuntimeError):
    """A system cannot run here (its package is missing or incomplete); says why."""


def _import(module: str, *names: str) -> Any:
    """Import `module` and check it has `names`, or raise SystemUnavailableError."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except Exception as e:  # an in-progress package may fail in any way on import
        msg = f"import {module} failed: {type(e).__name__}: {e}"
        raise SystemUnavailableError(msg) from e
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        msg = f"{module} has no {', '.join(missing)} yet (public API not written?)"
        raise SystemUnavailableError(msg)
    return mod


class KoruSystem:
    """koru_core: `upsert` per commit with `valid_from` = the workload's valid-time column."""

    name = "koru"
    supports_put = True

    def setup(self, root: Path, wl: Workload) -> None:
        koru = _import("koru_core", "open")
        self.path = root / "store.koru"
        self.store = koru.open(str(self.path))
        self.wl = wl
        self.commit_results: list[Any] = []

    def ingest(self, table: pa.Table, index: int) -> None:
        res = self.store.upsert(self.wl.name, table, key=self.wl.key, valid_from=self.wl.valid)
        self.commit_results.append(res)

    def finish_ingest(self) -> None:
        pass

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        return self.store.as_of(self.wl.name, at=at)

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self.store.as_of(self.wl.name, at=at).num_rows

    def history(self, key: str) -> pa.Table:
        return self.store.history(self.wl.name, key)

    def get(self, key: str) -> dict:
        return self.store.get(self.wl.name, key)

    def put(self, i: int) -> None:
        self.store.put("bench", "k1", {"a": i, "b": "x"})

    def ingest_summary(self) -> dict:
        """Totals of the CommitResults returned by `upsert` (written, unchanged, deleted)."""
        out: dict[str, int] = {}
        for res in self.commit_results:
            for f in ("written", "unchanged", "deleted"):
                out[f] = out.get(f, 0) + int(getattr(res, f, 0) or 0)
        return out

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def _sql_timestamp(at: dt.datetime) -> str:
    """A UTC timestamp literal for `AT (TIMESTAMP => …)`, e.g. '2013-07-01 00:00:00+00'."""
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")


class KoruDuckDB:
    """Reader: `koru_duckdb.connect(store)` then `SELECT … AT (TIMESTAMP => …)`."""

    name = "koru_duckdb"
    base = "koru"

    def attach(self, base: KoruSystem) -> None:
        koru_duckdb = _import("koru_duckdb", "connect")
        self.con = koru_duckdb.connect(base.store)
        self.table = '"' + base.wl.name.replace('"', '""') + '"'

    def _sql(self, select: str, at: dt.datetime) -> Any:
        ts = _sql_timestamp(at)
        return self.con.sql(f"SELECT {select} FROM {self.table} AT (TIMESTAMP => TIMESTAMP '{ts}')")

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        out = self._sql("*", at).arrow()
        return out.read_all() if hasattr(out, "read_all") else out  # duckdb >= 1.4: a reader

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self._sql("count(*)", at).fetchall()[0][0]


class KoruPolars:
    """Reader: `koru_polars.scan_koru(path, namespace, at=…).collect()`."""

    name = "koru_polars"
    base = "koru"

    def attach(self, base: KoruSystem) -> None:
        import polars as pl

        self.kp = _import("koru_polars", "scan_koru")
        self.pl, self.path, self.namespace = pl, str(base.path), base.wl.name

    def as_of(self, at: dt.datetime, commit: int) -> Any:
        return self.kp.scan_koru(self.path, self.namespace, at=at).collect()

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        lf = self.kp.scan_koru(self.path, self.namespace, at=at)
        return lf.select(self.pl.len()).collect().item()


class KoruColdSystem(KoruSystem):
    """koru_core after `store.consolidate()`: the same ingest, then every warm file
    merged into cold files that carry `_valid_to` (what the as-of readers use to
    skip rows). Ingest time excludes the consolidation, which is reported apart."""

    name = "koru_cold"

    def finish_ingest(self) -> None:
        import time

        started = time.perf_counter()
        self.store.consolidate()
        self.consolidate_seconds = time.perf_counter() - started
        print(f"  koru_cold: consolidate took {self.consolidate_seconds:.2f} s")

    def put(self, i: int) -> None:
        self.store.put("bench_cold", "k1", {"a": i, "b": "x"})


class KoruColdDuckDB(KoruDuckDB):
    """`KoruDuckDB` on the consolidated store."""

    name = "koru_cold_duckdb"
    base = "koru_cold"


class KoruColdPolars(KoruPolars):
    """`KoruPolars` on the consolidated store."""

    name = "koru_cold_polars"
    base = "koru_cold"
