"""Polars over a store on S3 (SeaweedFS) with its catalog in PostgreSQL (issue 15): Polars reads
the plan's ``s3://`` files itself, with ``storage_options`` as ``pl.scan_delta`` takes them."""

from __future__ import annotations

import polars as pl
import pytest
from servers import SharedStore

from koru_polars import read_koru, scan_koru, write_koru

pytest.importorskip("psycopg")


def test_scan_koru_on_object_storage_equals_the_core(shared_store: SharedStore) -> None:
    opts = {"catalog": shared_store.catalog, "storage_options": shared_store.storage_options}
    df = pl.DataFrame({"id": [f"k{i}" for i in range(20)], "g": [i % 3 for i in range(20)], "v": list(range(20))})
    first = write_koru(df, shared_store.location, "t", key="id", **opts)
    with shared_store.open() as store:
        store.consolidate()
        store.upsert("t", [{"id": "k1", "g": 1, "v": 100}], key="id")
        core = {r["_key"]: r["v"] for r in store.as_of("t").to_pylist()}
    frame = scan_koru(shared_store.location, "t", **opts)
    got = frame.group_by("g").agg(pl.col("v").sum()).sort("g").collect()
    expected = {g: sum(v for k, v in core.items() if int(k[1:]) % 3 == g) for g in range(3)}
    assert dict(zip(got["g"].to_list(), got["v"].to_list())) == expected
    old = read_koru(shared_store.location, "t", version=first.commit, **opts)
    assert dict(zip(old["_key"].to_list(), old["v"].to_list())) == {f"k{i}": i for i in range(20)}
    hist = read_koru(shared_store.location, "t", history=True, **opts).filter(pl.col("_key") == "k1")
    assert hist["v"].to_list() == [1, 100]


def test_an_object_store_source_without_a_catalog_is_refused(shared_store: SharedStore) -> None:
    import koru_core as koru

    with pytest.raises(koru.InvalidInputError, match="catalog="):
        scan_koru(shared_store.location, "t", storage_options=shared_store.storage_options)
