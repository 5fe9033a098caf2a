"""A writer to be killed: commits forever and acknowledges each commit on stdout.

Usage: writer.py STORE SEED

Prints ``ready`` once the store is open, then after each write call *returns*
one line ``<commit> <tag> <rows> <digest>``: the commit number, a tag unique to
the commit (every row of the commit carries it, with ``n`` = the commit's row
count), and a sha256 of the commit's rows (see :func:`digest`). The mix: single
puts, transactions over two namespaces, 300-row upserts (kept in the catalog)
and 2000-row upserts (written to Parquet files), and now and then a flush.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any

import koru_core as koru


def digest(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    """sha256 of the sorted (namespace, key, sorted fields) rows, as compact JSON."""
    canonical = sorted([ns, key, sorted(value.items())] for ns, key, value in rows)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def main(path: str, seed: int) -> None:
    store = koru.open(path)
    print("ready", flush=True)
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        tag = f"{seed}-{i}"
        r = rng.random()
        rows: list[tuple[str, str, dict[str, Any]]]
        if r < 0.45:
            key = f"p{rng.randrange(300)}"
            rows = [("single", key, {"tag": tag, "n": 1, "i": i})]
            commit = store.put("single", key, rows[0][2]).commit
            written = 1
        elif r < 0.75:
            keys = rng.sample(range(50), rng.randint(2, 5))
            rows = [("tx", f"t{k}", {"tag": tag, "n": len(keys) + 1, "i": k}) for k in keys]
            rows.append(("txlog", tag, {"tag": tag, "n": len(keys) + 1, "i": i}))
            with store.transaction(actor="crash") as tx:
                for ns, key, value in rows:
                    tx.put(ns, key, value)
            assert tx.result is not None
            commit, written = tx.result.commit, tx.result.written
        else:
            size, prefix = (2000, "b") if r < 0.9 else (300, "m")
            rows = [("bulk", f"{prefix}{j:05d}", {"tag": tag, "n": size, "i": j}) for j in range(size)]
            result = store.upsert("bulk", [{"id": k, **v} for _, k, v in rows], key="id")
            commit, written = result.commit, result.written
            rows = [(ns, k, {"id": k, **v}) for ns, k, v in rows]
        if written != len(rows):
            print(f"error: commit {commit} wrote {written} of {len(rows)} rows", flush=True)
            sys.exit(3)
        print(commit, tag, len(rows), digest(rows), flush=True)
        if rng.random() < 0.05:
            store.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
