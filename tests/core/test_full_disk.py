"""A store on a full disk (issue 12 items 2 and 9), on a real small file system (tmpfs).

Before: ``put`` raised ``OSError`` on a full disk while its commit was durable (the flush
ran after the commit point), writers got ``CorruptionError: … database or disk is full``,
and readers crashed with SIGBUS (their lease file was written through mmap). Now:

- a write that cannot get space raises :class:`koru_core.StoreFullError` (a ``KoruError``
  and an ``OSError`` with ``errno.ENOSPC``), with nothing committed and no file left;
- work after the commit point (automatic consolidation) that fails only warns;
- reads go on, in this process and in a new one;
- once space is freed, writes work again.

The tests mount a tmpfs, so they need root (CI runs as root); elsewhere they skip, which
``KORU_NO_SKIP=1`` turns into a failure.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import koru_core as koru
from koru_core.lifecycle import auto

ROOT = Path(__file__).parents[2]


def _mount(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs of its own."""
    folder = tmp_path / "disk"
    _mount(folder, "12m")
    try:
        yield folder
    finally:
        _unmount(folder)


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, *, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes; returns the filler file."""
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    chunk = b"\xa5" * (1 << 16)
    with open(filler, "wb") as f:
        while True:
            room = free_bytes(folder) - leave
            if room <= 0:
                break
            try:
                f.write(chunk[: min(len(chunk), room)])
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


def leftovers(store_path: Path) -> list[str]:
    return sorted(str(p.relative_to(store_path)) for p in store_path.rglob("*.tmp"))


def data_files(store_path: Path) -> set[str]:
    return {str(p.relative_to(store_path)) for f in ("warm", "cold", "deep") for p in (store_path / f).rglob("*.parquet")}


def assert_full(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    e = excinfo.value
    assert isinstance(e, koru.StoreFullError) and isinstance(e, koru.KoruError) and isinstance(e, OSError)
    assert e.errno == errno.ENOSPC, e.errno
    assert "no space left" in str(e)


def big_rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": [f"r{i:06d}" for i in range(start, start + n)],
                     "pad": [uuid.uuid4().hex * 8 for _ in range(n)]})


def test_writes_on_a_full_disk_raise_store_full_and_commit_nothing(disk: Path) -> None:
    """Issue 12 items 2 and 9: every kind of write on a full disk raises StoreFullError,
    commits nothing and leaves no file; reads keep working; freeing space lets writes go on."""
    path = disk / "s"
    store = koru.open(path, auto_consolidate=False)
    store.put("users", "alice", {"age": 31})
    store.upsert("big", big_rows(3000), key="id")  # a warm file
    head = store.version()
    files = data_files(path)
    filler = fill(disk)

    with pytest.raises(koru.StoreFullError) as e:
        for i in range(200):  # the catalog's log may have room for a few small commits
            store.put("users", f"u{i}", {"age": i, "pad": "x" * 2000})
    assert_full(e)
    head = store.version()
    for write in (
        lambda: store.upsert("big", big_rows(3000, 5000), key="id"),  # a warm file
        lambda: store.put("users", "bob", {"age": 40, "pad": "y" * 100_000}),
        lambda: store.consolidate(),
    ):
        with pytest.raises(koru.StoreFullError) as e:
            write()
        assert_full(e)
        assert store.version() == head, "a write that raised committed"
    with pytest.raises(koru.StoreFullError) as e:
        store.snapshot(disk / "bundle")
    assert_full(e)
    with pytest.raises(koru.StoreFullError):
        with store.transaction() as tx:
            tx.put("users", "carol", {"age": 5, "pad": "z" * 100_000})
            tx.upsert("big", big_rows(2000, 9000), key="id")
    assert store.version() == head
    assert leftovers(path) == [], "temporary files left behind"
    assert data_files(path) == files, "files of a write that raised were left behind"

    # reads work on the full disk, in this store, a new store object and a new process
    assert store.get("users", "alice")["age"] == 31
    assert store.as_of("big").num_rows == 3000
    assert store.history("users", "alice").num_rows == 1
    with koru.open(path) as other:
        assert other.as_of("big").num_rows == 3000 and other.get("users", "alice")["age"] == 31
    code = ("import koru_core as koru, sys; s = koru.open(sys.argv[1]); "
            "print(s.as_of('big').num_rows, s.get('users', 'alice')['age'], s.verify().is_ok)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"a reader on the full disk died ({proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.split() == ["3000", "31", "True"]

    filler.unlink()
    assert store.put("users", "dan", {"age": 7}).commit == head + 1
    assert store.upsert("big", big_rows(3000, 5000), key="id").written == 3000
    store.consolidate()
    assert store.get("users", "dan")["age"] == 7 and store.as_of("big").num_rows == 6000
    assert store.verify().is_ok
    assert leftovers(path) == []
    store.close()


def test_duckdb_and_polars_read_on_a_full_disk(disk: Path) -> None:
    """Issue 12 item 9: readers must work on a full disk (DuckDB and Polars plan through the core)."""
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    import koru_duckdb
    import koru_polars

    path = disk / "s"
    with koru.open(path) as store:
        store.upsert("big", big_rows(2000), key="id")
        store.put("big", "extra", {"pad": "e"})
    filler = fill(disk)
    with koru.open(path) as store:  # SQLite cannot make its -shm: the store opens read-only
        assert store.read_only
        con = koru_duckdb.connect(store)
        assert con.sql("SELECT count(*) FROM big").fetchall()[0][0] == 2001
        assert koru_polars.scan_koru(store, "big").select(pl.len()).collect().item() == 2001
        con.close()
        with pytest.raises(koru.ReadOnlyError, match="disk was full"):
            store.put("big", "more", {"pad": "m"})
    assert isinstance(duckdb.__version__, str)
    filler.unlink()
    with koru.open(path) as store:
        assert not store.read_only and store.put("big", "more", {"pad": "m"}).commit == 3


def test_work_after_the_commit_point_that_fails_only_warns(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 item 2: automatic consolidation runs after the commit point; when it cannot
    get space the put still returns its version (a RuntimeWarning says what failed), the
    commit is durable, nothing is left behind, and a later commit consolidates."""
    monkeypatch.setattr(auto, "AUTO_COMMITS", 4)
    path = disk / "s"
    store = koru.open(path)
    for i in range(3):
        store.put("docs", f"d{i}", {"text": uuid.uuid4().hex * 200})
    filler = fill(disk, leave=40 * 1024)  # room for the commit in the catalog's log, not for a cold file
    with pytest.warns(RuntimeWarning, match="durable"):
        v = store.put("docs", "d3", {"text": uuid.uuid4().hex * 200})
    assert v.commit == 4
    assert leftovers(path) == []
    store.close()
    with koru.open(path, auto_consolidate=False) as fresh:
        assert fresh.version() == 4 and fresh.get("docs", "d3")["text"] == v.value["text"]
    filler.unlink()
    with koru.open(path) as store:
        store.put("docs", "d4", {"text": "x"})
        assert {r["tier"] for r in store.stats().to_pylist() if r["versions"]} == {"cold"}
        assert store.verify().is_ok


def test_a_namespace_too_long_for_the_file_system_is_refused_up_front(tmp_path: Path) -> None:
    """Issue 12 item 2: a 300-character namespace was accepted, then every flush failed.
    Names longer than koru_core.input.NAMESPACE_MAX_LENGTH are refused before anything is written."""
    from koru_core.input import NAMESPACE_MAX_LENGTH

    store = koru.open(tmp_path / "s")
    for name in ("n" * 300, "n" * (NAMESPACE_MAX_LENGTH + 1)):
        with pytest.raises(koru.InvalidInputError, match="characters long"):
            store.put(name, "k", {"a": 1})
        with pytest.raises(koru.InvalidInputError, match="characters long"):
            store.upsert(name, big_rows(2000), key="id")
    assert store.version() == 0
    longest = "n" * NAMESPACE_MAX_LENGTH
    store.upsert(longest, big_rows(2000), key="id")  # a warm file in a folder named after it
    store.consolidate()
    assert store.as_of(longest).num_rows == 2000 and store.verify().is_ok
    store.close()
