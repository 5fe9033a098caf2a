"""Fixtures for koru_duckdb: a real store with a history, and a comparison of SQL results with the core's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

pytest.importorskip("duckdb")
pytest.importorskip("sqlglot")

import koru_core as koru  # noqa: E402
import koru_duckdb  # noqa: E402

UTC = timezone.utc
T2020 = datetime(2020, 1, 1, tzinfo=UTC)


def at(days: float) -> datetime:
    """A valid time ``days`` after 2020-01-01 UTC."""
    return T2020 + timedelta(days=days)


def _plain(t: pa.DataType) -> pa.DataType:
    """``t`` without list item names (DuckDB calls them ``l``, pyarrow ``item``)."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in t])
    return t


def assert_same_table(got: pa.Table, want: pa.Table, *, sort_by: list[str] | None = None) -> None:
    """Assert two Arrow tables hold the same columns (names, types, order) and rows.

    Nullability and list item names are ignored; rows are compared after sorting
    both by ``sort_by`` (default: by ``_key``, ``_valid_from``, ``_commit`` where
    present — an as-of state has no order — else keep the order, which must match).
    """
    assert got.column_names == want.column_names
    assert [_plain(t) for t in got.schema.types] == [_plain(t) for t in want.schema.types]
    got = got.cast(want.schema)
    if sort_by is None:
        sort_by = [c for c in ("_key", "_valid_from", "_commit") if c in want.column_names] or None
    if sort_by:
        got, want = got.sort_by([(c, "ascending") for c in sort_by]), want.sort_by([(c, "ascending") for c in sort_by])
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        assert got[name].to_pylist() == want[name].to_pylist(), name


@pytest.fixture
def same() -> Callable[..., None]:
    """:func:`assert_same_table`, as a fixture."""
    return assert_same_table


def write_history(store: koru.Store) -> None:
    """Two namespaces with late arrivals, a correction at the same valid time, deletes,
    schema growth (int32 widened to int64, a new column) and versions both in
    Parquet files (flushed) and pending in the catalog."""
    store.put("users", "alice", {"name": "Alice", "age": 31}, valid_from=at(0))
    store.put("users", "bob", {"name": "Bob", "age": 40}, valid_from=at(10))
    store.put("users", "alice", {"name": "Alice", "age": 33}, valid_from=at(100))
    store.upsert(
        "orders",
        pa.table({"id": ["o1", "o2"], "user_id": ["alice", "bob"], "qty": pa.array([1, 2], pa.int32())}),
        key="id", valid_from=at(5),
    )
    store.flush()
    store.put("users", "alice", {"name": "Alice", "age": 32}, valid_from=at(50))  # late arrival
    store.put("users", "bob", {"name": "Robert", "age": 25}, valid_from=at(10))  # correction, same valid time
    store.delete("users", "bob", valid_from=at(200))
    store.put("users", "carol", {"name": "Carol", "age": 7})  # valid from now
    store.upsert(
        "orders",
        [{"id": "o1", "user_id": "alice", "qty": 2**40, "note": "big"}, {"id": "o3", "user_id": "carol", "qty": 3}],
        key="id", valid_from=at(60),
    )
    store.delete("orders", "o2", valid_from=at(150))


@pytest.fixture
def history(store: koru.Store) -> koru.Store:
    """The store of ``tests/conftest.py`` with :func:`write_history` written to it."""
    write_history(store)
    return store


@pytest.fixture
def con(history: koru.Store) -> Iterator[koru_duckdb.KoruConnection]:
    """A koru_duckdb connection over ``history``."""
    c = koru_duckdb.connect(history)
    try:
        yield c
    finally:
        c.close()
