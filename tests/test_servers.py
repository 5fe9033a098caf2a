"""The real servers of issue 15 work as the catalog and storage tests will use them.

PostgreSQL: a fresh database per test, and row locks that behave as READ COMMITTED
says (the isolation koru's catalog transaction uses; REPEATABLE READ is DuckLake's bug).
S3 (SeaweedFS): s3fs, ``pyarrow.fs``, DuckDB (through fsspec) and Polars (through
``storage_options``) read and write the same objects, and a conditional PUT is refused
when the key exists, atomically. A server never outlives the process that started it.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import servers

psycopg = pytest.importorskip("psycopg")
s3fs = pytest.importorskip("s3fs")


# --- PostgreSQL -------------------------------------------------------------------


def test_pg_url_is_a_fresh_database_on_postgresql_15_or_later(pg_server: servers.Postgres, pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[-1]
    assert re.fullmatch(r"t_[0-9a-f]{12}", name)
    assert pg_url == f"postgresql://postgres@127.0.0.1:{pg_server.port}/{name}"
    with psycopg.connect(pg_url) as con:
        version = con.execute("SHOW server_version_num").fetchone()[0]
        tables = con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        fsync = con.execute("SHOW fsync").fetchone()[0]
        isolation = con.execute("SHOW default_transaction_isolation").fetchone()[0]
    assert int(version) >= 150000
    assert (tables, fsync, isolation) == (0, "off", "read committed")


def test_databases_do_not_share_state(pg_server: servers.Postgres, pg_url: str) -> None:
    other = pg_server.create_database()
    try:
        with psycopg.connect(pg_url) as con:
            con.execute("CREATE TABLE commits (n bigint PRIMARY KEY)")
        with psycopg.connect(other) as con:
            seen = con.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'commits'").fetchone()[0]
        assert seen == 0
    finally:
        pg_server.drop_database(other)
    with psycopg.connect(pg_server.url_for("postgres")) as con:
        left = con.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [other.rsplit("/", 1)[-1]])
        assert left.fetchone()[0] == 0


def _head_row(pg_url: str) -> None:
    with psycopg.connect(pg_url) as con:
        con.execute("CREATE TABLE head (id int PRIMARY KEY, last_commit bigint NOT NULL)")
        con.execute("INSERT INTO head VALUES (1, 0)")


def _wait_until_blocked(pg_url: str, pid: int) -> None:
    """Poll pg_stat_activity until backend ``pid`` waits on a lock (forces the interleaving)."""
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.01)
    pytest.fail(f"backend {pid} never waited on the head row's lock")


def _lock_behind_a_commit(pg_url: str, isolation: str) -> tuple[int, object]:
    """B reads the head, A takes the row lock and commits 1, then B locks the row: what does B see?"""
    _head_row(pg_url)
    a, b = psycopg.connect(pg_url), psycopg.connect(pg_url)
    try:
        b.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        before = b.execute("SELECT last_commit FROM head WHERE id = 1").fetchone()[0]  # B's snapshot: 0
        a.execute("SELECT last_commit FROM head WHERE id = 1 FOR UPDATE")
        a.execute("UPDATE head SET last_commit = 1 WHERE id = 1")
        result: dict[str, object] = {}

        def lock_in_b() -> None:
            try:
                result["seen"] = b.execute("SELECT last_commit FROM head WHERE id = 1 FOR UPDATE").fetchone()[0]
            except psycopg.Error as e:
                result["seen"] = e

        thread = threading.Thread(target=lock_in_b)
        thread.start()
        _wait_until_blocked(pg_url, b.info.backend_pid)
        a.commit()
        thread.join(timeout=10)
        assert not thread.is_alive()
        return before, result["seen"]
    finally:
        a.close()
        b.close()


def test_select_for_update_under_read_committed_sees_the_commit_it_waited_for(pg_url: str) -> None:
    """The head-row lock koru's commit takes: after the wait, B reads A's commit and can go on."""
    before, seen = _lock_behind_a_commit(pg_url, "READ COMMITTED")
    assert (before, seen) == (0, 1)


def test_select_for_update_under_repeatable_read_refuses_instead(pg_url: str) -> None:
    """Under REPEATABLE READ B's snapshot hides A's commit, so locking the row is a serialization failure.

    That snapshot is why DuckLake's conflict check on PostgreSQL saw no concurrent commits
    (duckdb/ducklake#1094, #1341); koru's catalog uses READ COMMITTED.
    """
    before, seen = _lock_behind_a_commit(pg_url, "REPEATABLE READ")
    assert before == 0
    assert isinstance(seen, psycopg.errors.SerializationFailure)


def test_a_failed_start_reports_the_server_log() -> None:
    with pytest.raises(servers.ServerStartError, match="shared_buffers") as info:
        servers.start_postgres(settings={"shared_buffers": "not-a-size"})
    assert "invalid value for parameter" in str(info.value)


# --- S3 (SeaweedFS) ---------------------------------------------------------------


def test_s3_bucket_storage_options_use_the_deltalake_keys(
    s3_server: servers.S3Server, s3_bucket: servers.S3Bucket
) -> None:
    name, options = s3_bucket
    assert re.fullmatch(r"t-[0-9a-f]{12}", name)
    assert s3_bucket.url == f"s3://{name}"
    assert options == {
        "aws_endpoint_url": s3_server.endpoint_url,
        "aws_access_key_id": s3_server.access_key_id,
        "aws_secret_access_key": s3_server.secret_access_key,
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s3_server.endpoint_url)
    assert s3_server.s3fs().ls(name) == []


def test_s3fs_writes_reads_lists_and_deletes(s3_server: servers.S3Server, s3_bucket: servers.S3Bucket) -> None:
    fs = s3_server.s3fs()
    fs.pipe(f"{s3_bucket.name}/warm/a.bin", b"\x00koru\xff")
    fs.pipe(f"{s3_bucket.name}/warm/b.bin", b"b")
    assert fs.cat(f"{s3_bucket.name}/warm/a.bin") == b"\x00koru\xff"
    assert sorted(fs.find(s3_bucket.name)) == [f"{s3_bucket.name}/warm/a.bin", f"{s3_bucket.name}/warm/b.bin"]
    fs.rm(f"{s3_bucket.name}/warm/a.bin")
    fs.invalidate_cache()
    assert not fs.exists(f"{s3_bucket.name}/warm/a.bin")
    assert fs.find(s3_bucket.name) == [f"{s3_bucket.name}/warm/b.bin"]


def test_pyarrow_fs_writes_reads_lists_and_deletes(s3_server: servers.S3Server, s3_bucket: servers.S3Bucket) -> None:
    from pyarrow import fs as pafs

    fs = s3_server.pyarrow_fs()
    path = f"{s3_bucket.name}/cold/part-0.bin"
    with fs.open_output_stream(path) as out:
        out.write(b"cold bytes")
    with fs.open_input_file(path) as f:
        assert f.read() == b"cold bytes"
    listed = fs.get_file_info(pafs.FileSelector(s3_bucket.name, recursive=True))
    assert [(i.path, i.size) for i in listed if i.type == pafs.FileType.File] == [(path, 10)]
    fs.delete_file(path)
    assert fs.get_file_info(path).type == pafs.FileType.NotFound


def test_parquet_written_by_pyarrow_reads_in_duckdb_and_polars(
    s3_server: servers.S3Server, s3_bucket: servers.S3Bucket
) -> None:
    """DuckDB 2.0 has no httpfs offline; it reads s3:// through an fsspec filesystem."""
    import duckdb
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"_key": ["a", "b", "c"], "_commit": pa.array([1, 2, 3], pa.int64())})
    pq.write_table(table, f"{s3_bucket.name}/warm/x.parquet", filesystem=s3_server.pyarrow_fs())
    url = f"{s3_bucket.url}/warm/x.parquet"

    con = duckdb.connect()
    con.register_filesystem(s3_server.s3fs())
    from_duckdb = con.sql(f"SELECT _key, _commit FROM read_parquet('{url}') ORDER BY _key").arrow().read_all()
    assert from_duckdb.to_pylist() == table.to_pylist()

    from_polars = pl.scan_parquet(url, storage_options=s3_bucket.storage_options).sort("_key").collect()
    assert from_polars.to_dicts() == table.to_pylist()


def test_a_conditional_put_on_an_existing_key_is_refused(
    s3_server: servers.S3Server, s3_bucket: servers.S3Bucket
) -> None:
    """``If-None-Match: *`` is 412 when the key exists; ``If-Match`` with a stale ETag too."""
    fs = s3_server.s3fs()
    key = "_log/00000001.json"
    etag = fs.call_s3("put_object", Bucket=s3_bucket.name, Key=key, Body=b"first", IfNoneMatch="*")["ETag"]
    with pytest.raises(OSError, match="pre-conditions"):  # s3fs's words for HTTP 412 PreconditionFailed
        fs.call_s3("put_object", Bucket=s3_bucket.name, Key=key, Body=b"second", IfNoneMatch="*")
    with pytest.raises(OSError, match="pre-conditions"):
        fs.pipe_file(f"{s3_bucket.name}/{key}", b"third", mode="create")
    assert fs.cat(f"{s3_bucket.name}/{key}") == b"first"
    fs.call_s3("put_object", Bucket=s3_bucket.name, Key=key, Body=b"fourth", IfMatch=etag)
    with pytest.raises(OSError, match="pre-conditions"):
        fs.call_s3("put_object", Bucket=s3_bucket.name, Key=key, Body=b"fifth", IfMatch=etag)
    fs.invalidate_cache()
    assert fs.cat(f"{s3_bucket.name}/{key}") == b"fourth"


def test_concurrent_conditional_puts_have_exactly_one_winner(
    s3_server: servers.S3Server, s3_bucket: servers.S3Bucket
) -> None:
    """4 writers race to create each key: one wins and its bytes are the object's (no lost update).

    SeaweedFS serializes them on a per-object lock whose waiters retry in steps of about 1 s,
    so a contended create costs seconds (an uncontended one about 10 ms).
    """
    fs = s3_server.s3fs()

    def create(key: str, writer: int) -> bool:
        try:
            fs.call_s3("put_object", Bucket=s3_bucket.name, Key=key, Body=f"w{writer}".encode(), IfNoneMatch="*")
        except OSError:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for n in range(3):
            key = f"_log/{n:08d}.json"
            won = [w for w, ok in enumerate(pool.map(lambda w, k=key: create(k, w), range(4))) if ok]
            assert len(won) == 1, f"{key!r}: winners {won}"
            assert fs.cat(f"{s3_bucket.name}/{key}") == f"w{won[0]}".encode()


def test_deltalake_and_scan_delta_take_the_same_storage_options(s3_bucket: servers.S3Bucket) -> None:
    """The convention koru copies: deltalake commits by put-if-absent on this server, Polars reads it."""
    import polars as pl
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    url = f"{s3_bucket.url}/delta"
    write_deltalake(url, pa.table({"a": [1, 2]}), storage_options=s3_bucket.storage_options)
    write_deltalake(url, pa.table({"a": [3]}), storage_options=s3_bucket.storage_options, mode="append")
    assert DeltaTable(url, storage_options=s3_bucket.storage_options).version() == 1
    frame = pl.scan_delta(url, storage_options=s3_bucket.storage_options).sort("a").collect()
    assert frame["a"].to_list() == [1, 2, 3]


# --- no server outlives its test run ----------------------------------------------

_ORPHAN = """
import sys, time
sys.path.insert(0, {tests!r})
import servers
pg, s3 = servers.start_postgres(), servers.start_seaweedfs()
print(pg.process.pid, s3.process.pid, pg.root, s3.root, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has exited; its parent (init) reaps it


def test_servers_die_with_a_killed_test_process() -> None:
    """``kill -9`` of the process that started the servers leaves no server behind (issue 15)."""
    code = _ORPHAN.format(tests=str(Path(__file__).parent))
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            pg_pid, s3_pid, pg_root, s3_root = line.split()
            assert not _gone(int(pg_pid)) and not _gone(int(s3_pid))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (_gone(int(pg_pid)) and _gone(int(s3_pid))):
        time.sleep(0.05)
    assert _gone(int(pg_pid)), f"PostgreSQL {pg_pid} outlived its test process"
    assert _gone(int(s3_pid)), f"SeaweedFS {s3_pid} outlived its test process"
    fresh = servers.make_root()  # the next start sweeps the killed run's folders
    try:
        assert not Path(pg_root).exists() and not Path(s3_root).exists()
    finally:
        shutil.rmtree(fresh)
