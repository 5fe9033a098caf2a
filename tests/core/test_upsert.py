"""upsert: every input type, composite keys, per-row valid time (backfills, late data),
the unchanged rule, ``delete_missing`` and transactions (issue 2, item 2)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import koru_core as koru

UTC = timezone.utc
T0 = datetime(2021, 3, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


ROWS = [
    {"id": "a", "age": 31, "name": "Ann", "score": 1.5},
    {"id": "b", "age": 42, "name": "Bob", "score": None},
    {"id": "c", "age": None, "name": "Cy", "score": -2.0},
]


def as_inputs() -> dict[str, object]:
    table = pa.Table.from_pylist(ROWS)
    return {
        "arrow": table,
        "batch": table.to_batches()[0],
        "reader": pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
        "polars": pl.DataFrame(ROWS),
        "pandas": pd.DataFrame(ROWS),
        "dicts": [dict(r) for r in ROWS],
    }


@pytest.mark.parametrize("kind", list(as_inputs()))
def test_every_input_type_gives_the_same_versions(store: koru.Store, kind: str) -> None:
    result = store.upsert("people", as_inputs()[kind], key="id")
    assert (result.commit, result.written, result.unchanged, result.deleted) == (1, 3, 0, 0)
    assert result.namespaces == ("people",)
    assert store.get("people", "a") == {"id": "a", "age": 31, "name": "Ann", "score": 1.5}
    assert store.get("people", "b")["score"] is None
    reference = koru.open(store.path.parent / "ref")
    reference.upsert("people", pa.Table.from_pylist(ROWS), key="id")
    assert store.as_of("people")["_key"].to_pylist() == ["a", "b", "c"]
    ours = {r["_key"]: r["_content_id"] for r in store.versions("people").to_pylist()}
    theirs = {r["_key"]: r["_content_id"] for r in reference.versions("people").to_pylist()}
    assert ours == theirs, "content ids do not depend on the input type"
    again = store.upsert("people", as_inputs()[kind], key="id")
    assert (again.commit, again.written, again.unchanged) == (None, 0, 3), "re-import is all unchanged"
    assert len(store.commits()) == 1
    reference.close()


def test_composite_keys_are_joined_and_escaped(store: koru.Store) -> None:
    data = [
        {"a": "x|y", "b": 1, "v": 1},
        {"a": "x", "b": 1, "v": 2},
        {"a": "x\\", "b": 1, "v": 3},
        {"a": "p", "b": 2, "v": 4},
    ]
    result = store.upsert("ck", data, key=["a", "b"])
    assert result.written == 4
    assert store.keys("ck") == sorted(["x\\|y|1", "x|1", "x\\\\|1", "p|2"])
    assert store.get("ck", "x\\|y|1")["v"] == 1
    assert store.get("ck", "p|2") == {"a": "p", "b": 2, "v": 4}
    # the same tuple again is the same key
    assert store.upsert("ck", [{"a": "p", "b": 2, "v": 5}], key=["a", "b"]).written == 1
    assert store.history("ck", "p|2")["v"].to_pylist() == [4, 5]


def test_backfill_many_versions_of_a_key_in_one_batch(store: koru.Store) -> None:
    rows = [{"id": "k", "vt": day(i), "price": p} for i, p in enumerate([10, 11, 11, 12, 10, 10])]
    rows += [{"id": "j", "vt": day(2), "price": 1}]
    result = store.upsert("prices", list(reversed(rows)), key="id", valid_from="vt")
    # rows equal to the previous row of their key (days 2 and 5) are unchanged
    assert (result.written, result.unchanged) == (5, 2)
    h = store.history("prices", "k")
    assert h["price"].to_pylist() == [10, 11, 12, 10]
    assert [v.to_pydatetime() for v in h["_valid_from"].to_pylist()] == [day(0), day(1), day(3), day(4)]
    assert "vt" not in h.column_names, "the valid-time column becomes _valid_from"
    assert h["_commit"].to_pylist() == [1, 1, 1, 1]
    # within the batch the chain follows valid time
    ids = h["_write_id"].to_pylist()
    assert h["_prev_write_id"].to_pylist() == [None, *ids[:-1]]
    assert store.get("prices", "k", at=day(2) + timedelta(hours=1)) == {"id": "k", "price": 11}
    assert store.get("prices", "k", at=day(3)) == {"id": "k", "price": 12}
    with pytest.raises(koru.KeyNotFoundError):
        store.get("prices", "j", at=day(1))


def test_late_arriving_rows(store: koru.Store) -> None:
    store.upsert("s", [{"id": "a", "v": 1, "vt": day(0)}, {"id": "a", "v": 3, "vt": day(10)}], key="id", valid_from="vt")
    late = store.upsert("s", [{"id": "a", "v": 2, "vt": day(5)}], key="id", valid_from="vt")
    assert (late.commit, late.written) == (2, 1)
    assert store.get("s", "a") == {"id": "a", "v": 3}
    assert store.get("s", "a", at=day(7)) == {"id": "a", "v": 2}
    assert store.get("s", "a", at=day(7), version=1) == {"id": "a", "v": 1}
    # a late row equal to the as-of version at its valid time writes no version; it is
    # recorded as a skip (issue 11: a later correction before it must bring it back)
    same = store.upsert("s", [{"id": "a", "v": 2, "vt": day(6)}], key="id", valid_from="vt")
    assert (same.commit, same.written, same.unchanged) == (3, 0, 1)
    assert store.history("s", "a").num_rows == 3
    # ... even when it equals the current value but not the one at its valid time
    differs = store.upsert("s", [{"id": "a", "v": 3, "vt": day(6)}], key="id", valid_from="vt")
    assert differs.written == 1
    h = store.history("s", "a")
    assert h["v"].to_pylist() == [1, 2, 3, 3]
    assert h["_commit"].to_pylist() == [1, 2, 4, 1]
    # _prev_write_id is write order: the late row points at commit 2's version
    by_commit = {r["_commit"]: r for r in h.to_pylist()}
    assert by_commit[4]["_prev_write_id"] == by_commit[2]["_write_id"]


def test_one_valid_time_for_all_rows(store: koru.Store) -> None:
    r = store.upsert("s", [{"id": "a", "v": 1}, {"id": "b", "v": 2}], key="id", valid_from=day(1))
    assert r.written == 2
    assert store.keys("s", at=day(0)) == []
    assert store.keys("s", at=day(1)) == ["a", "b"]
    ts = store.as_of("s")["_valid_from"].to_pylist()
    assert [t.to_pydatetime() for t in ts] == [day(1), day(1)]


def test_valid_time_columns_from_pandas_and_polars(store: koru.Store) -> None:
    when = [day(0), day(1)]
    pdf = pd.DataFrame({"id": ["a", "a"], "v": [1, 2], "vt": pd.to_datetime(when, utc=True)})
    assert store.upsert("pd", pdf, key="id", valid_from="vt").written == 2
    pldf = pl.DataFrame({"id": ["a", "a"], "v": [1, 2], "vt": when}).with_columns(
        pl.col("vt").dt.convert_time_zone("Europe/Oslo")
    )
    assert store.upsert("pl", pldf, key="id", valid_from="vt").written == 2
    for ns in ("pd", "pl"):
        assert store.get(ns, "a", at=day(0) + timedelta(hours=12)) == {"id": "a", "v": 1}
        assert store.history(ns, "a")["_valid_from"].cast(pa.int64()).equals(
            store.history("pd", "a")["_valid_from"].cast(pa.int64())
        )


def test_delete_missing_tombstones_absent_keys(store: koru.Store) -> None:
    snap1 = [{"id": k, "v": 1} for k in "abc"]
    assert store.upsert("cdc", snap1, key="id", delete_missing=True).written == 3
    snap2 = [{"id": "a", "v": 1}, {"id": "c", "v": 2}, {"id": "d", "v": 1}]
    r = store.upsert("cdc", snap2, key="id", delete_missing=True)
    assert (r.written, r.unchanged, r.deleted) == (2, 1, 1)
    assert store.keys("cdc") == ["a", "c", "d"]
    assert store.keys("cdc", version=1) == ["a", "b", "c"]
    h = store.history("cdc", "b")
    assert h["_deleted"].to_pylist() == [False, True]
    again = store.upsert("cdc", snap2, key="id", delete_missing=True)
    assert (again.commit, again.unchanged, again.deleted) == (None, 3, 0)
    # without delete_missing an incomplete batch deletes nothing
    assert store.upsert("cdc", [{"id": "a", "v": 9}], key="id").deleted == 0
    assert store.keys("cdc") == ["a", "c", "d"]
    # an empty snapshot deletes everything
    empty = pa.table({"id": pa.array([], pa.string()), "v": pa.array([], pa.int64())})
    gone = store.upsert("cdc", empty, key="id", delete_missing=True)
    assert gone.deleted == 3 and store.keys("cdc") == []


def test_delete_missing_with_valid_time_column(store: koru.Store) -> None:
    store.upsert("cdc", [{"id": k, "vt": day(0)} for k in "ab"], key="id", valid_from="vt")
    r = store.upsert("cdc", [{"id": "a", "vt": day(1)}], key="id", valid_from="vt", delete_missing=True)
    assert r.deleted == 1
    assert store.keys("cdc", at=day(0)) == ["a", "b"]
    assert store.keys("cdc", at=day(1)) == ["a"]


def test_large_upsert_goes_to_a_file_and_reads_back(store: koru.Store) -> None:
    n = 5000
    table = pa.table({"id": [f"k{i:05d}" for i in range(n)], "x": list(range(n))})
    assert store.upsert("big", table, key="id").written == n
    tiers = {r["tier"] for r in store.stats().to_pylist()}
    assert "warm" in tiers
    assert store.as_of("big").num_rows == n
    assert store.get("big", "k04999") == {"id": "k04999", "x": 4999}
    changed = table.set_column(1, "x", pa.array([i if i % 10 else -i - 1 for i in range(n)]))
    r = store.upsert("big", changed, key="id")
    assert (r.written, r.unchanged) == (n // 10, n - n // 10)
    assert store.get("big", "k00010")["x"] == -11


def test_transaction_is_one_atomic_commit(store: koru.Store) -> None:
    store.put("acct", "a", {"bal": 100})
    with store.transaction(actor="tx", run_id="r9") as tx:
        tx.put("acct", "a", {"bal": 50})
        tx.put("acct", "b", {"bal": 50})
        tx.upsert("log", [{"id": "t1", "amount": 50}], key="id")
        tx.delete("acct", "never-existed")
    assert tx.result is not None
    assert (tx.result.commit, tx.result.written, tx.result.unchanged) == (2, 3, 1)
    assert tx.result.namespaces == ("acct", "log")
    assert [c.commit for c in store.commits()] == [1, 2]
    assert store.commits()[-1].actor == "tx"
    assert {store.history("acct", k)["_commit"].to_pylist()[-1] for k in "ab"} == {2}


def test_transaction_that_raises_writes_nothing(store: koru.Store) -> None:
    store.put("acct", "a", {"bal": 100})
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction() as tx:
            tx.put("acct", "a", {"bal": 0})
            tx.put("acct", "b", {"bal": 100})
            raise RuntimeError("boom")
    assert len(store.commits()) == 1
    assert store.get("acct", "a") == {"bal": 100}
    with pytest.raises(koru.KeyNotFoundError):
        store.get("acct", "b")
    with pytest.raises(koru.InvalidInputError):
        tx.put("acct", "c", {"bal": 1})  # closed
    # a failing commit (schema conflict) inside a transaction writes nothing either
    with pytest.raises(koru.SchemaError):
        with store.transaction() as tx2:
            tx2.put("acct", "c", {"bal": 5})
            tx2.put("acct", "d", {"bal": "five"})
    assert len(store.commits()) == 1
    store.put("acct", "e", {"bal": 1})  # the lock was released
    assert len(store.commits()) == 2


def test_same_key_twice_in_a_transaction_last_wins(store: koru.Store) -> None:
    with store.transaction() as tx:
        tx.put("t", "k", {"v": 1})
        tx.put("t", "k", {"v": 2})
        tx.put("t", "k", {"v": 0}, valid_from=day(0))
    assert store.get("t", "k") == {"v": 2}
    assert store.history("t", "k")["v"].to_pylist() == [0, 2]


def test_a_dated_tombstone_after_a_tombstone_of_nothing_is_recorded(store: koru.Store) -> None:
    """DESIGN, the unchanged rule: a tombstone at an explicit valid time for a key never
    written is recorded as a version (there is no version for a skip record to repeat).
    A tombstone of the same key at the commit's time earlier in the same commit records
    nothing, so it does not count as a version before it (found by the as-of property test:
    the dated tombstone was taken for a skip and dropped, and a later version leaked past it)."""
    store.put("acct", "z", {"n": 9})
    with store.transaction() as tx:
        tx.delete("acct", "b")  # the commit's time: b was never written, so nothing to record
        tx.delete("acct", "b", valid_from=day(9000))
    dated = store.commits()[-1].commit
    store.put("acct", "b", {"n": 0})  # now: before the tombstone's valid time
    rows = [r for r in store.versions("acct").to_pylist() if r["_key"] == "b"]
    assert [(r["_deleted"], r["_commit"]) for r in rows] == [(False, dated + 1), (True, dated)]
    assert "b" not in store.as_of("acct", at=day(9000))["_key"].to_pylist()
    assert "b" in store.as_of("acct", at=day(8999))["_key"].to_pylist()  # 2045: b's version of now holds
    store.consolidate()
    assert "b" not in store.as_of("acct", at=day(9000))["_key"].to_pylist()
    assert "b" not in store.as_of("acct", at=day(9000), version=dated + 1)["_key"].to_pylist()


def test_unchanged_across_schema_growth_and_types(store: koru.Store) -> None:
    store.upsert("g", pa.table({"id": ["a"], "n": pa.array([1], pa.int32())}), key="id")
    store.upsert("g", [{"id": "b", "n": 2, "extra": "x"}], key="id")
    r = store.upsert("g", pa.table({"id": ["a"], "n": pa.array([1], pa.int64()), "extra": pa.nulls(1, pa.string())}), key="id")
    assert (r.commit, r.unchanged) == (None, 1), "int32 1 == int64 1; null field == absent field"
    r = store.upsert("g", pl.DataFrame({"id": ["a"], "n": [1]}), key="id")
    assert r.commit is None
