"""Dagster assets stored in koru: materialize twice (the second run writes nothing and keeps
its data version), with no Dagster instance: `fleet` is still pinned to the commit `aircraft`
wrote (found in the store), so a write made outside Dagster is not read until `aircraft`
is materialized again. Then follow one record's lineage back to the upstream rows and runs.

Run: python examples/04_dagster_assets.py
"""

import tempfile

import polars as pl
import pyarrow as pa
from dagster import asset, materialize

import koru_core as koru
from koru_dagster import KoruIOManager


@asset(metadata={"koru/key": "tailnum"})
def aircraft() -> pa.Table:
    return pa.table(
        {"tailnum": ["N1", "N2", "N3"], "carrier": ["UA", "AA", "UA"], "seats": [180, 160, 150]}
    )


@asset(metadata={"koru/key": "carrier"})
def fleet(aircraft: pl.DataFrame) -> pl.DataFrame:
    # `_parents` per row: each carrier's record names the aircraft versions it sums
    return (
        aircraft.group_by("carrier")
        .agg(
            pl.len().alias("aircraft"), pl.col("seats").sum(), pl.col("_write_id").alias("_parents")
        )
        .sort("carrier")
    )


with tempfile.TemporaryDirectory() as folder:
    resources = {"io_manager": KoruIOManager(store=folder)}
    for attempt in (1, 2):
        result = materialize([aircraft, fleet], resources=resources)  # a throwaway instance each time
        [m] = result.asset_materializations_for_node("fleet")
        print(
            f"run {attempt}: commit {m.metadata['koru/commit'].value}, "
            f"written {m.metadata['koru/rows_written'].value}, "
            f"unchanged {m.metadata['koru/rows_unchanged'].value}, "
            f"inputs {m.metadata['koru/inputs'].value}, "
            f"data version {m.tags['dagster/data_version'][:12]}"
        )
    with koru.open(folder) as store:  # a fix made by hand, outside Dagster
        store.put("aircraft", "N3", {"tailnum": "N3", "carrier": "AA", "seats": 150})
    materialize([aircraft.to_source_asset(), fleet], resources=resources)  # pinned: ignores the fix

    with koru.open(folder) as store:
        print("fleet, pinned:", store.as_of("fleet").select(["carrier", "aircraft", "seats"]).to_pylist())
        for node in store.lineage("fleet", "UA").nodes.to_pylist():
            print(
                f"  {node['namespace']:>8} {node['_key']:>4}  "
                f"run {node['_run_id'][:8]}  depth {node['depth']}"
            )
