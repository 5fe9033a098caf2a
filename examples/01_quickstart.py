"""Quickstart: write versions of a key, read it back now and at an earlier valid time,
list its history, upsert a table (unchanged rows are skipped) and diff two versions.

Run: python examples/01_quickstart.py
"""

import tempfile
from datetime import datetime, timezone

import pyarrow as pa

import koru_core as koru


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


with tempfile.TemporaryDirectory() as folder, koru.open(folder) as store:
    # Every put is a new immutable version; valid_from says when it became true.
    store.put(
        "users",
        "alice",
        {"id": "alice", "name": "Alice", "city": "Paris"},
        valid_from=utc(2024, 1, 1),
    )
    v2 = store.put(
        "users",
        "alice",
        {"id": "alice", "name": "Alice", "city": "Oslo"},
        valid_from=utc(2024, 6, 1),
        actor="etl",
    )
    print("commit", v2.commit, "write id", v2.write_id)

    print("now:        ", store.get("users", "alice"))
    print("in March:   ", store.get("users", "alice", at=utc(2024, 3, 1)))

    # The whole namespace as it stood at an earlier time (a pyarrow Table).
    print(
        "as of March:",
        store.as_of("users", at=utc(2024, 3, 1)).select(["_key", "city"]).to_pylist(),
    )

    for row in store.history("users", "alice").to_pylist():
        print("version", row["_write_id"], row["_valid_from"], "→", row["_valid_to"], row["city"])

    # Upsert many rows in one commit; a row equal to the current version is not written again.
    table = pa.table({"id": ["alice", "bob"], "name": ["Alice", "Bob"], "city": ["Oslo", "Rome"]})
    result = store.upsert("users", table, key="id")
    print(f"upsert: commit {result.commit}, written {result.written}, unchanged {result.unchanged}")

    # Field-level changes between the first version and the current one.
    for change in store.diff("users", "alice", utc(2024, 1, 1)):
        print(f"diff: {change.field}: {change.before!r} → {change.after!r}")
