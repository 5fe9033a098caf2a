"""One key's history from a consolidated history file of many row groups (issue 17).

A history file is sorted by valid time, then key, so each run of one valid time holds
disjoint key ranges per row group: a one-key read scans only the row groups whose
``_key`` statistics may hold the key. The expected history is the rows written, kept
here (a brute-force model), never read back from koru.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

import koru_core as koru

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
KEYS = 100_000  # about six 16k-row groups per valid-time run
RUNS = 4


def test_history_of_one_key_from_a_large_history_file_equals_what_was_written(tmp_path: Path) -> None:
    written: dict[str, list[int]] = {}
    with koru.open(tmp_path / "s", auto_consolidate=False) as store:
        for run in range(RUNS):
            ids = [f"k{j:06d}" for j in range(KEYS) if run == 0 or j % (run + 1) == 0]
            store.upsert("t", pa.table({"id": ids, "v": [run * 1_000_000 + int(i[1:]) for i in ids],
                                        "at": [BASE + timedelta(days=run)] * len(ids)}), key="id", valid_from="at")
            for i in ids:
                written.setdefault(i, []).append(run * 1_000_000 + int(i[1:]))
        store.consolidate()
    with koru.open(tmp_path / "s", read_only=True) as store:
        for key in ("k000000", "k000001", "k000012", "k050000", "k099999", "k077777"):
            hist = store.history("t", key)
            assert hist["v"].to_pylist() == written[key], key
            assert hist["_valid_from"].to_pylist() == sorted(hist["_valid_from"].to_pylist())
        assert store.history("t", "k5").num_rows == 0  # between two written keys
        assert store.history("t", "zz").num_rows == 0  # past every key


def test_history_of_one_key_when_every_row_has_its_own_valid_time(tmp_path: Path) -> None:
    """Rows of distinct valid times (as flights): row-group statistics cannot narrow a key,
    so the file's key order finds its rows: sliced from a copy in key order, gathered from
    the whole decoded file, or from the row groups holding them, as the memory limit
    allows (each limit here takes one of those ways). All equal the rows written (the
    model kept here), in valid-time order."""
    keys, rows_per_commit, commits = 2000, 12_000, 4
    written: dict[str, list[int]] = {}
    with koru.open(tmp_path / "s", auto_consolidate=False) as store:
        n = 0
        for c in range(commits):
            ids = [f"k{(7 * (n + j)) % keys:05d}" for j in range(rows_per_commit)]
            at = [BASE + timedelta(minutes=n + j) for j in range(rows_per_commit)]
            vs = list(range(n, n + rows_per_commit))
            table = pa.table({"id": ids, "v": vs, "at": at})
            # one version per key and valid time: a key repeats within a commit at later times
            store.upsert("t", table, key="id", valid_from="at")
            for i, v in zip(ids, vs, strict=True):
                written.setdefault(i, []).append(v)
            n += rows_per_commit
        store.consolidate()
        history = [e for e in store.stats().to_pylist() if e["tier"] == "cold"]
        assert history and history[0]["versions"] == commits * rows_per_commit
    for limit in (512 * 2**20, 96 * 2**20, 48 * 2**20, 24 * 2**20, 4 * 2**20):
        with koru.open(tmp_path / "s", read_only=True, memory_limit=limit) as store:
            for key in ("k00000", "k00007", "k01234", "k01999"):
                for _ in range(2):  # the second read from what the cache kept
                    hist = store.history("t", key)
                    assert hist["v"].to_pylist() == written[key], (limit, key)
            assert store.history("t", "k00000x").num_rows == 0


def test_as_of_at_nanosecond_bounds_over_many_row_groups_of_non_ascii_keys(tmp_path: Path) -> None:
    """Row groups are pruned by their statistics as stored (``_key`` as UTF-8 bytes,
    ``_valid_from``/``_valid_to`` as int64 ns): an as-of read at a time one nanosecond
    before, at, and after a version's start, and a point read of a non-ASCII key, equal
    the brute-force answer from the rows written (kept here)."""
    import pandas as pd

    n = 40_000  # three 16k-row groups per file
    start = pd.Timestamp("2024-01-01", tz="UTC")
    keys = [("ключ" if j % 3 == 0 else "é" if j % 3 == 1 else "k") + f"{j:06d}" for j in range(n)]
    first = {k: start + pd.Timedelta(nanoseconds=j) for j, k in enumerate(keys)}
    later = {k: start + pd.Timedelta(nanoseconds=n + 7 * j) for j, k in enumerate(keys) if j % 2 == 0}
    with koru.open(tmp_path / "s", auto_consolidate=False) as store:
        starts = pa.array(list(first.values()), pa.timestamp("ns", "UTC"))
        store.upsert("t", pa.table({"id": keys, "v": [0] * n, "at": starts}), key="id", valid_from="at")
        moved = list(later)
        store.upsert("t", pa.table({"id": moved, "v": [1] * len(moved),
                                    "at": pa.array([later[k] for k in moved], pa.timestamp("ns", "UTC"))}),
                     key="id", valid_from="at")
        store.consolidate()
    with koru.open(tmp_path / "s", read_only=True) as store:
        # the history file holds the closed first versions of the even keys, sorted by valid
        # time: its second row group starts with key 32768's, at start + 32768 ns
        for j, at in ((0, later), (2, later), (5_000, later), (21_000, later), (39_998, later), (32_768, first)):
            k = keys[j]
            for t in (at[k] - pd.Timedelta(nanoseconds=1), at[k], at[k] + pd.Timedelta(nanoseconds=1)):
                want = {key: (1 if key in later and later[key] <= t else 0) for key in keys if first[key] <= t}
                got = store.as_of("t", at=t)
                assert dict(zip(got["_key"].to_pylist(), got["v"].to_pylist(), strict=True)) == want, (k, t)
                if k in want:
                    assert store.get("t", k, at=t)["v"] == want[k]
                else:
                    with pytest.raises(koru.KeyNotFoundError):
                        store.get("t", k, at=t)
