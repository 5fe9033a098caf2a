"""The hot tier's current-state index: per key, its current version and last write id.

For each key of a namespace the index keeps a :class:`Head`: the valid time,
commit and content id of the version the as-of rule picks "now" (largest
``_valid_from``, then ``_commit``), and the write id of the key's latest write
(the ``_prev_write_id`` of its next version). Writes use it to skip unchanged
rows and chain versions without reading files; it is built once per process
from the data and then kept up to date commit by commit.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["INDEX_COLUMNS", "Head", "HeadIndex"]

INDEX_COLUMNS = ("_key", "_valid_from", "_commit", "_write_id", "_content_id", "_deleted")
"""The columns the index is built from."""


class Head(NamedTuple):
    """The state of one key: current version (valid time ns, commit, content id or
    None for a tombstone) and the write id of its latest write."""

    valid_from: int
    commit: int
    content_id: str | None
    last_write_id: str


class HeadIndex:
    """Key → :class:`Head` for one namespace, valid up to commit ``commit``."""

    __slots__ = ("commit", "heads")

    def __init__(self) -> None:
        self.heads: dict[str, Head] = {}
        self.commit = 0

    def __len__(self) -> int:
        return len(self.heads)

    def get(self, key: str) -> Head | None:
        return self.heads.get(key)

    def apply_one(self, key: str, valid: int, content_id: str | None, write_id: str, *, commit: int) -> None:
        """Fold one version of ``commit`` into the index (valid time in ns; content id None for a tombstone)."""
        head = self.heads.get(key)
        if head is None or (valid, commit) >= (head.valid_from, head.commit):
            self.heads[key] = Head(valid, commit, content_id, write_id)
        else:
            self.heads[key] = head._replace(last_write_id=write_id)
        self.commit = max(self.commit, commit)

    def apply(self, versions: pa.Table, *, commit: int) -> None:
        """Fold versions (columns :data:`INDEX_COLUMNS`, any order) into the index.

        Versions must all belong to commits later than those already folded in.
        """
        if versions.num_rows:
            order = pc.sort_indices(
                versions,
                sort_keys=[("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")],
            )
            t = versions.select(list(INDEX_COLUMNS)).take(order)
            keys = t["_key"].to_pylist()
            valid = t["_valid_from"].cast(pa.int64()).to_pylist()
            commits = t["_commit"].to_pylist()
            write_ids = t["_write_id"].to_pylist()
            content = t["_content_id"].to_pylist()
            deleted = t["_deleted"].to_pylist()
            heads = self.heads
            last_by_key: dict[str, str] = {}
            for k, wid in zip(keys, write_ids):  # write ids sort in write order
                seen = last_by_key.get(k)
                if seen is None or wid > seen:
                    last_by_key[k] = wid
            for i, k in enumerate(keys):
                head = heads.get(k)
                cid = None if deleted[i] else content[i]
                last = last_by_key[k]
                if head is not None and head.last_write_id > last:
                    last = head.last_write_id
                if head is None or (valid[i], commits[i]) >= (head.valid_from, head.commit):
                    heads[k] = Head(valid[i], commits[i], cid, last)
                else:
                    heads[k] = head._replace(last_write_id=last)
        self.commit = max(self.commit, commit)
