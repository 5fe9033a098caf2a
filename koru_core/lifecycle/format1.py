"""On-disk format 1, as far as a format-2 store still needs it: ids and the format-1 commit hash.

A store upgraded from format 1 (:mod:`koru_core.lifecycle.upgrade`) keeps every id and
hash it had, in format 2's binary columns:

- a write id of format 1 was 16 hex characters, ``<commit:08x><ordinal:08x>``; it is
  stored as the 8 bytes those characters spell (``fixed_size_binary(8)``, so the
  int64 write-id sequence value is ``commit << 32 | ordinal``) and shows as the same
  16 characters. Parent write ids stay the strings they were;
- a content id was 64 hex characters of content-id format 1 (blake3 of
  :mod:`koru_core.hashing.format1`'s canonical text); it is stored as its 32 bytes,
  and the store records ``content_format = 1``, so later writes hash with format 1 and
  the unchanged rule compares like with like;
- a commit hash was 64 hex characters; it is stored as its 32 bytes. The commits
  carried over keep these *format-1 hashes*; the catalog records how many there are
  (``meta.format1_commits``), and :func:`koru_core.lifecycle.verify.verify` checks them
  with :func:`chain_hash` below. Commits made after the upgrade chain on from the last
  format-1 hash with :func:`koru_core.chain.chain_hash` (format 2).

The format-1 hash (``koru_core/write.py`` at ``5bfbcff``)::

    hash = blake3( "<prev hash hex or ''>\\n<commit>\\n<system time ns>\\n"
                   ( write_id_hex content_id_hex_or_"-" )* )      rows in write-id order

covers commit numbers, system times, write ids and content ids, and so every value;
not keys, valid times, previous write ids, provenance or metadata. For the commits it
covers, verify also checks that each version's actor and run id equal its commit's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from blake3 import blake3

from koru_core._hex import from_hex, to_hex
from koru_core.model import CONTENT_ID, WRITE_ID

__all__ = ["META_COMMITS", "chain_hash", "content_ids", "write_ids"]

META_COMMITS = "format1_commits"
"""Catalog meta entry: commits 1..n of the store carry format-1 hashes (absent: none)."""


def write_ids(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Format-1 write ids (16 hex characters, nulls stay null) → ``fixed_size_binary(8)``.

    Raises:
        ValueError: a value is not 16 characters long.

    Example:
        >>> write_ids(pa.array(["000000070000002a", None])).to_pylist()
        [b'\\x00\\x00\\x00\\x07\\x00\\x00\\x00*', None]
    """
    return from_hex(values, WRITE_ID.byte_width)


def content_ids(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Format-1 content ids (64 hex characters, null for a tombstone) → ``fixed_size_binary(32)``.

    Raises:
        ValueError: a value is not 64 characters long.

    Example:
        >>> content_ids(pa.array(["ab" * 32])).to_pylist() == [bytes([0xAB]) * 32]
        True
    """
    return from_hex(values, CONTENT_ID.byte_width)


def chain_hash(prev_hash: bytes | None, *, commit: int, system_time: int, write_id: pa.Array,
               content_id: pa.Array) -> bytes:
    """Return a commit's format-1 chain hash (see the module docstring), 32 bytes.

    Args:
        prev_hash: The previous commit's hash (32 bytes), None for commit 1.
        commit: The commit number.
        system_time: Its system time, ns since the epoch (UTC).
        write_id: Its versions' write ids (``fixed_size_binary(8)``), in write-id order.
        content_id: Their content ids (``fixed_size_binary(32)``, null for a tombstone).

    Example:
        >>> ids, cids = pa.array([], pa.binary(8)), pa.array([], pa.binary(32))
        >>> chain_hash(None, commit=1, system_time=0, write_id=ids, content_id=cids) == blake3(b"\\n1\\n0\\n").digest()
        True
    """
    h = blake3(f"{prev_hash.hex() if prev_hash else ''}\n{commit}\n{system_time}\n".encode())
    if len(write_id):
        cid = pc.fill_null(to_hex(content_id), "-")
        joined = pc.binary_join_element_wise(to_hex(write_id), cid, "").cast(pa.large_string())
        _, offsets, data = joined.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
        h.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])
    return h.digest()
