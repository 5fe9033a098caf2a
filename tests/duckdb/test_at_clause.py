"""Time-travel clauses through ``koru_duckdb.connect``, case by case (issues 3 and 13).

``AT (TIMESTAMP => …)``, ``AT TIMESTAMP …`` and ``FOR VALID_TIME AS OF …`` (valid time),
``AT (VERSION => …)`` and ``AT VERSION …`` (commit), ``FOR SYSTEM_TIME AS OF …`` (system
time: the last commit at or before it), and their combinations after one namespace.

Each case is a query on koru namespaces and the same query on plain DuckDB
tables holding ``store.as_of(...)`` as the core computes it; both must give the
same rows and columns (issue 3). The history (tests/duckdb/conftest.py) has late
arrivals, a correction at the same valid time, deletes and schema growth, so a
wrong as-of rule shows in the results.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pytest
from duckdb_checks import assert_same_table, at

import koru_core as koru
import koru_duckdb
from koru_duckdb._rewrite import rewrite

T1 = "TIMESTAMP '2020-01-31'"  # = at(30): alice 31, bob corrected to Robert, orders o1 (qty 1), o2
T2 = "TIMESTAMPTZ '2020-03-16 00:00:00+00'"  # = at(75): alice 32 (late arrival), orders o1 (qty 2**40), o3

COMMIT_6_TIME = 'SELECT system_time FROM koru_commits() WHERE "commit" = 6'
"""System time of commit 6 (``FOR SYSTEM_TIME AS OF`` it is the state as of commit 6)."""

REFERENCES: dict[str, tuple[str, dict[str, Any]]] = {
    "users_now": ("users", {}),
    "users_t1": ("users", {"at": at(30)}),
    "users_t2": ("users", {"at": at(75)}),
    "users_v3": ("users", {"version": 3}),
    "users_v6": ("users", {"version": 6}),
    "users_t1_v6": ("users", {"at": at(30), "version": 6}),
    "orders_t1": ("orders", {"at": at(30)}),
    "orders_v5": ("orders", {"version": 5}),
}
"""Registered name in the reference connection → ``store.as_of`` arguments."""

CASES = [
    ("plain name is the current state", "SELECT * FROM users", "SELECT * FROM users_now", None),
    ("timestamp literal (naive is UTC)", f"SELECT * FROM users AT (TIMESTAMP => {T1})", "SELECT * FROM users_t1", None),
    ("timestamptz in another zone", "SELECT * FROM users AT (TIMESTAMP => TIMESTAMPTZ '2020-01-31 05:30:00+05:30')",
     "SELECT * FROM users_t1", None),
    ("date", "SELECT * FROM users AT (TIMESTAMP => DATE '2020-01-31')", "SELECT * FROM users_t1", None),
    ("late arrival", f"SELECT * FROM users AT (TIMESTAMP => {T2})", "SELECT * FROM users_t2", None),
    ("version", "SELECT * FROM users AT (VERSION => 3)", "SELECT * FROM users_v3", None),
    ("lower-case keywords, upper-case name", "select * from USERS at (version => 6)", "SELECT * FROM users_v6", None),
    ("quoted identifiers and alias", 'SELECT "U"."name", "U"._key FROM "users" AS "U" AT (VERSION => 3)',
     'SELECT "U"."name", "U"._key FROM users_v3 AS "U"', None),
    ("alias without AS", f"SELECT u.name, u.age FROM users u AT (TIMESTAMP => {T2})",
     "SELECT u.name, u.age FROM users_t2 u", None),
    ("comments", "SELECT * /* FROM users AT (VERSION => 1) */ FROM users -- AT (VERSION => 2)\n AT /* ( */ (VERSION => 3)",
     "SELECT * FROM users_v3", None),
    ("string literals containing AT (", "SELECT 'users AT (VERSION => 1)' AS s, $$AT ($$ AS t, name FROM users AT (VERSION => 3)",
     "SELECT 'users AT (VERSION => 1)' AS s, $$AT ($$ AS t, name FROM users_v3", None),
    ("CTE", f"WITH early AS (SELECT * FROM users AT (TIMESTAMP => {T1})) "
     "SELECT e.name, n.name AS now_name FROM early e JOIN users n USING (_key)",
     "WITH early AS (SELECT * FROM users_t1) SELECT e.name, n.name AS now_name FROM early e JOIN users_now n USING (_key)",
     None),
    ("CTE named like a namespace", "WITH users AS (SELECT * FROM orders AT (VERSION => 5)) SELECT * FROM users",
     "WITH users AS (SELECT * FROM orders_v5) SELECT * FROM users", None),
    ("subquery", f"SELECT name FROM users WHERE _key IN (SELECT user_id FROM orders AT (TIMESTAMP => {T1}))",
     "SELECT name FROM users_now WHERE _key IN (SELECT user_id FROM orders_t1)", None),
    ("derived table", "SELECT count(*) AS n, max(age) AS oldest FROM (SELECT * FROM users AT (VERSION => 6)) AS s",
     "SELECT count(*) AS n, max(age) AS oldest FROM (SELECT * FROM users_v6) AS s", None),
    ("two namespaces joined at one instant",
     f"SELECT o._key, o.qty, u.name FROM orders AT (TIMESTAMP => {T1}) o JOIN users AT (TIMESTAMP => {T1}) u "
     "ON o.user_id = u._key",
     "SELECT o._key, o.qty, u.name FROM orders_t1 o JOIN users_t1 u ON o.user_id = u._key", None),
    ("one namespace at two instants",
     f"SELECT _key, a.age AS before, b.age AS after FROM users AT (TIMESTAMP => {T1}) a "
     f"FULL JOIN users AT (TIMESTAMP => {T2}) b USING (_key)",
     "SELECT _key, a.age AS before, b.age AS after FROM users_t1 a FULL JOIN users_t2 b USING (_key)", None),
    ("value filter applies after the latest version is chosen",
     f"SELECT _key FROM users AT (TIMESTAMP => {T2}) WHERE age < 32", "SELECT _key FROM users_t2 WHERE age < 32", None),
    ("prepared parameters", "SELECT * FROM users AT (TIMESTAMP => ?) WHERE age > ?",
     "SELECT * FROM users_t1 WHERE CAST(? AS TIMESTAMPTZ) IS NOT NULL AND age > ?", [at(30), 0]),
    ("numbered parameters", "SELECT * FROM users AT (VERSION => $1) WHERE age > $2",
     "SELECT * FROM users_v3 WHERE age > $2 AND $1 = $1", [3, 0]),
    ("now() - INTERVAL", "SELECT * FROM users AT (TIMESTAMP => now() - INTERVAL 7 DAY)",
     "SELECT * FROM users_week_ago", None),
    ("koru_at with both bounds", f"SELECT * FROM koru_at('users', valid := {T1}, version := 6)",
     "SELECT * FROM users_t1_v6", None),
    # issue 13: the shorthand, SQL:2011's FOR … AS OF, system time, and combinations
    ("AT TIMESTAMP shorthand", f"SELECT * FROM users AT TIMESTAMP {T1}", "SELECT * FROM users_t1", None),
    ("AT TIMESTAMP with a string", "SELECT * FROM users AT TIMESTAMP '2020-01-31'", "SELECT * FROM users_t1", None),
    ("AT VERSION shorthand", "SELECT * FROM users AT VERSION 3 WHERE age > 0", "SELECT * FROM users_v3 WHERE age > 0",
     None),
    ("FOR VALID_TIME AS OF", f"SELECT * FROM users FOR VALID_TIME AS OF {T1}", "SELECT * FROM users_t1", None),
    ("FOR SYSTEM_TIME AS OF a commit's time (a subquery)",
     f"SELECT * FROM users FOR SYSTEM_TIME AS OF ({COMMIT_6_TIME})", "SELECT * FROM users_v6", None),
    ("FOR SYSTEM_TIME AS OF between two commits",
     "SELECT * FROM users FOR SYSTEM_TIME AS OF (SELECT system_time FROM koru_commits() WHERE \"commit\" = 7)"
     " - INTERVAL 1 MICROSECOND", "SELECT * FROM users_v6", None),
    ("FOR SYSTEM_TIME and FOR VALID_TIME", f"SELECT * FROM users FOR SYSTEM_TIME AS OF ({COMMIT_6_TIME}) "
     f"FOR VALID_TIME AS OF {T1}", "SELECT * FROM users_t1_v6", None),
    ("FOR VALID_TIME and FOR SYSTEM_TIME, lower case, alias before and after",
     f"select u.name from users u for valid_time as of {T1} for system_time as of ({COMMIT_6_TIME}) "
     "where u.age > 0", "SELECT u.name FROM users_t1_v6 u WHERE u.age > 0", None),
    ("alias after the clauses", f"SELECT u.name FROM users FOR VALID_TIME AS OF {T1} AS u",
     "SELECT u.name FROM users_t1 AS u", None),
    ("AT (TIMESTAMP) and FOR SYSTEM_TIME", f"SELECT * FROM users AT (TIMESTAMP => {T1}) "
     f"FOR SYSTEM_TIME AS OF ({COMMIT_6_TIME})", "SELECT * FROM users_t1_v6", None),
    ("AT VERSION and AT TIMESTAMP", f"SELECT * FROM users AT VERSION 6 AT TIMESTAMP {T1}",
     "SELECT * FROM users_t1_v6", None),
    ("FOR clauses on both sides of a join",
     f"SELECT o._key, o.qty, u.name FROM orders FOR VALID_TIME AS OF {T1} AS o "
     f"JOIN users u FOR VALID_TIME AS OF {T1} ON o.user_id = u._key",
     "SELECT o._key, o.qty, u.name FROM orders_t1 o JOIN users_t1 u ON o.user_id = u._key", None),
    ("FOR SYSTEM_TIME in a subquery of AT VERSION",
     f"SELECT * FROM users AT VERSION (SELECT max(_commit) FROM users FOR SYSTEM_TIME AS OF ({COMMIT_6_TIME}))",
     "SELECT * FROM users_v6", None),
]


@pytest.fixture
def reference(history: koru.Store) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection holding the core's as-of tables."""
    ref = duckdb.connect()
    ref.execute("SET TimeZone = 'UTC'")  # as koru_duckdb.connect does: results say UTC, as the core's
    for name, (namespace, kwargs) in REFERENCES.items():
        ref.register(name, history.as_of(namespace, **kwargs))
    week_ago = datetime.now(timezone.utc) - timedelta(days=7)
    ref.register("users_week_ago", history.as_of("users", at=week_ago))
    return ref


@pytest.mark.parametrize(("sql", "reference_sql", "params"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_at_clause_matches_core(
    con: koru_duckdb.KoruConnection, reference: duckdb.DuckDBPyConnection,
    sql: str, reference_sql: str, params: list[Any] | None,
) -> None:
    got = con.sql(f"SELECT * FROM ({sql}) ORDER BY ALL", params=params).to_arrow_table()
    want = reference.sql(f"SELECT * FROM ({reference_sql}) ORDER BY ALL", params=params).to_arrow_table()
    assert want.num_rows > 0
    assert_same_table(got, want)


def test_as_of_columns_equal_store_as_of(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    """``SELECT *`` gives exactly ``as_of``'s columns, types and rows (ordered by ``_key`` here)."""
    got = con.sql(f"SELECT * FROM orders AT (TIMESTAMP => {T2}) ORDER BY _key").to_arrow_table()
    assert_same_table(got, history.as_of("orders", at=at(75)))


def test_future_valid_time_is_not_current(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    history.put("users", "dave", {"name": "Dave", "age": 1}, valid_from=datetime(2099, 1, 1, tzinfo=timezone.utc))
    assert con.sql("SELECT count(*) FROM users WHERE _key = 'dave'").fetchall() == [(0,)]
    dave = con.sql("SELECT name FROM users AT (TIMESTAMP => DATE '2099-01-02') WHERE _key = 'dave'")
    assert dave.fetchall() == [("Dave",)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "SELECT * FROM users WHERE name = 'AT (VERSION => 1)'",
        "SELECT now() AT TIME ZONE 'UTC'",
        "SELECT * FROM lake.events AT (VERSION => 1)",
        "not even SQL AT (",
    ],
)
def test_rewrite_leaves_other_sql_untouched(sql: str) -> None:
    assert rewrite(sql, ["users"]) == (sql, ())


def test_rewrite_edits_only_the_clause() -> None:
    sql = "SELECT  x  -- keep\nFROM users AS u AT (TIMESTAMP => ?) WHERE u.x = 'AT ('"
    rewritten, others = rewrite(sql, ["users"])
    assert rewritten == "SELECT  x  -- keep\nFROM koru_at('users', valid := (?)) AS u  WHERE u.x = 'AT ('"
    assert others == ()


def test_at_on_unknown_table_names_it(con: koru_duckdb.KoruConnection) -> None:
    with pytest.raises(koru.NamespaceNotFoundError, match="'usres'"):
        con.sql("SELECT * FROM usres AT (VERSION => 1)")


def test_system_time_before_the_first_commit_is_an_empty_state(
    con: koru_duckdb.KoruConnection, history: koru.Store
) -> None:
    """issue 13: ``commit_at`` of a time before the first commit is 0, which ``as_of`` refuses;
    in SQL it is the empty state, with the namespace's columns. Valid time 2020-01-31 is
    not system time 2020-01-31: the store was written years later."""
    assert history.commit_at(datetime(2020, 1, 31, tzinfo=timezone.utc)) == 0
    for sql in ("SELECT * FROM users FOR SYSTEM_TIME AS OF TIMESTAMP '2020-01-31'",
                "SELECT * FROM koru_at('users', system := DATE '2020-01-31')"):
        empty = con.sql(sql).to_arrow_table()
        assert empty.num_rows == 0
        assert empty.column_names == history.as_of("users").column_names
    valid = con.sql("SELECT * FROM users FOR VALID_TIME AS OF TIMESTAMP '2020-01-31'").to_arrow_table()
    assert_same_table(valid, history.as_of("users", at=at(30)))


def test_system_time_as_a_parameter(con: koru_duckdb.KoruConnection, history: koru.Store) -> None:
    commits = history.commits()
    for c in (commits[0], commits[5], commits[-1]):
        got = con.sql("SELECT * FROM users FOR SYSTEM_TIME AS OF ?", params=[c.system_time]).to_arrow_table()
        assert_same_table(got, history.as_of("users", version=c.commit))
        both = con.sql("SELECT * FROM users FOR VALID_TIME AS OF ? FOR SYSTEM_TIME AS OF ?",
                       params=[at(30), c.system_time]).to_arrow_table()
        assert_same_table(both, history.as_of("users", at=at(30), version=c.commit))


@pytest.mark.parametrize(
    ("clauses", "message"),
    [
        ("AT VERSION 3 AT (VERSION => 4)", "a VERSION clause after a VERSION clause"),
        (f"AT TIMESTAMP {T1} FOR VALID_TIME AS OF {T2}", "a valid-time clause after a valid-time clause"),
        ("AT VERSION 3 FOR SYSTEM_TIME AS OF now()", "a SYSTEM_TIME clause after a VERSION clause"),
        ("FOR SYSTEM_TIME AS OF now() AT (VERSION => 3)", "a VERSION clause after a SYSTEM_TIME clause"),
    ],
)
def test_a_bound_given_twice_is_refused(con: koru_duckdb.KoruConnection, clauses: str, message: str) -> None:
    with pytest.raises(koru.InvalidInputError, match=f"namespace 'users': {message}"):
        con.sql(f"SELECT * FROM users {clauses}")


def test_explain_and_unknown_names_with_for_system_time(con: koru_duckdb.KoruConnection) -> None:
    plan = con.sql("EXPLAIN SELECT * FROM users FOR SYSTEM_TIME AS OF now() AT TIMESTAMP DATE '2020-02-01'").fetchall()
    assert "PARQUET" in str(plan).upper()
    with pytest.raises(koru.NamespaceNotFoundError, match="'usres'"):
        con.sql("SELECT * FROM usres FOR SYSTEM_TIME AS OF now()")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'FROM users FOR SYSTEM_TIME AS OF now()' AS s",
        "SELECT * FROM lake.events FOR SYSTEM_TIME AS OF now()",
        'SELECT * FROM "FOR" AS t',
        "PIVOT users ON name USING sum(age)",
        "SELECT * FROM (VALUES (1)) AS t(x) WHERE x = 1",
    ],
)
def test_rewrite_leaves_sql_without_koru_clauses_untouched(sql: str) -> None:
    assert rewrite(sql, ["users"]) == (sql, ())


def test_rewrite_of_the_new_forms_edits_only_the_clauses() -> None:
    sql = ("SELECT x FROM users -- c\n FOR SYSTEM_TIME AS OF ? /* keep? no: inside */ AT TIMESTAMP now() "
           "AS u, orders AT VERSION 2 WHERE u.x = 'FOR VALID_TIME AS OF'")
    rewritten, others = rewrite(sql, ["users", "orders"])
    assert rewritten == (
        "SELECT x FROM koru_at('users', system := (?), valid := (now())) -- c\n  AS u, "
        "koru_at('orders', version := (2)) AS \"orders\"  WHERE u.x = 'FOR VALID_TIME AS OF'"
    )
    assert others == ()


def test_a_repeated_statement_sees_each_new_commit(tmp_path: Any) -> None:
    """The rewrite of a statement and the SQL of its last ``koru_at`` call are reused
    (DuckDB binds a relation twice), yet a commit in between, a backfill at the same valid
    time, changes the next answer; a clause holding a subquery is evaluated each time."""
    store = koru.open(str(tmp_path / "s"))
    store.put("users", "alice", {"age": 31}, valid_from=at(0))
    con = koru_duckdb.connect(store)
    con.execute("CREATE TABLE pick (v BIGINT)")
    con.execute("INSERT INTO pick VALUES (1)")
    query = f"SELECT age FROM users AT (TIMESTAMP => TIMESTAMPTZ '{at(50).isoformat()}')"
    by_version = "SELECT age FROM users AT (VERSION => (SELECT max(v) FROM pick))"
    assert con.sql(query).fetchall() == [(31,)]
    assert con.sql(by_version).fetchall() == [(31,)]
    store.put("users", "alice", {"age": 32}, valid_from=at(10))  # a backfill: holds at 50
    assert con.sql(query).fetchall() == [(32,)]
    assert con.sql(query).fetchall() == [(32,)]
    assert con.sql(by_version).fetchall() == [(31,)]
    con.execute("UPDATE pick SET v = 2")
    assert con.sql(by_version).fetchall() == [(32,)]
    con.close()
    store.close()
