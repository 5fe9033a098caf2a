"""Consolidation (issue 5): warm files + pending versions → cold files, atomically and incrementally."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import koru_core as koru
from koru_core.lifecycle.consolidate import AUTO_CONSOLIDATE_WARM_FILES, COLD_ROW_GROUP_ROWS
from koru_core.scan import read_versions

T0 = datetime(2026, 1, 15, tzinfo=timezone.utc)


def _fill(store: koru.Store, *, keys: int = 3000, rounds: int = 4) -> None:
    """Several commits over months of valid time, a backfill, a tombstone, a widened schema."""
    for r in range(rounds):
        rows = [{"id": f"k{j:05d}", "n": r * j} for j in range(keys)]
        store.upsert("users", rows, key="id", valid_from=T0 + timedelta(days=40 * r))
    store.put("users", "k00001", {"id": "k00001", "n": -1, "extra": "wide"}, valid_from=T0 + timedelta(days=400))
    store.put("users", "k00002", {"id": "k00002", "n": -2}, valid_from=T0 - timedelta(days=90))  # backfill
    store.delete("users", "k00003", valid_from=T0 + timedelta(days=401))
    store.put("tags", "a", "x")


def _answers(store: koru.Store) -> dict[str, pa.Table]:
    out = {"versions": store.versions("users"), "hist1": store.history("users", "k00001"),
           "hist2": store.history("users", "k00002"), "changes": store.changes("users", since=0),
           "tags": store.as_of("tags")}
    for v in range(1, store.commits()[-1].commit + 1):
        out[f"v{v}"] = store.as_of("users", version=v, at=T0 + timedelta(days=500))
    for d in (-100, 0, 50, 130, 401):
        out[f"at{d}"] = store.as_of("users", at=T0 + timedelta(days=d))
    return out


def test_consolidate_keeps_every_answer_and_moves_data_to_cold(store: koru.Store) -> None:
    _fill(store)
    before = _answers(store)
    result = store.consolidate()
    assert result.action == "consolidate" and result.namespaces == ("tags", "users")
    assert result.versions_before == result.versions_after
    tiers = {(r["namespace"], r["tier"]) for r in store.stats().to_pylist() if r["versions"]}
    assert tiers == {("users", "cold"), ("tags", "cold")}
    after = _answers(store)
    for name, table in before.items():
        assert after[name].equals(table), name
    assert store.consolidate().namespaces == ()  # nothing new


def test_cold_files_are_sorted_partitioned_and_carry_valid_to(store: koru.Store) -> None:
    _fill(store)
    store.consolidate()
    plan = store.scan_plan("users")
    assert all(e.tier == "cold" for e in plan.entries)
    epochs = sorted(Path(p).parent.name for p in plan.files)
    assert epochs[0] == "epoch=2025-10" and "epoch=2026-01" in epochs
    full = store.versions("users")
    for path in plan.files:
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert all(meta.row_group(i).num_rows <= COLD_ROW_GROUP_ROWS for i in range(meta.num_row_groups))
        table = pq.read_table(path)
        order = table.sort_by([("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
        assert table.equals(order)
        assert table.column_names[:3] == ["_key", "_valid_from", "_valid_to"]
        month = Path(path).parent.name.removeprefix("epoch=")
        assert {t.strftime("%Y-%m") for t in table["_valid_from"].to_pylist()} == {month}
        # written together, so _valid_to is exact
        expected = full.select(["_write_id", "_valid_to"]).join(table.select(["_write_id"]), "_write_id", join_type="inner")
        got = table.select(["_write_id", "_valid_to"]).sort_by("_write_id")
        assert got.to_pylist() == expected.sort_by("_write_id").to_pylist()


def test_incremental_run_leaves_large_parts_alone(store: koru.Store) -> None:
    store.upsert("users", [{"id": f"k{j}", "n": j} for j in range(20_000)], key="id", valid_from=T0)
    store.consolidate()
    big = store.scan_plan("users").entries
    assert len(big) == 1
    store.upsert("users", [{"id": f"k{j}", "n": -j - 1} for j in range(100)], key="id", valid_from=T0 + timedelta(days=1))
    expected = store.versions("users")
    store.consolidate()
    entries = store.scan_plan("users").entries
    assert big[0] in entries and len(entries) == 2 and sum(e.rows for e in entries) == 20_100
    assert store.versions("users").equals(expected)
    # enough new rows fold the small parts into one again (size-tiered merging)
    store.upsert("users", [{"id": f"k{j}", "n": j + 1} for j in range(20_000)], key="id", valid_from=T0 + timedelta(days=2))
    expected = store.versions("users")
    store.consolidate()
    assert len(store.scan_plan("users").entries) == 1
    assert store.versions("users").equals(expected)


def test_plan_made_before_the_swap_still_reads_the_same_versions(store: koru.Store) -> None:
    """Forced interleaving: plan, then consolidate, then read the old plan's files."""
    _fill(store, keys=500, rounds=2)
    plan = store.scan_plan("users")
    expected = read_versions(store.path, plan).sort_by("_write_id")
    store.consolidate()
    assert read_versions(store.path, plan).sort_by("_write_id").equals(expected)
    assert read_versions(store.path, store.scan_plan("users")).sort_by("_write_id").select(
        expected.column_names).equals(expected)


def test_reader_in_a_loop_never_sees_duplicates_or_gaps(tmp_path: Path) -> None:
    """Another thread (its own store object, its own catalog connection) queries
    as_of in a loop while this one commits and consolidates repeatedly."""
    path = tmp_path / "s.koru"
    writer = koru.open(path)
    writer.upsert("users", [{"id": f"k{j:05d}", "n": j} for j in range(5000)], key="id", valid_from=T0)
    for r in range(1, 4):
        writer.upsert("users", [{"id": f"k{j:05d}", "n": j + r} for j in range(0, 5000, 3)], key="id",
                      valid_from=T0 + timedelta(days=r))
    at = T0 + timedelta(days=1, hours=12)
    expected = writer.as_of("users", at=at, version=4)
    seen, errors, stop = [0], [], threading.Event()

    def read_loop() -> None:
        reader = koru.open(path)
        try:
            while not stop.is_set():
                got = reader.as_of("users", at=at, version=4)
                if not got.equals(expected):
                    errors.append(got.num_rows)
                seen[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            reader.close()

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for r in range(6):
            writer.upsert("users", [{"id": f"k{j:05d}", "n": -r} for j in range(r, 5000, 7)], key="id",
                          valid_from=T0 + timedelta(days=10 + r))
            writer.consolidate()
            writer.vacuum(retain=timedelta(0))
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert errors == [] and seen[0] > 0


def test_auto_consolidate_past_the_warm_file_threshold(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s.koru", auto_consolidate=True)
    for r in range(AUTO_CONSOLIDATE_WARM_FILES):
        store.upsert("users", [{"id": f"k{j}", "n": r} for j in range(1100)], key="id")
    tiers = {r["tier"] for r in store.stats().to_pylist() if r["versions"]}
    assert tiers == {"cold"}
    assert store.as_of("users")["n"].to_pylist() == [AUTO_CONSOLIDATE_WARM_FILES - 1] * 1100
    store.close()
    off = koru.open(tmp_path / "t.koru")
    for r in range(AUTO_CONSOLIDATE_WARM_FILES):
        off.upsert("users", [{"id": f"k{j}", "n": r} for j in range(1100)], key="id")
    assert {r["tier"] for r in off.stats().to_pylist() if r["versions"]} == {"warm"}
    off.close()


def test_engines_read_cold_files(store: koru.Store) -> None:
    pl = pytest.importorskip("polars")
    from koru_polars import read_koru

    _fill(store, keys=200, rounds=2)
    at = T0 + timedelta(days=45)
    core = store.as_of("users", at=at)
    store.consolidate()
    frame = read_koru(store, "users", at=at).sort("_key")
    assert frame["_key"].to_list() == core["_key"].to_pylist()
    assert frame["n"].to_list() == core["n"].to_pylist()
    assert isinstance(frame, pl.DataFrame)


def test_consolidate_unknown_namespace(store: koru.Store) -> None:
    with pytest.raises(koru.NamespaceNotFoundError, match="nope"):
        store.consolidate("nope")
