"""What only the PostgreSQL catalog has: URLs and schemas, migrations under concurrent first
opens, lock waits, dead lock holders, lost connections (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from _backends import run_threads
from _drafts import draft
from servers import free_port

from koru_core.catalog import PostgresCatalog, SQLiteCatalog, open_catalog
from koru_core.catalog.postgres_commit import recover
from koru_core.catalog.postgres_schema import SCHEMA_VERSION, parse_url
from koru_core.errors import FormatError, InvalidInputError, StoreLockedError

ROOT = Path(__file__).parents[3]


@pytest.fixture
def opened(pg_url: str):  # noqa: ANN201
    handles: list[PostgresCatalog] = []

    def open_(url: str = pg_url, **kw: object) -> PostgresCatalog:
        cat = PostgresCatalog(url, **kw)  # type: ignore[arg-type]
        handles.append(cat)
        return cat

    yield open_
    for cat in handles:
        cat.close()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_open_catalog_picks_the_backend_from_the_target(pg_url: str, tmp_path: Path) -> None:
    pg = open_catalog(pg_url, create=True)
    lite = open_catalog(tmp_path / "catalog.sqlite", create=True)
    try:
        assert isinstance(pg, PostgresCatalog) and isinstance(lite, SQLiteCatalog)
        assert pg.schema == "koru"
    finally:
        pg.close()
        lite.close()
    with pytest.raises(InvalidInputError, match="object storage holds a store's files"):
        open_catalog("s3://bucket/prefix")


def test_schemas_of_one_database_are_separate_stores(opened, pg_url: str) -> None:  # noqa: ANN001
    a, b = opened(pg_url + "?koru_schema=sales"), opened(pg_url + "?koru_schema=ops")
    a.record_commit(draft(0))
    a.record_commit(draft(1, tag="2"))
    assert a.store_id != b.store_id
    assert (a.head()[0], b.head()[0]) == (2, 0)
    assert b.record_commit(draft(0)).commit == 1
    with psycopg.connect(pg_url) as con:
        found = con.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'commits' "
                            "AND schemaname IN ('sales', 'ops')")
        assert found.fetchone()[0] == 2  # type: ignore[index]


def test_the_url_keeps_libpq_parameters_and_hides_the_password() -> None:
    t = parse_url("postgres://etl:pa%40ss@db.example:6432/lake?sslmode=disable&koru_schema=s_1&application_name=x")
    assert t.schema == "s_1" and "koru_schema" not in t.conninfo and "sslmode=disable" in t.conninfo
    assert "pa%40ss" in t.conninfo and "pa%40ss" not in t.display and "etl:***@db.example:6432" in t.display
    for bad in ("Sales", "a-b", "1x", "x" * 64, ""):
        with pytest.raises(InvalidInputError, match="koru_schema must be a lower-case SQL identifier"):
            parse_url(f"postgresql://db/lake?koru_schema={bad}")
    with pytest.raises(InvalidInputError, match="must start with postgresql://"):
        parse_url("mysql://db/lake")


def test_an_unreachable_server_is_a_connection_error_without_the_password() -> None:
    url = f"postgresql://koru:secret@127.0.0.1:{free_port()}/lake"
    with pytest.raises(ConnectionError, match="cannot reach the catalog server") as caught:
        PostgresCatalog(url, timeout=2)
    assert "secret" not in str(caught.value) and "koru:***@127.0.0.1" in str(caught.value)


def test_a_missing_catalog_is_created_only_when_asked(opened, pg_url: str) -> None:  # noqa: ANN001
    for kw in ({"create": False}, {"read_only": True}):
        with pytest.raises(InvalidInputError, match="holds no koru catalog"):
            opened(**kw)
    cat = opened()
    assert cat.head() == (0, 0, None)
    assert opened(create=False).store_id == opened(read_only=True).store_id == cat.store_id


def test_concurrent_first_opens_create_one_catalog(pg_url: str) -> None:
    barrier = threading.Barrier(8, timeout=60)

    def work(_: int) -> str:
        barrier.wait()
        cat = PostgresCatalog(pg_url + "?koru_schema=race")
        try:
            return cat.store_id
        finally:
            cat.close()

    ids = run_threads(8, work)
    assert len(set(ids)) == 1
    with psycopg.connect(pg_url) as con:
        meta = dict(con.execute("SELECT name, value FROM race.meta").fetchall())
        head = con.execute("SELECT count(*) FROM race.head").fetchone()
    assert meta["store_id"] == ids[0] and meta["catalog_schema"] == str(SCHEMA_VERSION) and head == (1,)


def test_tables_of_a_newer_koru_are_refused(opened, pg_url: str) -> None:  # noqa: ANN001
    opened().close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("UPDATE koru.meta SET value = %s WHERE name = 'catalog_schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(FormatError, match=f"tables are at version {SCHEMA_VERSION + 1}.*upgrade koru"):
        opened()


def _blocked(pg_url: str, pid: int) -> None:
    """Wait until backend ``pid`` waits on a lock (forces the interleaving)."""
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.01)
    msg = f"backend {pid} never waited on a lock"
    raise AssertionError(msg)


def _backend_pid(cat: PostgresCatalog) -> int:
    """The server pid of this thread's connection of ``cat``."""
    return cat._con.info.backend_pid


def _in_thread(cat: PostgresCatalog, call: Callable[[], object], out: list[object]) -> tuple[threading.Thread, int]:
    """Start ``call`` in a thread; return it and the server pid of its connection to ``cat``."""
    ready: list[int] = []
    started = threading.Event()

    def run() -> None:
        ready.append(_backend_pid(cat))
        started.set()
        try:
            out.append(call())
        except BaseException as e:  # noqa: BLE001 - checked by the test
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(30)
    return t, ready[0]


def test_a_head_lock_held_past_the_timeout_is_store_locked(opened, pg_url: str) -> None:  # noqa: ANN001
    cat = opened(timeout=1)
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT * FROM koru.head FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(StoreLockedError, match="waited 1 s for a catalog lock"):
            cat.record_commit(draft(0))
        assert 0.9 < time.monotonic() - started < 5
    assert cat.record_commit(draft(0)).commit == 1  # the handle still works


LOCKER = """
import sys, psycopg
con = psycopg.connect(sys.argv[1])
con.execute("SELECT * FROM koru.head FOR UPDATE")
print(con.info.backend_pid, flush=True)
sys.stdin.readline()
"""


def test_a_writer_killed_holding_the_head_lock_does_not_block_the_others(opened, pg_url: str) -> None:  # noqa: ANN001
    """kill -9 of a writer in the middle of its commit transaction: the server rolls it back,
    and the committer that waited for the head row goes on."""
    cat = opened()
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, pg_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=_env())
    try:
        assert proc.stdout is not None
        int(proc.stdout.readline())
        result: list[object] = []
        t, pid = _in_thread(cat, lambda: cat.record_commit(draft(0)), result)
        _blocked(pg_url, pid)
        proc.kill()
        proc.wait(timeout=30)
        t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert [r.commit for r in result] == [1]  # type: ignore[attr-defined]
    assert cat.head()[0] == 1


def test_a_commit_waiting_on_the_head_sees_the_winner_and_is_told_the_new_head(opened, pg_url: str) -> None:  # noqa: ANN001
    """READ COMMITTED, not REPEATABLE READ: after its wait the loser reads the winner's head row
    (DuckLake #1094), so it gets HeadMovedError(head=1), never a serialization failure."""
    from koru_core.errors import HeadMovedError

    winner, loser = opened(), opened()
    winner.head()
    con = winner._con
    con.execute("BEGIN")
    con.execute("UPDATE head SET last_commit = 1, last_system_time = 5, last_hash = '\\x00' WHERE id = 1")
    caught: list[object] = []
    t, pid = _in_thread(loser, lambda: loser.record_commit(draft(0)), caught)
    _blocked(pg_url, pid)
    con.execute("COMMIT")
    t.join(timeout=30)
    assert [type(e) for e in caught] == [HeadMovedError]
    assert [(e.base, e.head) for e in caught] == [(0, 1)]  # type: ignore[attr-defined]


def test_recover_tells_whether_a_commit_landed(opened) -> None:  # noqa: ANN001
    cat = opened()
    rec = cat.record_commit(draft(0))
    assert recover(cat, rec) == rec
    other = cat.record_commit(draft(1, tag="2"))
    import dataclasses

    never = dataclasses.replace(other, commit=3)
    with pytest.raises(ConnectionError, match="before commit 3 was recorded; nothing was written"):
        recover(cat, never)
    assert cat.head()[0] == 2


def test_a_connection_the_server_dropped_is_replaced_between_calls(opened, pg_url: str) -> None:  # noqa: ANN001
    cat = opened()
    cat.record_commit(draft(0))
    for call in (lambda: cat.head()[0], lambda: cat.record_commit(draft(1, tag="2")).commit):
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [_backend_pid(cat)])
        assert call() in (1, 2)  # nothing was in flight: the next call reconnects once
    assert cat.head()[0] == 2


def _waiting_koru_backends(pg_url: str) -> list[int]:
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        rows = watcher.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'koru' "
                               "AND wait_event_type = 'Lock'").fetchall()
    return [r[0] for r in rows]


def test_a_connection_lost_while_the_commit_waits_is_checked_and_reported(opened, pg_url: str) -> None:  # noqa: ANN001
    """The publishing statement is in flight when its backend dies: the writer cannot know whether
    it committed, so it reconnects, waits for the head lock and looks; here it had not."""
    cat = opened()
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT * FROM koru.head FOR UPDATE")
        out: list[object] = []
        t, pid = _in_thread(cat, lambda: cat.record_commit(draft(0)), out)
        _blocked(pg_url, pid)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 30
        while not [p for p in _waiting_koru_backends(pg_url) if p != pid] and time.monotonic() < deadline:
            time.sleep(0.01)  # the check waits for the head lock, as the old statement might still hold it
        holder.rollback()
        t.join(timeout=30)
    assert len(out) == 1 and isinstance(out[0], ConnectionError)
    assert "before commit 1 was recorded; nothing was written" in str(out[0])
    assert cat.head()[0] == 0 and cat.record_commit(draft(0)).commit == 1


FORK = """
import os, sys
from koru_core.catalog import open_catalog
cat = open_catalog(sys.argv[1])
assert cat.head()[0] == 0
pid = os.fork()
if pid == 0:
    ok = cat.head()[0] == 0 and cat.allocate_write_ids(1) >= 1
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert cat.head()[0] == 0 and cat.allocate_write_ids(1) >= 1  # the parent's connection survived the child
cat.close()
print("ok")
"""


def test_a_forked_child_opens_its_own_connection(opened, pg_url: str) -> None:  # noqa: ANN001
    opened().close()
    out = subprocess.run([sys.executable, "-c", FORK, pg_url], capture_output=True, text=True, env=_env(), timeout=60,
                         check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_writes_inside_a_snapshot_are_refused(opened) -> None:  # noqa: ANN001
    cat = opened()
    with cat.snapshot():
        with pytest.raises(InvalidInputError, match="inside catalog.snapshot"):
            cat.record_commit(draft(0))
        with pytest.raises(InvalidInputError, match="inside catalog.snapshot"):
            cat.set_tag("t", 0)
        assert cat.head()[0] == 0
    assert cat.record_commit(draft(0)).commit == 1


@pytest.mark.parametrize("count", [0, -5, 1.5, True])
def test_write_ids_are_allocated_in_positive_counts(opened, count: object) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError, match="counts of at least 1"):
        opened().allocate_write_ids(count)
