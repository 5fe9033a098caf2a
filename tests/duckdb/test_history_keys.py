"""``koru_history(ns, key)`` takes the key as written (issue 11): a VARCHAR ``_key``, an
integer, a STRUCT naming the key columns, a LIST or an unnamed ROW of the parts."""

from __future__ import annotations

import duckdb
import pytest

import koru_core as koru
import koru_duckdb


@pytest.fixture
def con(tmp_path) -> duckdb.DuckDBPyConnection:
    s = koru.open(tmp_path / "s")
    s.upsert("people", [{"loc": 4, "sex": "F", "age": "0-4", "pop": 10}], key=["loc", "sex", "age"])
    s.upsert("people", [{"loc": 4, "sex": "F", "age": "0-4", "pop": 11}], key=["loc", "sex", "age"])
    s.upsert("ids", [{"id": 7, "x": 1}], key="id")
    c = duckdb.connect()
    koru_duckdb.install(c, s)
    return c


@pytest.mark.parametrize("key", [
    "{'loc': 4, 'sex': 'F', 'age': '0-4'}",
    "{'age': '0-4', 'sex': 'F', 'loc': 4}",
    "['4', 'F', '0-4']",
    "row(4, 'F', '0-4')",
    "'4|F|0-4'",
])
def test_a_composite_key_in_any_form(con: duckdb.DuckDBPyConnection, key: str) -> None:
    rows = con.sql(f"SELECT pop, _key, _commit FROM koru_history('people', {key}) ORDER BY _commit").fetchall()
    assert rows == [(10, "4|F|0-4", 1), (11, "4|F|0-4", 2)]


def test_an_int_key(con: duckdb.DuckDBPyConnection) -> None:
    assert con.sql("SELECT x FROM koru_history('ids', 7)").fetchall() == [(1,)]
    assert con.sql("SELECT x FROM koru_history('ids', '7')").fetchall() == [(1,)]


@pytest.mark.parametrize(("key", "message"), [
    ("['4', 'F']", r"3 column\(s\) \['loc', 'sex', 'age'\]"),
    ("{'loc': 4, 'sex': 'F'}", r"exactly the key columns \['loc', 'sex', 'age'\]"),
    ("NULL", "needs a key"),
    ("4.5", "key"),
])
def test_a_key_of_the_wrong_shape_is_refused(con: duckdb.DuckDBPyConnection, key: str, message: str) -> None:
    with pytest.raises(duckdb.InvalidInputException, match=message):
        con.sql(f"SELECT * FROM koru_history('people', {key})").fetchall()
