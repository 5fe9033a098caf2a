"""One ``Store`` shared by many threads (issue 12 item 1).

The docs say a store may be shared between threads. Before, every thread used one
SQLite connection: 2,513 of 7,185 concurrent puts raised ``CorruptionError: cannot
start a transaction within a transaction``, 17 of those had committed anyway, and
readers hit ``RuntimeError: dictionary changed size during iteration``. Now each
thread has its own catalog connection, writes serialise on the write lock and reads
run in parallel.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pyarrow as pa

import koru_core as koru

WRITERS = 4
READERS = 3
OPS = 150  # per writer: 600 write calls (about 2,000 rows); the readers add thousands of reads
UPSERT_ROWS = 10


def test_threads_share_a_store_for_puts_upserts_and_reads(tmp_path: Path) -> None:
    """Issue 12 item 1: concurrent puts, upserts, refused writes and reads on one store.

    No unexpected error; every acknowledged write is present with its value; no write
    that raised committed anything (the refused ones change a field's type, a
    ``SchemaError``); every read sees whole commits (an upsert's rows all or none).
    """
    store = koru.open(tmp_path / "s", durability="process")
    store.put("t", "seed", {"w": -1, "i": 0, "batch": "seed"})
    acked: dict[str, tuple[int, int]] = {}  # key -> (w, i)
    refused: list[str] = []
    errors: list[str] = []
    torn: list[str] = []
    reads = [0] * READERS
    lock = threading.Lock()
    done = threading.Event()

    def writer(w: int) -> None:
        rng = random.Random(w)
        for i in range(OPS):
            r = rng.random()
            try:
                if r < 0.6:
                    key = f"p{w}-{i}"
                    store.put("t", key, {"w": w, "i": i, "batch": key})
                    with lock:
                        acked[key] = (w, i)
                elif r < 0.9:
                    batch = f"u{w}-{i}"
                    rows = [{"id": f"{batch}-{j}", "w": w, "i": j, "batch": batch} for j in range(UPSERT_ROWS)]
                    store.upsert("t", rows, key="id")
                    with lock:
                        acked.update({row["id"]: (w, row["i"]) for row in rows})
                else:
                    key = f"bad{w}-{i}"
                    try:
                        store.put("t", key, {"w": "not an int", "i": i, "batch": key})
                    except koru.SchemaError:
                        with lock:
                            refused.append(key)
                    else:
                        errors.append(f"{key}: a str into the int field w was accepted")
            except Exception as e:  # noqa: BLE001 - every error is a finding
                errors.append(f"writer {w}, op {i}: {e!r}")

    def reader(r: int) -> None:
        rng = random.Random(100 + r)
        while not done.is_set():
            try:
                state = store.as_of("t", columns=["batch"])
                sizes: dict[str, int] = {}
                for b in state["batch"].to_pylist():
                    sizes[b] = sizes.get(b, 0) + 1
                torn.extend(f"{b}: {n} rows" for b, n in sizes.items() if b.startswith("u") and n != UPSERT_ROWS)
                with lock:
                    keys = list(acked)[-50:]
                for key in rng.sample(keys, min(5, len(keys))):
                    value = store.get("t", key)
                    if (value["w"], value["i"]) != acked[key]:
                        errors.append(f"get {key!r} gave {value}")
                if keys:
                    store.history("t", keys[0])
                reads[r] += 2 + min(5, len(keys))
            except Exception as e:  # noqa: BLE001
                errors.append(f"reader {r}: {e!r}")
            done.wait(0.02)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    readers = [threading.Thread(target=reader, args=(r,)) for r in range(READERS)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert not errors, errors[:10]
    assert not torn, f"a read saw part of an upsert: {torn[:5]}"
    assert len(refused) > 30, "too few refused writes to test anything"
    # a floor, not a speed: enough reads interleaved with the writes to have met them (about
    # 1,300-2,000 run here, fewer on a loaded machine)
    assert sum(reads) >= 300, f"only {sum(reads)} reads ran beside the writes"
    store.close()

    with koru.open(tmp_path / "s") as fresh:
        rows = {r["_key"]: r for r in fresh.as_of("t").to_pylist()}
        missing = [k for k in acked if k not in rows]
        assert not missing, f"{len(missing)} acknowledged writes are lost, e.g. {missing[:5]}"
        wrong = [k for k, (w, i) in acked.items() if (rows[k]["w"], rows[k]["i"]) != (w, i)]
        assert not wrong, wrong[:5]
        leaked = [k for k in refused if k in rows]
        assert not leaked, f"writes that raised were committed: {leaked[:5]}"
        assert set(rows) == set(acked) | {"seed"}
        log = fresh.commits()
        assert [c.commit for c in log] == list(range(1, len(log) + 1))
        assert sum(c.written for c in log) == len(acked) + 1
        assert fresh.verify().is_ok


def test_threads_that_end_close_their_catalog_connections(tmp_path: Path) -> None:
    """Issue 12 item 1: each thread gets its own catalog connection; one that ends must not
    leave its connection (and its file descriptors) open until the store closes."""
    store = koru.open(tmp_path / "s")
    store.put("t", "k", {"v": 1})

    def read() -> None:
        assert store.get("t", "k") == {"v": 1}
        assert store.as_of("t").num_rows == 1

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    t = threading.Thread(target=read)
    t.start()
    t.join()
    before = open_fds()
    for _ in range(100):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert open_fds() <= before + 5, "each ended thread left its connection open"
    store.close()


def test_a_transaction_in_one_thread_does_not_take_in_another_threads_writes(tmp_path: Path) -> None:
    """Issue 12 item 1: while a thread holds a transaction open, a put from another thread
    waits for it and commits on its own (never inside the first thread's transaction)."""
    store = koru.open(tmp_path / "s")
    opened = threading.Event()
    proceed = threading.Event()
    results: dict[str, int | None] = {}

    def in_transaction() -> None:
        with store.transaction() as tx:
            tx.put("acct", "a", {"bal": 1})
            opened.set()
            proceed.wait(10)
        results["tx"] = tx.result.commit if tx.result else None

    def single_put() -> None:
        opened.wait(10)
        results["put"] = store.put("acct", "b", {"bal": 2}).commit

    a = threading.Thread(target=in_transaction)
    b = threading.Thread(target=single_put)
    a.start()
    b.start()
    opened.wait(10)
    b.join(0.3)
    assert b.is_alive(), "the put did not wait for the open transaction"
    proceed.set()
    a.join()
    b.join()
    assert results["tx"] == 1 and results["put"] == 2
    commits = store.commits()
    assert [(c.commit, c.written) for c in commits] == [(1, 1), (2, 1)]
    assert pa.Table.to_pylist(store.as_of("acct", columns=["bal"], sort=True)) and store.get("acct", "b") == {"bal": 2}
    store.close()
