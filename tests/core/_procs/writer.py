"""A writer to be killed: runs one kind of operation forever and acknowledges each commit on stdout.

Usage: writer.py STORE SEED OP

OP is one of ``put``, ``upsert``, ``transaction``, ``mixed`` (the three, and now and
then a flush), ``consolidate``, ``distill``, ``vacuum`` or ``snapshot``. The maintenance
operations alternate a few acknowledged writes with the operation itself, on a store
opened with ``auto_consolidate=False``, so most of the time (and most kills) fall inside
the operation; the others keep the store's automatic maintenance on.

Prints ``ready`` once the store is open, ``begin OP`` / ``end OP`` around each
maintenance operation, and after each write call *returns* one line
``<commit> <tag> <rows> <digest>``: the commit number, a tag unique to the commit
(every row of the commit carries it, with ``n`` = the commit's row count and ``i`` its
order in this run), and a sha256 of the commit's rows (see :func:`digest`).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import koru_core as koru

OPS = ("put", "upsert", "transaction", "mixed", "consolidate", "distill", "vacuum", "snapshot")
MAINTENANCE = ("consolidate", "distill", "vacuum", "snapshot")


def digest(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    """sha256 of the sorted (namespace, key, sorted fields) rows, as compact JSON."""
    canonical = sorted([ns, key, sorted(value.items())] for ns, key, value in rows)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def ack(commit: int | None, tag: str, rows: list[tuple[str, str, dict[str, Any]]], written: int) -> None:
    if written != len(rows):
        print(f"error: commit {commit} wrote {written} of {len(rows)} rows", flush=True)
        sys.exit(3)
    print(commit, tag, len(rows), digest(rows), flush=True)


def single(store: koru.Store, rng: random.Random, tag: str, i: int, keys: int = 300) -> None:
    key = f"p{rng.randrange(keys)}"
    rows = [("single", key, {"tag": tag, "n": 1, "i": i})]
    ack(store.put("single", key, rows[0][2]).commit, tag, rows, 1)


def transaction(store: koru.Store, rng: random.Random, tag: str, i: int) -> None:
    keys = rng.sample(range(50), rng.randint(2, 5))
    rows = [("tx", f"t{k}", {"tag": tag, "n": len(keys) + 1, "i": k}) for k in keys]
    rows.append(("txlog", tag, {"tag": tag, "n": len(keys) + 1, "i": i}))
    with store.transaction(actor="crash") as tx:
        for ns, key, value in rows:
            tx.put(ns, key, value)
    assert tx.result is not None
    ack(tx.result.commit, tag, rows, tx.result.written)


def upsert(store: koru.Store, tag: str, size: int, prefix: str) -> None:
    rows = [("bulk", f"{prefix}{j:05d}", {"tag": tag, "n": size, "i": j}) for j in range(size)]
    result = store.upsert("bulk", [{"id": k, **v} for _, k, v in rows], key="id")
    ack(result.commit, tag, [(ns, k, {"id": k, **v}) for ns, k, v in rows], result.written)


def main(path: str, seed: int, op: str) -> None:
    store = koru.open(path, auto_consolidate=op not in MAINTENANCE)
    print("ready", flush=True)
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        tag = f"{seed}-{i}"
        r = rng.random()
        if op == "put" or (op == "mixed" and r < 0.45):
            single(store, rng, tag, i)
        elif op == "transaction" or (op == "mixed" and r < 0.75):
            transaction(store, rng, tag, i)
        elif op in ("upsert", "mixed"):
            size, prefix = (2000, "b") if r < 0.9 else (300, "m")
            upsert(store, tag, size, prefix)
            if op == "mixed" and rng.random() < 0.05:
                store.flush()
        else:  # a maintenance operation, after a write that gives it something to do
            if op == "distill":
                single(store, rng, tag, i, keys=20)  # few keys: long histories to prune
            elif op == "vacuum" or rng.random() < 0.3:
                upsert(store, tag, 1500 if op == "vacuum" else 300, f"{op[0]}{i % 3}")
            else:
                single(store, rng, tag, i)
            print(f"begin {op}", flush=True)
            if op == "consolidate":
                store.consolidate()
            elif op == "distill":
                store.distill(koru.KeepLast(2))
            elif op == "vacuum":
                store.consolidate()
                store.vacuum(retain=__import__("datetime").timedelta(0))
            else:
                store.snapshot(Path(path).parent / "bundles" / f"{seed}-{i}")
            print(f"end {op}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "mixed")
