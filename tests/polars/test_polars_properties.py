"""scan_koru, history and scan_koru_changes equal koru_core on hypothesis-generated histories.

Histories mix puts, deletes and multi-row upserts, at random tz-aware valid times
(late arrivals, and corrections at the same valid time in a later commit), with
narrower int types and new fields in early commits, and random flushes,
consolidations and distillations, so the plan reads warm and cold data files
of different schemas plus pending versions.
"""

from __future__ import annotations

import datetime as dt
import tempfile

import pytest

pl = pytest.importorskip("polars")
hypothesis = pytest.importorskip("hypothesis")

import pyarrow as pa  # noqa: E402
from polars_checks import as_frame, assert_same_rows  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_polars import scan_koru, scan_koru_changes  # noqa: E402

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
KEYS = ["a", "b", "c", "d"]
ZONES = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-7))]


@st.composite
def valid_times(draw) -> dt.datetime:
    """One of a few instants (so corrections at the same valid time happen), in some zone."""
    minutes = draw(st.sampled_from([0, 10, 20, 30, 40, 50, 60]))
    return (T0 + dt.timedelta(minutes=minutes)).astimezone(draw(st.sampled_from(ZONES)))


put = st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(-3, 3), st.none() | valid_times())
delete = st.tuples(st.just("delete"), st.sampled_from(KEYS), st.none(), st.none() | valid_times())
upsert = st.tuples(
    st.just("upsert"),
    st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-3, 3), valid_times()), min_size=1, max_size=5),
    st.booleans(),  # int32 column (a narrower type, widened by later writes)
    st.booleans(),  # add the optional field "note"
)
maintain = st.tuples(st.sampled_from(["flush", "consolidate", "distill"]))
histories = st.lists(st.one_of(put, put, delete, upsert, upsert, maintain), min_size=1, max_size=12)


def apply(store: koru.Store, op: tuple) -> None:
    kind = op[0]
    if kind == "put":
        _, key, x, at = op
        store.put("h", key, {"x": x}, valid_from=at)
    elif kind == "delete":
        _, key, _, at = op
        try:
            store.delete("h", key, valid_from=at)
        except (koru.KeyNotFoundError, koru.NamespaceNotFoundError):
            pass
    elif kind == "upsert":
        _, rows, narrow, note = op
        rows = list({(k, v.astimezone(dt.timezone.utc)): (k, x, v) for k, x, v in rows}.values())
        data = {
            "k": [k for k, _, _ in rows],
            "x": pa.array([x for _, x, _ in rows], pa.int32() if narrow else pa.int64()),
            "vt": pa.array([v for _, _, v in rows], pa.timestamp("us", tz="UTC")),
        }
        if note:
            data["note"] = [f"n{x}" for _, x, _ in rows]
        store.upsert("h", pa.table(data), key="k", valid_from="vt")
    elif "h" not in store.namespaces():
        pass
    elif kind == "flush":
        store.flush()
    elif kind == "consolidate":
        store.consolidate()  # cold files: sorted, a _valid_to column, one folder per month
    else:
        store.distill(koru.KeepLast(2))


def refusal(read):
    """The type of the ``KoruError`` that ``read()`` raises, or None if it answers.

    Both engines must refuse the same reads: a point whose versions distillation
    dropped (``PrunedError``), a change-feed window whose ``since`` is after ``until``.
    """
    try:
        read()
    except koru.KoruError as e:
        return type(e)
    return None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories, data=st.data())
def test_scan_koru_equals_core_as_of(history, data):
    with tempfile.TemporaryDirectory() as path, koru.open(path, durability="process") as store:
        for op in history:
            apply(store, op)
        if "h" not in store.namespaces():
            return
        head = len(store.commits())
        for _ in range(3):
            at = data.draw(st.none() | valid_times(), label="at")
            version = data.draw(st.none() | st.integers(1, head), label="version")
            refused = refusal(lambda: store.as_of("h", at=at, version=version))
            if refused is not None:
                assert refusal(lambda: scan_koru(store, "h", at=at, version=version).collect()) is refused
                continue
            actual = scan_koru(store, "h", at=at, version=version).collect()
            assert_same_rows(actual, as_frame(store.as_of("h", at=at, version=version)))
            positive = scan_koru(store, "h", at=at, version=version).filter(pl.col("x") > 0).collect()
            expected = as_frame(store.as_of("h", at=at, version=version)).filter(pl.col("x") > 0)
            assert_same_rows(positive, expected)
        version = data.draw(st.none() | st.integers(1, head), label="history version")
        history_frame = scan_koru(store, "h", version=version, history=True).collect()
        assert history_frame.equals(as_frame(store.versions("h", version=version)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories, data=st.data())
def test_scan_koru_changes_equals_core_changes(history, data):
    with tempfile.TemporaryDirectory() as path, koru.open(path, durability="process") as store:
        for op in history:
            apply(store, op)
        if "h" not in store.namespaces():
            return
        head = len(store.commits())
        since = data.draw(st.none() | st.integers(0, head), label="since")
        until = data.draw(st.none() | st.integers(0, head), label="until")
        lo = data.draw(st.none() | valid_times(), label="valid since")
        hi = data.draw(st.none() | valid_times(), label="valid until")
        for a, b in ((since, until), (lo, hi)):
            refused = refusal(lambda: store.changes("h", since=a, until=b))
            if refused is not None:
                assert refusal(lambda: scan_koru_changes(store, "h", since=a, until=b).collect()) is refused
                continue
            feed = scan_koru_changes(store, "h", since=a, until=b).collect()
            assert feed.equals(as_frame(store.changes("h", since=a, until=b)))
