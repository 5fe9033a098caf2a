"""A Dagster job for tests/dagster/test_dagster_shared_store.py, importable by the step
processes of the multiprocess executor: four assets that each write one namespace of a
shared store (``KORU_TEST_*`` environment variables) and one that reads them all."""

from __future__ import annotations

import json
import os

import pyarrow as pa
from dagster import AssetIn, Definitions, asset, define_asset_job

from koru_dagster import KoruIOManager

PARTS = 4


def _asset(i: int):  # noqa: ANN202 - a Dagster asset
    @asset(name=f"part_{i}", metadata={"koru/key": "id"})
    def part() -> pa.Table:
        return pa.table({"id": [f"p{i}-{j}" for j in range(50)], "v": [i * 1000 + j for j in range(50)]})

    return part


parts = [_asset(i) for i in range(PARTS)]


@asset(ins={f"part_{i}": AssetIn() for i in range(PARTS)}, metadata={"koru/key": "part"})
def total(**inputs: pa.Table) -> pa.Table:
    names = sorted(inputs)
    return pa.table({"part": names, "v": [sum(inputs[n]["v"].to_pylist()) for n in names]})


def io_manager() -> KoruIOManager:
    return KoruIOManager(store=os.environ["KORU_TEST_STORE"], catalog=os.environ["KORU_TEST_CATALOG"],
                         storage_options=json.loads(os.environ["KORU_TEST_STORAGE_OPTIONS"]))


def make_job():  # noqa: ANN201 - a Dagster job, rebuilt in every step process
    defs = Definitions(assets=[*parts, total], jobs=[define_asset_job("shared", selection="*")],
                       resources={"io_manager": io_manager()})
    return defs.resolve_job_def("shared")
