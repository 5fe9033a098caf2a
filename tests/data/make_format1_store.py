"""Write ``tests/data/format1-store/``: a real store of on-disk format 1, for the upgrade tests.

Run against the code that wrote format 1, commit ``5bfbcff`` of the ``main`` branch
(the last commit before on-disk format 2), never against this tree::

    mkdir -p /tmp/koru-v1 && git archive 5bfbcff | tar -x -C /tmp/koru-v1
    rm -rf tests/data/format1-store
    PYTHONPATH=/tmp/koru-v1 python tests/data/make_format1_store.py tests/data/format1-store

The store has every kind of data format 1 held: cold files (a consolidation),
deep-tier skeletons (a distillation), a warm file (a commit of more than 1,024 rows),
pending versions in the catalog, retired files not yet vacuumed, a tag and a cursor.
Its namespaces:

- ``users``: puts with actor and run id, an update, a delete, backfills at earlier valid
  times (one lands between two versions), a version with parents, a widened schema;
- ``people``: upserts with the composite key (``loc``, ``sex``), one row unchanged;
- ``events``: five versions of one key, distilled to the last two (``KeepLast(2)``);
- ``readings``: 1,100 rows in one upsert (a warm file) with int, float, bool, string,
  timestamp, date, list and struct columns and nulls;
- ``notes``: non-dict values (a ``value`` column).

Valid times are fixed; system times are those of the run (the fixture is made once).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pyarrow as pa

import koru_core as koru

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def main(folder: Path) -> None:
    assert not folder.exists(), f"{folder} exists"
    store = koru.open(folder)
    assert store._catalog.meta("format_version") == "1", "run this against commit 5bfbcff (format 1)"
    # users: puts, an update, a backfill between versions, a delete, parents
    a1 = store.put("users", "alice", {"name": "Alice", "age": 31}, valid_from=day(0), actor="etl", run_id="r1")
    store.put("users", "bob", {"name": "Bob", "age": 40}, valid_from=day(0), actor="etl", run_id="r1")
    store.put("users", "alice", {"name": "Alice", "age": 32}, valid_from=day(10), actor="etl", run_id="r2")
    store.put("users", "carol", {"name": "Carol", "age": 25}, valid_from=day(-30), actor="backfill")
    store.put("users", "alice", {"name": "Alice", "age": 31, "nick": "Al"}, valid_from=day(5), actor="backfill",
              parents=[a1.write_id])
    store.delete("users", "bob", valid_from=day(20), actor="etl", run_id="r3", metadata={"reason": "left"})
    # people: upserts with a composite key
    rows = [{"loc": 4, "sex": "F", "n": 10}, {"loc": 4, "sex": "M", "n": 12}, {"loc": 5, "sex": "F", "n": 7}]
    store.upsert("people", rows, key=["loc", "sex"], valid_from=day(0), actor="census")
    rows[1]["n"] = 13
    store.upsert("people", rows, key=["loc", "sex"], valid_from=day(30), actor="census")  # two rows unchanged
    # a transaction with metadata over two namespaces
    with store.transaction(actor="crm", run_id="sync-7", metadata={"source": "crm", "batch": "7"}) as tx:
        tx.put("users", "dave", {"name": "Dave", "age": 50, "email": "dave@example.com"}, valid_from=day(12))
        tx.put("people", "6|F", {"loc": 6, "sex": "F", "n": 1}, valid_from=day(12))
        tx.delete("users", "carol", valid_from=day(15))
    store.tag("release-1")
    # events: five versions, distilled to the last two
    for i in range(5):
        store.put("events", "e1", {"step": i}, valid_from=day(i))
    store.put("events", "e2", {"step": 0}, valid_from=day(0))
    store.consolidate()
    store.distill({"events": koru.KeepLast(2)})
    store.vacuum(retain=dt.timedelta(0))
    # after consolidation: a warm file, pending versions, retired files not yet vacuumed
    n = 1100
    readings = pa.table({
        "id": [f"s{i:04d}" for i in range(n)],
        "value": [(i % 50) * 0.25 for i in range(n)],
        "count": [i % 100 if i % 7 else None for i in range(n)],
        "ok": [i % 3 == 0 for i in range(n)],
        "at": pa.array([day(i % 40) for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "on": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 9) for i in range(n)], pa.date32()),
        "tags": [["a", "b"][: i % 3] for i in range(n)],
        "pos": [{"x": i % 10, "y": -(i % 4)} for i in range(n)],
    })
    store.upsert("readings", readings, key="id", valid_from=day(1), actor="sensor", run_id="batch-1")
    store.put("users", "alice", {"name": "Alice", "age": 33}, valid_from=day(40))
    store.put("users", "erin", {"name": "Erin", "age": 28})  # no valid time: valid from its system time
    store.put("notes", "n1", "hello", valid_from=day(2))
    store.put("notes", "n2", "world", valid_from=day(3))
    store.consolidate("notes")
    with store.transaction(actor="notes") as tx:
        for k, text in (("n1", "hello again"), ("n3", "three"), ("n4", "four")):
            tx.put("notes", k, text, valid_from=day(6))
    store.consolidate("notes")  # merges the first notes part, which stays on disk, retired
    store.put("notes", "n5", "five", valid_from=day(7))
    store.put("people", "5|F", {"loc": 5, "sex": "F", "n": 8}, valid_from=day(45), metadata={"fix": "yes"})
    store.put("people", "4|F", {"loc": 4, "sex": "F", "n": 11}, valid_from=day(50))
    store._catalog.set_cursor("dashboard", 6)
    report = store.verify()
    assert report.is_ok, report.problems
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
