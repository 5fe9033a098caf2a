"""The hot tier's current-state index: per key, its last version, last write id and last valid time.

For each key of a namespace the index keeps a :class:`Head`: the valid time,
commit and content id of the key's last version (largest ``_valid_from``, then
``_commit``), the write id of the key's latest write (the ``_prev_write_id`` of its
next version), and ``last_valid``: the largest valid time of any row recorded for the
key, skip records included. Writes use it to skip unchanged rows and chain versions
without reading files; a row valid before ``last_valid`` is *late* and needs the
key's history. It is built once per store from the data and then kept up to date
commit by commit.

Layout, chosen so a commit costs memory in proportion to its own size, never
to the index's (a copy of a million-key index per commit would double the
process's peak while loading):

- an Arrow table of heads with the ids held as bytes, not hex
  (:data:`_STORED_SCHEMA`), one chunk appended per commit: a key's new head
  is appended and its old row only marked superseded, in a NumPy bool array
  (one byte per row);
- a batch of a million rows is matched with one hash lookup of each row's key
  in the set of the batch's keys (``pyarrow.compute.index_in``, streaming
  over the chunks), so the index is never copied or joined;
- when superseded rows pass a quarter of the live ones, the table is
  compacted chunk by chunk, each old chunk freed as soon as it is rewritten
  (peak: the index plus one chunk of ``chunk_rows`` rows);
- single-row updates (puts) wait in a small dict folded in before the next
  batch, and single-key lookups go through a key → row dict built on first need.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CHUNK_ROWS", "HEAD_SCHEMA", "INDEX_COLUMNS", "Head", "HeadIndex"]

INDEX_COLUMNS = ("_key", "_valid_from", "_commit", "_write_id", "_content_id", "_deleted")
"""The version columns the index is built from."""

HEAD_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("valid_from", pa.int64()),
        ("commit", pa.int64()),
        ("content_id", pa.binary(32)),
        ("last_write_id", pa.binary(8)),
        ("last_valid", pa.int64()),
    ]
)
"""One row per key: last version's valid time (ns) and commit, its content id
(null for a tombstone), the key's latest write id and its last valid time (ns,
skip records included). What :meth:`HeadIndex.lookup` returns (about 84 bytes a key
with 8-character keys)."""

_STORED_SCHEMA = HEAD_SCHEMA

CHUNK_ROWS = 131_072
"""Rows per chunk written by compaction (the most it holds twice at once), and
the fewest superseded rows that make compaction worth its full pass."""


MAX_CHUNKS = 64
"""Past this many chunks (one per batch commit) the table is compacted even when few
rows are superseded, so a lookup never walks thousands of tiny chunks."""

SMALL_LOOKUP = 1024
"""Key sets up to this size are looked up in the key → row dict when it exists."""


class Head(NamedTuple):
    """The state of one key: last version (valid time ns, commit, 32-byte content id
    or None for a tombstone), the 8-byte write id of its latest write, and its last
    valid time (ns, skip records included)."""

    valid_from: int
    commit: int
    content_id: bytes | None
    last_write_id: bytes
    last_valid: int


class HeadIndex:
    """Key → :class:`Head` for one namespace, valid up to commit ``commit``."""

    __slots__ = ("_live", "_positions", "_superseded", "_table", "_table_bytes", "chunk_rows", "commit", "overlay")

    def __init__(self, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        self._table = _STORED_SCHEMA.empty_table()
        self._table_bytes = 0  # kept up to date: summing a table of many chunks costs O(chunks)
        self._superseded = np.zeros(0, dtype=bool)  # per row of _table: a later row holds the key's head
        self._live = 0  # rows not superseded: one per key
        self.overlay: dict[str, Head] = {}
        self._positions: dict[str, int] | None = None  # key -> row of _table, live rows only
        self.commit = 0

    def __len__(self) -> int:
        self._fold_overlay()
        return self._live

    def nbytes(self) -> int:
        """Estimated memory in bytes: the Arrow table (superseded rows included),
        its row marks, the single-row updates and the key → row dict (about 100
        bytes per entry each)."""
        extra = 100 * (len(self.overlay) + len(self._positions or ()))
        return self._table_bytes + self._superseded.nbytes + extra

    def load(self, heads: pa.Table) -> None:
        """Fill an empty index with one head per key (:data:`HEAD_SCHEMA` rows, unique keys)."""
        self.overlay.clear()
        self._table = heads.cast(_STORED_SCHEMA).combine_chunks()
        self._table_bytes = self._table.nbytes
        self._superseded = np.zeros(self._table.num_rows, dtype=bool)
        self._live = self._table.num_rows
        self._positions = None

    def get(self, key: str) -> Head | None:
        """Return the head of one key, or None if the key was never written."""
        head = self.overlay.get(key)
        if head is not None:
            return head
        if self._positions is None:
            self._positions = {}
            start = 0
            for chunk in self._table["key"].chunks:
                keys = chunk.to_pylist()
                dead = self._superseded[start:start + len(keys)]
                self._positions.update((k, start + i) for i, k in enumerate(keys) if not dead[i])
                start += len(keys)
        i = self._positions.get(key)
        if i is None:
            return None
        t = self._table
        return Head(
            t["valid_from"][i].as_py(), t["commit"][i].as_py(), t["content_id"][i].as_py(),
            t["last_write_id"][i].as_py(), t["last_valid"][i].as_py(),
        )

    def live_keys(self) -> pa.Array:
        """Return the keys whose current version is not a tombstone."""
        self._fold_overlay()
        t = self._table
        keep = pc.and_(pc.is_valid(t["content_id"]), pa.array(~self._superseded))
        return t["key"].filter(keep).combine_chunks()

    def lookup(self, keys: pa.Array) -> pa.Table:
        """Return the heads aligned with ``keys`` (null columns for unknown keys).

        Args:
            keys: string array, any length, may repeat.

        Returns:
            :data:`HEAD_SCHEMA` columns, one row per element of ``keys``, in order.
        """
        self._fold_overlay()
        keys = pa.array(keys, pa.string())
        unique = pc.unique(keys)
        positions, which = self._find(unique)
        row_of = np.full(len(unique), -1, dtype=np.int64)
        row_of[which] = positions
        heads = self._take(row_of[pc.index_in(keys, value_set=unique).to_numpy()])
        return heads.set_column(0, "key", keys)

    def apply_one(self, key: str, valid: int, content_id: bytes | None, write_id: bytes, *, commit: int) -> None:
        """Fold one version of ``commit`` into the index (valid time in ns; content id None for a tombstone)."""
        head = self.get(key)
        if head is None or (valid, commit) >= (head.valid_from, head.commit):
            last = valid if head is None else max(valid, head.last_valid)
            self.overlay[key] = Head(valid, commit, content_id, write_id, last)
        else:
            self.overlay[key] = head._replace(last_write_id=write_id)
        self.commit = max(self.commit, commit)

    def apply_skip(self, key: str, valid: int, *, commit: int) -> None:
        """Record that a row of ``key`` valid at ``valid`` (ns) was skipped as unchanged."""
        head = self.get(key)
        if head is not None and valid > head.last_valid:
            self.overlay[key] = head._replace(last_valid=valid)
        self.commit = max(self.commit, commit)

    def apply(self, versions: pa.Table, *, commit: int, skips: pa.Table | None = None) -> None:
        """Fold versions (columns :data:`INDEX_COLUMNS`, any order) and skip records
        (``_key``, ``_valid_from``) into the index.

        Every version must belong to a commit later than those already folded in.
        """
        if versions.num_rows:
            self._fold_overlay()
            valid = versions["_valid_from"].cast(pa.int64())
            new = pa.table(
                {
                    "key": versions["_key"],
                    "valid_from": valid,
                    "commit": versions["_commit"].cast(pa.int64()),
                    "content_id": pc.if_else(versions["_deleted"], pa.scalar(None, pa.binary(32)), versions["_content_id"]),
                    "last_write_id": versions["_write_id"],
                    "last_valid": valid,
                }
            ).cast(HEAD_SCHEMA)
            new = new.combine_chunks()
            keys = new["key"].chunk(0) if new.num_rows else pa.array([], pa.string())
            last = _last_of_sorted_runs(new)
            if last is not None and len(last) < len(keys):
                # several versions of a key, in (key, valid time) order: the last of each run is the
                # key's latest by valid time and by write id; the run's valid times are all below it
                new = new.take(pa.array(last))
                keys = new["key"].chunk(0)
            unique = pc.unique(keys) if last is None else keys
            positions, which = self._find(unique)
            if len(unique) == len(keys):
                heads = self._heads_of_single_versions(new, positions, which)
            else:
                heads = self._heads_of_many_versions(new, positions).combine_chunks()
            self._replace(positions, heads)
        if skips is not None and skips.num_rows:
            self._apply_skips(skips)
        self.commit = max(self.commit, commit)

    def _apply_skips(self, skips: pa.Table) -> None:
        """Raise ``last_valid`` of the keys of skip records (``_key``, ``_valid_from``)."""
        self._fold_overlay()
        latest = pa.table({"key": skips["_key"], "v": skips["_valid_from"].cast(pa.int64())}).group_by("key").aggregate(
            [("v", "max")]
        )
        positions, which = self._find(latest["key"].combine_chunks())
        if not len(positions):
            return
        old = self._take(positions)
        raised = pc.max_element_wise(old["last_valid"], latest["v_max"].combine_chunks().take(pa.array(which)))
        if pc.all(pc.equal(raised, old["last_valid"])).as_py():
            return
        self._replace(positions, old.set_column(5, "last_valid", raised).combine_chunks())

    def _heads_of_single_versions(self, new: pa.Table, positions: np.ndarray, which: np.ndarray) -> pa.Table:
        """New heads when each key has one new version (the usual batch): per key, the
        new version, or the old head (with the new write id) if that one is valid later.

        ``new`` is in :data:`_STORED_SCHEMA`; ``positions``/``which`` from :meth:`_find` on its keys.
        """
        rows = np.full(new.num_rows, -1, dtype=np.int64)
        rows[which] = positions
        old = self._take(rows)
        # the new commit is later than every stored one, so only a later valid time keeps the old head
        keep = pc.fill_null(pc.greater(old["valid_from"], new["valid_from"]), False)
        last = pc.fill_null(pc.max_element_wise(old["last_valid"], new["last_valid"]), new["last_valid"])
        if not pc.any(keep).as_py():
            return new.set_column(5, "last_valid", last)
        columns = [
            pc.if_else(keep, old[name], new[name]) if name in ("valid_from", "commit", "content_id") else new[name]
            for name in _STORED_SCHEMA.names[:5]
        ]
        return pa.table([*columns, last], schema=_STORED_SCHEMA)

    def _heads_of_many_versions(self, new: pa.Table, positions: np.ndarray) -> pa.Table:
        """New heads when a key may have several new versions: old heads and new
        versions sorted by (key, valid time, commit), the last of each key, with
        the key's latest new write id. Both tables in :data:`HEAD_SCHEMA`."""
        both = pa.concat_tables([self._take(positions), new])
        order = pc.sort_indices(both, sort_keys=[("key", "ascending"), ("valid_from", "ascending"), ("commit", "ascending")])
        both = both.take(order)
        keys = both["key"].combine_chunks()
        n = len(keys)
        is_last = pa.concat_arrays([pc.not_equal(keys.slice(0, n - 1), keys.slice(1)), pa.array([True])])
        current = both.filter(is_last).drop_columns(["last_write_id", "last_valid"])
        # write ids sort in write order (big-endian bytes) and the new ones are the latest
        order = pc.sort_indices(new, sort_keys=[("key", "ascending"), ("last_write_id", "descending")])
        by_write = new.take(order)
        wkeys = by_write["key"].combine_chunks()
        first = pa.concat_arrays([pa.array([True]), pc.not_equal(wkeys.slice(1), wkeys.slice(0, len(wkeys) - 1))])
        latest = by_write.filter(first).select(["key", "last_write_id"])
        valid = both.group_by("key").aggregate([("last_valid", "max")]).rename_columns(["key", "last_valid"])
        out = current.join(latest, "key", join_type="inner").join(valid, "key", join_type="inner")
        return out.select(HEAD_SCHEMA.names).cast(HEAD_SCHEMA)

    # -- internals ------------------------------------------------------------

    def _find(self, keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Find the live rows of distinct ``keys``.

        One hash lookup of every row's key in the set of ``keys`` (built once),
        streaming over the chunks: the index is never copied or joined. A few
        keys go through the key → row dict instead, when puts have built it.

        Returns:
            (row numbers in the table, positions in ``keys``), int64 arrays of equal length.
        """
        if not self._table.num_rows or not len(keys):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self._positions is not None and len(keys) <= SMALL_LOOKUP:
            found = [(self._positions.get(k), i) for i, k in enumerate(keys.to_pylist())]
            pairs = np.array([(p, i) for p, i in found if p is not None], dtype=np.int64).reshape(-1, 2)
            return pairs[:, 0].copy(), pairs[:, 1].copy()
        where = pc.fill_null(pc.index_in(self._table["key"], value_set=keys), -1).to_numpy()
        positions = np.flatnonzero((where >= 0) & ~self._superseded)
        return positions, where[positions].astype(np.int64)

    def _take(self, rows: np.ndarray) -> pa.Table:
        """Return the table's rows at ``rows`` (int64; -1 gives a null row), in order.

        Takes chunk by chunk: ``Table.take`` would first concatenate the
        chunks, a copy of the whole index.
        """
        valid = rows >= 0
        wanted = np.unique(rows[valid])
        pieces, start = [], 0
        for batch in self._table.to_batches():
            lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
            if hi > lo:
                pieces.append(batch.take(pa.array(wanted[lo:hi] - start)))
            start += batch.num_rows
        found = pa.Table.from_batches(pieces, schema=_STORED_SCHEMA).combine_chunks()
        at = np.where(valid, np.searchsorted(wanted, rows), 0)
        return found.take(pa.array(at, mask=~valid))

    def _replace(self, superseded: np.ndarray, heads: pa.Table) -> None:
        """Mark the rows at ``superseded`` and append ``heads`` (one per key) as a new chunk."""
        start = self._table.num_rows
        self._superseded[superseded] = True
        self._superseded = np.concatenate([self._superseded, np.zeros(heads.num_rows, dtype=bool)])
        self._live += heads.num_rows - len(superseded)
        chunk = heads.combine_chunks()
        self._table = pa.concat_tables([self._table, chunk])
        self._table_bytes += chunk.nbytes
        if self._positions is not None:
            self._positions.update(zip(heads["key"].to_pylist(), range(start, start + heads.num_rows), strict=True))
        superseded = self._table.num_rows - self._live
        if superseded > max(self._live // 4, self.chunk_rows) or (
            self._table["key"].num_chunks > MAX_CHUNKS and superseded > self._live // 8
        ) or self._table["key"].num_chunks > 4 * MAX_CHUNKS:
            self._compact()

    def _compact(self) -> None:
        """Drop superseded rows, rewriting the table chunk by chunk."""
        batches = self._table.to_batches()
        superseded = self._superseded
        self._table = _STORED_SCHEMA.empty_table()  # old chunks are freed one by one below
        pieces: list[pa.RecordBatch] = []
        pending: list[pa.RecordBatch] = []
        start = 0
        batches.reverse()
        while batches:
            batch = batches.pop()
            n = batch.num_rows
            pending.append(batch.filter(pa.array(~superseded[start:start + n])))
            start += n
            del batch
            if sum(b.num_rows for b in pending) >= self.chunk_rows or not batches:
                pieces.append(pa.concat_batches(pending))
                pending = []
        self._table = pa.Table.from_batches(pieces, schema=_STORED_SCHEMA)
        self._table_bytes = self._table.nbytes
        self._superseded = np.zeros(self._table.num_rows, dtype=bool)
        self._live = self._table.num_rows
        self._positions = None

    def _fold_overlay(self) -> None:
        """Move the single-row updates into the table."""
        if self.overlay:
            rows = pa.Table.from_pylist(
                [{"key": k, **h._asdict()} for k, h in self.overlay.items()], schema=HEAD_SCHEMA
            )
            self.overlay.clear()
            positions, _ = self._find(rows["key"].combine_chunks())
            self._replace(positions, rows.combine_chunks())


def _last_of_sorted_runs(new: pa.Table) -> np.ndarray | None:
    """Row numbers of the last row of each key when ``new`` is sorted by (key, valid time)
    with write ids rising (as a commit's versions are written); None when it is not."""
    n = new.num_rows
    if n < 2:
        return np.arange(n, dtype=np.int64) if n else None
    keys = new["key"].chunk(0)
    a, b = keys.slice(0, n - 1), keys.slice(1)
    if not pc.all(pc.less_equal(a, b)).as_py():
        return None
    same = pc.equal(a, b)
    valid = new["valid_from"].chunk(0)
    ordered = pc.or_(pc.invert(same), pc.less_equal(valid.slice(0, n - 1), valid.slice(1)))
    if not pc.all(ordered).as_py():
        return None
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = ~same.to_numpy(zero_copy_only=False)
    return np.flatnonzero(is_last)
