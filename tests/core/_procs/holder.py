"""Hold a store's write lock inside an open transaction until told to commit.

Usage: holder.py STORE

Prints ``ready`` once the transaction is open (the lock is held) with one put
buffered, waits for a line on stdin, commits, prints the commit number and exits.
"""

from __future__ import annotations

import sys

import koru_core as koru

with koru.open(sys.argv[1]) as store:
    with store.transaction(actor="holder") as tx:
        tx.put("acct", "held", {"bal": 7})
        print("ready", flush=True)
        sys.stdin.readline()
    assert tx.result is not None
    print(tx.result.commit, flush=True)
