"""A committer process for the catalog concurrency tests.

Usage: _committer.py TARGET ACTOR N

Opens the catalog, prints ``ready``, waits for a line on stdin, then records N commits
(each rebased on the head after a HeadMovedError) and prints ``<commit> <i>`` for each
commit ``record_commit`` returned, then ``retries <count>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _drafts import draft  # noqa: E402

from koru_core.catalog import open_catalog  # noqa: E402
from koru_core.errors import HeadMovedError  # noqa: E402


def main(target: str, actor: str, n: int) -> None:
    catalog = open_catalog(target)
    print("ready", flush=True)
    sys.stdin.readline()
    retries = 0
    for i in range(n):
        base = catalog.head()[0]
        while True:
            try:
                rec = catalog.record_commit(draft(base, tag=f"{actor}-{i}", actor=actor, metadata={"i": str(i)}))
                break
            except HeadMovedError as e:
                retries += 1
                base = e.head
        print(rec.commit, i, flush=True)
    print("retries", retries, flush=True)
    catalog.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
