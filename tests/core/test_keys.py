"""Keys as they were written (issue 11, part 2; DESIGN.md, "Keys").

After ``upsert(..., key=["loc", "sex", "age"])`` or ``key="id"`` on an int column,
every key-taking method accepts the key as the user wrote it: a str (the ``_key``),
an int, a tuple of the parts in key-column order, or a mapping of key column to
value. Before, only the encoded ``_key`` ("4|F|0-4", "7") worked and a mapping
crashed with ``TypeError: unhashable type: 'dict'``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pytest

import koru_core as koru

T = [datetime(2020 + i, 1, 1, tzinfo=timezone.utc) for i in range(4)]
PEOPLE = [
    {"loc": 4, "sex": "F", "age": "0-4", "pop": 10},
    {"loc": 4, "sex": "M", "age": "0-4", "pop": 12},
    {"loc": 5, "sex": "F", "age": "a|b\\c", "pop": 3},  # a part holding the separator and the escape
]


@pytest.fixture
def store(tmp_path) -> koru.Store:
    s = koru.open(tmp_path / "s")
    s.upsert("people", PEOPLE, key=["loc", "sex", "age"], valid_from=T[0])
    s.upsert("people", [{**PEOPLE[0], "pop": 11}], key=["loc", "sex", "age"], valid_from=T[1])
    s.upsert("ids", [{"id": 7, "x": 1}, {"id": 8, "x": 2}], key="id", valid_from=T[0])
    s.upsert("ids", [{"id": 7, "x": 3}], key="id", valid_from=T[1])
    return s


FORMS: dict[str, Any] = {
    "tuple": (4, "F", "0-4"),
    "list": [4, "F", "0-4"],
    "mapping": {"age": "0-4", "loc": 4, "sex": "F"},  # any order
    "mapping of str parts": {"loc": "4", "sex": "F", "age": "0-4"},  # 4 and "4" encode alike
    "encoded": "4|F|0-4",
}


def test_the_namespace_remembers_its_key_columns(store: koru.Store) -> None:
    assert store.key_columns("people") == ("loc", "sex", "age")
    assert store.key_columns("ids") == ("id",)
    assert sorted(store.keys("people")) == ["4|F|0-4", "4|M|0-4", "5|F|a\\|b\\\\c"]


@pytest.mark.parametrize("form", list(FORMS))
def test_reads_take_every_form_of_a_composite_key(store: koru.Store, form: str) -> None:
    key = FORMS[form]
    assert store.get("people", key)["pop"] == 11
    assert store.get("people", key, at=T[0])["pop"] == 10
    v = store.version_at("people", key, at=T[0])
    assert (v.key, v.value["pop"], v.commit, v.valid_to) == ("4|F|0-4", 10, 1, T[1])
    assert store.history("people", key)["pop"].to_pylist() == [10, 11]
    changes = store.diff("people", key, 1, 2)
    assert [(c.field, c.before, c.after) for c in changes] == [("pop", 10, 11)]
    lineage = store.lineage("people", key)
    root = [r for r in lineage.nodes.to_pylist() if r["depth"] == 0]
    assert [(r["_key"], r["_write_id"]) for r in root] == [("4|F|0-4", lineage.root)]


def test_a_part_with_the_separator_is_escaped_alike(store: koru.Store) -> None:
    assert store.get("people", (5, "F", "a|b\\c"))["pop"] == 3
    assert store.get("people", {"loc": 5, "sex": "F", "age": "a|b\\c"})["pop"] == 3
    assert store.get("people", "5|F|a\\|b\\\\c")["pop"] == 3


@pytest.mark.parametrize("key", [7, "7", (7,), {"id": 7}])
def test_an_int_key_column_takes_the_int(store: koru.Store, key: Any) -> None:
    assert store.get("ids", key) == {"id": 7, "x": 3}
    assert store.history("ids", key)["x"].to_pylist() == [1, 3]
    assert store.version_at("ids", key).value == {"id": 7, "x": 3}


def test_writes_take_the_key_as_written_and_keep_the_key_columns(store: koru.Store) -> None:
    v = store.put("people", (4, "M", "0-4"), {"pop": 20}, valid_from=T[2])
    assert v.key == "4|M|0-4"
    # the record holds its key columns, as the upserted rows do, so SQL on them finds it
    assert store.get("people", {"loc": 4, "sex": "M", "age": "0-4"}, at=T[2]) == {
        "loc": 4, "sex": "M", "age": "0-4", "pop": 20}
    state = store.as_of("people", at=T[2])
    assert state.filter(pa.compute.equal(state["loc"], 4))["pop"].to_pylist().count(20) == 1
    # the same value through upsert is then unchanged at that valid time
    again = store.upsert("people", [{"loc": 4, "sex": "M", "age": "0-4", "pop": 20}],
                         key=["loc", "sex", "age"], valid_from=T[2])
    assert (again.commit, again.unchanged) == (None, 1)
    d = store.delete("people", {"loc": 4, "sex": "M", "age": "0-4"}, valid_from=T[3])
    assert d.is_deleted and d.key == "4|M|0-4"
    with pytest.raises(koru.KeyNotFoundError):
        store.get("people", (4, "M", "0-4"), at=T[3])
    store.put("ids", 9, {"x": 5})
    assert store.get("ids", 9) == {"id": 9, "x": 5}


def test_a_value_whose_key_column_differs_from_the_key_is_refused(store: koru.Store) -> None:
    before = store.version()
    with pytest.raises(koru.InvalidInputError, match=r"'people'.*'loc'.*5.*4"):
        store.put("people", (4, "F", "0-4"), {"loc": 5, "pop": 1})
    assert store.version() == before


def test_a_transaction_takes_the_key_as_written(store: koru.Store) -> None:
    with store.transaction() as tx:
        tx.put("people", (4, "F", "0-4"), {"pop": 30}, valid_from=T[2])
        tx.delete("ids", 8, valid_from=T[2])
        # a namespace whose key columns this same transaction declares
        tx.upsert("regions", [{"r": 1, "c": "x", "n": 1}], key=["r", "c"], valid_from=T[0])
        tx.put("regions", (2, "y"), {"n": 2}, valid_from=T[0])
    assert tx.result is not None and tx.result.commit is not None
    assert store.get("people", (4, "F", "0-4"), at=T[2])["pop"] == 30
    with pytest.raises(koru.KeyNotFoundError):
        store.get("ids", 8, at=T[2])
    assert store.get("regions", (2, "y")) == {"r": 2, "c": "y", "n": 2}


BAD_KEYS: dict[str, tuple[Any, str]] = {
    "too few parts": ((4, "F"), r"3 column.*\['loc', 'sex', 'age'\].*2 part"),
    "too many parts": ((4, "F", "0-4", "x"), r"\['loc', 'sex', 'age'\]"),
    "unknown column": ({"loc": 4, "sex": "F", "agegroup": "0-4"}, r"exactly the key columns \['loc', 'sex', 'age'\]"),
    "missing column": ({"loc": 4, "sex": "F"}, r"\['loc', 'sex', 'age'\]"),
    "an int for a composite key": (4, r"3 columns \['loc', 'sex', 'age'\]"),
    "a float part": ((4.0, "F", "0-4"), r"key column 'loc'.*4\.0"),
    "a None part": ((None, "F", "0-4"), r"key column 'loc'.*None"),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
@pytest.mark.parametrize("method", ["get", "put", "delete", "history", "version_at", "diff", "lineage", "transaction"])
def test_a_key_of_the_wrong_shape_is_typed_and_writes_nothing(store: koru.Store, case: str, method: str) -> None:
    key, message = BAD_KEYS[case]
    calls = {
        "get": lambda: store.get("people", key),
        "put": lambda: store.put("people", key, {"pop": 1}),
        "delete": lambda: store.delete("people", key),
        "history": lambda: store.history("people", key),
        "version_at": lambda: store.version_at("people", key),
        "diff": lambda: store.diff("people", key, 1, 2),
        "lineage": lambda: store.lineage("people", key),
    }
    before = (store.version(), store.versions("people"))
    with pytest.raises(koru.InvalidInputError, match=message):
        if method == "transaction":
            with store.transaction() as tx:
                tx.put("people", (4, "F", "0-4"), {"pop": 99})  # a good row first: it must not land either
                tx.put("people", key, {"pop": 1})
        else:
            calls[method]()
    assert store.version() == before[0]
    assert store.versions("people").equals(before[1])


def test_a_put_only_namespace_takes_str_and_int_keys(tmp_path) -> None:
    s = koru.open(tmp_path / "s")
    s.put("notes", "a", {"t": "x"})
    s.put("notes", 5, {"t": "y"})
    assert s.get("notes", "5") == {"t": "y"} == s.get("notes", 5)
    with pytest.raises(koru.InvalidInputError, match="no key columns"):
        s.get("notes", ("a",))
