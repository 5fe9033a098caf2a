"""Move money between accounts, one transaction per transfer: the total never changes.

Usage: transfers.py STORE N SEED

Prints ``ready`` once the store is open, makes N transfers between the accounts
``a0`` … ``a9`` (each a transaction of two puts), then prints ``done``.
"""

from __future__ import annotations

import random
import sys

import koru_core as koru

store = koru.open(sys.argv[1])
rng = random.Random(int(sys.argv[3]))
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    state = {r["_key"]: r["bal"] for r in store.as_of("acct").to_pylist()}
    src, dst = rng.sample(sorted(state), 2)
    amount = rng.randint(0, state[src])
    with store.transaction(actor="transfer") as tx:
        tx.put("acct", src, {"bal": state[src] - amount})
        tx.put("acct", dst, {"bal": state[dst] + amount})
print("done", flush=True)
store.close()
