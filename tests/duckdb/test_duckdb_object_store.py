"""DuckDB over a store on S3 (SeaweedFS) with its catalog in PostgreSQL (issue 15).

DuckDB 2.0 has no httpfs extension offline; ``koru_duckdb`` registers an ``s3fs`` file
system on the connection, and every ``AT`` clause reads the plan's ``s3://`` files.
"""

from __future__ import annotations

import pytest
from servers import SharedStore

import koru_duckdb

pytest.importorskip("s3fs")


def test_at_version_and_timestamp_on_object_storage_equal_the_core(shared_store: SharedStore) -> None:
    with shared_store.open() as store:
        commits = []
        for n in range(3):
            commits.append(store.upsert("t", [{"id": f"k{j}", "v": n * 10 + j} for j in range(6)], key="id").commit)
        store.consolidate()  # cold files on S3, then pending versions in the catalog
        store.upsert("t", [{"id": "k0", "v": 99}], key="id")
        store.delete("t", "k5")
        mid = store.commits()[1].system_time
    con = koru_duckdb.connect(shared_store.location, catalog=shared_store.catalog,
                              storage_options=shared_store.storage_options)
    try:
        now = dict(con.sql("SELECT _key, v FROM t").fetchall())
        assert now == {"k0": 99, "k1": 21, "k2": 22, "k3": 23, "k4": 24}
        at1 = dict(con.sql(f"SELECT _key, v FROM t AT (VERSION => {commits[0]})").fetchall())
        assert at1 == {f"k{j}": j for j in range(6)}
        mid_rows = dict(con.sql("SELECT _key, v FROM t AT (TIMESTAMP => ?::TIMESTAMPTZ)", params=[mid]).fetchall())
        assert mid_rows == {f"k{j}": 10 + j for j in range(6)}
        assert con.sql("SELECT count(*), sum(v) FROM t WHERE v > 21").fetchall() == [(4, 99 + 22 + 23 + 24)]
        assert con.sql("SELECT count(*) FROM koru_history('t', 'k0')").fetchall() == [(4,)]
    finally:
        con.close()


def test_a_second_store_on_the_same_connection_replaces_the_s3_file_system(shared_store: SharedStore) -> None:
    import duckdb

    with shared_store.open() as store:
        store.put("t", "a", 1)
        store.consolidate()
        con = duckdb.connect()
        con.register_filesystem(__import__("s3fs").S3FileSystem(anon=True, skip_instance_cache=True))
        koru_duckdb.install(con, store)
        assert con.sql("SELECT value FROM t").fetchall() == [(1,)]
        assert con.list_filesystems().count("s3") == 1
