"""verify() (issue 5): edited, removed and corrupted data are each named in ``problems``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import koru_core as koru


@pytest.fixture
def filled(store: koru.Store) -> koru.Store:
    for r in range(3):
        store.upsert("users", [{"id": f"k{j}", "n": r * j, "tag": "x"} for j in range(1500)], key="id", actor="etl")
    store.put("users", "k1", {"id": "k1", "n": -1, "extra": [1, 2]}, actor="ann")
    store.delete("users", "k2")
    store.put("tags", "a", 1.5)
    return store


def _entries(store: koru.Store, namespace: str = "users") -> list:
    return [s.entry for s in store.plan(namespace, shape="versions").candidates if s.entry is not None]


def _sql(store: koru.Store, statement: str, *args: object) -> None:
    con = sqlite3.connect(store.path / "catalog.sqlite")
    with con:
        con.execute(statement, args)
    con.close()


def test_a_clean_store_verifies_before_and_after_consolidation(filled: koru.Store) -> None:
    report = filled.verify()
    assert report.is_ok, report.problems
    assert report.commits_checked == 6 and report.versions_checked == 4501
    filled.consolidate()
    assert filled.verify().is_ok


@pytest.mark.parametrize("consolidated", [False, True])
def test_an_edited_value_names_the_file_and_the_write_id(filled: koru.Store, consolidated: bool) -> None:
    if consolidated:
        filled.consolidate()
    entry = next(e for e in _entries(filled) if e.rows > 1)
    path = filled.path / entry.path
    table = pq.read_table(path)
    i = table["_key"].to_pylist().index("k7")
    victim = table["_write_id"][i].as_py().hex()
    n = table["n"].to_pylist()
    n[i] = 999_999
    table = table.set_column(table.column_names.index("n"), "n", pa.array(n, table["n"].type))
    pq.write_table(table, path, compression="zstd")
    problems = "\n".join(filled.verify().problems)
    assert any(entry.path in p and "edited" in p for p in problems.splitlines())
    assert "do not match their content ids" in problems and victim in problems


def test_a_removed_file_is_named(filled: koru.Store) -> None:
    entry = _entries(filled)[0]
    (filled.path / entry.path).unlink()
    report = filled.verify()
    assert not report.is_ok
    assert any(entry.path in p and "missing" in p for p in report.problems)
    assert any(p.startswith(f"commit {entry.min_commit}:") for p in report.problems)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE commits SET actor = 'mallory' WHERE commit_number = 4", ["commit 4: hash"]),
        ("UPDATE commits SET metadata = '{\"k\": \"v\"}' WHERE commit_number = 4", ["commit 4: hash"]),
        ("UPDATE commits SET written = 7 WHERE commit_number = 2", ["commit 2: written/deleted"]),
        ("UPDATE commits SET system_time = system_time + 1 WHERE commit_number = 3", ["commit 3: hash"]),
        ("UPDATE commits SET hash = x'ab' WHERE commit_number = 2", ["commit 2: hash", "commit 3: prev_hash"]),
        ("DELETE FROM commits WHERE commit_number = 5", ["commit 6: commits 5..5 are missing", "commit 5: versions of it"]),
    ],
)
def test_an_altered_commit_row_is_named(filled: koru.Store, statement: str, expected: list[str]) -> None:
    _sql(filled, statement)
    problems = filled.verify().problems
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


def test_a_corrupted_pending_blob_is_named(filled: koru.Store) -> None:
    _sql(filled, "UPDATE pending SET checksum = x'00' WHERE namespace = 'tags'")
    assert any("namespace 'tags', commit 6" in p and "checksum" in p for p in filled.verify().problems)


def test_an_edited_pending_value_is_named(filled: koru.Store) -> None:
    con = sqlite3.connect(filled.path / "catalog.sqlite")
    data, = con.execute("SELECT data FROM pending WHERE namespace = 'tags'").fetchone()
    table = pa.ipc.open_stream(data).read_all()
    table = table.set_column(table.column_names.index("value"), "value", pc.add(table["value"], 1.0))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    blob = sink.getvalue().to_pybytes()
    import blake3

    with con:
        con.execute("UPDATE pending SET data = ?, checksum = ? WHERE namespace = 'tags'", (blob, blake3.blake3(blob).digest()))
    con.close()
    assert any("namespace 'tags'" in p and "content ids" in p for p in filled.verify().problems)


def test_verify_names_files_relative_to_the_store(filled: koru.Store, tmp_path: Path) -> None:
    filled.consolidate()
    assert all(not e.path.startswith("/") for e in _entries(filled))
