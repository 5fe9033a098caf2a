"""KoruIOManager: partitions, pinned and time-travel inputs, input types, bad metadata (issue 6)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytest.importorskip("dagster")
pl = pytest.importorskip("polars")
pd = pytest.importorskip("pandas")

import pyarrow as pa  # noqa: E402
from dagster import (  # noqa: E402
    AssetIn,
    DagsterInstance,
    DailyPartitionsDefinition,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager, KoruResource, namespace_for  # noqa: E402

DAYS = DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-03-04")
ROWS: dict[str, list[dict]] = {}  # what the test assets return; tests change it between runs


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@asset(partitions_def=DAYS, metadata={"koru/key": "sensor"})  # koru/mode "replace": the default
def readings(context) -> pa.Table:
    return pa.Table.from_pylist(ROWS[context.partition_key])


@asset(partitions_def=DAYS, metadata={"koru/key": "sensor"})
def daily_max(readings: pl.DataFrame) -> pl.DataFrame:
    return readings.select("sensor", "value", "_write_id").sort("sensor")


@asset(metadata={"koru/key": "sensor"})
def source() -> pa.Table:
    return pa.Table.from_pylist(ROWS["source"])


@asset(metadata={"koru/key": "sensor"})
def pinned_copy(source: pd.DataFrame) -> pd.DataFrame:
    return source[["sensor", "value"]]


@asset(ins={"source": AssetIn(metadata={"koru/pin": False})}, metadata={"koru/key": "sensor"})
def latest_copy(source: pa.Table) -> pa.Table:
    return source.select(["sensor", "value"])


@asset(metadata={"koru/key": "n"})
def summary(source: pl.LazyFrame) -> pl.LazyFrame:
    """No _write_id in the output: every row gets all loaded write ids as parents."""
    return source.select(pl.len().alias("n"), pl.col("value").sum().alias("total"))


def io(store_path: str) -> dict:
    return {"io_manager": KoruIOManager(store=store_path)}


def test_namespace_for_is_a_sql_identifier():
    from dagster import AssetKey

    assert namespace_for(AssetKey(["nyc", "raw-flights"])) == "nyc__raw_flights"
    assert namespace_for(AssetKey(["1st", "a.b"])) == "_1st__a_b"


def test_partition_rerun_adds_versions_and_keeps_history(store_path, instance):
    ROWS.update(
        {
            "2024-03-01": [{"sensor": "a", "value": 1}, {"sensor": "b", "value": 2}],
            "2024-03-02": [{"sensor": "a", "value": 10}, {"sensor": "b", "value": 20}],
        }
    )
    for day in ("2024-03-01", "2024-03-02"):
        assert materialize(
            [readings], partition_key=day, resources=io(store_path), instance=instance
        ).success
    ROWS["2024-03-01"] = [{"sensor": "a", "value": 5}]  # a changed, b gone
    again = materialize(
        [readings], partition_key="2024-03-01", resources=io(store_path), instance=instance
    )
    [m] = again.asset_materializations_for_node("readings")
    assert (m.metadata["koru/rows_written"].value, m.metadata["koru/rows_deleted"].value) == (1, 1)
    assert m.metadata["dagster/row_count"].value == 1
    with koru.open(store_path) as store:
        history = store.history("readings", "2024-03-01|a").to_pylist()  # partition, then key
        assert [(h["value"], h["_valid_from"]) for h in history] == [
            (1, utc(2024, 3, 1)),
            (5, utc(2024, 3, 1)),
        ]
        with pytest.raises(koru.KeyNotFoundError):
            store.get("readings", "2024-03-01|b")  # dropped from day 1 by the re-run: a tombstone
        assert store.get("readings", "2024-03-01|b", version=1)["value"] == 2  # history kept
        assert store.get("readings", "2024-03-02|b")["value"] == 20  # day 2 untouched
    # a downstream partition reads exactly its day
    for day, expected in (("2024-03-01", [("a", 5)]), ("2024-03-02", [("a", 10), ("b", 20)])):
        result = materialize(
            [readings.to_source_asset(), daily_max],
            partition_key=day,
            resources=io(store_path),
            instance=instance,
        )
        assert result.success
        with koru.open(store_path) as store:
            state = store.as_of("daily_max")
            assert [
                (r["sensor"], r["value"]) for r in state.to_pylist() if r["partition"] == day
            ] == expected


def test_equal_rows_in_two_time_partitions_are_both_kept(store_path, instance):
    """A row equal to the previous day's must still be read back for its own day."""
    ROWS.update({d: [{"sensor": "a", "value": 7}] for d in ("2024-03-01", "2024-03-02")})
    for day in ("2024-03-01", "2024-03-02"):
        result = materialize(
            [readings, daily_max], partition_key=day, resources=io(store_path), instance=instance
        )
        [m] = result.asset_materializations_for_node("daily_max")
        assert m.metadata["dagster/row_count"].value == 1


def test_static_partitions_map_to_a_partition_column(store_path, instance):
    regions = StaticPartitionsDefinition(["north", "south"])

    @asset(partitions_def=regions, metadata={"koru/key": "sensor"})
    def stations(context) -> pl.DataFrame:
        return pl.DataFrame(
            {"sensor": ["s1"], "value": [1 if context.partition_key == "north" else 2]}
        )

    @asset(partitions_def=regions)
    def station_count(context, stations: pa.Table) -> None:
        assert stations["partition"].to_pylist() == [context.partition_key]
        assert stations["value"].to_pylist() == [1 if context.partition_key == "north" else 2]

    for region in ("north", "south"):
        assert materialize(
            [stations], partition_key=region, resources=io(store_path), instance=instance
        ).success
        assert materialize(
            [stations.to_source_asset(), station_count],
            partition_key=region,
            resources=io(store_path),
            instance=instance,
        ).success
    with koru.open(store_path) as store:
        state = store.as_of("stations")
        assert sorted(state["_key"].to_pylist()) == [
            "north|s1",
            "south|s1",
        ]  # same sensor, two partitions


def test_multi_partitions_use_time_and_static_dimensions(store_path, instance):
    parts = MultiPartitionsDefinition(
        {"date": DAYS, "region": StaticPartitionsDefinition(["n", "s"])}
    )

    @asset(partitions_def=parts, metadata={"koru/key": "sensor"})
    def grid(context) -> pa.Table:
        keys = context.partition_key.keys_by_dimension
        return pa.table({"sensor": ["x"], "value": [f"{keys['date']}/{keys['region']}"]})

    for key in ("2024-03-01|n", "2024-03-02|s"):
        assert materialize(
            [grid], partition_key=key, resources=io(store_path), instance=instance
        ).success
    with koru.open(store_path) as store:
        rows = store.versions("grid").to_pylist()
        assert sorted((r["date"], r["region"], r["value"], r["_valid_from"]) for r in rows) == [
            ("2024-03-01", "n", "2024-03-01/n", utc(2024, 3, 1)),
            ("2024-03-02", "s", "2024-03-02/s", utc(2024, 3, 2)),
        ]


def test_pinned_input_reads_recorded_commit_after_upstream_changes(store_path, instance):
    ROWS["source"] = [{"sensor": "a", "value": 1}, {"sensor": "b", "value": 2}]
    first = materialize([source], resources=io(store_path), instance=instance)
    pinned_at = first.asset_materializations_for_node("source")[0].metadata["koru/commit"].value
    # the upstream is re-materialized elsewhere (another deployment on the same store)
    ROWS["source"] = [{"sensor": "a", "value": 100}, {"sensor": "b", "value": 2}]
    other = DagsterInstance.ephemeral()
    assert materialize([source], resources=io(store_path), instance=other).success
    result = materialize(
        [source.to_source_asset(), pinned_copy, latest_copy],
        resources=io(store_path),
        instance=instance,
    )
    assert result.success
    with koru.open(store_path) as store:
        assert store.get("pinned_copy", "a")["value"] == 1  # read at commit `pinned_at`
        assert store.get("latest_copy", "a")["value"] == 100  # koru/pin: False
        parents = store.history("pinned_copy", "a")["_parents"][0].as_py()
        old = store.as_of("source", version=pinned_at)
        assert sorted(parents) == sorted(old["_write_id"].to_pylist())
    # re-materialized in this instance: the pin moves to the new commit
    assert materialize([source], resources=io(store_path), instance=instance).success
    assert materialize(
        [source.to_source_asset(), pinned_copy], resources=io(store_path), instance=instance
    ).success
    with koru.open(store_path) as store:
        assert store.get("pinned_copy", "a")["value"] == 100


def test_version_and_at_inputs_travel_in_time(store_path, instance):
    ROWS["source"] = [{"sensor": "a", "value": 1}]
    assert materialize([source], resources=io(store_path), instance=instance).success
    ROWS["source"] = [{"sensor": "a", "value": 2}]
    assert materialize([source], resources=io(store_path), instance=instance).success

    @asset(
        ins={"source": AssetIn(metadata={"koru/version": 1, "columns": ["value"]})},
        metadata={"koru/key": "value"},
    )
    def at_version_one(source: pa.Table) -> pa.Table:
        assert source.column_names == [
            "value",
            "_key",
            "_valid_from",
            "_system_from",
            "_commit",
            "_write_id",
        ]
        return source.select(["value"])

    @asset(
        ins={"source": AssetIn(metadata={"koru/at": "2000-01-01T00:00:00+00:00"})},
        metadata={"koru/key": "sensor"},
    )
    def before_anything(source: pa.Table) -> None:
        assert source.num_rows == 0

    result = materialize(
        [source.to_source_asset(), at_version_one, before_anything],
        resources=io(store_path),
        instance=instance,
    )
    assert result.success
    with koru.open(store_path) as store:
        assert store.as_of("at_version_one")["value"].to_pylist() == [1]


def test_commit_granularity_parents_and_lazy_frames(store_path, instance):
    ROWS["source"] = [{"sensor": "a", "value": 1}, {"sensor": "b", "value": 2}]
    assert materialize([source], resources=io(store_path), instance=instance).success
    result = materialize(
        [source.to_source_asset(), summary], resources=io(store_path), instance=instance
    )
    assert result.success
    with koru.open(store_path) as store:
        [row] = store.as_of("summary").to_pylist()
        assert (row["n"], row["total"]) == (2, 3)
        graph = store.lineage("summary", "2")
        upstream = {n["_key"] for n in graph.nodes.to_pylist() if n["namespace"] == "source"}
        assert upstream == {"a", "b"}
        assert store.history("summary", "2")["_run_id"].to_pylist() == [result.run_id]
    # the same IO manager object in a later run: parents are that run's loads only
    manager = io(store_path)
    for b in (5, 9):
        ROWS["source"] = [{"sensor": "a", "value": 1}, {"sensor": "b", "value": b}]
        for assets in ([source], [source.to_source_asset(), summary]):
            assert materialize(assets, resources=manager, instance=instance).success
    with koru.open(store_path) as store:
        latest = store.history("summary", "2").to_pylist()[-1]
        assert latest["total"] == 10
        assert sorted(latest["_parents"]) == sorted(store.as_of("source")["_write_id"].to_pylist())


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"koru/keys": "sensor"}, "unknown metadata key 'koru/keys'"),
        ({"koru/key": "sensor", "koru/pin": False}, "applies to inputs"),
        ({}, "no key column"),
    ],
)
def test_bad_metadata_is_invalid_input(store_path, instance, metadata, message):
    @asset(name="bad", metadata=metadata)
    def bad() -> pa.Table:
        return pa.table({"sensor": ["a"]})

    with pytest.raises(koru.InvalidInputError, match=message):
        materialize([bad], resources=io(store_path), instance=instance)
    with koru.open(store_path) as store:
        assert store.commits() == []  # nothing written


def test_valid_from_column_overrides_the_partition_start(store_path, instance):
    @asset(partitions_def=DAYS, metadata={"koru/key": "sensor", "koru/valid_from": "seen"})
    def sightings(context) -> pa.Table:
        start = context.partition_time_window.start
        return pa.table(
            {
                "sensor": ["a", "b"],
                "seen": pa.array(
                    [start.replace(hour=6), start.replace(hour=18)], pa.timestamp("us", tz="UTC")
                ),
            }
        )

    @asset(partitions_def=DAYS)
    def check_day(sightings: pa.Table) -> None:
        assert sightings.num_rows == 2 and "seen" not in sightings.column_names

    for day in ("2024-03-01", "2024-03-02"):
        assert materialize(
            [sightings, check_day], partition_key=day, resources=io(store_path), instance=instance
        ).success
    with koru.open(store_path) as store:
        assert store.history("sightings", "2024-03-02|a")["_valid_from"].to_pylist() == [
            utc(2024, 3, 2, 6)
        ]
        assert store.history("sightings", "2024-03-02|b")["_valid_from"].to_pylist() == [
            utc(2024, 3, 2, 18)
        ]


def test_empty_first_output_writes_nothing(store_path, instance):
    @asset(metadata={"koru/key": "id"})
    def nothing_yet() -> pa.Table:
        return pa.table({"id": pa.array([], pa.string())})

    result = materialize([nothing_yet], resources=io(store_path), instance=instance)
    [m] = result.asset_materializations_for_node("nothing_yet")
    assert (m.metadata["koru/commit"].value, m.metadata["dagster/row_count"].value) == (0, 0)


def test_resource_opens_the_store_for_an_asset(store_path, instance):
    @asset
    def direct(koru_store: KoruResource) -> None:
        with koru_store.open() as store:
            store.put("direct", "k", {"v": 1}, actor="asset")

    assert materialize(
        [direct], resources={"koru_store": KoruResource(store=store_path)}, instance=instance
    ).success
    with koru.open(store_path) as store:
        assert store.get("direct", "k") == {"v": 1}
