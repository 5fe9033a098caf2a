"""Bad input (issue 2, item 4): a typed KoruError naming what is wrong, and nothing written.

Every case runs against a store holding one commit; afterwards the commit log,
the namespaces and the data must be exactly as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import koru_core as koru

UTC = timezone.utc
NAIVE = datetime(2020, 1, 1)
AWARE = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def seeded(store: koru.Store) -> Iterator[koru.Store]:
    store.put("users", "alice", {"age": 31, "name": "Alice"})
    before = (store.commits(), store.namespaces(), store.versions("users"))
    yield store
    after = (store.commits(), store.namespaces(), store.versions("users"))
    assert after[0] == before[0], "a commit was made"
    assert after[1] == before[1], "a namespace was created"
    assert after[2].equals(before[2]), "versions changed"


Case = tuple[Callable[[koru.Store], Any], type[koru.KoruError], str]

CASES: dict[str, Case] = {
    # keys
    "empty key": (lambda s: s.put("users", "", {"age": 1}), koru.InvalidInputError, r"'users'.*key.*''"),
    "float key": (lambda s: s.put("users", 5.0, {"age": 1}), koru.InvalidInputError, r"'users'.*key.*5\.0"),
    "bool key": (lambda s: s.put("users", True, {"age": 1}), koru.InvalidInputError, r"'users'.*key.*True"),
    "tuple key without key columns": (
        lambda s: s.put("users", ("a", "b"), {"age": 1}), koru.InvalidInputError, r"'users'.*no key columns"),
    "mapping key without key columns": (
        lambda s: s.get("users", {"id": "alice"}), koru.InvalidInputError, r"'users'.*no key columns"),
    "None key": (lambda s: s.put("users", None, {"age": 1}), koru.InvalidInputError, r"'users'.*key.*None"),
    "empty key in delete": (lambda s: s.delete("users", ""), koru.InvalidInputError, r"'users'.*key"),
    "float key in get": (lambda s: s.get("users", 3.5), koru.InvalidInputError, r"'users'.*key.*3\.5"),
    "empty key in upsert": (
        lambda s: s.upsert("users", [{"id": "ok"}, {"id": ""}], key="id"), koru.InvalidInputError, r"'users'.*empty key"),
    "null key in upsert": (
        lambda s: s.upsert("users", [{"id": "ok"}, {"id": None}], key="id"), koru.InvalidInputError, r"'users'.*'id'.*null"),
    "float key column": (
        lambda s: s.upsert("users", [{"id": 1.5}], key="id"), koru.InvalidInputError, r"'users'.*'id'"),
    "missing key column": (
        lambda s: s.upsert("users", [{"name": "x"}], key="id"), koru.InvalidInputError, r"'users'.*key column 'id'"),
    "missing composite key part": (
        lambda s: s.upsert("users", [{"a": "x"}], key=["a", "b"]), koru.InvalidInputError, r"'users'.*'b'"),
    "no key column named": (
        lambda s: s.upsert("users", [{"a": "x"}], key=[]), koru.InvalidInputError, r"'users'.*key"),
    # namespaces
    "empty namespace": (lambda s: s.put("", "k", {"a": 1}), koru.InvalidInputError, r"namespace.*''"),
    "namespace with dash": (lambda s: s.put("a-b", "k", {"a": 1}), koru.InvalidInputError, r"namespace.*'a-b'"),
    "namespace with digit first": (lambda s: s.put("1users", "k", {"a": 1}), koru.InvalidInputError, r"'1users'"),
    "namespace with space": (lambda s: s.put("my users", "k", {"a": 1}), koru.InvalidInputError, r"'my users'"),
    "namespace with SQL": (
        lambda s: s.upsert("x; DROP TABLE y", [{"id": "k"}], key="id"), koru.InvalidInputError, r"DROP TABLE"),
    "namespace with newline": (lambda s: s.put("users\n", "k", {"a": 1}), koru.InvalidInputError, r"namespace"),
    "non-ASCII namespace": (lambda s: s.put("brukere_ø", "k", {"a": 1}), koru.InvalidInputError, r"brukere_ø"),
    "int namespace": (lambda s: s.put(7, "k", {"a": 1}), koru.InvalidInputError, r"namespace.*7"),
    "bad namespace in get": (lambda s: s.get("a.b", "k"), koru.InvalidInputError, r"'a.b'"),
    "bad namespace in as_of": (lambda s: s.as_of("a.b"), koru.InvalidInputError, r"'a.b'"),
    "bad namespace in tx": (lambda s: _tx(s, lambda tx: tx.put("a b", "k", {"a": 1})), koru.InvalidInputError, r"'a b'"),
    # values Arrow cannot represent
    "object value": (lambda s: s.put("users", "bob", {"x": object()}), koru.InvalidInputError, r"'users'.*'bob'"),
    "mixed list": (lambda s: s.put("users", "bob", {"x": [1, "a"]}), koru.InvalidInputError, r"'users'.*'bob'"),
    "int too large": (lambda s: s.put("users", "bob", {"x": 2**70}), koru.InvalidInputError, r"'users'.*'bob'"),
    "set value (unordered, so its content id varies per process)": (
        lambda s: s.put("users", "bob", {"x": {"apple", "banana"}}), koru.InvalidInputError, r"'users'.*'bob'"),
    "non-str field name": (lambda s: s.put("users", "bob", {1: "a"}), koru.InvalidInputError, r"'users'.*'bob'.*1"),
    "reserved field name": (lambda s: s.put("users", "bob", {"_key": "a"}), koru.InvalidInputError, r"'_key'"),
    "reserved column": (
        lambda s: s.upsert("users", [{"id": "b", "_secret": 1}], key="id"), koru.InvalidInputError, r"'_secret'"),
    "mixed column in dicts": (
        lambda s: s.upsert("users", [{"id": "b", "x": 1}, {"id": "c", "x": "one"}], key="id"),
        koru.InvalidInputError, r"'users'"),
    "not a table": (lambda s: s.upsert("users", "id,age\nb,3", key="id"), koru.InvalidInputError, r"'users'.*str"),
    "list of non-dicts": (lambda s: s.upsert("users", [("b", 3)], key="id"), koru.InvalidInputError, r"'users'"),
    # naive datetimes
    "naive valid_from in put": (
        lambda s: s.put("users", "bob", {"age": 1}, valid_from=NAIVE), koru.InvalidInputError, r"valid_from.*naive"),
    "naive valid_from in delete": (
        lambda s: s.delete("users", "alice", valid_from=NAIVE), koru.InvalidInputError, r"valid_from"),
    "naive at in get": (lambda s: s.get("users", "alice", at=NAIVE), koru.InvalidInputError, r"\bat\b.*naive"),
    "naive at in as_of": (lambda s: s.as_of("users", at=NAIVE), koru.InvalidInputError, r"\bat\b.*naive"),
    "naive since in changes": (lambda s: s.changes("users", since=NAIVE), koru.InvalidInputError, r"since"),
    "naive valid_from in upsert": (
        lambda s: s.upsert("users", [{"id": "b"}], key="id", valid_from=NAIVE), koru.InvalidInputError, r"valid_from"),
    "naive valid_from column": (
        lambda s: s.upsert("users", [{"id": "b", "vt": NAIVE}], key="id", valid_from="vt"),
        koru.InvalidInputError, r"'users'.*'vt'.*naive"),
    "naive pandas column": (
        lambda s: s.upsert("users", pd.DataFrame({"id": ["b"], "vt": [pd.Timestamp("2020-01-01")]}), key="id", valid_from="vt"),
        koru.InvalidInputError, r"'vt'"),
    "naive valid_from in tx": (
        lambda s: _tx(s, lambda tx: tx.put("users", "b", {"age": 1}, valid_from=NAIVE)), koru.InvalidInputError, r"valid_from"),
    "valid_from column missing": (
        lambda s: s.upsert("users", [{"id": "b"}], key="id", valid_from="vt"), koru.InvalidInputError, r"'users'.*'vt'"),
    "valid_from column not a time": (
        lambda s: s.upsert("users", [{"id": "b", "vt": "2020-01-01"}], key="id", valid_from="vt"),
        koru.InvalidInputError, r"'vt'.*timestamp"),
    "valid_from column with null": (
        lambda s: s.upsert("users", [{"id": "b", "vt": AWARE}, {"id": "c", "vt": None}], key="id", valid_from="vt"),
        koru.InvalidInputError, r"'vt'.*null"),
    "valid_from a string instant": (
        lambda s: s.put("users", "b", {"age": 1}, valid_from="2020-01-01T00:00Z"), koru.InvalidInputError, r"valid_from"),
    "valid_from after 2262": (
        lambda s: s.put("users", "b", {"age": 1}, valid_from=datetime(3000, 1, 1, tzinfo=UTC)),
        koru.InvalidInputError, r"valid_from.*range"),
    "at before 1677": (
        lambda s: s.as_of("users", at=datetime(1600, 1, 1, tzinfo=UTC)), koru.InvalidInputError, r"\bat\b.*range"),
    "valid_from column out of range": (
        lambda s: s.upsert("users", [{"id": "b", "vt": datetime(3000, 1, 1, tzinfo=UTC)}], key="id", valid_from="vt"),
        koru.InvalidInputError, r"'users'.*'vt'"),
    # schema conflicts
    "int64 to string": (
        lambda s: s.put("users", "bob", {"age": "old"}), koru.SchemaError, r"'users'.*'age'.*int64.*string"),
    "int64 to string in upsert": (
        lambda s: s.upsert("users", [{"id": "bob", "age": "x"}, {"id": "carl", "age": "y"}], key="id"),
        koru.SchemaError, r"'age'.*int64.*string"),
    "string to list": (
        lambda s: s.put("users", "bob", {"name": ["B"]}), koru.SchemaError, r"'name'.*string.*list"),
    "schema conflict in tx": (
        lambda s: _tx(s, lambda tx: (tx.put("users", "b", {"age": 2}), tx.put("users", "c", {"age": "x"}))),
        koru.SchemaError, r"'age'"),
    # duplicates
    "duplicate key without valid time": (
        lambda s: s.upsert("users", [{"id": "b", "age": 1}, {"id": "b", "age": 2}], key="id"),
        koru.InvalidInputError, r"'users'.*'b'"),
    "duplicate key and valid time": (
        lambda s: s.upsert("users", [{"id": "b", "vt": AWARE, "age": 1}, {"id": "c", "vt": AWARE, "age": 1},
                                     {"id": "b", "vt": AWARE, "age": 2}], key="id", valid_from="vt"),
        koru.InvalidInputError, r"'users'.*'b'"),
    "duplicate composite key": (
        lambda s: s.upsert("users", [{"a": "x", "b": 1}, {"a": "x", "b": 1}], key=["a", "b"]),
        koru.InvalidInputError, r"'users'.*'x\|1'"),
    # NaN / inf: refused (NaN equals nothing, so "unchanged" could never hold)
    "NaN": (lambda s: s.put("users", "bob", {"score": math.nan}), koru.InvalidInputError, r"'users'.*'score'.*NaN"),
    "inf": (lambda s: s.put("users", "bob", {"score": math.inf}), koru.InvalidInputError, r"'score'"),
    "-inf bare value": (lambda s: s.put("nums", "x", -math.inf), koru.InvalidInputError, r"'nums'.*'value'"),
    "NaN in a list": (lambda s: s.put("users", "bob", {"xs": [1.0, math.nan]}), koru.InvalidInputError, r"'xs"),
    "inf in a struct": (lambda s: s.put("users", "bob", {"p": {"q": math.inf}}), koru.InvalidInputError, r"'p\.q'"),
    "NaN in arrow upsert": (
        lambda s: s.upsert("users", pa.table({"id": ["b", "c"], "score": [1.0, math.nan]}), key="id"),
        koru.InvalidInputError, r"'users'.*'score'"),
    "NaN in polars upsert": (
        lambda s: s.upsert("users", pl.DataFrame({"id": ["b"], "score": [float("nan")]}), key="id"),
        koru.InvalidInputError, r"'score'"),
    # read arguments
    "version 0": (lambda s: s.get("users", "alice", version=0), koru.InvalidInputError, r"'users'.*version"),
    "version too large": (lambda s: s.as_of("users", version=99), koru.InvalidInputError, r"version.*99"),
    "version bool": (lambda s: s.as_of("users", version=True), koru.InvalidInputError, r"version"),
    "mixed change bounds": (lambda s: s.changes("users", since=0, until=AWARE), koru.InvalidInputError, r"'users'"),
    "string change bound": (lambda s: s.changes("users", since="1"), koru.InvalidInputError, r"'users'"),
    "unknown namespace read": (lambda s: s.as_of("nobody"), koru.NamespaceNotFoundError, r"'nobody'"),
}


def _tx(store: koru.Store, body: Callable[[koru.Transaction], Any]) -> None:
    with store.transaction() as tx:
        body(tx)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_nothing_is_written(seeded: koru.Store, case: str) -> None:
    call, error, message = CASES[case]
    with pytest.raises(koru.KoruError) as info:
        call(seeded)
    assert type(info.value) is error, f"{case}: got {type(info.value).__name__}: {info.value}"
    assert re.search(message, str(info.value), re.S), f"{case}: message {str(info.value)!r} !~ {message!r}"


def test_error_classes_mix_in_builtins() -> None:
    assert issubclass(koru.InvalidInputError, ValueError)
    assert issubclass(koru.SchemaError, TypeError)
    assert issubclass(koru.KeyNotFoundError, LookupError)
    assert issubclass(koru.NamespaceNotFoundError, LookupError)
    for cls in (koru.InvalidInputError, koru.SchemaError, koru.KeyNotFoundError, koru.NamespaceNotFoundError,
                koru.ConflictError, koru.StoreLockedError, koru.CorruptionError):
        assert issubclass(cls, koru.KoruError)


def test_store_path_that_is_a_file(tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(koru.InvalidInputError, match="file"):
        koru.open(f)


def test_a_bad_row_rejects_the_whole_batch(seeded: koru.Store) -> None:
    rows = [{"id": f"k{i}", "score": float(i)} for i in range(2000)] + [{"id": "bad", "score": math.nan}]
    with pytest.raises(koru.InvalidInputError, match="'score'"):
        seeded.upsert("users", rows, key="id")
