"""The peer systems koru is measured against: a DuckDB SCD2 table and a Delta table.

Every system has the same duck-typed surface, used by `measure.run_system`:

* ``setup(root, wl)``: create an empty store in the folder `root` and open it.
* ``ingest(table, index)``: write commit `index` of the workload.
* ``finish_ingest()``: anything the store needs to be durable and compact (timed
  with the ingest).
* ``close()`` (timed with the ingest), then ``reopen()``: a new session on the same
  files, before the reads (a new user's next session).
* ``as_of(at, commit)`` -> pyarrow.Table; ``as_of_now()`` -> pyarrow.Table;
  ``as_of_count(at, commit)`` -> int; ``agg(at, commit)`` -> the rows
  ``(group, count, sum)`` of `Workload.agg` over the as-of state.
  `at` is the valid time; `commit` the index of the commit that ends at `at`
  (Delta travels in table versions, not in valid time).
* ``history(key)`` -> pyarrow.Table; ``get(key)`` -> dict (latest value);
  ``get_at(key, at, commit)`` -> dict (the value at a past time).
* ``put(i)``: one durable single-record write, its own commit (if `supports_put`).

Any query method a system lacks is not measured for it. A *reader* system (here
`polars_delta`) only answers queries on the store of its `base` system, after
`attach(base_system)`.

Example:
    >>> DuckDBSCD2.name, DeltaLakeSystem.name, PolarsDelta.base
    ('duckdb_scd2', 'deltalake', 'deltalake')
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from workloads import latest_per_key

if TYPE_CHECKING:
    from pathlib import Path

    from workloads import Workload


def _q(name: str) -> str:
    """Quote a SQL identifier (DuckDB and DataFusion both use double quotes)."""
    return '"' + name.replace('"', '""') + '"'


class DuckDBSCD2:
    """A DuckDB database file with one SCD2 table: value columns, valid_from, valid_to.

    Per commit, in one transaction: close the open rows of the incoming keys
    (valid_to = the key's earliest valid time in the batch), then insert the batch,
    with valid_to = the next valid time of the same key inside the batch
    (`lead(valid_from)`), so a batch holding several versions of a key stays correct.
    Assumes a batch's valid times are not earlier than the stored ones of the same key
    (true for both workloads: commits are cut at valid-time boundaries).
    """

    name = "duckdb_scd2"
    supports_put = True

    def setup(self, root: Path, wl: Workload) -> None:
        import duckdb

        self.path = str(root / "scd2.duckdb")
        self.con = duckdb.connect(self.path)
        self.key, self.valid = _q(wl.key), _q(wl.valid)
        self.table = _q(wl.name)
        num, self.threshold, group, total = wl.agg
        self.agg_select = f"{_q(group)} AS g, count(*) AS n, sum({_q(total)}) AS total"
        self.agg_where = f"{_q(num)} > $thr"
        self.con.register("batch", wl.commits[0].slice(0, 0))
        self.con.execute(
            f"CREATE TABLE {self.table} AS SELECT * EXCLUDE ({self.valid}), "
            f"{self.valid}::TIMESTAMPTZ AS valid_from, NULL::TIMESTAMPTZ AS valid_to FROM batch")
        self.con.unregister("batch")

    def ingest(self, table: pa.Table, index: int) -> None:
        k, v, t = self.key, self.valid, self.table
        self.con.register("batch", table)
        self.con.execute("BEGIN")
        self.con.execute(
            f"UPDATE {t} SET valid_to = b.first_from FROM "
            f"(SELECT {k} AS k, min({v})::TIMESTAMPTZ AS first_from FROM batch GROUP BY ALL) AS b "
            f"WHERE {t}.{k} = b.k AND {t}.valid_to IS NULL")
        self.con.execute(
            f"INSERT INTO {t} BY NAME SELECT * EXCLUDE ({v}), {v}::TIMESTAMPTZ AS valid_from, "
            f"lead({v}::TIMESTAMPTZ) OVER (PARTITION BY {k} ORDER BY {v}) AS valid_to "
            "FROM batch")
        self.con.execute("COMMIT")
        self.con.unregister("batch")

    def finish_ingest(self) -> None:
        self.con.execute("CHECKPOINT")

    def reopen(self) -> None:
        import duckdb

        self.con = duckdb.connect(self.path)

    def _as_of_sql(self, select: str, where: str = "") -> str:
        return (f"SELECT {select} FROM {self.table} WHERE valid_from <= $at "
                f"AND (valid_to IS NULL OR valid_to > $at){where}")

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        return self.con.sql(self._as_of_sql("*"), params={"at": at}).to_arrow_table()

    def as_of_now(self) -> pa.Table:
        return self.con.sql(f"SELECT * FROM {self.table} WHERE valid_to IS NULL").to_arrow_table()

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self.con.sql(self._as_of_sql("count(*)"), params={"at": at}).fetchall()[0][0]

    def agg(self, at: dt.datetime, commit: int) -> list[tuple]:
        sql = self._as_of_sql(self.agg_select, f" AND {self.agg_where} GROUP BY ALL")
        return self.con.sql(sql, params={"at": at, "thr": self.threshold}).fetchall()

    def get_at(self, key: str, at: dt.datetime, commit: int) -> dict:
        """The SCD2 point read: the key's row whose interval holds `at`."""
        rel = self.con.sql(self._as_of_sql("*", f" AND {self.key} = $k"), params={"at": at, "k": key})
        return dict(zip(rel.columns, rel.fetchall()[0], strict=True))

    def history(self, key: str) -> pa.Table:
        return self.con.sql(f"SELECT * FROM {self.table} WHERE {self.key} = $k "
                            "ORDER BY valid_from", params={"k": key}).to_arrow_table()

    def get(self, key: str) -> dict:
        rel = self.con.sql(f"SELECT * FROM {self.table} WHERE {self.key} = $k "
                           "AND valid_to IS NULL", params={"k": key})
        return dict(zip(rel.columns, rel.fetchall()[0], strict=True))

    def put(self, i: int) -> None:
        if i == 0:
            self.con.execute("CREATE TABLE IF NOT EXISTS bench (k VARCHAR, a BIGINT, "
                             "b VARCHAR, valid_from TIMESTAMPTZ, valid_to TIMESTAMPTZ)")
        now = dt.datetime.now(dt.timezone.utc)
        self.con.execute("BEGIN")
        self.con.execute("UPDATE bench SET valid_to = $now WHERE k = 'k1' "
                         "AND valid_to IS NULL", {"now": now})
        self.con.execute("INSERT INTO bench VALUES ('k1', $a, 'x', $now, NULL)",
                         {"a": i, "now": now})
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


def _without_views(schema: pa.Schema) -> pa.Schema:
    """The schema with string_view / binary_view fields as string / binary."""
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    return pa.schema([f.with_type(plain.get(f.type, f.type)) for f in schema])


class DeltaLakeSystem:
    """A Delta table (delta-rs): per commit, MERGE the latest row per key of the batch.

    Delta keeps table versions, not valid time: the as-of state at the end of commit
    *c* is table version *c*; the history of a key is read version by version.
    """

    name = "deltalake"
    supports_put = True
    history_per_commit = True  # one version per key and commit: the MERGE keeps the latest

    def setup(self, root: Path, wl: Workload) -> None:
        self.path = str(root / "delta")
        self.bench_path = str(root / "delta_bench")
        self.key, self.valid, self.agg_spec = wl.key, wl.valid, wl.agg
        self.versions: list[int] = []  # Delta version after each workload commit
        self.dt = None

    def ingest(self, table: pa.Table, index: int) -> None:
        from deltalake import DeltaTable, write_deltalake

        latest = latest_per_key(table, self.key, self.valid)
        if self.dt is None:
            write_deltalake(self.path, latest, mode="error")
            self.dt = DeltaTable(self.path)
        else:
            k = _q(self.key)
            (self.dt.merge(latest, predicate=f"t.{k} = s.{k}", source_alias="s",
                           target_alias="t")
             .when_matched_update_all().when_not_matched_insert_all().execute())
        self.versions.append(self.dt.version())

    def finish_ingest(self) -> None:
        pass

    def reopen(self) -> None:
        from deltalake import DeltaTable

        self.dt = DeltaTable(self.path)

    def as_of(self, at: dt.datetime, commit: int) -> pa.Table:
        from deltalake import DeltaTable

        return DeltaTable(self.path, version=self.versions[commit]).to_pyarrow_table()

    def as_of_now(self) -> pa.Table:
        from deltalake import DeltaTable

        return DeltaTable(self.path).to_pyarrow_table()

    def agg(self, at: dt.datetime, commit: int) -> pa.Table:
        """pyarrow: the version's dataset, filtered on scan, then a pyarrow group-by."""
        import pyarrow.dataset as ds
        from deltalake import DeltaTable

        num, threshold, group, total = self.agg_spec
        dset = DeltaTable(self.path, version=self.versions[commit]).to_pyarrow_dataset()
        t = dset.to_table(columns=[group, total], filter=ds.field(num) > threshold)
        out = t.group_by(group, use_threads=False).aggregate([([], "count_all"), (total, "sum")])
        return out.select([group, "count_all", f"{total}_sum"])

    def get_at(self, key: str, at: dt.datetime, commit: int) -> dict:
        """The key's row at the table version that ends at `at` (Delta has no valid time)."""
        from deltalake import DeltaTable

        return self._key_rows(DeltaTable(self.path, version=self.versions[commit]), key).to_pylist()[0]

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        from deltalake import DeltaTable

        dset = DeltaTable(self.path, version=self.versions[commit]).to_pyarrow_dataset()
        return dset.count_rows()

    def _key_rows(self, table: Any, key: str) -> pa.Table:
        """Rows of one key: delta-rs's own scan with a SQL predicate (DataFusion, pruning).

        (`to_pyarrow_table(filters=…)` fails on deltalake 1.6: string vs string_view.)
        """
        literal = "'" + key.replace("'", "''") + "'"
        rows = pa.table(table.scan(predicate=f"{_q(self.key)} = {literal}").read_all())
        return rows.cast(_without_views(rows.schema))  # pyarrow cannot `take` string_view

    def history(self, key: str) -> pa.Table:
        """Read every existing table version, filter the key, keep distinct versions."""
        from deltalake import DeltaTable

        parts = []
        for v in range(self.versions[0], self.dt.version() + 1):
            t = self._key_rows(DeltaTable(self.path, version=v), key)
            if t.num_rows:
                parts.append(t)
        rows = pa.concat_tables(parts)
        return latest_per_key(rows, self.valid, self.valid).sort_by(self.valid)

    def get(self, key: str) -> dict:
        return self._key_rows(self.dt, key).to_pylist()[0]

    def put(self, i: int) -> None:
        from deltalake import DeltaTable, write_deltalake

        row = pa.table({"k": ["k1"], "a": [i], "b": ["x"]})
        if i == 0:
            write_deltalake(self.bench_path, row, mode="overwrite")
            self.bench = DeltaTable(self.bench_path)
            return
        (self.bench.merge(row, predicate="t.k = s.k", source_alias="s", target_alias="t")
         .when_matched_update_all().when_not_matched_insert_all().execute())

    def close(self) -> None:
        self.dt = None


class PolarsDelta:
    """Reader: the as-of state of the deltalake peer's table via `pl.scan_delta`."""

    name = "polars_delta"
    base = "deltalake"

    def attach(self, base: DeltaLakeSystem) -> None:
        import polars as pl

        self.pl, self.base_system = pl, base

    def _scan(self, commit: int | None):
        version = None if commit is None else self.base_system.versions[commit]
        return self.pl.scan_delta(self.base_system.path, version=version)

    def as_of(self, at: dt.datetime, commit: int) -> Any:
        return self._scan(commit).collect()  # a polars DataFrame (Arrow memory)

    def as_of_now(self) -> Any:
        return self._scan(None).collect()

    def as_of_count(self, at: dt.datetime, commit: int) -> int:
        return self._scan(commit).select(self.pl.len()).collect().item()

    def agg(self, at: dt.datetime, commit: int) -> Any:
        return polars_agg(self.pl, self._scan(commit), self.base_system.agg_spec)


def polars_agg(pl: Any, lf: Any, spec: tuple[str, float, str, str]) -> Any:
    """`lf` filtered on `spec`'s numeric column, grouped: columns group, n, total (collected)."""
    num, threshold, group, total = spec
    return (lf.filter(pl.col(num) > threshold).group_by(group)
            .agg(pl.len().alias("n"), pl.col(total).sum().alias("total")).collect())
