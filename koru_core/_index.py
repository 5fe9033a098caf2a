"""The hot tier's current-state index: per key, its current version and last write id.

For each key of a namespace the index keeps a :class:`Head`: the valid time,
commit and content id of the version the as-of rule picks "now" (largest
``_valid_from``, then ``_commit``), and the write id of the key's latest write
(the ``_prev_write_id`` of its next version). Writes use it to skip unchanged
rows and chain versions without reading files; it is built once per process
from the data and then kept up to date commit by commit.

It lives in an Arrow table (one row per key, :data:`HEAD_SCHEMA`) so a batch
of a million rows is matched against it with one hash join, plus a small dict
of single-row updates (puts) that is folded into the table before the next
batch. Single-key lookups go through a key → row dict built on first need.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HEAD_SCHEMA", "INDEX_COLUMNS", "Head", "HeadIndex"]

INDEX_COLUMNS = ("_key", "_valid_from", "_commit", "_write_id", "_content_id", "_deleted")
"""The version columns the index is built from."""

HEAD_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("valid_from", pa.int64()),
        ("commit", pa.int64()),
        ("content_id", pa.string()),
        ("last_write_id", pa.string()),
    ]
)
"""One row per key: current version's valid time (ns) and commit, its content id
(null for a tombstone), and the key's latest write id."""


class Head(NamedTuple):
    """The state of one key: current version (valid time ns, commit, content id or
    None for a tombstone) and the write id of its latest write."""

    valid_from: int
    commit: int
    content_id: str | None
    last_write_id: str


class HeadIndex:
    """Key → :class:`Head` for one namespace, valid up to commit ``commit``."""

    __slots__ = ("_positions", "_table", "commit", "overlay")

    def __init__(self) -> None:
        self._table = HEAD_SCHEMA.empty_table()
        self.overlay: dict[str, Head] = {}
        self._positions: dict[str, int] | None = None
        self.commit = 0

    def __len__(self) -> int:
        return self.table().num_rows

    def nbytes(self) -> int:
        """Estimated memory in bytes: the Arrow table, the single-row updates and the
        key → row dict (about 100 bytes per entry each)."""
        return self._table.nbytes + 100 * (len(self.overlay) + len(self._positions or ()))

    def table(self) -> pa.Table:
        """Return every head as a :data:`HEAD_SCHEMA` table (folding in single updates)."""
        if self.overlay:
            rows = pa.Table.from_pylist(
                [{"key": k, **h._asdict()} for k, h in self.overlay.items()], schema=HEAD_SCHEMA
            )
            keep = pc.invert(pc.is_in(self._table["key"], value_set=rows["key"]))
            self._table = pa.concat_tables([self._table.filter(keep), rows]).combine_chunks()
            self.overlay.clear()
            self._positions = None
        return self._table

    def get(self, key: str) -> Head | None:
        """Return the head of one key, or None if the key was never written."""
        head = self.overlay.get(key)
        if head is not None:
            return head
        if self._positions is None:
            self._positions = {k: i for i, k in enumerate(self._table["key"].to_pylist())}
        i = self._positions.get(key)
        if i is None:
            return None
        t = self._table
        return Head(
            t["valid_from"][i].as_py(), t["commit"][i].as_py(), t["content_id"][i].as_py(),
            t["last_write_id"][i].as_py(),
        )

    def live_keys(self) -> pa.Array:
        """Return the keys whose current version is not a tombstone."""
        t = self.table()
        return t.filter(pc.is_valid(t["content_id"]))["key"].combine_chunks()

    def lookup(self, keys: pa.Array) -> pa.Table:
        """Return the heads aligned with ``keys`` (null columns for unknown keys).

        Args:
            keys: string array, any length, may repeat.

        Returns:
            :data:`HEAD_SCHEMA` columns, one row per element of ``keys``, in order.
        """
        probe = pa.table({"key": keys, "__row": pa.array(range(len(keys)), pa.int64())})
        # Acero builds its hash table on the right input: keep the (small) batch there
        joined = self.table().join(probe, "key", join_type="right outer", use_threads=True)
        joined = joined.take(pc.sort_indices(joined["__row"]))
        return joined.select(HEAD_SCHEMA.names)

    def apply_one(self, key: str, valid: int, content_id: str | None, write_id: str, *, commit: int) -> None:
        """Fold one version of ``commit`` into the index (valid time in ns; content id None for a tombstone)."""
        head = self.get(key)
        if head is None or (valid, commit) >= (head.valid_from, head.commit):
            self.overlay[key] = Head(valid, commit, content_id, write_id)
        else:
            self.overlay[key] = head._replace(last_write_id=write_id)
        self.commit = max(self.commit, commit)

    def apply(self, versions: pa.Table, *, commit: int) -> None:
        """Fold versions (columns :data:`INDEX_COLUMNS`, any order) into the index.

        Every version must belong to a commit later than those already folded in.
        """
        if versions.num_rows:
            base = self.table()
            new = pa.table(
                {
                    "key": versions["_key"],
                    "valid_from": versions["_valid_from"].cast(pa.int64()),
                    "commit": versions["_commit"],
                    "content_id": pc.if_else(versions["_deleted"], pa.scalar(None, pa.string()), versions["_content_id"]),
                    "last_write_id": versions["_write_id"],
                }
            )
            touched = pc.is_in(base["key"], value_set=pc.unique(new["key"]))
            both = pa.concat_tables([base.filter(touched), new])
            order = pc.sort_indices(
                both, sort_keys=[("key", "ascending"), ("valid_from", "ascending"), ("commit", "ascending")]
            )
            both = both.take(order)
            keys = both["key"].combine_chunks()
            n = len(keys)
            is_last = pa.concat_arrays([pc.not_equal(keys.slice(0, n - 1), keys.slice(1)), pa.array([True])])
            current = both.filter(is_last).drop_columns(["last_write_id"])
            # write ids sort in write order and the new ones are the latest
            latest = new.group_by("key").aggregate([("last_write_id", "max")]).rename_columns(["key", "last_write_id"])
            heads = current.join(latest, "key", join_type="inner")
            table = pa.concat_tables(
                [base.filter(pc.invert(touched)), heads.select(HEAD_SCHEMA.names).cast(HEAD_SCHEMA)]
            )
            # one chunk per commit is added; merging them is a full copy, so only now and then
            self._table = table.combine_chunks() if table["key"].num_chunks > 32 else table
            self._positions = None
        self.commit = max(self.commit, commit)
