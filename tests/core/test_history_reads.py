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
