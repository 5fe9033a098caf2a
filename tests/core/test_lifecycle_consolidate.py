"""Consolidation: warm files + pending versions → the cold layout (state and history files), atomically.

Issue 17: state files hold each key's last version, history files the closed ones with
an exact ``_valid_to`` (and ``_valid_to_commit``); every answer is unchanged by a run,
a run rewrites only what it must, and the store consolidates by itself past thresholds.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import koru_core as koru
from koru_core.lifecycle.auto import AUTO_COMMITS
from koru_core.lifecycle.consolidate import COLD_ROW_GROUP_ROWS, HISTORY_ORDER, HISTORY_SMALL_ROWS

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
           "tags": store.as_of("tags", sort=True)}
    for v in range(1, store.version() + 1):
        out[f"v{v}"] = store.as_of("users", version=v, at=T0 + timedelta(days=500), sort=True)
    for d in (-100, 0, 50, 130, 401):
        out[f"at{d}"] = store.as_of("users", at=T0 + timedelta(days=d), sort=True)
    return out


def _cold(store: koru.Store, kind: str) -> list[koru.Source]:
    return [s for s in store.plan("users", shape="versions").candidates if s.kind == kind]


def test_consolidate_keeps_every_answer_and_moves_data_to_cold(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s", auto_consolidate=False)
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
    store.close()


def test_state_and_history_files_are_sorted_and_carry_exact_intervals(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s", auto_consolidate=False)
    _fill(store)
    store.consolidate()
    full = store.versions("users")
    states, histories = _cold(store, "state"), _cold(store, "history")
    assert len(states) == 1 and len(histories) == 1
    state = pq.read_table(states[0].uri)
    assert state["_valid_to"].null_count == state.num_rows, "state rows are each key's last version"
    assert state["_key"].to_pylist() == sorted(set(full["_key"].to_pylist()))
    history = pq.read_table(histories[0].uri)
    assert history["_valid_to"].null_count == 0
    assert history.equals(history.sort_by(HISTORY_ORDER)), "history files are sorted by valid time, then key"
    for path in (states[0].uri, histories[0].uri):
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert all(meta.row_group(i).num_rows <= COLD_ROW_GROUP_ROWS for i in range(meta.num_row_groups))
    # written over every commit, so the stored _valid_to is the one versions() computes
    both = pa.concat_tables([history.select(["_write_id", "_valid_to"]), state.select(["_write_id", "_valid_to"])])
    got = {w.hex(): t for w, t in zip(both["_write_id"].to_pylist(), both["_valid_to"].to_pylist())}
    want = dict(zip(full["_write_id"].to_pylist(), full["_valid_to"].to_pylist()))
    assert got == want
    # _valid_to_commit is the commit of the version that ends the interval
    by_key = {}
    for r in full.to_pylist():
        by_key.setdefault(r["_key"], []).append(r)
    nxt = {a["_write_id"]: b["_commit"] for rows in by_key.values() for a, b in zip(rows, rows[1:])}
    stored = dict(zip((w.hex() for w in history["_write_id"].to_pylist()), history["_valid_to_commit"].to_pylist()))
    assert stored == nxt
    store.close()


def test_a_small_overlay_rewrites_the_state_and_adds_one_history_file(tmp_path: Path) -> None:
    """A history file of HISTORY_SMALL_ROWS rows or more is kept as it is; the run's closed
    versions go to a new file."""
    n = HISTORY_SMALL_ROWS + 100
    store = koru.open(tmp_path / "s", auto_consolidate=False)
    store.upsert("users", pa.table({"id": [f"k{j}" for j in range(n)], "n": list(range(n))}), key="id", valid_from=T0)
    store.upsert("users", [{"id": f"k{j}", "n": -j} for j in range(300_000, 300_010)], key="id", valid_from=T0)
    store.upsert("users", pa.table({"id": [f"k{j}" for j in range(n)], "n": [j + 1 for j in range(n)]}), key="id",
                 valid_from=T0 + timedelta(days=1))
    store.consolidate()
    first_history = _cold(store, "history")
    assert [s.entry.rows for s in first_history] == [n]
    store.upsert("users", [{"id": f"k{j}", "n": -j - 1} for j in range(100)], key="id",
                 valid_from=T0 + timedelta(days=2))
    expected = store.versions("users")
    store.consolidate()
    assert sorted(s.entry.rows for s in _cold(store, "history")) == [100, n]
    assert first_history[0].entry in [s.entry for s in _cold(store, "history")], "the old history file is kept"
    assert sum(s.entry.rows for s in _cold(store, "state")) == n + 10
    assert store.versions("users").equals(expected)
    store.close()


def test_many_small_runs_leave_one_small_history_file(tmp_path: Path) -> None:
    """Runs that each close a few versions fold the small history file before them into
    theirs, so a one-key read opens one history file, not one per run (issue 17: reads
    flat as small commits pile up)."""
    store = koru.open(tmp_path / "s")
    runs = 6
    for r in range(runs * AUTO_COMMITS):
        store.upsert("users", [{"id": f"k{(3 * r + j) % 20}", "n": r} for j in range(3)], key="id")
    history = _cold(store, "history")
    assert len(history) == 1
    assert history[0].entry.rows < HISTORY_SMALL_ROWS
    for k in ("k0", "k7", "k19"):
        j = int(k[1:])
        written = [r for r in range(runs * AUTO_COMMITS) if j in {(3 * r + i) % 20 for i in range(3)}]
        assert store.history("users", k)["n"].to_pylist() == written
    store.close()


def test_a_backfill_rewrites_the_history_of_its_keys_only(tmp_path: Path) -> None:
    store = koru.open(tmp_path / "s", auto_consolidate=False)
    for d in range(3):
        store.upsert("users", [{"id": f"k{j}", "n": 10 * d + j} for j in range(50)], key="id",
                     valid_from=T0 + timedelta(days=10 * d))
    store.consolidate()
    store.upsert("users", [{"id": "k7", "n": -7}], key="id", valid_from=T0 + timedelta(days=5))  # between two versions
    expected = {d: store.as_of("users", at=T0 + timedelta(days=d), sort=True) for d in (0, 5, 9, 10, 25)}
    store.consolidate()
    for d, table in expected.items():
        assert store.as_of("users", at=T0 + timedelta(days=d), sort=True).equals(table), d
    h = store.history("users", "k7")
    assert h["n"].to_pylist() == [7, -7, 17, 27]
    assert [t - T0 for t in h["_valid_to"].to_pylist()[:3]] == [timedelta(days=5), timedelta(days=10), timedelta(days=20)]
    store.close()


def test_plan_made_before_the_swap_still_reads_the_same_versions(store: koru.Store) -> None:
    """Forced interleaving: plan, then consolidate and delete what it replaced, then read the old plan's files."""
    import polars as pl
    from koru_polars.scan import as_of_frame

    _fill(store, keys=500, rounds=2)
    plan = store.plan("users", at=T0 + timedelta(days=45))
    expected = as_of_frame(plan).collect().sort("_key")
    store.consolidate()
    store.vacuum(retain=timedelta(0))  # the plan's lease keeps its files
    assert as_of_frame(plan).collect().sort("_key").equals(expected)
    assert isinstance(expected, pl.DataFrame)


def test_reader_in_a_loop_never_sees_duplicates_or_gaps(tmp_path: Path) -> None:
    """Another thread (its own store object) queries as_of in a loop while this one
    commits and consolidates repeatedly."""
    path = tmp_path / "s.koru"
    writer = koru.open(path)
    writer.upsert("users", [{"id": f"k{j:05d}", "n": j} for j in range(5000)], key="id", valid_from=T0)
    for r in range(1, 4):
        writer.upsert("users", [{"id": f"k{j:05d}", "n": j + r} for j in range(0, 5000, 3)], key="id",
                      valid_from=T0 + timedelta(days=r))
    at = T0 + timedelta(days=1, hours=12)
    expected = writer.as_of("users", at=at, version=4, sort=True)
    seen, errors, stop = [0], [], threading.Event()

    def read_loop() -> None:
        reader = koru.open(path)
        try:
            while not stop.is_set():
                got = reader.as_of("users", at=at, version=4, sort=True)
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


def test_the_store_consolidates_and_deletes_replaced_files_by_itself(tmp_path: Path) -> None:
    """Issue 17.3: automatic consolidation is on by default; replaced files go without a manual call."""
    store = koru.open(tmp_path / "s.koru")
    for r in range(AUTO_COMMITS):
        store.put("users", "k", {"n": r})
    tiers = {r["tier"] for r in store.stats().to_pylist() if r["versions"]}
    assert tiers == {"cold"}, "64 pending commits trigger a consolidation"
    for r in range(AUTO_COMMITS):
        store.put("users", "k", {"n": 100 + r})
    files = {p.relative_to(tmp_path / "s.koru").as_posix() for p in (tmp_path / "s.koru").rglob("*.parquet")}
    listed = {e.path for e in store._ctx.catalog.files()}
    assert files == listed, "the files the second run replaced are deleted (no reader held them)"
    assert store.get("users", "k") == {"n": 100 + AUTO_COMMITS - 1}
    store.close()
    off = koru.open(tmp_path / "t.koru", auto_consolidate=False)
    for r in range(AUTO_COMMITS + 1):
        off.put("users", "k", {"n": r})
    assert {r["tier"] for r in off.stats().to_pylist() if r["versions"]} == {"hot"}
    off.close()


def test_engines_read_cold_files(store: koru.Store) -> None:
    pl = pytest.importorskip("polars")
    from koru_polars import read_koru

    _fill(store, keys=200, rounds=2)
    at = T0 + timedelta(days=45)
    core = store.as_of("users", at=at, sort=True)
    store.consolidate()
    frame = read_koru(store, "users", at=at).sort("_key")
    assert frame["_key"].to_list() == core["_key"].to_pylist()
    assert frame["n"].to_list() == core["n"].to_pylist()
    assert isinstance(frame, pl.DataFrame)
    assert pc.all(pc.equal(store.as_of("users", at=at, sort=True)["n"], core["n"])).as_py()


def test_consolidate_unknown_namespace(store: koru.Store) -> None:
    with pytest.raises(koru.NamespaceNotFoundError, match="nope"):
        store.consolidate("nope")


def test_cold_files_dictionary_encode_repeating_columns_only(tmp_path: Path) -> None:
    """A column that repeats (a tag of 3 values) is dictionary-encoded in the state file; a
    column of distinct values (the key, a price) is written as plain pages, and the ids never
    get a dictionary (Parquet writers drop a dictionary past its page limit; building one for
    distinct values only costs time and bytes)."""
    store = koru.open(tmp_path / "s")
    n = 20_000
    store.upsert("items", pa.table({"id": [f"i{j:06d}" for j in range(n)], "tag": [("a", "b", "c")[j % 3] for j in range(n)],
                                    "price": [j * 1.37 for j in range(n)]}), key="id")
    store.consolidate()
    store.close()
    [state] = list((tmp_path / "s").rglob("state-*.parquet"))
    meta = pq.ParquetFile(state).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    encodings = {name: set(meta.row_group(0).column(i).encodings) for i, name in enumerate(names)}
    assert "RLE_DICTIONARY" in encodings["tag"]
    for name in ("id", "price", "_key", "_content_id", "_write_id"):
        assert "RLE_DICTIONARY" not in encodings[name], (name, encodings[name])
