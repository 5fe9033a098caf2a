"""koru as a benchmark system, through its public API only (see `peers` for the surface).

`KoruSystem` writes and reads through `koru_core` (`open`, `upsert`, `as_of`,
`history`, `get`, `put`), with the store's defaults: it is measured as ingest and
the store's automatic maintenance leave it. `KoruColdSystem` is the same store
after an explicit `consolidate()`. The readers `KoruDuckDB` and `KoruPolars` answer
the as-of queries on the same store through `koru_duckdb` (SQL `AT (TIMESTAMP =>
…)`) and `koru_polars` (`scan_koru(..., at=…)`). While the API is still being written,
a missing or failing import raises `SystemUnavailableError` with the reason; the
harness prints it and runs the other systems.

Example:
    >>> KoruSystem.name, KoruDuckDB.base, KoruPolars.name
    ('koru', 'koru', 'koru_polars')
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

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
        self.koru = _import("koru_core", "open")
        self.path = root / "store.koru"
        self.store = self.koru.open(str(self.path))
        self.wl = wl
        self.commit_results: list[Any] = []

    def reopen(self) -> None:
        self.store = self.koru.open(str(self.path))

    def ingest(self, table: pa.Table, index: int) -> None:
        res = self.store.upsert(self.wl.name, table, key=self.wl.key, valid_from=self.wl.valid)
        self.commit_results.append(res)

    def finish_ingest(self) -> None:
        pass

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        return self.store.as_of(self.wl.name, at=at)

    def as_of_now(self) -> pa.Table:
        return self.store.as_of(self.wl.name)

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self.store.as_of(self.wl.name, at=at).num_rows

    def agg(self, at: dt.datetime, commit: int) -> pa.Table:
        """The core's as-of, then a pyarrow filter and group-by (for reference; no goal)."""
        import pyarrow.compute as pc

        num, threshold, group, total = self.wl.agg
        t = self.store.as_of(self.wl.name, at=at)
        t = t.filter(pc.greater(t[num], threshold))
        out = t.group_by(group, use_threads=False).aggregate([([], "count_all"), (total, "sum")])
        return out.select([group, "count_all", f"{total}_sum"])

    def history(self, key: str) -> pa.Table:
        return self.store.history(self.wl.name, key)

    def get(self, key: str) -> dict:
        return self.store.get(self.wl.name, key)

    def get_at(self, key: str, at: dt.datetime, commit: int) -> dict:
        return self.store.get(self.wl.name, key, at=at)

    def put(self, i: int) -> None:
        self.store.put("bench", "k1", {"a": i, "b": "x"})

    def layout(self) -> list[dict]:
        """`store.stats()` rows (files, versions and bytes per namespace and tier)."""
        return self.store.stats().to_pylist()

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


def _q(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


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
        self.table = _q(base.wl.name)

        num, threshold, group, total = base.wl.agg
        self.agg_sql = (f"SELECT {_q(group)} AS g, count(*) AS n, sum({_q(total)}) AS total "
                        "FROM {src} WHERE " + f"{_q(num)} > {threshold!r} GROUP BY ALL")

    def _sql(self, select: str, at: dt.datetime | None) -> Any:
        at_clause = "" if at is None else f" AT (TIMESTAMP => TIMESTAMP '{_sql_timestamp(at)}')"
        return self.con.sql(f"SELECT {select} FROM {self.table}{at_clause}")

    @staticmethod
    def _arrow(rel: Any) -> pa.Table:
        out = rel.arrow()
        return out.read_all() if hasattr(out, "read_all") else out  # duckdb >= 1.4: a reader

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        return self._arrow(self._sql("*", at))

    def as_of_now(self) -> pa.Table:
        return self._arrow(self._sql("*", None))

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self._sql("count(*)", at).fetchall()[0][0]

    def agg(self, at: dt.datetime, commit: int) -> list[tuple]:
        src = f"{self.table} AT (TIMESTAMP => TIMESTAMP '{_sql_timestamp(at)}')"
        return self.con.sql(self.agg_sql.format(src=src)).fetchall()


class KoruPolars:
    """Reader: `koru_polars.scan_koru(path, namespace, at=…).collect()`."""

    name = "koru_polars"
    base = "koru"

    def attach(self, base: KoruSystem) -> None:
        import polars as pl

        self.kp = _import("koru_polars", "scan_koru")
        self.pl, self.path, self.namespace = pl, str(base.path), base.wl.name
        self.agg_spec = base.wl.agg

    def as_of(self, at: dt.datetime, commit: int) -> Any:
        return self.kp.scan_koru(self.path, self.namespace, at=at).collect()

    def as_of_now(self) -> Any:
        return self.kp.scan_koru(self.path, self.namespace).collect()

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        lf = self.kp.scan_koru(self.path, self.namespace, at=at)
        return lf.select(self.pl.len()).collect().item()

    def agg(self, at: dt.datetime, commit: int) -> Any:
        from peers import polars_agg

        return polars_agg(self.pl, self.kp.scan_koru(self.path, self.namespace, at=at), self.agg_spec)


class KoruColdSystem(KoruSystem):
    """koru_core after an explicit `store.consolidate()` (then closed and reopened).

    With a `seed` (koru's store folder right after koru's own ingest, copied by the
    harness) it starts from those files and skips the ingest, so both states hold the
    same data and the workload is ingested once; else it ingests itself. The
    consolidation is timed as `maintain()`, apart from the ingest.
    """

    name = "koru_cold"

    def __init__(self, seed: Path | None = None) -> None:
        self.seed = seed

    def setup(self, root: Path, wl: Workload) -> None:
        import shutil

        self.seeded = self.seed is not None and self.seed.exists()
        if not self.seeded:
            super().setup(root, wl)
            return
        self.koru = _import("koru_core", "open")
        self.path, self.wl, self.commit_results = root / "store.koru", wl, []
        shutil.move(str(self.seed), str(self.path))

    def maintain(self) -> None:
        self.store.consolidate()

class KoruColdDuckDB(KoruDuckDB):
    """`KoruDuckDB` on the consolidated store."""

    name = "koru_cold_duckdb"
    base = "koru_cold"


class KoruColdPolars(KoruPolars):
    """`KoruPolars` on the consolidated store."""

    name = "koru_cold_polars"
    base = "koru_cold"
