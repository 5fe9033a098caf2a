"""Read-only stores (issue 12 item 10).

Before, a store on a read-only mount, or a copy without write permission, could not be
read, and the error claimed corruption. Now ``koru.open(path, read_only=True)`` reads
any store, and ``open`` detects a folder it may not write by itself; every write then
raises :class:`koru_core.ReadOnlyError` and changes nothing.

The read-only mount is a real read-only bind mount and the copy without permission a
real ``chmod``; both need root (to mount, or to drop root's override of file
permissions with ``setpriv``), as CI has; elsewhere they skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import koru_core as koru

ROOT = Path(__file__).parents[2]
PROCS = Path(__file__).parent / "_procs"


def build(path: Path) -> None:
    with koru.open(path) as s:
        s.put("users", "alice", {"age": 31})
        s.put("users", "bob", {"age": 40})
        s.upsert("big", pa.table({"id": [f"k{i:05d}" for i in range(3000)], "x": list(range(3000))}), key="id")
        s.tag("first", commit=1)


def fingerprint(path: Path) -> dict[str, str]:
    """Every file of the store folder with its sha256 (what must not change); SQLite's
    ``-shm`` (shared memory) and an empty ``-wal`` that a reader's connection makes do not count."""
    out = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file() or "readers" in p.parts or p.name.endswith("-shm"):
            continue
        if p.name.endswith("-wal") and p.stat().st_size == 0:
            continue
        out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def writes(store: koru.Store) -> list[tuple[str, Callable[[], object]]]:
    def tx() -> None:
        with store.transaction() as t:
            t.put("users", "carol", {"age": 5})

    return [
        ("put", lambda: store.put("users", "carol", {"age": 5})),
        ("delete", lambda: store.delete("users", "alice")),
        ("upsert", lambda: store.upsert("users", [{"id": "dan", "age": 1}], key="id")),
        ("transaction", tx),
        ("consolidate", lambda: store.consolidate()),
        ("distill", lambda: store.distill(koru.KeepLast(1))),
        ("vacuum", lambda: store.vacuum(retain=timedelta(0))),
        ("tag", lambda: store.tag("t2")),
    ]


def check_read_only_store(path: Path, store: koru.Store) -> None:
    assert store.read_only
    assert store.get("users", "alice") == {"age": 31}
    assert store.as_of("users", version=1).num_rows == 1
    assert store.as_of("big").num_rows == 3000
    assert store.history("users", "bob").num_rows == 1
    assert store.verify().is_ok
    for name, write in writes(store):
        with pytest.raises(koru.ReadOnlyError, match="read-only"):
            write()
        assert store.version() == 3, name


def test_open_read_only_reads_and_refuses_every_write(tmp_path: Path) -> None:
    """Issue 12 item 10: ``read_only=True`` on a writable store: reads as usual, every
    write raises ReadOnlyError (a KoruError and a PermissionError), no file changes."""
    path = tmp_path / "s"
    build(path)
    before = fingerprint(path)
    with koru.open(path, read_only=True) as store:
        check_read_only_store(path, store)
        with pytest.raises(PermissionError):
            store.put("users", "x", {"age": 1})
        with pytest.raises(koru.KoruError):
            store.put("users", "x", {"age": 1})
    assert fingerprint(path) == before
    with pytest.raises(koru.InvalidInputError, match="no koru store"):
        koru.open(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable folder, the same folder through a read-only bind mount)."""
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(view)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True, capture_output=True)
        yield src, view
    finally:
        if subprocess.run(["umount", str(view)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_a_read_only_mount_is_detected_and_read_by_every_engine(read_only_mount: tuple[Path, Path]) -> None:
    """Issue 12 item 10: a store on a read-only mount opens (read-only, detected by itself)
    and reads through the core, DuckDB and Polars; writes raise ReadOnlyError, not CorruptionError."""
    pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    import koru_duckdb
    import koru_polars

    src, view = read_only_mount
    build(src / "s")
    with koru.open(view / "s") as store:
        check_read_only_store(view / "s", store)
        con = koru_duckdb.connect(store)
        assert con.sql("SELECT count(*) FROM big").fetchall() == [(3000,)]
        assert con.sql("SELECT age FROM users AT (VERSION => 1)").fetchall() == [(31,)]
        con.close()
        assert koru_polars.scan_koru(store, "big").select(pl.col("x").sum()).collect().item() == sum(range(3000))


def test_a_read_only_mount_of_a_store_being_written_follows_the_writer(read_only_mount: tuple[Path, Path]) -> None:
    """Issue 12 item 10: the read-only view of a store that a writer (elsewhere) is
    writing sees its commits: once the writer's log exists, the reader reads through it."""
    src, view = read_only_mount
    build(src / "s")
    reader = koru.open(view / "s")
    assert reader.read_only and reader.get("users", "alice") == {"age": 31}
    with koru.open(src / "s") as writer:
        writer.put("users", "alice", {"age": 32})
        assert reader.get("users", "alice") == {"age": 32}
        writer.put("users", "erin", {"age": 2})
        assert reader.keys("users") == ["alice", "bob", "erin"]
    reader.close()


def test_a_read_only_mount_of_a_crashed_store_names_the_log(read_only_mount: tuple[Path, Path]) -> None:
    """Issue 12 item 10: a writer killed with commits in the catalog's write-ahead log,
    then the store seen through a read-only mount: koru either reads every commit or
    says which file it cannot read here, never answers with fewer commits."""
    src, view = read_only_mount
    proc = subprocess.run([sys.executable, str(PROCS / "wal_writer.py"), str(src / "s"), "10"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (src / "s" / "catalog.sqlite-wal").exists()
    try:
        store = koru.open(view / "s")
    except koru.ReadOnlyError as e:
        assert "catalog.sqlite-wal" in str(e)
        return
    with store:
        assert store.version() == 10 and store.as_of("w").num_rows == 10


DROP_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def test_a_copy_without_write_permission_is_read(tmp_path: Path) -> None:
    """Issue 12 item 10: a copy of a store with its write permission removed (``chmod -R a-w``)
    is detected as read-only and read, in a process that cannot override permissions."""
    path = tmp_path / "copy"
    build(tmp_path / "s")
    shutil.copytree(tmp_path / "s", path)
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    code = """
import sys, koru_core as koru
store = koru.open(sys.argv[1])
print(store.read_only, store.get("users", "alice")["age"], store.as_of("big").num_rows, store.verify().is_ok)
try:
    store.put("users", "x", {"age": 1})
except koru.ReadOnlyError as e:
    print("ReadOnlyError")
"""
    prefix = DROP_OVERRIDE if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    proc = subprocess.run([*prefix, sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "31", "3000", "True", "ReadOnlyError"], proc.stdout
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
