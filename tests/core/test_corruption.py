"""Flipped and cut bytes in data files, pending versions, the catalog and its log
(issue 2, item 3): every read gives ``CorruptionError`` naming the file, or the
exact right answer. Never a silently wrong answer."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import koru_core as koru

PROCS = Path(__file__).parent / "_procs"
N_BIG = 3000
PROBE_KEYS = ["k00000", "k01234", "k02999"]


def build(path: Path) -> None:
    """Two single puts (pending, in the catalog) then one upsert that becomes warm file 3."""
    with koru.open(path) as s:
        s.put("small", "a", {"x": 1, "pad": "p" * 100})
        s.put("small", "b", {"x": 2, "pad": "q" * 100})
        ids = [f"k{i:05d}" for i in range(N_BIG)]
        s.upsert("big", pa.table({"id": ids, "x": list(range(N_BIG)), "s": [f"v{i}" for i in range(N_BIG)]}), key="id")


def snapshot(s: koru.Store) -> dict[str, object]:
    """Everything the reads return, to compare a damaged store with."""
    out: dict[str, object] = {"commits": s.commits(), "namespaces": s.namespaces()}
    for ns in s.namespaces():
        out[f"versions {ns}"] = s.versions(ns).to_pylist()
        out[f"as_of {ns}"] = s.as_of(ns).to_pylist()
        out[f"changes {ns}"] = s.changes(ns).to_pylist()
    for k in PROBE_KEYS:
        out[f"get {k}"] = _or_error(lambda k=k: s.get("big", k))
        out[f"get {k} v3"] = _or_error(lambda k=k: s.get("big", k, version=3))
        out[f"history {k}"] = s.history("big", k).to_pylist()
    out["get a"] = _or_error(lambda: s.get("small", "a"))
    return out


def _or_error(call: Callable[[], object]) -> object:
    try:
        return call()
    except koru.KeyNotFoundError as e:  # a wrong "not found" must show up as a difference
        return f"KeyNotFoundError: {e}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("pristine") / "s"
    build(path)
    with koru.open(path) as s:
        return path, snapshot(s)


def damaged_copy(pristine: tuple[Path, dict[str, object]], tmp_path: Path) -> Path:
    path = tmp_path / "s"
    shutil.copytree(pristine[0], path)
    return path


def warm_file(path: Path) -> Path:
    files = sorted((path / "warm").rglob("*.parquet"))
    assert len(files) == 1, files
    return files[0]


def check_reads(path: Path, expected: dict[str, object], *, name: str) -> str:
    """Open and read everything: "corrupt" if CorruptionError names ``name``,
    "ok" if every answer is exactly right; anything else fails the test."""
    try:
        with koru.open(path) as s:
            got = snapshot(s)
    except koru.CorruptionError as e:
        assert name in str(e), f"CorruptionError does not name {name!r}: {e}"
        return "corrupt"
    for k in expected:
        assert got[k] == expected[k], f"silently wrong answer for {k}"
    return "ok"


def flip(path: Path, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


# -- Parquet data files ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_flipped_byte_in_data_file(pristine, tmp_path: Path, seed: int) -> None:
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    size = f.stat().st_size
    rng = random.Random(seed)
    offset = rng.randrange(4, size - 8)  # anywhere: pages, headers, the footer
    flip(f, offset, rng.randrange(1, 256))
    check_reads(path, pristine[1], name=f.name)


def test_flipped_bytes_in_data_pages_are_caught(pristine, tmp_path: Path) -> None:
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    meta = pq.ParquetFile(f).metadata
    rg = meta.row_group(0)
    [column] = [rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema == "s"]
    start = min(o for o in (column.dictionary_page_offset, column.data_page_offset) if o is not None)
    flip(f, start + column.total_compressed_size // 2)
    assert check_reads(path, pristine[1], name=f.name) == "corrupt"


def test_corrupted_statistics_in_footer(pristine, tmp_path: Path) -> None:
    """The footer's max of ``_key`` says ``k00009`` instead of ``k02999``: a reader that
    trusts the statistics prunes the row group for ``k01234`` and answers "no such key"."""
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    data = bytearray(f.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_len
    hits = [i for i in range(start, len(data) - 8) if data[i : i + 6] == b"k02999"]
    assert hits, "no _key statistics found in the footer"
    for i in hits:
        data[i : i + 6] = b"k00009"
    f.write_bytes(bytes(data))
    assert check_reads(path, pristine[1], name=f.name) == "corrupt"


@pytest.mark.parametrize("keep", [0, 4, 1000, -9, -1])
def test_truncated_data_file(pristine, tmp_path: Path, keep: int) -> None:
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(keep if keep >= 0 else size + keep)
    assert check_reads(path, pristine[1], name=f.name) == "corrupt"


def test_missing_data_file(pristine, tmp_path: Path) -> None:
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    f.unlink()
    assert check_reads(path, pristine[1], name=f.name) == "corrupt"


def test_data_file_replaced_by_another_of_same_size(pristine, tmp_path: Path) -> None:
    """Same length, different bytes (e.g. a file from another store)."""
    path = damaged_copy(pristine, tmp_path)
    f = warm_file(path)
    data = bytearray(f.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    f.write_bytes(bytes(data))
    assert check_reads(path, pristine[1], name=f.name) == "corrupt"


# -- pending versions (Arrow IPC blobs inside catalog.sqlite) ---------------------------


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_corrupted_pending_blob(pristine, tmp_path: Path, where: str) -> None:
    path = damaged_copy(pristine, tmp_path)
    con = sqlite3.connect(path / "catalog.sqlite")
    (n,) = con.execute("SELECT count(*) FROM pending").fetchone()
    assert n == 2, "the two puts are pending versions"
    data = bytearray(con.execute("SELECT data FROM pending WHERE commit_number = 2").fetchone()[0])
    i = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[where]
    data[i] ^= 0x5A
    con.execute("UPDATE pending SET data = ? WHERE commit_number = 2", (bytes(data),))
    con.commit()
    con.close()
    with koru.open(path) as s:
        with pytest.raises(koru.CorruptionError, match="catalog.sqlite") as e:
            s.as_of("small")
        assert "'small'" in str(e.value)
        with pytest.raises(koru.CorruptionError, match="catalog.sqlite"):
            s.get("small", "b")
        assert s.get("big", "k00001")["x"] == 1, "other namespaces still read"


# -- the catalog ---------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 50, 100, 4096, 0.5, -4096, -1])
def test_truncated_catalog(pristine, tmp_path: Path, keep: float) -> None:
    path = damaged_copy(pristine, tmp_path)
    catalog = path / "catalog.sqlite"
    size = catalog.stat().st_size
    n = int(size * keep) if isinstance(keep, float) else (keep if keep >= 0 else size + keep)
    with open(catalog, "r+b") as f:
        f.truncate(n)
    assert check_reads(path, pristine[1], name="catalog.sqlite") == "corrupt"


@pytest.mark.parametrize(("offset", "length"), [(0, 16), (16, 84), (0, 4096), (4096, 4096), (0.5, 1024), (0.25, 0.5)])
def test_garbage_in_catalog(pristine, tmp_path: Path, offset: float, length: float) -> None:
    path = damaged_copy(pristine, tmp_path)
    catalog = path / "catalog.sqlite"
    size = catalog.stat().st_size
    start = int(size * offset) if isinstance(offset, float) else offset
    n = int(size * length) if isinstance(length, float) else length
    rng = random.Random(start * 7 + n)
    with open(catalog, "r+b") as f:
        f.seek(start)
        f.write(bytes(rng.randrange(256) for _ in range(n)))
    outcome = check_reads(path, pristine[1], name="catalog.sqlite")
    if start < 100:  # the header: SQLite cannot read the file at all
        assert outcome == "corrupt"
    # elsewhere the garbage may land on a free page: then every answer must be exact


def test_catalog_replaced_by_a_text_file(pristine, tmp_path: Path) -> None:
    path = damaged_copy(pristine, tmp_path)
    (path / "catalog.sqlite").write_text("this is not a database\n" * 200)
    with pytest.raises(koru.CorruptionError, match="catalog.sqlite"):
        koru.open(path)


def test_catalog_replaced_by_an_older_copy(tmp_path: Path) -> None:
    """A restored backup that lacks the last commits must not pass for the store.

    The catalog is the truth (format 2 keeps no ``head`` file), and an older catalog is a
    consistent store at an older commit: only an anchor kept elsewhere tells them apart.
    ``verify(expected_head=)`` (and ``koru verify --head``) with the last commit's hash
    fails on the old copy; so does ``verify()`` alone once a consolidated file newer than
    the catalog's head is on disk (issue 12 item 16)."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("a", "k", {"v": 1})
    shutil.copy(path / "catalog.sqlite", tmp_path / "old.sqlite")
    with koru.open(path) as s:
        s.put("a", "k", {"v": 2})
        s.consolidate()
        anchor = s.commits()[-1].hash
        assert s.verify(expected_head=anchor).is_ok
    shutil.copy(tmp_path / "old.sqlite", path / "catalog.sqlite")
    with koru.open(path) as s:
        assert s.get("a", "k") == {"v": 1}, "the old copy is a consistent, older store"
        report = s.verify(expected_head=anchor)
        assert not report.is_ok
        assert any(anchor in p for p in report.problems), report.problems
        plain = s.verify()
        assert not plain.is_ok and any("newer than the catalog" in p for p in plain.problems), plain.problems


@pytest.mark.parametrize("seed", range(4))
def test_corrupted_catalog_log_after_a_crash(tmp_path: Path, seed: int) -> None:
    """A writer is killed with its commits in SQLite's write-ahead log
    (``catalog.sqlite-wal``), then a byte of the log is flipped. SQLite drops the
    log from the bad frame on: the lost commits were acknowledged, so opening must
    say so (or every commit must still be there)."""
    path = tmp_path / "s"
    proc = subprocess.run(
        [sys.executable, str(PROCS / "wal_writer.py"), str(path), "40"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acknowledged = [int(line) for line in proc.stdout.split()]
    assert acknowledged == list(range(1, 41))
    wal = path / "catalog.sqlite-wal"
    assert wal.exists() and wal.stat().st_size > 32, "the commits are still in the log"
    rng = random.Random(seed)
    flip(wal, rng.randrange(32, wal.stat().st_size), rng.randrange(1, 256))
    try:
        with koru.open(path) as s:
            assert [c.commit for c in s.commits()] == acknowledged
            assert s.as_of("w")["i"].to_pylist() == list(range(40))
    except koru.CorruptionError as e:
        assert "catalog.sqlite" in str(e)
