"""The ``koru`` command line run as users run it: ``python -m koru_core.cli`` in a real
subprocess, for every CLI defect of issue 13 (tracebacks, tables, formats, missing commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import koru_core as koru

pytest.importorskip("duckdb")
pytest.importorskip("koru_duckdb")

from _cli_run import ROOT, koru_cli, ok, one_line_error  # noqa: E402  (tests/core/_cli_run.py)

HOLDER = Path(__file__).parent / "_procs" / "holder.py"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with list columns (``_parents``), back-dated rows, a delete and a NaN-free float field."""
    path = tmp_path / "s.koru"
    with koru.open(path) as s:
        a = s.put("users", "alice", {"name": "Alice", "age": 31, "tags": ["a", "b"], "score": 1.5},
                  actor="etl", run_id="r1", metadata={"source": "crm"})
        s.put("users", "bob", {"name": "Bob", "age": 40, "tags": [], "score": 2.0}, parents=[a.write_id])
        s.put("users", "alice", {"name": "Alice", "age": 32, "tags": ["c"], "score": 3.5})
        s.put("orders", "o1", {"total": 10.0, "user": "alice"})
    return path


def test_csv_json_parquet_of_nested_columns(store: Path, tmp_path: Path) -> None:
    """Issue 13: ``--format csv`` of ``koru_commits()`` or ``koru_history()`` crashed with
    ``ArrowInvalid: Unsupported Type: list<…>``; every format now goes through DuckDB's writers."""
    commits = ok(koru_cli("sql", "--format", "csv", "SELECT * FROM koru_commits()", store=store)).splitlines()
    assert commits[0].startswith("commit,system_time,actor,run_id,namespaces,")
    assert len(commits) == 5 and "[users]" in commits[1]
    history = ok(koru_cli("sql", "--format", "csv", "SELECT * FROM koru_history('users', 'bob')", store=store))
    assert "_parents" in history.splitlines()[0] and history.count("\n") == 2
    as_json = json.loads(ok(koru_cli("sql", "--format", "json", "SELECT * FROM koru_history('users', 'alice')",
                                     store=store)))
    assert [r["tags"] for r in as_json] == [["a", "b"], ["c"]]
    assert isinstance(as_json[0]["_parents"], (list, type(None)))
    lines = ok(koru_cli("sql", "--format", "jsonl", "SELECT * FROM koru_commits()", store=store)).splitlines()
    assert [json.loads(line)["namespaces"] for line in lines] == [["users"], ["users"], ["users"], ["orders"]]
    out = tmp_path / "h.parquet"
    ok(koru_cli("sql", "--format", "parquet", "--output", str(out), "SELECT * FROM koru_history('users', 'alice')",
                store=store))
    table = pq.read_table(out)
    assert table.num_rows == 2 and pa.types.is_list(table.schema.field("tags").type)


def test_json_never_holds_nan(store: Path) -> None:
    """Issue 13: ``--format json`` could print NaN, which is not JSON; NaN and ±inf are null, at any depth."""
    query = ("SELECT 'nan'::DOUBLE AS x, 'inf'::FLOAT AS y, [1.5, 'nan'::DOUBLE] AS l, "
             "{'a': '-inf'::DOUBLE, 'b': 2} AS s, 1.0 AS fine")
    for fmt in ("json", "jsonl"):
        text = ok(koru_cli("sql", "--format", fmt, query, store=store))
        assert "NaN" not in text and "Infinity" not in text
        row = json.loads(text)[0] if fmt == "json" else json.loads(text)
        assert row == {"x": None, "y": None, "l": [1.5, None], "s": {"a": None, "b": 2}, "fine": 1.0}
    assert json.loads(ok(koru_cli("--json", "sql", query, store=store)))[0]["x"] is None


@pytest.mark.parametrize("columns", [80, 120])
def test_a_wide_long_table_fits_the_terminal(tmp_path: Path, columns: int) -> None:
    """Issue 13: table output wrapped every cell over several lines; it now fits COLUMNS,
    leaves out middle columns, and shows the first and last rows with the row count."""
    path = tmp_path / "wide.koru"
    with koru.open(path) as s:
        s.upsert("wide", [{"id": f"k{i:03}", **{f"field_{j}": "x" * 50 + str(i) for j in range(15)}}
                          for i in range(300)], key="id")
    out = ok(koru_cli("sql", "SELECT * FROM wide ORDER BY _key", store=path, columns=columns))
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, max(len(line) for line in lines)
    assert lines[-1].startswith("300 rows (40 shown)") and "columns (" in lines[-1]
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 2 + 40 + 1  # names, types, 40 rows, the "·" row
    assert "…" in out and "k000" in body[2] and "k299" in body[-1] and "k150" not in out


def test_max_rows(store: Path) -> None:
    """Issue 13: there was no row limit; ``--max-rows`` shows the first and last rows."""
    out = ok(koru_cli("sql", "--max-rows", "4", "SELECT range AS n FROM range(1000)", store=store))
    shown = [line.strip("│ ") for line in out.splitlines() if line.startswith("│")]
    assert shown == ["n", "bigint", "0", "1", "·", "998", "999"]
    assert out.splitlines()[-1] == "1,000 rows (4 shown)"
    everything = ok(koru_cli("sql", "--max-rows", "0", "SELECT range AS n FROM range(50)", store=store))
    assert everything.splitlines()[-1] == "50 rows"


def test_a_334k_row_select_prints_promptly(tmp_path: Path) -> None:
    """Issue 13: a 334k-row SELECT had not printed after 120 s; the table streams the result
    and converts only the rows it shows."""
    path = tmp_path / "big.koru"
    n = 334_233
    with koru.open(path) as s:
        s.upsert("big", pa.table({"id": [f"k{i}" for i in range(n)], "v": list(range(n)),
                                  "text": ["some text here"] * n}), key="id")
    started = time.monotonic()
    out = ok(koru_cli("sql", "SELECT * FROM big", store=path, columns=120))
    elapsed = time.monotonic() - started
    assert out.splitlines()[-1] == "334,233 rows (40 shown)"
    assert elapsed < 30, elapsed  # about 3 s here, interpreter start included; the bug never finished


def test_delete_and_the_commit_log(store: Path) -> None:
    """Issue 13: there was no ``koru delete`` and ``koru log`` without a key failed."""
    out = ok(koru_cli("delete", "users", "bob", "--valid-from", "2030-01-01T00:00:00Z", "--actor", "me",
                      store=store))
    assert out.startswith("users/bob: deleted in commit 5")
    with koru.open(store) as s:
        assert s.get("users", "bob")["age"] == 40  # deleted only from 2030 on
        assert "bob" not in s.keys("users", at=koru_time("2031-01-01T00:00:00Z"))
    one_line_error(koru_cli("delete", "users", "nobody", store=store), "no live key 'nobody'")
    log = json.loads(ok(koru_cli("log", "--json", store=store)))
    assert [c["commit"] for c in log] == [1, 2, 3, 4, 5]
    assert log[0]["actor"] == "etl" and log[0]["run_id"] == "r1" and log[0]["metadata"] == {"source": "crm"}
    assert log[4]["deleted"] == 1 and log[4]["actor"] == "me"
    only = json.loads(ok(koru_cli("log", "--namespace", "orders", "--json", store=store)))
    assert [c["commit"] for c in only] == [4]
    assert [c["commit"] for c in json.loads(ok(koru_cli("log", "orders", "--json", store=store)))] == [4]
    tagged = json.loads(ok(koru_cli("log", "--metadata", "source=crm", "--json", store=store)))
    assert [c["commit"] for c in tagged] == [1]
    table = ok(koru_cli("log", store=store, columns=120))
    assert "commit" in table and "etl" in table and "source=crm" in table and table.splitlines()[-1] == "5 rows"
    assert "commit 1 · valid" in ok(koru_cli("log", "users", "alice", store=store))


def koru_time(text: str) -> object:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_lock_timeout_fails_fast_while_another_process_writes(store: Path) -> None:
    """Issue 13: a second writer always waited 10 s; ``--lock-timeout 0.5`` fails fast, in one line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, str(HOLDER), str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        proc = koru_cli("put", "users", "carol", '{"name": "Carol"}', "--lock-timeout", "0.5", store=store)
        elapsed = time.monotonic() - started
        one_line_error(proc, "lock", "--lock-timeout")
        assert elapsed < 8, elapsed  # the default would wait 10 s
        assert json.loads(ok(koru_cli("get", "users", "alice", "--json", store=store)))["age"] == 32  # reads go on
    finally:
        assert holder.stdin is not None
        holder.communicate("\n", timeout=60)
    with koru.open(store) as s:
        assert "carol" not in s.keys("users")


def test_store_after_the_subcommand_and_from_the_environment(store: Path) -> None:
    """Issue 13: ``--store`` was accepted only before the subcommand."""
    assert json.loads(ok(koru_cli("get", "users", "alice", "--store", str(store), "--json")))["age"] == 32
    assert json.loads(ok(koru_cli("--json", "get", "users", "alice", env={"KORU_STORE": str(store)})))["age"] == 32
    before = koru_cli("--store", str(store), "--json", "get", "users", "alice")
    assert json.loads(ok(before))["age"] == 32


def test_read_commands_never_create_a_store(tmp_path: Path) -> None:
    for args in (("get", "users", "a"), ("log",), ("sql", "SELECT 1"), ("stats",), ("delete", "users", "a")):
        one_line_error(koru_cli(*args, store=tmp_path / "none"), "no koru store", "koru init")
    assert not (tmp_path / "none").exists()


def test_init_and_put_refuse_a_folder_of_other_files(tmp_path: Path) -> None:
    """Issue 13: ``koru.open()`` turned any existing folder into a store without asking."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    for args in (("init",), ("put", "users", "a", "1")):
        one_line_error(koru_cli(*args, store=folder), "not a koru store", "koru init --force")
    assert sorted(p.name for p in folder.iterdir()) == ["cat.jpg"]
    assert json.loads(ok(koru_cli("init", "--force", "--json", store=folder)))["created"] is True
    assert (folder / "catalog.sqlite").is_file()
    ok(koru_cli("put", "users", "a", "1", store=folder))


def test_put_of_a_bare_value_into_a_field_namespace_is_refused(store: Path) -> None:
    """Issue 13: ``koru put ns k '[1,2]'`` silently added a ``value`` column to a namespace of fields."""
    one_line_error(koru_cli("put", "users", "carol", "[1, 2]", store=store),
                   "namespace 'users'", "'name'", "'age'", "nothing was written")
    with koru.open(store) as s:
        assert "value" not in s.as_of("users").column_names and len(s.commits()) == 4
    ok(koru_cli("put", "counters", "c", "41", store=store))  # a namespace of bare values takes them
    ok(koru_cli("put", "counters", "c", "42", store=store))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("sql", "SELECT nope"), ("nope",)),
        (("sql", "SELECT * FROM ghosts AT (VERSION => 1)"), ("ghosts",)),
        (("sql", "--format", "csv", "--output", "/nonexistent/dir/x.csv", "SELECT 1"), ("/nonexistent/dir",)),
        (("sql", "SELECT CAST('x' AS INTEGER)"), ("Conversion",)),
        (("sql", "--max-rows", "-1", "SELECT 1"), ("--max-rows",)),
        (("get", "users", "alice", "--lock-timeout", "soon"), ("--lock-timeout",)),
        (("import", "users", "/nonexistent.csv", "--key", "id"), ("does not exist",)),
        (("put", "users", "alice", "{bad json"), ("not valid JSON",)),
    ],
)
def test_every_error_is_one_line(store: Path, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    """Issue 13: duckdb errors, OSError, bad arguments: one ``error:`` line, exit code ≠ 0, no traceback."""
    one_line_error(koru_cli(*args, store=store), *needles)
