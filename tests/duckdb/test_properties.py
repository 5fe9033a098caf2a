"""Hypothesis: on random histories, DuckDB's ``AT (…)`` results equal ``store.as_of``.

Histories mix puts, deletes and multi-row upserts (backfills with several
versions of a key), with valid times drawn from a small set given in several
time zones (so late arrivals, ties at one valid time, and corrections happen),
and flushes (so versions sit both in Parquet files and pending in the catalog).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from duckdb_checks import assert_same_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import koru_core as koru
import koru_duckdb

BASE = datetime(2020, 1, 1, tzinfo=timezone.utc)
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
TIMES = [BASE + timedelta(hours=h) for h in range(5)]
KEYS = ["a", "b", "c"]

times = st.builds(lambda t, z: t.astimezone(z), st.sampled_from(TIMES), st.sampled_from(ZONES))
values = st.fixed_dictionaries({"n": st.integers(0, 2)}, optional={"s": st.sampled_from(["x", "y"])})
puts = st.tuples(st.just("put"), st.sampled_from(KEYS), values, st.none() | times)
deletes = st.tuples(st.just("delete"), st.sampled_from(KEYS), st.none(), st.none() | times)
upserts = st.tuples(
    st.just("upsert"),
    st.lists(st.tuples(st.sampled_from(KEYS), values, times), min_size=1, max_size=4),
    st.none(),
    st.none(),
)
flushes = st.tuples(st.just("flush"), st.none(), st.none(), st.none())
operations = st.lists(st.one_of(puts, puts, deletes, upserts, flushes), min_size=1, max_size=10)
# points to read at: the write times (ties), between them, before all and far after
points = st.sampled_from(TIMES) | st.sampled_from(TIMES).map(lambda t: t + timedelta(minutes=30)) | st.sampled_from(
    [BASE - timedelta(days=1), datetime(2099, 1, 1, tzinfo=timezone.utc)]
)


def apply(store: koru.Store, op: tuple[Any, ...]) -> None:
    kind, a, b, c = op
    try:
        if kind == "put":
            store.put("ns", a, b, valid_from=c)
        elif kind == "delete":
            store.delete("ns", a, valid_from=c)
        elif kind == "upsert":
            rows = [{"id": key, **value, "vf": when} for key, value, when in a]
            store.upsert("ns", rows, key="id", valid_from="vf")
        else:
            store.flush()
    except (koru.KeyNotFoundError, koru.NamespaceNotFoundError, koru.InvalidInputError):
        pass  # deleting a dead key or in no namespace yet; two upsert rows at one (key, valid time): refused


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, reads=st.lists(st.tuples(points, st.integers(0, 12)), min_size=1, max_size=4))
def test_at_equals_store_as_of(ops: list[tuple[Any, ...]], reads: list[tuple[datetime, int]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="koru-duckdb-prop-"))
    store = koru.open(folder / "s", durability="process")
    try:
        for op in ops:
            apply(store, op)
        if not store.namespaces():
            return
        head = store.commits()[-1].commit
        with koru_duckdb.connect(store) as con:
            assert_same_table(con.sql("SELECT * FROM ns ORDER BY _key").to_arrow_table(), store.as_of("ns"))
            for when, pick in reads:
                version = 1 + pick % head
                by_time = con.sql("SELECT * FROM ns AT (TIMESTAMP => ?) ORDER BY _key", params=[when])
                assert_same_table(by_time.to_arrow_table(), store.as_of("ns", at=when))
                by_version = con.sql("SELECT * FROM ns AT (VERSION => ?) ORDER BY _key", params=[version])
                assert_same_table(by_version.to_arrow_table(), store.as_of("ns", version=version))
                both = con.sql("SELECT * FROM koru_at('ns', valid := ?, version := ?) ORDER BY _key",
                               params=[when, version])
                assert_same_table(both.to_arrow_table(), store.as_of("ns", at=when, version=version))
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, reads=st.lists(st.tuples(points, st.integers(0, 12)), min_size=1, max_size=4))
def test_at_equals_store_as_of_deep(ops: list[tuple[Any, ...]], reads: list[tuple[datetime, int]]) -> None:
    test_at_equals_store_as_of.hypothesis.inner_test(ops, reads)  # type: ignore[attr-defined]
