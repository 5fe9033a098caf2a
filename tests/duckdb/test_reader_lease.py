"""koru_duckdb holds a reader lease for what it has planned (issue 12 item 15).

Before: a DuckDB relation made before a vacuum failed with "No files found" once the
vacuum deleted the files it had been planned on. Now the plans of a connection's recent
statements keep their leases (``koru_duckdb.install.LEASES_KEPT``) until the
installation closes, so vacuum, in this process or another, keeps their files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

import koru_core as koru
import koru_duckdb
from koru_duckdb.install import LEASES_KEPT

ROOT = Path(__file__).parents[2]


def build(path: Path) -> koru.Store:
    store = koru.open(path, auto_consolidate=False)
    store.upsert("t", pa.table({"id": [f"k{i:05d}" for i in range(3000)], "x": list(range(3000))}), key="id")
    return store


def replace_files(store: koru.Store) -> set[Path]:
    """Consolidate (the warm file is retired); returns the files on disk before."""
    before = {p for p in (store.path / "warm").rglob("*.parquet")}
    store.upsert("t", pa.table({"id": ["k00000"], "x": [-1]}), key="id")
    store.consolidate()
    return before


def test_a_relation_made_before_a_vacuum_still_reads_after_it(tmp_path: Path) -> None:
    """Issue 12 item 15: the relation's plan keeps its lease; vacuum (retain 0) keeps its files."""
    store = build(tmp_path / "s")
    con = koru_duckdb.connect(store)
    relation = con.sql("SELECT sum(x) AS s, count(*) AS n FROM t")
    old = replace_files(store)
    store.vacuum(retain=timedelta(0))
    assert all(p.exists() for p in old), "vacuum deleted files a live relation was planned on"
    # a relation plans again each time it runs (DuckDB binds it anew): it reads, and sees the latest commit
    assert relation.fetchall() == [(sum(range(3000)) - 1, 3000)]
    assert con.sql("SELECT sum(x) FROM t").fetchall() == [(sum(range(3000)) - 1,)]
    con.close()
    store.vacuum(retain=timedelta(0))
    assert not any(p.exists() for p in old), "closing the connection released the leases"
    store.close()


def test_a_vacuum_in_another_process_keeps_the_files_of_a_relation(tmp_path: Path) -> None:
    """Issue 12 item 15: the lease is a file another process's vacuum reads."""
    store = build(tmp_path / "s")
    con = koru_duckdb.connect(store)
    relation = con.sql("SELECT count(*) FROM t")
    old = replace_files(store)
    code = "import sys, datetime, koru_core as koru; koru.open(sys.argv[1]).vacuum(retain=datetime.timedelta(0))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert all(p.exists() for p in old)
    assert relation.fetchall() == [(3000,)]
    con.close()
    store.close()


def test_leases_beyond_the_kept_number_are_released(tmp_path: Path) -> None:
    """Issue 12 item 15: the leases of the oldest plans go once more than LEASES_KEPT
    statements ran, so a long session does not keep every file forever."""
    store = build(tmp_path / "s")
    con = koru_duckdb.connect(store)
    con.sql("SELECT count(*) FROM t").fetchall()
    old = replace_files(store)
    for _ in range(LEASES_KEPT + 1):
        con.sql("SELECT count(*) FROM t").fetchall()
    store.vacuum(retain=timedelta(0))
    assert not any(p.exists() for p in old)
    con.close()
    store.close()
