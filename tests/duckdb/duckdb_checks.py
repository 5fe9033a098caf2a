"""Shared checks for the koru_duckdb tests: valid times, and comparing SQL results with the core's.

A module of its own (as ``tests/polars/polars_checks.py``), not ``conftest``: ``from conftest
import …`` finds whichever test folder's conftest pytest loaded last.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

__all__ = ["T2020", "UTC", "assert_same_table", "at"]

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
