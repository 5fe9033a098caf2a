"""The ``koru`` command line: every command through click's CliRunner on a real store,
plus one real subprocess of ``python -m koru_core.cli``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import koru_core as koru
from koru_core.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "cli.koru"


def run(store_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--store", str(store_path), *args], env=env)


def run_json(store_path: Path, *args: str) -> Any:
    result = run(store_path, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_init_creates_the_store_once(store_path: Path) -> None:
    assert run_json(store_path, "init") == {"store": str(store_path), "created": True, "commits": 0}
    assert (store_path / "catalog.sqlite").exists()
    assert run_json(store_path, "init")["created"] is False
    assert "already exists" in run(store_path, "init").stdout


def test_store_comes_from_env_when_no_option(tmp_path: Path) -> None:
    path = tmp_path / "from-env"
    result = CliRunner().invoke(
        main, ["--json", "put", "users", "alice", '{"age": 31}'], env={"KORU_STORE": str(path)}
    )
    assert result.exit_code == 0, result.output
    assert koru.open(path).get("users", "alice") == {"age": 31}


def test_put_then_get_at_valid_times_and_versions(store_path: Path) -> None:
    first = run_json(
        store_path,
        "put",
        "users",
        "alice",
        '{"name": "Alice", "age": 31}',
        "--valid-from",
        "2024-01-01T00:00:00Z",
    )
    assert (first["commit"], first["is_unchanged"]) == (1, False)
    assert first["valid_from"] == "2024-01-01T00:00:00+00:00"
    second = run_json(
        store_path,
        "put",
        "users",
        "alice",
        '{"name": "Alice", "age": 32}',
        "--valid-from",
        "2025-01-01T02:00:00+02:00",
    )
    assert second["valid_from"] == "2025-01-01T00:00:00+00:00"
    assert second["prev_write_id"] == first["write_id"]
    assert run_json(store_path, "get", "users", "alice") == {"name": "Alice", "age": 32}
    assert run_json(store_path, "get", "users", "alice", "--at", "2024-06-01T00:00Z")["age"] == 31
    assert run_json(store_path, "get", "users", "alice", "--version", "1")["age"] == 31
    again = run_json(
        store_path,
        "put",
        "users",
        "alice",
        '{"name": "Alice", "age": 32}',
        "--valid-from",
        "2025-01-01T00:00:00Z",
    )
    assert again["is_unchanged"] is True and again["commit"] == 2


def test_get_prints_a_table_and_bare_values(store_path: Path) -> None:
    run_json(store_path, "put", "users", "alice", '{"name": "Alice", "age": 31}')
    run_json(store_path, "put", "counter", "c", "41")
    table = run(store_path, "get", "users", "alice").stdout
    assert "Alice" in table and "31" in table and "age" in table
    assert run(store_path, "get", "counter", "c").stdout.strip() == "41"
    assert run_json(store_path, "get", "counter", "c") == 41


def test_log_lists_every_version_oldest_first(store_path: Path) -> None:
    run_json(
        store_path, "put", "users", "alice", '{"age": 32}', "--valid-from", "2025-01-01T00:00:00Z"
    )
    run_json(
        store_path, "put", "users", "alice", '{"age": 31}', "--valid-from", "2024-01-01T00:00:00Z"
    )
    rows = run_json(store_path, "log", "users", "alice")
    assert [r["age"] for r in rows] == [31, 32]
    assert [r["_commit"] for r in rows] == [2, 1]
    assert rows[0]["_valid_to"] == "2025-01-01T00:00:00+00:00" and rows[1]["_valid_to"] is None
    text = run(store_path, "log", "users", "alice").stdout.splitlines()
    assert text[0].startswith("commit 2 · valid 2024-01-01 00:00:00Z → 2025-01-01 00:00:00Z")
    assert '"age": 32' in text[3]


def test_diff_between_versions_by_commit_time_and_write_id(store_path: Path) -> None:
    a = run_json(
        store_path,
        "put",
        "users",
        "alice",
        '{"name": "Alice", "age": 31}',
        "--valid-from",
        "2024-01-01T00:00:00Z",
    )
    run_json(
        store_path,
        "put",
        "users",
        "alice",
        '{"name": "Alicia", "age": 31, "city": "Oslo"}',
        "--valid-from",
        "2024-02-01T00:00:00Z",
    )
    expected = [
        {"field": "name", "before": "Alice", "after": "Alicia"},
        {"field": "city", "before": None, "after": "Oslo"},
    ]
    assert run_json(store_path, "diff", "users", "alice") == expected
    assert run_json(store_path, "diff", "users", "alice", "--from", "1", "--to", "2") == expected
    assert run_json(store_path, "diff", "users", "alice", "--from", a["write_id"]) == expected
    assert (
        run_json(
            store_path,
            "diff",
            "users",
            "alice",
            "--from",
            "2024-01-15T00:00:00Z",
            "--to",
            "2024-01-20T00:00:00Z",
        )
        == []
    )
    assert (
        "no differences"
        in run(store_path, "diff", "users", "alice", "--from", "2", "--to", "2").stdout
    )
    assert "Alicia" in run(store_path, "diff", "users", "alice").stdout


ROWS = [
    {"id": "a", "region": "eu", "n": 1, "t": "2024-01-01T00:00:00Z"},
    {"id": "b", "region": "us", "n": 2, "t": "2024-01-02T00:00:00+01:00"},
    {"id": "a", "region": "eu", "n": 3, "t": "2024-02-01T00:00:00Z"},
]


def _write(path: Path, fmt: str, rows: list[dict[str, Any]]) -> Path:
    if fmt == "csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_import_each_format_with_composite_key_and_valid_times(
    store_path: Path, tmp_path: Path, suffix: str
) -> None:
    file = _write(tmp_path / f"rows{suffix}", suffix[1:], ROWS)
    args = ("import", "events", str(file), "--key", "id", "--key", "region", "--valid-from", "t")
    result = run_json(store_path, *args)
    assert (result["rows"], result["written"], result["unchanged"], result["commit"]) == (
        3,
        3,
        0,
        1,
    )
    store = koru.open(store_path)
    history = store.history("events", "a|eu")
    assert history["n"].to_pylist() == [1, 3]
    assert [t.isoformat() for t in history["_valid_from"].to_pylist()] == [
        "2024-01-01T00:00:00+00:00",
        "2024-02-01T00:00:00+00:00",
    ]
    assert (
        store.history("events", "b|us")["_valid_from"][0].as_py().isoformat()
        == "2024-01-01T23:00:00+00:00"
    )
    again = run_json(store_path, *args)
    assert (again["written"], again["unchanged"], again["commit"]) == (0, 3, None)
    assert "3 rows read, 0 versions written, 3 unchanged" in run(store_path, *args).stdout


def test_import_format_option_overrides_the_extension(store_path: Path, tmp_path: Path) -> None:
    file = _write(tmp_path / "rows.csv", "jsonl", ROWS[:2])
    named = file.rename(tmp_path / "rows.data")
    assert (
        run_json(store_path, "import", "events", str(named), "--key", "id", "--format", "jsonl")[
            "written"
        ]
        == 2
    )
    assert run(store_path, "import", "events", str(named), "--key", "id").exit_code == 2


def test_import_of_a_bad_row_writes_nothing(store_path: Path, tmp_path: Path) -> None:
    rows = [*ROWS, {"id": "c", "region": "eu", "n": 4, "t": "2024-03-01T00:00:00"}]  # no zone
    file = _write(tmp_path / "rows.jsonl", "jsonl", rows)
    result = run(store_path, "import", "events", str(file), "--key", "id", "--valid-from", "t")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "zone" in result.stderr
    assert koru.open(store_path).namespaces() == []


def test_stats_counts_versions(store_path: Path) -> None:
    run_json(store_path, "put", "users", "alice", '{"age": 31}')
    run_json(store_path, "put", "users", "bob", '{"age": 40}')
    stats = run_json(store_path, "stats")
    assert stats["commits"] == 2
    assert sum(r["versions"] for r in stats["tiers"] if r["namespace"] == "users") == 2
    assert "users" in run(store_path, "stats").stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("get", "users", "nobody"), "no live key 'nobody'"),
        (("get", "ghosts", "alice"), "ghosts"),
        (("get", "users", "alice", "--at", "2024-01-01T00:00:00"), "no zone"),
        (("get", "users", "alice", "--at", "yesterday"), "not an ISO 8601 time"),
        (("put", "users", "alice", "{not json"), "not valid JSON"),
        (("put", "bad-name", "alice", "{}"), "namespace must match"),
        (("put", "users", "alice", '{"age": "x"}'), "age"),
        (("get", "users", "alice", "--version", "99"), "commit number"),
        (("diff", "users", "alice", "--from", "abc"), "--from"),
        (("frobnicate",), "No such command"),
        (("import", "users", "missing.csv", "--key", "id"), "does not exist"),
    ],
)
def test_errors_print_one_line_and_exit_non_zero(
    store_path: Path, args: tuple[str, ...], needle: str
) -> None:
    run_json(store_path, "put", "users", "alice", '{"age": 31}')
    result = run(store_path, *args)
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped exception


def test_read_commands_do_not_create_a_missing_store(store_path: Path) -> None:
    result = run(store_path, "stats")
    assert result.exit_code == 1 and "no koru store" in result.stderr
    assert not store_path.exists()


def test_every_command_has_help() -> None:
    names = set(main.commands)
    assert {"init", "put", "get", "log", "diff", "import", "stats", "sql", "demo"} <= names
    for name in sorted(names):
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert main.commands[name].help and len(main.commands[name].help.split()) > 3, name


def test_sql_runs_time_travel_queries(store_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    koru_duckdb = pytest.importorskip("koru_duckdb")
    assert hasattr(koru_duckdb, "connect"), "koru_duckdb is importable but has no connect()"
    run_json(
        store_path, "put", "users", "alice", '{"age": 31}', "--valid-from", "2024-01-01T00:00:00Z"
    )
    run_json(
        store_path, "put", "users", "alice", '{"age": 32}', "--valid-from", "2025-01-01T00:00:00Z"
    )
    run_json(
        store_path, "put", "users", "bob", '{"age": 40}', "--valid-from", "2024-06-01T00:00:00Z"
    )
    query = (
        "SELECT _key, age FROM users AT (TIMESTAMP => TIMESTAMP '2024-03-01 00:00:00+00') "
        "ORDER BY _key"
    )
    assert run_json(store_path, "sql", query) == [{"_key": "alice", "age": 31}]
    result = run(store_path, "sql", "--format", "json", "SELECT _key, age FROM users ORDER BY _key")
    assert json.loads(result.stdout) == [{"_key": "alice", "age": 32}, {"_key": "bob", "age": 40}]
    out = tmp_path / "users.parquet"
    assert (
        run(
            store_path, "sql", "--format", "parquet", "--output", str(out), "SELECT * FROM users"
        ).exit_code
        == 0
    )
    assert pq.read_table(out).num_rows == 2
    csv_text = run(
        store_path, "sql", "--format", "csv", "SELECT _key, age FROM users ORDER BY 1"
    ).stdout
    assert csv_text.splitlines() == ["_key,age", "alice,32", "bob,40"]  # DuckDB's COPY … (FORMAT csv)
    assert "bob" in run(store_path, "sql", "SELECT _key FROM users").stdout
    bad = run(store_path, "sql", "SELECT nope FROM users")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


def test_sql_without_duckdb_says_how_to_install(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_json(store_path, "put", "users", "alice", '{"age": 31}')
    monkeypatch.setitem(sys.modules, "koru_duckdb", None)  # import koru_duckdb -> ImportError
    result = run(store_path, "sql", "SELECT 1")
    assert result.exit_code == 1
    assert result.stderr == "error: koru sql needs DuckDB: pip install 'koru-lake[duckdb]'\n"


def test_real_subprocess_of_the_module_entry_point(store_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "koru_core.cli",
            "--store",
            str(store_path),
            "--json",
            "put",
            "users",
            "alice",
            '{"age": 31}',
            "--valid-from",
            "2024-01-01T00:00:00Z",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["commit"] == 1
    assert koru.open(store_path).get("users", "alice") == {"age": 31}


def test_sql_without_a_query_reads_statements_until_quit(store_path: Path) -> None:
    pytest.importorskip("duckdb")
    pytest.importorskip("koru_duckdb")
    run_json(store_path, "put", "users", "alice", '{"age": 31}')
    script = (
        "SELECT _key, age FROM users;\nSELECT nope FROM users\n\n.quit\nSELECT 'never run' AS x\n"
    )
    result = CliRunner().invoke(
        main, ["--store", str(store_path), "sql", "--format", "json"], input=script
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"_key": "alice", "age": 31}]
    assert (
        result.stderr.startswith("error: ")
        and result.stderr.count("\n") == 1
        and "nope" in result.stderr
    )


def test_import_without_duckdb_says_how_to_install(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: ``koru import`` reads files with DuckDB; without it, one line names the extra."""
    file = _write(tmp_path / "rows.csv", "csv", ROWS)
    monkeypatch.setitem(sys.modules, "duckdb", None)
    result = run(store_path, "import", "events", str(file), "--key", "id")
    assert result.exit_code == 1
    assert result.stderr == "error: koru import reads files with DuckDB: pip install 'koru-lake[duckdb]'\n"
