"""The hot tier's current-state index: per key, its last version, last write id and last valid time.

For each key of a namespace the index keeps a :class:`Head`: the valid time,
commit and content id of the key's last version (largest ``_valid_from``, then
``_commit``), the write id of the key's latest write (the ``_prev_write_id`` of its
next version), and ``last_valid``: the largest valid time of any row recorded for the
key, skip records included. Writes use it to skip unchanged rows and chain versions
without reading files; a row valid before ``last_valid`` is *late* and needs the
key's history. It is built once per store from the data and then kept up to date
commit by commit.

Layout: one row per key, for good. The keys are an append-only Arrow string
column (a key's row never moves); the heads are NumPy arrays updated in place
(int64 valid times, commits and last valid times; 32-byte content ids and 8-byte
write ids as uint8 matrices; a flag for tombstones), grown by doubling. So a commit
costs in proportion to its own rows: a batch's keys are found by binary search among
the index's keys in key order (:func:`~koru_core.read.rules.search_sorted`; that order is
kept, and keys added since are merged in), its heads gathered and
scattered by row number; a single put goes through a key → row dict built on first
need. The heads are never copied per commit; the key-ordered copy of the keys is
gathered again (one take) only after commits that added keys, and there is nothing
to compact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.read.rules import find_sorted, search_sorted

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["HEAD_SCHEMA", "INDEX_COLUMNS", "Head", "HeadIndex"]

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
skip records included). What :meth:`HeadIndex.lookup` returns."""

_NEW_KEY_CHUNK = 4096
"""Keys added one at a time (puts) are gathered into a chunk of the key column this large."""

_MAX_CHUNKS = 64
"""Past this many chunks the key column is combined into one (so a lookup hashes one array)."""


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
    """Key → :class:`Head` for one namespace, valid up to commit ``commit``.

    Not thread-safe: the writer updates it under the store's write lock.
    """

    __slots__ = ("_chunks", "_combined", "_commit", "_content", "_has_content", "_last_valid", "_n", "_new_keys",
                 "_order", "_ordered", "_positions", "_sorted_keys", "_valid", "_write_id", "commit")

    def __init__(self) -> None:
        self._chunks: list[pa.Array] = []  # the key column, in row order (one key per row, for good)
        self._new_keys: list[str] = []  # keys of the last rows, not yet in a chunk
        self._combined: pa.Array | None = None  # the key column as one array (cached)
        self._n = 0
        self._valid = np.zeros(0, dtype=np.int64)
        self._commit = np.zeros(0, dtype=np.int64)
        self._last_valid = np.zeros(0, dtype=np.int64)
        self._content = np.zeros((0, 32), dtype=np.uint8)
        self._has_content = np.zeros(0, dtype=bool)
        self._write_id = np.zeros((0, 8), dtype=np.uint8)
        self._positions: dict[str, int] | None = None  # key -> row, built on first need
        self._order = np.zeros(0, dtype=np.int64)  # rows [0, _ordered) in key order
        self._sorted_keys = pa.array([], pa.string())  # their keys, in that order
        self._ordered = 0
        self.commit = 0

    def __len__(self) -> int:
        return self._n

    def nbytes(self) -> int:
        """Estimated memory in bytes: the key column, the head arrays (at capacity) and
        the key → row dict (about 100 bytes per entry)."""
        keys = sum(c.nbytes for c in self._chunks) + 60 * len(self._new_keys)
        arrays = (self._valid.nbytes + self._commit.nbytes + self._last_valid.nbytes + self._content.nbytes
                  + self._has_content.nbytes + self._write_id.nbytes)
        return keys + arrays + 100 * len(self._positions or ())

    def load(self, parts: Iterable[pa.Table], *, rows: int) -> None:
        """Fill an empty index with one head per key, a part at a time (so a caller can
        decode its state files a few row groups at a time, holding one part at once).

        Args:
            parts: Tables of ``key`` (string), ``valid_from``, ``commit`` (int64),
                ``content_id`` (``fixed_size_binary(32)``), ``deleted`` (bool: the head is
                a tombstone, its content id is ignored), ``last_write_id``
                (``fixed_size_binary(8)``) and ``last_valid`` (int64, ns); keys unique
                across all parts.
            rows: How many rows the parts hold together (the arrays are sized once).
        """
        self.__init__()  # type: ignore[misc]
        self._grow(rows)
        for part in parts:
            part = part.combine_chunks()
            n = part.num_rows
            if not n:
                continue
            start = self._n
            span = slice(start, start + n)
            self._chunks.append(part["key"].chunk(0).cast(pa.string()))
            self._combined = None
            self._grow(start + n)
            self._n = start + n
            self._valid[span] = part["valid_from"].chunk(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
            self._commit[span] = part["commit"].chunk(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
            self._last_valid[span] = part["last_valid"].chunk(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
            content = part["content_id"].chunk(0)
            deleted = part["deleted"].chunk(0).to_numpy(zero_copy_only=False)
            self._has_content[span] = content.is_valid().to_numpy(zero_copy_only=False) & ~deleted
            self._content[span] = _matrix(content, 32)
            self._write_id[span] = _matrix(part["last_write_id"].chunk(0), 8)

    # -- reads ------------------------------------------------------------------

    def get(self, key: str) -> Head | None:
        """Return the head of one key, or None if the key was never written."""
        i = self._row_of(key)
        if i is None:
            return None
        return Head(int(self._valid[i]), int(self._commit[i]),
                    self._content[i].tobytes() if self._has_content[i] else None,
                    self._write_id[i].tobytes(), int(self._last_valid[i]))

    def live_keys(self) -> pa.Array:
        """Return the keys whose current version is not a tombstone."""
        return self._keys().filter(pa.array(self._has_content[: self._n]))

    def rows_of(self, keys: pa.Array) -> np.ndarray:
        """The index row of each of ``keys`` (int64, -1 for keys never written). A key's
        row never changes, so these stay valid for :meth:`apply` after later commits."""
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        return self._rows(keys)

    def lookup(self, keys: pa.Array, *, rows: np.ndarray | None = None) -> pa.Table:
        """Return the heads aligned with ``keys`` (null columns for unknown keys).

        Args:
            keys: string array, any length, may repeat.
            rows: Their rows, when already known (:meth:`rows_of`).

        Returns:
            :data:`HEAD_SCHEMA` columns, one row per element of ``keys``, in order.
        """
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        keys = pa.array(keys, pa.string()) if not isinstance(keys, pa.Array) else keys
        rows = self._rows(keys) if rows is None else rows
        found = rows >= 0
        at = np.where(found, rows, 0)
        missing = ~found
        if not self._n or not found.any():
            return _no_heads(keys)
        return pa.table([
            keys,
            pa.array(self._valid[at], mask=missing),
            pa.array(self._commit[at], mask=missing),
            _binary(_take(self._content, at), 32, missing | ~self._has_content[at]),
            _binary(_take(self._write_id, at), 8, missing),
            pa.array(self._last_valid[at], mask=missing),
        ], schema=HEAD_SCHEMA)

    # -- writes -----------------------------------------------------------------

    def apply_one(self, key: str, valid: int, content_id: bytes | None, write_id: bytes, *, commit: int) -> None:
        """Fold one version of ``commit`` into the index (valid time in ns; content id None for a tombstone)."""
        i = self._row_of(key)
        if i is None:
            i = self._append_one(key)
            self._set(i, valid, commit, content_id)
            self._last_valid[i] = valid
        elif (valid, commit) >= (self._valid[i], self._commit[i]):
            self._set(i, valid, commit, content_id)
            self._last_valid[i] = max(valid, int(self._last_valid[i]))
        self._write_id[i] = np.frombuffer(write_id, dtype=np.uint8)
        self.commit = max(self.commit, commit)

    def apply_skip(self, key: str, valid: int, *, commit: int) -> None:
        """Record that a row of ``key`` valid at ``valid`` (ns) was skipped as unchanged."""
        i = self._row_of(key)
        if i is not None and valid > self._last_valid[i]:
            self._last_valid[i] = valid
        self.commit = max(self.commit, commit)

    def apply(self, versions: pa.Table, *, commit: int, skips: pa.Table | None = None,
              rows: np.ndarray | None = None, skip_rows: np.ndarray | None = None) -> None:
        """Fold one commit's versions (columns :data:`INDEX_COLUMNS`, any order) and skip
        records (``_key``, ``_valid_from``) into the index.

        Every version must belong to a commit later than those already folded in.
        ``rows``/``skip_rows``: the index rows of their keys when already known
        (:meth:`rows_of` before the commit; -1 for new keys): no lookup then.
        """
        if versions.num_rows:
            self._apply_versions(versions.combine_chunks(), rows)
        if skips is not None and skips.num_rows:
            self._apply_skips(skips, skip_rows)
        self.commit = max(self.commit, commit)

    def _apply_versions(self, v: pa.Table, known: np.ndarray | None) -> None:
        keys = v["_key"].chunk(0)
        valid = v["_valid_from"].cast(pa.int64()).chunk(0).to_numpy(zero_copy_only=False)
        wids = v["_write_id"].chunk(0)
        wid_int = _matrix(wids, 8).view(">u8").reshape(-1).astype(np.uint64)
        n = len(keys)
        order = _sorted_order(keys, valid)
        if order is not None:
            keys, valid, wid_int = keys.take(pa.array(order)), valid[order], wid_int[order]
            known = None if known is None else known[order]
        same = np.zeros(n, dtype=bool)
        if n > 1:
            same[1:] = pc.equal(keys.slice(0, n - 1), keys.slice(1)).to_numpy(zero_copy_only=False)
        one_each = order is None and not same.any()  # one version per key, in order: every row is a head
        starts = np.flatnonzero(~same)
        ends = np.append(starts[1:], n) - 1  # the last row of each key: its largest valid time
        latest_wid = wid_int if one_each else np.maximum.reduceat(wid_int, starts) if n else wid_int
        src = ends if order is None else order[ends]  # rows of ``v`` holding each key's head candidate

        def heads(column: pa.Array) -> pa.Array:
            return column if one_each else column.take(pa.array(src))

        cids = heads(v["_content_id"].chunk(0))
        deleted = heads(v["_deleted"].chunk(0)).to_numpy(zero_copy_only=False)
        commits = heads(v["_commit"].cast(pa.int64()).chunk(0)).to_numpy(zero_copy_only=False)
        head_keys = keys if one_each else keys.take(pa.array(ends))
        head_valid = valid if one_each else valid[ends]
        content = _matrix(cids, 32)
        has = ~deleted & cids.is_valid().to_numpy(zero_copy_only=False)
        wid_bytes = latest_wid.astype(">u8").view(np.uint8).reshape(-1, 8)
        rows = self._known_rows(head_keys, None if known is None else known[ends])
        old = rows >= 0
        # existing keys: a later (valid time, commit) replaces the head; the write id and last valid always move
        at = rows[old]
        newer = (head_valid[old] > self._valid[at]) | (
            (head_valid[old] == self._valid[at]) & (commits[old] >= self._commit[at]))
        upd = at[newer]
        sel = np.flatnonzero(old)[newer]
        self._valid[upd] = head_valid[sel]
        self._commit[upd] = commits[sel]
        _rows(self._content)[upd] = _rows(content)[sel]
        self._has_content[upd] = has[sel]
        _rows(self._write_id)[at] = _rows(wid_bytes)[old]
        self._last_valid[at] = np.maximum(self._last_valid[at], head_valid[old])
        # new keys: appended
        fresh = np.flatnonzero(~old)
        if len(fresh) == len(old):  # every key new: the rows go in as they are
            start = self._append(head_keys)
            span = slice(start, start + len(fresh))
            self._valid[span], self._commit[span], self._content[span] = head_valid, commits, content
            self._has_content[span], self._write_id[span], self._last_valid[span] = has, wid_bytes, head_valid
        elif len(fresh):
            start = self._append(head_keys.take(pa.array(fresh)))
            span = slice(start, start + len(fresh))
            self._valid[span] = head_valid[fresh]
            self._commit[span] = commits[fresh]
            self._content[span] = _take(content, fresh)
            self._has_content[span] = has[fresh]
            self._write_id[span] = _take(wid_bytes, fresh)
            self._last_valid[span] = head_valid[fresh]

    def _known_rows(self, keys: pa.Array, known: np.ndarray | None) -> np.ndarray:
        """The rows of ``keys``: ``known`` where given, looked up where it says -1 (the key
        may have been added since, by this commit or by a commit it was rebased over)."""
        if known is None:
            return self._rows(keys)
        missing = np.flatnonzero(known < 0)
        if not len(missing) or not self._n:  # nothing to look up, or nothing to find it in
            return known
        rows = known.copy()
        rows[missing] = self._rows(keys.take(pa.array(missing)))
        return rows

    def _apply_skips(self, skips: pa.Table, known: np.ndarray | None) -> None:
        """Raise ``last_valid`` of the keys of skip records (``_key``, ``_valid_from``)."""
        keys = skips["_key"].combine_chunks()
        valid = skips["_valid_from"].cast(pa.int64()).combine_chunks().to_numpy(zero_copy_only=False)
        rows = self._known_rows(keys, known)
        found = rows >= 0
        np.maximum.at(self._last_valid, rows[found], valid[found])

    # -- internals ----------------------------------------------------------------

    def _set(self, i: int, valid: int, commit: int, content_id: bytes | None) -> None:
        self._valid[i] = valid
        self._commit[i] = commit
        self._has_content[i] = content_id is not None
        if content_id is not None:
            self._content[i] = np.frombuffer(content_id, dtype=np.uint8)

    def _keys(self) -> pa.Array:
        """The key column as one array (row i holds the key of row i)."""
        if self._new_keys:
            self._chunks.append(pa.array(self._new_keys, pa.string()))
            self._new_keys = []
            self._combined = None
        if self._combined is None:
            if not self._chunks:
                self._combined = pa.array([], pa.string())
            elif len(self._chunks) == 1:
                self._combined = self._chunks[0]
            else:
                self._combined = pa.concat_arrays(self._chunks)
                if len(self._chunks) > _MAX_CHUNKS:
                    self._chunks = [self._combined]
        return self._combined

    def _rows(self, keys: pa.Array) -> np.ndarray:
        """Row of each of ``keys`` (int64, -1 where unknown)."""
        if not self._n or not len(keys):
            return np.full(len(keys), -1, dtype=np.int64)
        if self._positions is not None and len(keys) <= 64:
            return np.array([self._positions.get(k, -1) for k in keys.to_pylist()], dtype=np.int64)
        order, sorted_keys = self._key_order()
        at = find_sorted(sorted_keys, keys)
        return np.where(at >= 0, order[at], -1)

    def _key_order(self) -> tuple[np.ndarray, pa.Array]:
        """The rows in key order and their keys (a batch's keys are found by binary search,
        not by hashing every key of the index). Kept from one call to the next: keys added
        since are sorted and merged in at their places."""
        if self._ordered < self._n:
            keys = self._keys()
            added = keys.slice(self._ordered)
            by = pc.sort_indices(added)
            rows = self._ordered + by.to_numpy(zero_copy_only=False).astype(np.int64)
            if self._ordered:
                at = search_sorted(self._sorted_keys, added.take(by))
                self._order = np.insert(self._order, at, rows)
                self._sorted_keys = keys.take(pa.array(self._order))
            else:
                self._order, self._sorted_keys = rows, added.take(by)
            self._ordered = self._n
        return self._order, self._sorted_keys

    def _row_of(self, key: str) -> int | None:
        if self._positions is None:
            self._positions = {k: i for i, k in enumerate(self._keys().to_pylist())}
        return self._positions.get(key)

    def _grow(self, need: int) -> None:
        cap = len(self._valid)
        if need <= cap:
            return
        cap = max(need, 2 * cap, 1024)
        for name in ("_valid", "_commit", "_last_valid", "_has_content"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)
        for name, width in (("_content", 32), ("_write_id", 8)):
            old = getattr(self, name)
            new = np.zeros((cap, width), dtype=np.uint8)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _append(self, keys: pa.Array) -> int:
        """Add rows for new ``keys``; returns the first new row."""
        self._keys()  # gather single keys first: rows stay in order
        start = self._n
        self._grow(start + len(keys))
        self._chunks.append(keys)
        self._combined = None
        self._n += len(keys)
        if self._positions is not None:
            self._positions.update(zip(keys.to_pylist(), range(start, self._n), strict=True))
        return start

    def _append_one(self, key: str) -> int:
        i = self._n
        self._grow(i + 1)
        self._new_keys.append(key)
        self._combined = None
        self._n += 1
        if len(self._new_keys) >= _NEW_KEY_CHUNK:
            self._keys()
        if self._positions is not None:
            self._positions[key] = i
        return i


def _matrix(arr: pa.Array, width: int) -> np.ndarray:
    """The (n, width) uint8 matrix of a fixed_size_binary(width) array (null rows hold zeros or anything)."""
    n = len(arr)
    if not n:
        return np.zeros((0, width), dtype=np.uint8)
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=np.uint8, count=(arr.offset + n) * width)[arr.offset * width:].reshape(n, width)


def _no_heads(keys: pa.Array) -> pa.Table:
    """:data:`HEAD_SCHEMA` rows for keys none of which has a head: every column null, all
    over one zeroed buffer (from ``calloc``: pages nobody writes cost no memory, where
    :func:`pyarrow.nulls` fills one buffer per column, 60 MB at 1M keys)."""
    n = len(keys)
    zeros = pa.py_buffer(np.zeros(n * 32, dtype=np.uint8))
    invalid = pa.py_buffer(np.zeros((n + 7) // 8, dtype=np.uint8))
    columns = [pa.Array.from_buffers(f.type, n, [invalid, zeros], null_count=n) for f in list(HEAD_SCHEMA)[1:]]
    return pa.table([keys, *columns], schema=HEAD_SCHEMA)


def _rows(matrix: np.ndarray) -> np.ndarray:
    """A C-contiguous (n, width) uint8 matrix seen as n opaque ``width``-byte items (no
    copy): NumPy gathers and scatters those several times faster than 2-D rows."""
    return matrix.view(f"V{matrix.shape[1]}").reshape(-1)


def _take(matrix: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The rows ``at`` of a C-contiguous (n, width) uint8 matrix, as a new matrix."""
    return np.take(_rows(matrix), at).view(np.uint8).reshape(-1, matrix.shape[1])


def _binary(matrix: np.ndarray, width: int, null: np.ndarray) -> pa.Array:
    """A fixed_size_binary(width) array of the matrix rows, null where ``null``."""
    n = len(matrix)
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    if not null.any():
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, data])
    validity = pa.array(~null).buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [validity, data])


def _sorted_order(keys: pa.Array, valid: np.ndarray) -> np.ndarray | None:
    """None when rows are already in (key, valid time) order (a commit's versions are
    written so), else the order that sorts them."""
    n = len(keys)
    if n < 2:
        return None
    a, b = keys.slice(0, n - 1), keys.slice(1)
    if pc.all(pc.less_equal(a, b)).as_py():
        same = pc.equal(a, b).to_numpy(zero_copy_only=False)
        if not (same & (valid[:-1] > valid[1:])).any():
            return None
    order = pc.sort_indices(pa.table({"k": keys, "v": valid}), sort_keys=[("k", "ascending"), ("v", "ascending")])
    return order.to_numpy()
