"""``FROM ns AT (TIMESTAMP => …)`` / ``AT (VERSION => …)`` through ``koru_duckdb.connect``, case by case.

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
