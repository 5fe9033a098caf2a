"""Every materialization records the store's head hash (issue 12 item 16).

Tamper evidence needs an anchor kept elsewhere: Dagster's event log keeps ``koru/head_hash``
(the hash of the commit the materialization wrote or read at), so
``store.verify(expected_head=…)`` catches a store rewritten since.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("dagster")

import pyarrow as pa  # noqa: E402
from dagster import asset, materialize  # noqa: E402

import koru_core as koru  # noqa: E402
from koru_dagster import KoruIOManager  # noqa: E402


@asset(metadata={"koru/key": "id"})
def accounts() -> pa.Table:
    return pa.table({"id": ["a", "b"], "bal": [1, 2]})


def head_hash(result) -> str:  # type: ignore[no-untyped-def]
    [m] = result.asset_materializations_for_node("accounts")
    return m.metadata["koru/head_hash"].value


def test_materializations_record_the_head_hash_that_anchors_verify(tmp_path: Path, instance) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 item 16: the hash recorded is the commit's, it verifies, and a store rolled
    back to an older catalog fails verification against it."""
    path = tmp_path / "s"
    io = KoruIOManager(store=str(path))
    first = head_hash(materialize([accounts], resources={"io_manager": io}, instance=instance))
    with koru.open(path) as store:
        store.put("accounts", "c", {"bal": 3})
    shutil.copy(path / "catalog.sqlite", tmp_path / "older.sqlite")
    second = head_hash(materialize([accounts], resources={"io_manager": io}, instance=instance))
    with koru.open(path) as store:
        hashes = [c.hash for c in store.commits()]
        assert first == hashes[0] and second == hashes[-1] and len(hashes) == 3
        assert store.verify(expected_head=second).is_ok
    shutil.copy(tmp_path / "older.sqlite", path / "catalog.sqlite")
    with koru.open(path) as store:
        report = store.verify(expected_head=second)
        assert not report.is_ok and any(second in p for p in report.problems)
