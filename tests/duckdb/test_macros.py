"""The table macros equal the core's reads; errors name what is wrong; other SQL is DuckDB's own."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from duckdb_checks import assert_same_table, at

import koru_core as koru
import koru_duckdb


@pytest.mark.parametrize(
    ("kwargs", "sql_args"),
    [
        ({}, ""),
        ({"at": at(30)}, ", valid := TIMESTAMP '2020-01-31'"),
        ({"version": 4}, ", version := 4"),
        ({"at": at(75), "version": 7}, ", valid := TIMESTAMPTZ '2020-03-16 00:00:00+00', version := 7"),
    ],
)
def test_koru_at_equals_as_of(con: koru_duckdb.KoruConnection, history: koru.Store, kwargs: dict[str, Any],
                              sql_args: str) -> None:
    for namespace in ("users", "orders"):
        got = con.sql(f"SELECT * FROM koru_at('{namespace}'{sql_args}) ORDER BY _key").to_arrow_table()
        assert_same_table(got, history.as_of(namespace, **kwargs))


@pytest.mark.parametrize("version", [None, 2, 6])
def test_koru_versions_equals_versions(con: koru_duckdb.KoruConnection, history: koru.Store,
                                       version: int | None) -> None:
    for namespace in ("users", "orders"):
        if version is None:  # an explicit NULL bound is refused (issue 12): leave it out
            got = con.sql(f"SELECT * FROM koru_versions('{namespace}')")
        else:
            got = con.sql(f"SELECT * FROM koru_versions('{namespace}', version := ?)", params=[version])
        assert_same_table(got.to_arrow_table(), history.versions(namespace, version=version))


@pytest.mark.parametrize(("namespace", "key"), [("users", "alice"), ("users", "bob"), ("orders", "o2"),
                                                ("users", "nobody")])
def test_koru_history_equals_history(con: koru_duckdb.KoruConnection, history: koru.Store, namespace: str,
                                     key: str) -> None:
    got = con.sql("SELECT * FROM koru_history(?, ?)", params=[namespace, key]).to_arrow_table()
    assert_same_table(got, history.history(namespace, key))


@pytest.mark.parametrize(
    ("since", "until"),
    [(None, None), (0, 3), (3, None), (5, 8), (at(5), at(100)), (None, at(50)), (at(10), None)],
)
def test_koru_changes_equals_changes(con: koru_duckdb.KoruConnection, history: koru.Store,
                                     since: Any, until: Any) -> None:
    for namespace in ("users", "orders"):
        want = history.changes(namespace, since=since, until=until)
        got = con.sql("SELECT * FROM koru_changes(?, ?, ?)", params=[namespace, since, until]).to_arrow_table()
        assert_same_table(got, want)
    positional = con.sql("SELECT * FROM koru_changes('users', since := 2)").to_arrow_table()
    assert_same_table(positional, history.changes("users", since=2))


def test_koru_commits_equals_commits(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    rows = con.sql("SELECT * FROM koru_commits()").fetchall()
    want = [(c.commit, c.system_time, c.actor, c.run_id, list(c.namespaces), c.written, c.unchanged, c.deleted,
             c.metadata, c.hash) for c in history.commits()]
    assert rows == want
    assert len(rows) == 10


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM koru_at('nope')",
        "SELECT * FROM koru_versions('nope')",
        "SELECT * FROM koru_history('nope', 'k')",
        "SELECT * FROM koru_changes('nope', 1, 2)",
    ],
)
def test_unknown_namespace_in_macro_is_named(con: koru_duckdb.KoruConnection, sql: str) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="namespace 'nope' does not exist"):
        con.sql(sql).fetchall()


def test_unknown_namespace_with_at_clause_is_named(con: koru_duckdb.KoruConnection) -> None:
    with pytest.raises(koru.NamespaceNotFoundError, match="namespace 'nope' does not exist"):
        con.sql("SELECT * FROM nope AT (TIMESTAMP => now())")


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT * FROM users AT (VERSION => 99)", None, "version must be a commit number in 1..10, got 99"),
        ("SELECT * FROM users AT (VERSION => ?)", [0], "version must be a commit number in 1..10, got 0"),
        ("SELECT * FROM koru_changes('users', 1, DATE '2020-01-01')", None, "both be commit numbers or both times"),
    ],
)
def test_bad_bounds_are_refused(con: koru_duckdb.KoruConnection, sql: str, params: list[Any] | None,
                                message: str) -> None:
    with pytest.raises(duckdb.InvalidInputException, match=message):
        con.sql(sql, params=params).fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 42 AS x, 'AT (' AS y",
        "SELECT * FROM missing_table",
        "SELEC 1",
        "SELECT * FROM plain AT (VERSION => 1)",  # DuckDB's own "does not support time travel"
        "SELECT * FROM plain WHERE a > 1",
    ],
)
def test_other_sql_goes_to_duckdb_unchanged(con: koru_duckdb.KoruConnection, sql: str) -> None:
    plain = duckdb.connect()
    for c in (plain, con):
        c.execute("CREATE TABLE plain AS SELECT * FROM range(3) AS t(a)")
    try:
        want: Any = plain.sql(sql).fetchall()
    except duckdb.Error as e:
        want = (type(e), str(e))
    try:
        got: Any = con.sql(sql).fetchall()
    except duckdb.Error as e:
        got = (type(e), str(e))
    assert got == want


def test_commits_after_connect_show_in_next_query(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    assert con.sql("SELECT count(*) FROM users").fetchall() == [(2,)]
    history.put("users", "dan", {"name": "Dan", "age": 3})
    history.put("pets", "rex", {"kind": "dog"})  # a namespace born after connect
    assert con.sql("SELECT count(*) FROM users").fetchall() == [(3,)]
    assert con.sql("SELECT _key, kind FROM pets").fetchall() == [("rex", "dog")]
    assert con.sql("SELECT max(commit) FROM koru_commits()").fetchall() == [(12,)]
    history.flush()  # files change, no new commit
    assert_same_table(con.sql("SELECT * FROM users ORDER BY _key").to_arrow_table(), history.as_of("users"))
    assert_same_table(con.table("users").order("_key").to_arrow_table(), history.as_of("users"))


def test_relations_and_results_pass_through(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    rel = con.sql("SELECT _key, age FROM users AT (VERSION => 6)")
    assert sorted(rel.pl().rows()) == [("alice", 33), ("bob", 25)]
    assert rel.filter("age > 30").fetchall() == [("alice", 33)]
    con.register("extra", pa.table({"_key": ["alice"], "team": ["red"]}))
    joined = con.sql("SELECT u._key, e.team FROM users u JOIN extra e USING (_key)").fetchall()
    assert joined == [("alice", "red")]
    cursor = con.cursor()
    assert cursor.execute("SELECT count(*) FROM orders AT (VERSION => ?)", [5]).fetchall() == [(2,)]


def test_connect_by_path_and_read_only_database(history: koru.Store, tmp_path: Path) -> None:
    db = tmp_path / "mine.duckdb"
    duckdb.connect(str(db)).execute("CREATE TABLE t AS SELECT 1 AS a").close()
    with koru_duckdb.connect(history.path, database=str(db)) as con:
        assert con.sql("SELECT count(*) FROM users AT (VERSION => 3), t").fetchall() == [(2,)]
    tables = duckdb.connect(str(db), read_only=True).sql("SELECT table_name FROM duckdb_tables()").fetchall()
    assert tables == [("t",)]  # koru's objects are TEMP: nothing written to the database


def test_odd_column_names_and_widened_types(store: koru.Store) -> None:
    store.upsert("odd", pa.table({"id": ["a", "b"], 'say "hi"': pa.array([1, 2], pa.int16()),
                                  "first name": ["x", "y"]}), key="id", valid_from=at(0))
    store.flush()
    store.upsert("odd", [{"id": "a", 'say "hi"': 2**33, "last.name": "z"}], key="id", valid_from=at(1))
    store.flush()
    with koru_duckdb.connect(store) as con:
        for sql, kwargs in [("SELECT * FROM odd", {}), ("SELECT * FROM odd AT (TIMESTAMP => DATE '2020-01-01')",
                                                         {"at": at(0)})]:
            got = con.sql(sql + " ORDER BY _key").to_arrow_table()
            assert_same_table(got, store.as_of("odd", **kwargs))


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_export(con: koru_duckdb.KoruConnection, history: koru.Store, tmp_path: Path, fmt: str) -> None:
    """``export`` is the one writer of ``koru sql --format`` (issue 13): DuckDB's COPY for CSV and Parquet."""
    out = tmp_path / f"out.{fmt}"
    koru_duckdb.export(con.sql("SELECT _key, name, age FROM users ORDER BY _key"), format=fmt, output=out)
    text = out.read_text() if fmt != "parquet" else ""
    rows = [{"_key": "alice", "name": "Alice", "age": 33}, {"_key": "carol", "name": "Carol", "age": 7}]
    if fmt == "csv":
        assert text.splitlines() == ["_key,name,age", "alice,Alice,33", "carol,Carol,7"]
    elif fmt == "json":
        assert json.loads(text) == rows
    elif fmt == "jsonl":
        assert [json.loads(line) for line in text.splitlines()] == rows
    else:
        assert pq.read_table(out).to_pylist() == rows
    with pytest.raises(ValueError, match="format must be one of"):
        koru_duckdb.export(con.sql("SELECT 1"), format="xml")  # type: ignore[arg-type]


def test_export_of_nested_columns_and_nan(con: koru_duckdb.KoruConnection, tmp_path: Path) -> None:
    """Issue 13: list and struct columns broke the CSV writer, and JSON could hold NaN."""
    query = "SELECT [1, 2] AS l, {'x': 'nan'::DOUBLE, 'y': [1.5, 'inf'::DOUBLE]} AS s, 'nan'::FLOAT AS f"
    for fmt in ("csv", "json", "parquet"):
        koru_duckdb.export(con.sql(query), format=fmt, output=tmp_path / f"n.{fmt}")
    assert (tmp_path / "n.csv").read_text().splitlines()[1].startswith('"[1, 2]",')
    assert json.loads((tmp_path / "n.json").read_text()) == [{"l": [1, 2], "s": {"x": None, "y": [1.5, None]},
                                                              "f": None}]
    assert pq.read_table(tmp_path / "n.parquet").column("l").to_pylist() == [[1, 2]]
    koru_duckdb.export(con.sql("SELECT 1 AS a WHERE false"), format="json", output=tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text()) == []


def test_naive_timestamp_parameter_is_utc(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    naive = con.sql("SELECT _key, age FROM users AT (TIMESTAMP => ?) ORDER BY 1",
                    params=[datetime(2020, 3, 16)]).fetchall()  # noqa: DTZ001 - the point of the test
    aware = history.as_of("users", at=datetime(2020, 3, 16, tzinfo=timezone.utc))
    assert naive == list(zip(aware["_key"].to_pylist(), aware["age"].to_pylist()))


def test_macro_texts_spell_the_names_python_uses() -> None:
    from koru_duckdb import macros

    for text in macros.MACROS:  # every macro runs the SQL the store's read planner made
        assert text.strip().startswith("CREATE OR REPLACE TEMP MACRO")
        assert "FROM query(__koru_" in text and "_sql(" in text


def test_as_of_over_cold_files_written_before_and_after_a_field_was_added(tmp_path: Path) -> None:
    """Cold files of one namespace can store older schemas (a field added later): DuckDB
    reads them by name, the missing field NULL, beside files that store every column
    (read as they are). The answers match by hand."""
    from koru_core.lifecycle.consolidate import HISTORY_SMALL_ROWS

    n = HISTORY_SMALL_ROWS + 8  # a history file this big is never folded into a later one
    store = koru.open(tmp_path / "s", auto_consolidate=False)
    ids = pa.array([f"k{i:06d}" for i in range(n)])
    store.upsert("t", pa.table({"id": ids, "n": pa.array(range(n))}), key="id", valid_from=at(0))
    store.consolidate()
    store.upsert("t", pa.table({"id": ids, "n": pa.array(range(n, 2 * n))}), key="id", valid_from=at(1))
    store.consolidate()  # the first versions go to a history file without the field "note"
    store.upsert("t", [{"id": "k000001", "n": -1, "note": "x"}], key="id", valid_from=at(2))
    store.consolidate()  # k000001's second version goes to a history file with it
    plan = store.plan("t", at=at(0))
    assert [s.full_schema for s in plan.exact if s.kind == "history"].count(False) == 1
    assert all(s.full_schema for s in store.plan("t", at=at(1)).exact)
    expected = {0: (1, None, 3), 1: (n + 1, None, n + 3), 2: (-1, "x", n + 3)}  # k000001's n, note; k000003's n
    with koru_duckdb.connect(store) as con:
        for day, (n1, note, n3) in expected.items():
            when = at(day).strftime("%Y-%m-%d %H:%M:%S")
            src = f"t AT (TIMESTAMP => TIMESTAMPTZ '{when}+00')"
            rows = con.sql(f"SELECT _key, n, note FROM {src} WHERE _key IN ('k000001', 'k000003') ORDER BY _key")
            assert rows.fetchall() == [("k000001", n1, note), ("k000003", n3, None)]
            assert con.sql(f"SELECT count(*), count(note) FROM {src}").fetchall() == [(n, 0 if note is None else 1)]
    store.close()
