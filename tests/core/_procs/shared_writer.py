"""A process that works on a shared store (S3 + PostgreSQL) for tests/core/test_many_writers.py.

Usage: ``python shared_writer.py CONFIG_JSON``; CONFIG holds ``location``, ``catalog``,
``storage_options``, ``role`` and the role's settings. Roles:

- ``writer``: ``commits`` upserts to namespace ``t``; commit ``seq`` of writer ``w`` writes
  the rows :func:`rows_of` gives (a value unique to (w, seq), so every row is a version),
  with commit metadata ``writer``/``seq``. After each upsert returns, one line
  ``{"seq", "commit"}`` is appended to ``acks`` and fsynced: the acknowledged commits.
- ``counter``: ``commits`` increments of key ``n`` of namespace ``counter`` by
  read-modify-write with ``put(expected_version=)``, retried on ``ConflictError``; acks
  ``{"seq", "commit", "value", "conflicts"}``.
- ``maintainer``: ``consolidate()`` then ``vacuum(retain=0)`` until ``stop`` exists; acks
  one line per round.
- ``reader``: opened read-only from the URLs alone; reads the as-of state and one key's
  history until ``stop`` exists; acks one line per round with the row counts (an
  exception ends the process with its message on stderr and exit code 3).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import koru_core as koru

SHARED_KEYS = 10
OWN_KEYS = 30


def rows_of(mode: str, writer: int, seq: int) -> list[dict[str, Any]]:
    """The rows commit ``seq`` of writer ``writer`` upserts (key column ``id``)."""
    if mode == "different":
        keys = [f"w{writer}-{(seq * 3 + j) % OWN_KEYS}" for j in range(3)]
    elif mode == "same":
        keys = [f"k{(seq + j + writer) % SHARED_KEYS}" for j in range(3)]
    else:  # mixed: one key of its own, one shared
        keys = [f"w{writer}-{seq % OWN_KEYS}", f"k{(seq + writer) % SHARED_KEYS}"]
    return [{"id": k, "v": f"w{writer}-s{seq}-{k}", "writer": writer, "seq": seq} for k in keys]


def _ack(f: Any, record: dict[str, Any]) -> None:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def main() -> None:
    cfg = json.loads(sys.argv[1])
    role = cfg["role"]
    store = koru.open(cfg["location"], catalog=cfg["catalog"], storage_options=cfg["storage_options"],
                      read_only=role == "reader")
    stop = Path(cfg.get("stop", "/nonexistent"))
    with store, open(cfg["acks"], "a", encoding="utf-8") as acks:
        if role == "writer":
            w = cfg["writer"]
            for seq in range(cfg["commits"]):
                res = store.upsert("t", rows_of(cfg["mode"], w, seq), key="id",
                                   metadata={"writer": str(w), "seq": str(seq)})
                _ack(acks, {"seq": seq, "commit": res.commit})
        elif role == "counter":
            for seq in range(cfg["commits"]):
                conflicts = 0
                while True:
                    try:
                        v = store.version_at("counter", "n")
                        value, expected = v.value + 1, v.commit
                    except (koru.KeyNotFoundError, koru.NamespaceNotFoundError):
                        value, expected = 1, 0
                    try:
                        got = store.put("counter", "n", value, expected_version=expected)
                        break
                    except koru.ConflictError:
                        conflicts += 1
                _ack(acks, {"seq": seq, "commit": got.commit, "value": value, "conflicts": conflicts})
        elif role == "maintainer":
            rounds = 0
            while not stop.exists():
                store.consolidate()
                store.vacuum(retain=timedelta(0))
                rounds += 1
                _ack(acks, {"round": rounds})
                time.sleep(0.05)
        elif role == "reader":
            rounds = 0
            while not stop.exists():
                try:
                    state = store.as_of("t")
                    hist = store.history("t", "k1") if "k1" in set(state["_key"].to_pylist()) else None
                except koru.NamespaceNotFoundError:
                    time.sleep(0.05)
                    continue
                except Exception as e:  # noqa: BLE001 - reported to the test
                    print(f"reader failed: {e!r}", file=sys.stderr)
                    sys.exit(3)
                rounds += 1
                _ack(acks, {"round": rounds, "rows": state.num_rows, "commit": store.version(),
                            "history": None if hist is None else hist.num_rows})
        else:
            raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
