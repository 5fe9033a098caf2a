"""Fixtures for koru_duckdb: a real store with a history, and a comparison of SQL results with the core's."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import duckdb_checks` from the tests

pytest.importorskip("duckdb")
pytest.importorskip("sqlglot")

from duckdb_checks import assert_same_table, at  # noqa: E402

import koru_core as koru  # noqa: E402
import koru_duckdb  # noqa: E402


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
