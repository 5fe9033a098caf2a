"""``koru_search(ns, query, k, …)`` in SQL answers as ``Store.search`` does, and composes with SQL (issue 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from duckdb_checks import assert_same_table, at

np = pytest.importorskip("numpy")
pytest.importorskip("hnswlib")

import koru_core as koru  # noqa: E402
import koru_duckdb  # noqa: E402
from koru_core.cli import main  # noqa: E402
from koru_core.vector import nearest  # noqa: E402

DIM = 8


def _vectors(rng: np.random.Generator, n: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * DIM).astype(np.float32)), DIM)


@pytest.fixture
def docs(store: koru.Store) -> koru.Store:
    """400 documents at day 0, then 100 of them moved at day 10 and one deleted."""
    rng = np.random.default_rng(7)
    keys = [f"d{i:03d}" for i in range(400)]
    langs = ["en" if i % 3 else "fr" for i in range(400)]
    store.upsert("docs", pa.table({"id": keys, "lang": langs, "embedding": _vectors(rng, 400)}), key="id",
                 valid_from=at(0))
    store.upsert("docs", pa.table({"id": keys[:100], "lang": langs[:100], "embedding": _vectors(rng, 100)}),
                 key="id", valid_from=at(10))
    store.delete("docs", "d150", valid_from=at(10))
    return store


@pytest.fixture
def con(docs: koru.Store) -> Iterator[koru_duckdb.KoruConnection]:
    c = koru_duckdb.connect(docs)
    try:
        yield c
    finally:
        c.close()


QUERY = [0.5, -1.0, 0.25, 0.0, 1.0, 0.3, -0.2, 0.9]


@pytest.mark.parametrize(
    ("kwargs", "sql_args"),
    [
        ({}, ""),
        ({"k": 5, "metric": "l2"}, ", 5, metric := 'l2'"),
        ({"k": 3, "at": at(5)}, ", k := 3, valid := TIMESTAMP '2020-01-06'"),
        ({"k": 4, "version": 1}, ", k := 4, version := 1"),
        ({"k": 6, "where": {"lang": "fr"}, "metric": "ip"}, ", 6, metric := 'ip', where := {'lang': 'fr'}"),
    ],
)
def test_koru_search_equals_store_search(
    con: koru_duckdb.KoruConnection, docs: koru.Store, kwargs: dict, sql_args: str
) -> None:
    got = con.sql(f"SELECT * FROM koru_search('docs', {QUERY}{sql_args})").arrow().read_all()
    want = docs.search("docs", QUERY, **kwargs)
    assert got.num_rows == want.num_rows == kwargs.get("k", 10)
    assert_same_table(got, want)


def test_time_travel_sees_the_vectors_of_then(con: koru_duckdb.KoruConnection, docs: koru.Store) -> None:
    moved = docs.as_of("docs", at=at(10)).filter(pc.field("id") == "d007")
    before = docs.as_of("docs", at=at(5)).filter(pc.field("id") == "d007")
    q_now, q_then = moved["embedding"][0].as_py(), before["embedding"][0].as_py()
    now = con.execute("SELECT _key, _distance FROM koru_search('docs', ?, 1)", [q_now]).fetchall()
    then = con.execute("SELECT _key FROM koru_search('docs', ?, 1, valid := DATE '2020-01-06')", [q_then]).fetchall()
    assert now[0][0] == "d007" and now[0][1] == pytest.approx(0.0, abs=1e-6)
    assert then == [("d007",)]
    # the old vector no longer finds d007 now that it moved
    assert con.execute("SELECT _key FROM koru_search('docs', ?, 1)", [q_then]).fetchall() != [("d007",)]


def test_parameters_inside_and_around_the_call_keep_their_order(con: koru_duckdb.KoruConnection,
                                                                docs: koru.Store) -> None:
    rows = con.execute(
        "SELECT ? AS tag, _key FROM koru_search('docs', ?, k := ?, where := {'lang': ?}) WHERE _key <> ? ORDER BY _distance",
        ["t", QUERY, 4, "en", "nothing"],
    ).fetchall()
    want = docs.search("docs", QUERY, k=4, where={"lang": "en"})["_key"].to_pylist()
    assert rows == [("t", k) for k in want]
    rel = con.sql("SELECT _key FROM koru_search('docs', ?, ?)", params=[QUERY, 2])
    assert [r[0] for r in rel.fetchall()] == docs.search("docs", QUERY, k=2)["_key"].to_pylist()


def test_query_from_a_subquery_with_an_at_clause_and_a_join(con: koru_duckdb.KoruConnection) -> None:
    rows = con.sql(
        """
        SELECT s._key, d.lang
        FROM koru_search('docs', (SELECT embedding FROM docs AT (VERSION => 1) WHERE _key = 'd007'), 1,
                         version := 1) AS s
        JOIN docs AS d USING (_key)
        """
    ).fetchall()
    assert rows == [("d007", "en")]


def test_two_calls_in_one_statement(con: koru_duckdb.KoruConnection) -> None:
    rows = con.sql(
        f"SELECT (SELECT count(*) FROM koru_search('docs', {QUERY}, 3)) + "
        f"(SELECT count(*) FROM koru_search('docs', {QUERY}, 4, version := 1))"
    ).fetchall()
    assert rows == [(7,)]


def test_text_that_only_mentions_koru_search_is_untouched(con: koru_duckdb.KoruConnection) -> None:
    sql = "SELECT 'koru_search(''docs'', [1], 2)' AS s -- koru_search('x', [1])\n"
    assert con.rewrite(sql) == sql
    assert con.sql(sql).fetchall() == [("koru_search('docs', [1], 2)",)]


def test_index_path_through_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact-search threshold the call walks the HNSW index, as Store.search does."""
    monkeypatch.setattr(nearest, "EXACT_BELOW", 100)
    store = koru.open(tmp_path / "s")
    rng = np.random.default_rng(3)
    keys = [f"k{i:04d}" for i in range(2000)]
    store.upsert("v", pa.table({"id": keys, "embedding": _vectors(rng, 2000)}), key="id")
    with koru_duckdb.connect(store) as con:
        got = [r[0] for r in con.execute("SELECT _key FROM koru_search('v', ?, 10)", [QUERY]).fetchall()]
    assert got == store.search("v", QUERY, k=10)["_key"].to_pylist()
    assert (tmp_path / "s" / "vector").is_dir()  # the index was built and persisted
    store.close()


@pytest.mark.parametrize(
    ("sql", "error", "match"),
    [
        ("FROM koru_search('docs', [1.0, 0.0], 2)", koru.InvalidInputError, "query has 2 dims"),
        ("FROM koru_search('nope', [1.0, 0.0], 2)", koru.NamespaceNotFoundError, "'nope'"),
        ("FROM koru_search('docs', [1.0, 0.0], kk := 2)", koru.InvalidInputError, "unknown or repeated argument 'kk'"),
        ("FROM koru_search('docs', [1.0], k := 1, k := 2)", koru.InvalidInputError, "repeated argument 'k'"),
        ("FROM koru_search('docs')", koru.InvalidInputError, "ns and query must be given"),
        (f"FROM koru_search('docs', {QUERY}, where := 3)", koru.InvalidInputError, "where must be a STRUCT"),
        (f"FROM koru_search('docs', {QUERY}, 0)", koru.InvalidInputError, "k"),
        ("FROM koru_search('docs', $1, 2)", koru.InvalidInputError, r"only positional \? parameters"),
    ],
)
def test_bad_calls_raise_koru_errors(con: koru_duckdb.KoruConnection, sql: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        con.sql(sql).fetchall()


def test_koru_sql_runs_koru_search(tmp_path: Path) -> None:
    """The CLI's SQL goes through the same connection, so ``koru sql`` searches too."""
    store = koru.open(tmp_path / "s")
    store.upsert("docs", [{"id": "a", "e": [1.0, 0.0]}, {"id": "b", "e": [0.0, 1.0]}], key="id")
    store.close()
    sql = "SELECT _key FROM koru_search('docs', [0.2, 0.9], 1)"
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s"), "--json", "sql", sql])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"_key": "b"}]
