"""Pruned points, bounds in every engine, empty values, nested transactions and the
small ones of issue 12 (items 5–8): each a typed error with a clear message, or an
answer every reader gives alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

import koru_core as koru


def three_engines():  # type: ignore[no-untyped-def]
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    import koru_duckdb
    import koru_polars

    return duckdb, pl, koru_duckdb, koru_polars


# -- item 5: pruned points -----------------------------------------------------------------------


def test_a_pruned_point_raises_in_every_engine(tmp_path: Path) -> None:
    """Issue 12 item 5: after distillation, ``as_of(version=c)`` at a point whose versions
    were pruned returned fewer keys, or none, with no sign. Now the core, DuckDB and
    Polars raise PrunedError naming the retention; later points still answer."""
    duckdb, pl, koru_duckdb, koru_polars = three_engines()
    store = koru.open(tmp_path / "s")
    for i in range(4):
        store.put("users", "alice", {"age": 30 + i})
        store.put("users", "bob", {"age": 50 + i})
    old = 2  # alice 30, bob 50: both pruned by KeepLast(1)
    store.distill(koru.KeepLast(1))
    with pytest.raises(koru.PrunedError, match="KeepLast") as e:
        store.as_of("users", version=old)
    assert isinstance(e.value, LookupError) and "'users'" in str(e.value)
    with pytest.raises(koru.PrunedError):
        store.get("users", "alice", version=old)
    with pytest.raises(koru.PrunedError):
        koru_polars.scan_koru(store, "users", version=old)
    con = koru_duckdb.connect(store)
    with pytest.raises(duckdb.Error, match="PrunedError"):
        con.sql(f"SELECT * FROM koru_at('users', version := {old})").fetchall()
    with pytest.raises(duckdb.Error, match="PrunedError"):
        con.sql(f"SELECT * FROM users AT (VERSION => {old})").fetchall()
    head = store.version()
    assert store.as_of("users", version=head).num_rows == 2
    assert con.sql("SELECT count(*) FROM users").fetchall() == [(2,)]
    assert koru_polars.scan_koru(store, "users", version=head).select(pl.len()).collect().item() == 2
    hist = store.history("users", "alice")
    assert hist["_pruned"].to_pylist() == [True, True, True, False]
    con.close()
    store.close()


# -- item 6: bounds, validated once for every engine ---------------------------------------------


def test_bounds_are_refused_alike_by_the_core_duckdb_and_polars(store: koru.Store) -> None:
    """Issue 12 item 6: ``koru_at(version := 1.5)`` read version 1, ``koru_changes('users',
    'not a time')`` returned 0 rows, ``AT (TIMESTAMP => NULL)`` meant now. Now each raises."""
    duckdb, pl, koru_duckdb, koru_polars = three_engines()
    store.put("users", "alice", {"age": 31})
    store.put("users", "alice", {"age": 32})
    for bad in (1.5, True, 0, 3, "1"):
        with pytest.raises(koru.InvalidInputError, match="version must be a commit number"):
            store.as_of("users", version=bad)  # type: ignore[arg-type]
        with pytest.raises(koru.InvalidInputError):
            koru_polars.scan_koru(store, "users", version=bad)  # type: ignore[arg-type]
    with pytest.raises(koru.InvalidInputError, match="since/until"):
        store.changes("users", since="not a time")  # type: ignore[arg-type]
    with pytest.raises(koru.InvalidInputError, match="naive|zone"):
        store.as_of("users", at=datetime(2024, 1, 1))
    con = koru_duckdb.connect(store)
    for sql in (
        "SELECT * FROM koru_at('users', version := 1.5)",
        "SELECT * FROM koru_at('users', version := 0)",
        "SELECT * FROM koru_at('users', version := 99)",
        "SELECT * FROM koru_changes('users', 'not a time')",
        "SELECT * FROM koru_changes('users', 2, 1)",
        "SELECT * FROM users AT (TIMESTAMP => NULL)",
        "SELECT * FROM users AT (VERSION => NULL)",
        "SELECT * FROM users AT (VERSION => 1.5)",
    ):
        with pytest.raises(duckdb.Error, match="InvalidInputError") as e:
            con.sql(sql).fetchall()
        assert "users" in str(e.value), sql
    assert con.sql("SELECT age FROM users AT (VERSION => 1)").fetchall() == [(31,)]
    con.close()


# -- item 7: a value with no fields ---------------------------------------------------------------


def test_a_value_with_no_fields_reads_in_every_engine(tmp_path: Path) -> None:
    """Issue 12 item 7: ``put(ns, key, {})`` was accepted, then broke every SQL query on
    the store (``an empty set of columns``) and ``verify()``. It is stored as a record with
    no fields and every reader handles it, before and after consolidation."""
    duckdb, pl, koru_duckdb, koru_polars = three_engines()
    store = koru.open(tmp_path / "s")
    store.put("tags", "red", {})
    store.put("tags", "blue", {})
    store.put("mixed", "a", {})
    store.put("mixed", "b", {"n": 1})
    for _ in range(2):
        assert store.get("tags", "red") == {}
        assert store.keys("tags") == ["blue", "red"]
        assert store.as_of("tags").column_names[0] == "_key"
        assert store.get("mixed", "a") == {"n": None} and store.get("mixed", "b") == {"n": 1}
        assert store.history("tags", "red").num_rows == 1
        assert store.changes("tags")["op"].to_pylist() == ["insert", "insert"]
        con = koru_duckdb.connect(store)
        assert sorted(con.sql("SELECT _key FROM tags").fetchall()) == [("blue",), ("red",)]
        assert con.sql("SELECT count(*) FROM koru_versions('tags')").fetchall() == [(2,)]
        assert sorted(con.sql("SELECT _key, n FROM mixed").fetchall()) == [("a", None), ("b", 1)]
        con.close()
        assert koru_polars.scan_koru(store, "tags").select(pl.len()).collect().item() == 2
        assert store.verify().is_ok
        store.consolidate()
    store.close()


# -- item 8: nested transactions -------------------------------------------------------------------


def test_a_nested_transaction_joins_the_outer_one(store: koru.Store) -> None:
    """Issue 12 item 8: a nested ``store.transaction()`` committed on its own: a transfer
    credited one account without debiting the other. Now it joins the outer transaction:
    nothing commits until the outer block ends, and nothing at all if it raises."""
    store.put("acct", "a", {"bal": 100})
    store.put("acct", "b", {"bal": 0})

    def credit(account: str, amount: int) -> None:  # a helper that opens its own transaction
        with store.transaction() as inner:
            inner.put("acct", account, {"bal": store.get("acct", account)["bal"] + amount})

    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.put("acct", "a", {"bal": 70})
            credit("b", 30)
            assert store.version() == 2, "the inner transaction committed on its own"
            raise RuntimeError("the transfer fails after the credit")
    assert {r["_key"]: r["bal"] for r in store.as_of("acct").to_pylist()} == {"a": 100, "b": 0}
    with store.transaction() as tx:
        tx.put("acct", "a", {"bal": 70})
        with store.transaction() as inner:
            inner.put("acct", "b", {"bal": 30})
    assert tx.result is not None and tx.result.commit == 3 and tx.result.written == 2
    assert inner.result == tx.result
    assert [c.written for c in store.commits()] == [1, 1, 2]


def test_an_inner_transaction_that_raises_adds_nothing(store: koru.Store) -> None:
    """Issue 12 item 8: an inner block that raises (and is caught) contributes nothing; the
    outer one commits its own writes."""
    with store.transaction() as tx:
        tx.put("t", "outer", {"v": 1})
        try:
            with store.transaction() as inner:
                inner.put("t", "inner", {"v": 2})
                raise ValueError("inner fails")
        except ValueError:
            pass
    assert store.keys("t") == ["outer"] and tx.result is not None and tx.result.written == 1


# -- the small ones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda s: s.put("t", "\ud800", {"v": 1}), koru.InvalidInputError, "surrogate"),
    (lambda s: s.put("t", "k", {"v": 1}, actor=5), koru.InvalidInputError, "actor must be a str"),
    (lambda s: s.put("t", "k", {"v": 1}, parents="abc"), koru.InvalidInputError, "list of write ids"),
    (lambda s: s.upsert("t", [{"id": "k", "v": 1}], key="id", parents="abc"), koru.InvalidInputError,
     "list of write ids"),
    (lambda s: s.diff("t", "k", a=999), koru.InvalidInputError, "999"),
    (lambda s: s.changes("t", since=2, until=1), koru.InvalidInputError, "after until"),
    (lambda s: s.changes("t", since=5, until=2), koru.InvalidInputError, "since"),
    (lambda s: s.delete("nowhere", "k"), koru.NamespaceNotFoundError, "'nowhere' does not exist"),
    (lambda s: s.as_of("t", columns="v"), koru.InvalidInputError, r"list of column names, got 'v'"),
    (lambda s: s.as_of("t", columns=["nope"]), koru.InvalidInputError, "no column 'nope'"),
])
def test_small_ones_raise_typed_errors_with_clear_messages(store: koru.Store, call, error, match) -> None:  # type: ignore[no-untyped-def]
    """Issue 12, small ones: each was a non-koru error, accepted silently, or misleading."""
    store.put("t", "k", {"v": 1})
    store.put("t", "k", {"v": 2})
    before = store.version()
    with pytest.raises(error, match=match):
        call(store)
    assert store.version() == before, "a refused call wrote something"


@pytest.mark.parametrize(("options", "match"), [
    ({"durability": "FULL"}, "durability must be 'full' or 'process'"),
    ({"lock_timeout": "x"}, "lock_timeout"),
    ({"lock_timeout": -1}, "lock_timeout"),
    ({"read_only": "yes"}, "read_only"),
    ({"memory_limit": 0}, "memory_limit"),
])
def test_bad_open_options_are_refused(tmp_path: Path, options: dict, match: str) -> None:  # type: ignore[type-arg]
    """Issue 12, small ones: ``durability='FULL'`` was accepted as ``synchronous=1``; it is
    refused (the two spellings are 'full' and 'process'), as are other bad options."""
    with pytest.raises(koru.InvalidInputError, match=match):
        koru.open(tmp_path / "s", **options)
    assert not (tmp_path / "s").exists()


def test_timestamps_of_the_changes_feed_are_ordered(store: koru.Store) -> None:
    """``changes(since=t1, until=t0)`` with valid times the wrong way round is refused too."""
    store.put("t", "k", {"v": 1})
    now = datetime.now(timezone.utc)
    with pytest.raises(koru.InvalidInputError, match="after until"):
        store.changes("t", since=now, until=now - timedelta(days=1))
    assert store.changes("t", since=now - timedelta(days=1), until=now + timedelta(days=1)).num_rows == 1
    assert isinstance(pa.table({}), pa.Table)
