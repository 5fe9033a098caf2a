"""Benchmark (not collected by pytest): koru ``AT (TIMESTAMP => …)`` vs a DuckDB SCD2 table.

Builds (once) a store of ``--keys`` keys × ``--versions`` versions (one upsert
commit per version, valid times one day apart), then times, side by side in one
run, ``count(*)``, a filtered aggregate and a full ``SELECT *`` (to Arrow) at a
valid time in the middle of the history:

- ``koru``: ``FROM ns AT (TIMESTAMP => …)`` through ``koru_duckdb.connect``
  (``koru_at``: the read planner's plan as SQL), statement overhead included;
- ``koru qualify``: the as-of rule written with ``QUALIFY row_number() …`` over
  ``koru_versions`` (every version, the public macro);
- ``_valid_to file``: one Parquet file of every version with ``_valid_to`` filled in,
  filtered by interval (as consolidated cold files are);
- ``scd2``: a native DuckDB table (``valid_from``, ``valid_to``) built from the
  same versions, queried with ``valid_from <= t AND (valid_to IS NULL OR valid_to > t)``.

Run:
    PYTHONPATH=. python benchmarks/duckdb_at_vs_scd2.py --store /tmp/koru-bench --keys 1000000 --versions 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

import koru_core as koru
import koru_duckdb

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)


def build(path: Path, keys: int, versions: int) -> None:
    store = koru.open(path)
    if store.namespaces():
        store.close()
        return
    ids = pa.array([f"k{i:08d}" for i in range(keys)])
    n = pa.array(range(keys), pa.int64())
    for v in range(versions):
        t0 = time.perf_counter()
        table = pa.table({
            "id": ids,
            "v": pc.add(n, v),
            "cat": pc.bit_wise_and(pc.add(n, v), 127),
            "amount": pc.multiply(pc.add(n, v).cast(pa.float64()), 0.5),
        })
        result = store.upsert("bench", table, key="id", valid_from=BASE + timedelta(days=v))
        print(f"commit {result.commit}: {result.written} written in {time.perf_counter() - t0:.1f} s", flush=True)
    store.close()


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up (file cache, first refresh)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=Path("/tmp/koru-bench"))
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    build(args.store, args.keys, args.versions)

    con = koru_duckdb.connect(args.store)
    ts = f"CAST('{(BASE + timedelta(days=args.versions // 2, hours=12)).isoformat()}' AS TIMESTAMPTZ_NS)"
    con.execute(
        "CREATE TABLE scd2 AS SELECT _key, v, cat, amount, _valid_from AS valid_from, _valid_to AS valid_to "
        "FROM koru_versions('bench')"
    )
    qualify = (
        "(SELECT * EXCLUDE (_deleted) FROM (SELECT * FROM koru_versions('bench') "
        f"WHERE _valid_from <= {ts} QUALIFY row_number() OVER "
        "(PARTITION BY _key ORDER BY _valid_from DESC, _commit DESC) = 1) WHERE NOT _deleted)"
    )
    cold = Path(f"{args.store}-cold.parquet")
    if not cold.exists():
        con.sql("FROM koru_versions('bench')").write_parquet(str(cold), compression="zstd")
    con.read_parquet(str(cold)).create_view("cold")
    sources = {
        "koru": f"bench AT (TIMESTAMP => {ts})",
        "koru qualify": qualify,
        "_valid_to file": "(SELECT * EXCLUDE (_valid_to, _deleted) FROM cold "
        f"WHERE _valid_from <= {ts} AND (_valid_to IS NULL OR _valid_to > {ts}) AND NOT _deleted)",
        "scd2": f"(FROM scd2 WHERE valid_from <= {ts} AND (valid_to IS NULL OR valid_to > {ts}))",
    }
    queries = {
        "count(*)": "SELECT count(*) FROM {src}",
        "filtered aggregate": "SELECT cat, sum(amount), count(*) FROM {src} WHERE cat < 8 GROUP BY cat",
        "SELECT * (to Arrow)": "SELECT * FROM {src}",
    }
    results = {}
    for qname, template in queries.items():
        answers = {}
        for sname, src in sources.items():
            sql = template.format(src=src)
            fetch = (lambda s=sql: con.sql(s).to_arrow_table()) if "SELECT *" in qname else (
                lambda s=sql: con.sql(s).fetchall())
            results[(qname, sname)] = timed(fetch, args.repeat)
            answers[sname] = con.sql(f"SELECT count(*) FROM ({sql})").fetchall()
        assert len({str(a) for a in answers.values()}) == 1, answers
    stats = con.sql("SELECT count(*) FROM koru_versions('bench')").fetchall()[0][0]
    print(f"\n{args.keys:,} keys × {args.versions} versions = {stats:,} versions; at {ts}; median of {args.repeat}")
    print(f"{'query':<22}" + "".join(f"{s:>16}" for s in sources) + f"{'koru/scd2':>11}")
    for qname in queries:
        row = [results[(qname, s)] for s in sources]
        print(f"{qname:<22}" + "".join(f"{t * 1000:>13.0f} ms" for t in row) + f"{row[0] / row[-1]:>10.2f}×")


if __name__ == "__main__":
    main()
