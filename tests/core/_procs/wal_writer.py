"""Write N single puts, printing each acknowledged commit, then die by SIGKILL
(so the commits stay in SQLite's write-ahead log, not checkpointed).

Usage: wal_writer.py STORE N
"""

from __future__ import annotations

import os
import signal
import sys

import koru_core as koru

store = koru.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    v = store.put("w", f"k{i:03d}", {"i": i})
    print(v.commit, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
