"""put / get / delete / history / as_of / changes / diff on one store, by example."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

import koru_core as koru

UTC = timezone.utc
T0 = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_put_returns_the_version_written(store: koru.Store) -> None:
    v = store.put("users", "alice", {"name": "Alice", "age": 31}, actor="etl", run_id="r1", parents=["p1"])
    assert (v.namespace, v.key, v.commit, v.write_id) == ("users", "alice", 1, "0000000000000001")
    assert v.value == {"name": "Alice", "age": 31}
    assert v.prev_write_id is None and not v.is_deleted and not v.is_unchanged
    assert len(v.content_id) == 64 and int(v.content_id, 16) >= 0
    assert (v.actor, v.run_id, v.parents) == ("etl", "r1", ("p1",))
    assert v.valid_from == v.system_from, "valid time defaults to the commit's system time"
    assert store.get("users", "alice") == {"name": "Alice", "age": 31}
    with pytest.raises(AttributeError):
        v.commit = 2  # type: ignore[misc]


def test_second_put_chains_and_equal_put_is_unchanged(store: koru.Store) -> None:
    first = store.put("users", "alice", {"age": 31})
    second = store.put("users", "alice", {"age": 32})
    assert second.commit == 2 and second.prev_write_id == first.write_id
    again = store.put("users", "alice", {"age": 32})
    assert again.is_unchanged and again.commit == 2 and again.write_id == second.write_id
    assert again.content_id == second.content_id
    assert len(store.commits()) == 2, "an unchanged put makes no commit"
    assert [c.commit for c in store.commits()] == [1, 2]


def test_get_time_travel_by_valid_time_and_commit(store: koru.Store) -> None:
    store.put("users", "bob", {"age": 1}, valid_from=hours(0))
    store.put("users", "bob", {"age": 2}, valid_from=hours(2))
    store.put("users", "bob", {"age": 9}, valid_from=hours(1))  # late arrival, commit 3
    assert store.get("users", "bob") == {"age": 2}
    assert store.get("users", "bob", at=hours(1.5)) == {"age": 9}
    assert store.get("users", "bob", at=hours(1.5), version=2) == {"age": 1}
    assert store.get("users", "bob", at=hours(0)) == {"age": 1}
    with pytest.raises(koru.KeyNotFoundError, match=r"'users'.*'bob'"):
        store.get("users", "bob", at=hours(-1))
    # the same instant in another zone
    ist = timezone(timedelta(hours=5, minutes=30))
    assert store.get("users", "bob", at=hours(1).astimezone(ist)) == {"age": 9}


def test_get_missing_key_and_namespace(store: koru.Store) -> None:
    with pytest.raises(koru.NamespaceNotFoundError, match="nope"):
        store.get("nope", "k")
    store.put("users", "a", {"x": 1})
    with pytest.raises(koru.KeyNotFoundError, match=r"'users'.*'zed'") as e:
        store.get("users", "zed")
    assert isinstance(e.value, LookupError) and not str(e.value).startswith('"')
    with pytest.raises(koru.InvalidInputError, match="version"):
        store.get("users", "a", version=7)


def test_correction_at_same_valid_time_wins_by_commit(store: koru.Store) -> None:
    store.put("users", "c", {"age": 1}, valid_from=hours(0))
    store.put("users", "c", {"age": 2}, valid_from=hours(0))
    assert store.get("users", "c", at=hours(0)) == {"age": 2}
    assert store.get("users", "c", at=hours(0), version=1) == {"age": 1}
    h = store.history("users", "c")
    assert h["age"].to_pylist() == [1, 2]
    assert h["_valid_to"].to_pylist()[0] == h["_valid_from"].to_pylist()[0], "empty interval for the corrected one"
    assert h["_valid_to"].to_pylist()[1] is None


def test_future_valid_time_is_not_current(store: koru.Store) -> None:
    """Regression (issue 2): the write path cached a version valid only in 2099 as the
    current value, so ``get`` returned it although ``as_of`` did not."""
    store.put("users", "a", {"age": 1})
    store.put("users", "a", {"age": 5}, valid_from=FUTURE)
    store.put("users", "b", {"age": 7}, valid_from=FUTURE)
    assert store.get("users", "a") == {"age": 1}
    with pytest.raises(koru.KeyNotFoundError):
        store.get("users", "b")
    assert store.get("users", "a", at=FUTURE) == {"age": 5}
    assert store.keys("users") == ["a"]
    assert store.keys("users", at=FUTURE) == ["a", "b"]


def test_get_notices_a_version_becoming_current_as_time_passes(store: koru.Store) -> None:
    """Regression: ``get`` cached the as-of-now value although a later-valid version
    existed, so it kept returning the old value after that valid time had come."""
    store.put("users", "a", {"age": 1})
    soon = datetime.now(UTC) + timedelta(seconds=0.6)
    store.put("users", "a", {"age": 2}, valid_from=soon)
    assert store.get("users", "a") == {"age": 1}
    assert store.get("users", "a") == {"age": 1}
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    assert store.get("users", "a") == {"age": 2}


def test_delete_writes_a_tombstone(store: koru.Store) -> None:
    first = store.put("users", "d", {"age": 1})
    v = store.delete("users", "d", actor="gdpr")
    assert v.is_deleted and v.value is None and v.content_id is None and v.commit == 2
    assert v.prev_write_id == first.write_id and v.actor == "gdpr"
    with pytest.raises(koru.KeyNotFoundError, match=r"'users'.*'d'"):
        store.get("users", "d")
    assert store.get("users", "d", version=1) == {"age": 1}
    with pytest.raises(koru.KeyNotFoundError, match=r"'users'.*'d'"):
        store.delete("users", "d")
    with pytest.raises(koru.KeyNotFoundError):
        store.delete("users", "never")
    assert len(store.commits()) == 2, "a delete of a key that is not live makes no commit"
    again = store.put("users", "d", {"age": 1})
    assert again.commit == 3 and not again.is_unchanged and again.prev_write_id == v.write_id
    h = store.history("users", "d")
    assert h["_deleted"].to_pylist() == [False, True, False]
    assert h["age"].to_pylist() == [1, None, 1]


def test_bare_values_and_nested_values_round_trip(store: koru.Store) -> None:
    store.put("counters", "x", 41)
    assert store.get("counters", "x") == 41
    store.put("counters", "x", 42)
    assert store.get("counters", "x") == 42
    assert store.as_of("counters")["value"].to_pylist() == [42]
    value = {"name": "N", "tags": ["a", "b"], "address": {"city": "Oslo", "zip": "0150"}, "ok": True,
             "ratio": 0.25, "born": datetime(1990, 5, 1, tzinfo=UTC), "blob": b"\x00\x01"}
    store.put("people", "n", value)
    got = store.get("people", "n")
    assert got["tags"] == ["a", "b"] and got["address"] == {"city": "Oslo", "zip": "0150"}
    assert got["ok"] is True and got["ratio"] == 0.25 and got["blob"] == b"\x00\x01"
    assert got["born"] == datetime(1990, 5, 1, tzinfo=UTC)
    assert store.put("people", "n", dict(reversed(list(value.items())))).is_unchanged, "field order is not content"


def test_schema_grows_and_widens(store: koru.Store) -> None:
    store.upsert("t", pa.table({"id": ["a"], "n": pa.array([1], pa.int32())}), key="id")
    store.put("t", "b", {"id": "b", "n": 2**40, "extra": "x"})
    assert store.get("t", "a") == {"id": "a", "n": 1, "extra": None}
    table = store.as_of("t")
    assert table.schema.field("n").type == pa.int64()
    assert table["extra"].to_pylist() == [None, "x"]
    assert store.put("t", "a", {"id": "a", "n": 1}).is_unchanged, "a null field equals a missing one"
    before = len(store.commits())
    with pytest.raises(koru.SchemaError, match=r"'n'.*int64.*string"):
        store.put("t", "c", {"id": "c", "n": "seven"})
    assert len(store.commits()) == before
    with pytest.raises(koru.KeyNotFoundError):
        store.get("t", "c")


def test_history_orders_by_valid_time_then_commit(store: koru.Store) -> None:
    store.put("h", "k", {"v": "c"}, valid_from=hours(3))
    store.put("h", "k", {"v": "a"}, valid_from=hours(1))
    store.put("h", "k", {"v": "b"}, valid_from=hours(2))
    store.delete("h", "k", valid_from=hours(4))
    h = store.history("h", "k")
    assert h["v"].to_pylist() == ["a", "b", "c", None]
    assert h["_commit"].to_pylist() == [2, 3, 1, 4]
    assert h["_valid_to"].to_pylist()[:3] == h["_valid_from"].to_pylist()[1:]
    assert h["_valid_to"].to_pylist()[3] is None
    assert h.column_names[0] == "v" and "_prev_write_id" in h.column_names
    # _prev_write_id follows write order, not valid-time order
    by_commit = {r["_commit"]: r for r in h.to_pylist()}
    assert by_commit[1]["_prev_write_id"] is None
    assert [by_commit[c]["_prev_write_id"] for c in (2, 3, 4)] == [by_commit[c]["_write_id"] for c in (1, 2, 3)]
    assert store.history("h", "unknown").num_rows == 0


def test_as_of_shape(store: koru.Store) -> None:
    store.upsert("u", [{"id": "b", "age": 2}, {"id": "a", "age": 1}], key="id")
    t = store.as_of("u")
    assert t.column_names == ["id", "age", "_key", "_valid_from", "_system_from", "_commit", "_write_id"]
    assert t["_key"].to_pylist() == ["a", "b"]
    assert t.schema.field("_valid_from").type == pa.timestamp("ns", tz="UTC")
    assert store.as_of("u", columns=["age"]).column_names[0] == "age"
    with pytest.raises(koru.InvalidInputError, match="'nope'"):
        store.as_of("u", columns=["nope"])
    assert store.keys("u") == ["a", "b"]
    assert store.namespaces() == ["u"]


def test_changes_feed(store: koru.Store) -> None:
    store.put("f", "a", {"v": 1}, valid_from=hours(0))  # 1 insert
    store.put("f", "a", {"v": 2}, valid_from=hours(1))  # 2 update
    store.delete("f", "a", valid_from=hours(2))  # 3 delete
    store.put("f", "b", {"v": 1}, valid_from=hours(1))  # 4 insert
    store.put("f", "a", {"v": 3}, valid_from=hours(3))  # 5 insert again
    feed = store.changes("f", since=0)
    assert list(zip(feed["_key"].to_pylist(), feed["op"].to_pylist(), feed["_commit"].to_pylist())) == [
        ("a", "insert", 1), ("a", "update", 2), ("a", "delete", 3), ("b", "insert", 4), ("a", "insert", 5)]
    assert feed["v"].to_pylist() == [1, 2, None, 1, 3]
    ids = feed["_write_id"].to_pylist()
    assert feed["before_write_id"].to_pylist() == [None, ids[0], ids[1], None, ids[2]]
    window = store.changes("f", since=1, until=3)
    assert window["_commit"].to_pylist() == [2, 3]
    by_valid = store.changes("f", since=hours(0), until=hours(1))
    assert sorted(zip(by_valid["_key"].to_pylist(), by_valid["op"].to_pylist())) == [("a", "update"), ("b", "insert")]
    with pytest.raises(koru.InvalidInputError):
        store.changes("f", since=1, until=hours(1))


def test_diff_between_versions(store: koru.Store) -> None:
    a = store.put("d", "k", {"x": 1, "y": "same"})
    store.put("d", "k", {"x": 2, "y": "same", "z": True})
    changes = store.diff("d", "k")
    assert [(c.field, c.before, c.after) for c in changes] == [("x", 1, 2), ("z", None, True)]
    assert store.diff("d", "k", a.write_id, a.write_id) == []
    with pytest.raises(koru.KeyNotFoundError):
        store.diff("d", "k", "ffffffffffffffff")


def test_reopen_and_flush_keep_every_version(tmp_path) -> None:
    path = tmp_path / "s"
    with koru.open(path) as s:
        for i in range(5):
            s.put("n", f"k{i}", {"id": f"k{i}", "i": i})
        s.put("n", "k0", {"id": "k0", "i": 100}, valid_from=hours(0))
        s.upsert("n", [{"id": f"bulk{i}", "i": i} for i in range(1500)], key="id")  # a warm file
        before = s.as_of("n", sort=True)
        history = s.history("n", "k0")
    with koru.open(path) as s:
        assert s.as_of("n", sort=True).equals(before)
        s.flush()
        assert s.as_of("n", sort=True).equals(before)
        assert s.history("n", "k0").equals(history)
        stats = {r["tier"]: r for r in s.stats().to_pylist()}
        assert stats["cold"]["versions"] == 1506 and "warm" not in stats and not stats.get("hot", {}).get("versions")
        v = s.put("n", "k1", {"i": 1})  # the key column 'id' comes from the key (issue 11)
        assert v.is_unchanged, "the index rebuilt from files knows k1's content"
        late = s.put("n", "k0", {"i": 100}, valid_from=hours(0) + timedelta(seconds=1))
        assert late.is_unchanged, "a late row equal to the as-of version at its valid time"


def test_commit_log(store: koru.Store) -> None:
    store.put("a", "k", {"v": 1}, actor="me", run_id="r")
    store.upsert("a", [{"id": "k", "v": 1}, {"id": "j", "v": 2}], key="id", actor="bulk")
    log = store.commits()
    assert [(c.commit, c.actor, c.run_id, c.namespaces) for c in log] == [(1, "me", "r", ("a",)), (2, "bulk", None, ("a",))]
    assert (log[1].written, log[1].unchanged, log[1].deleted) == (2, 0, 0)
    assert log[0].system_time < log[1].system_time
    assert store.commit_at(log[1].system_time) == 2
    assert store.commit_at(log[0].system_time - timedelta(seconds=1)) == 0


def test_two_handles_on_one_store_see_each_others_commits(tmp_path) -> None:
    """Two Store objects (as two processes would) keep their indexes and caches current."""
    s1, s2 = koru.open(tmp_path / "s"), koru.open(tmp_path / "s")
    try:
        first = s1.put("u", "k", {"v": 1})
        assert s1.get("u", "k") == {"v": 1}  # cached in s1
        assert s2.put("u", "k", {"v": 1}).is_unchanged, "s2's index caught up with s1's commit"
        second = s2.put("u", "k", {"v": 2})
        assert second.prev_write_id == first.write_id
        assert s1.get("u", "k") == {"v": 2}, "s1's cache noticed s2's commit"
        assert s1.put("u", "k", {"v": 2}).is_unchanged
        third = s1.put("u", "k", {"v": 3}, valid_from=hours(0))  # late, through s1
        assert third.prev_write_id == second.write_id
        assert s2.get("u", "k", at=hours(1)) == {"v": 3}
        s2.delete("u", "k")
        with pytest.raises(koru.KeyNotFoundError):
            s1.get("u", "k")
        assert s1.put("u", "k", {"v": 2}).commit == 5
    finally:
        s1.close()
        s2.close()


def test_empty_dict_is_a_value_with_every_field_null(store: koru.Store) -> None:
    """Regression: ``put(ns, key, {})`` crashed with a raw ArrowInvalid (a table built
    from ``[{}]`` has zero rows)."""
    assert store.put("e", "k", {}).commit == 1
    assert store.get("e", "k") == {}
    store.put("a", "x", {"v": 1})
    assert store.put("a", "y", {}).commit == 3
    assert store.get("a", "y") == {"v": None}
    assert store.put("a", "y", {"v": None}).is_unchanged
    with store.transaction() as tx:
        tx.put("a", "z", {})
        tx.put("a", "w", {"v": 3})
    assert store.keys("a") == ["w", "x", "y", "z"]


@pytest.mark.parametrize(("first", "value", "expected"), [
    ({"a": 0}, {"a": 1, "b": "x", "c": None, "d": True}, {"a": 1, "b": "x", "c": None, "d": True}),
    ({"n": 0, "extra": "e"}, {"n": 3}, {"n": 3, "extra": None}),  # a field the value lacks: null
    ({"nested": {"x": 0, "y": 0}}, {"nested": {"x": 1}}, {"nested": {"x": 1, "y": None}}),  # a struct widened
    ({"tags": ["a"]}, {"tags": ["b", "c"], "when": datetime(2020, 1, 1, tzinfo=UTC)},
     {"tags": ["b", "c"], "when": datetime(2020, 1, 1, tzinfo=UTC)}),
    (6, 7, 7),
])
def test_a_put_shows_what_a_new_reader_sees(tmp_path, first, value, expected) -> None:
    """A put's returned Version and the value its store caches are what another store
    handle reads from disk (the single-put path keeps Python values, not Arrow ones)."""
    path = tmp_path / "s"
    writer = koru.open(path)
    writer.put("t", "first", first)
    at = datetime(2021, 1, 1, 0, 0, 0, 1, tzinfo=UTC)  # not a whole millisecond
    v = writer.put("t", "k", value, valid_from=at, parents=["00000000000000ff"], actor="me", run_id="r")
    cached = writer.get("t", "k")
    writer.close()
    reader = koru.open(path)
    (row,) = reader.history("t", "k").to_pylist()
    assert (v.key, v.commit, v.write_id, v.prev_write_id, v.content_id) == (
        row["_key"], row["_commit"], row["_write_id"], row["_prev_write_id"], row["_content_id"])
    assert (v.actor, v.run_id, v.parents, v.is_deleted) == (row["_actor"], row["_run_id"], tuple(row["_parents"]), False)
    assert v.valid_from == row["_valid_from"] == at
    assert cached == reader.get("t", "k") == expected
