"""The commit hash chain (on-disk format 2), as in Git's or Dolt's commit chains.

Each commit's hash covers the hash of the commit before it, its number, its system
time and a digest of every version it wrote, so editing any version or any earlier
commit changes every later hash. A user who keeps the head hash elsewhere (Dagster's
event log does, see ``koru_dagster``) can check a whole store against it with
``Store.verify(expected_head=…)``. This docstring is the specification;
``tests/core/test_chain.py`` pins it with hand-computed bytes.

``u32``, ``u64`` and ``i64`` are little-endian::

    body  = blake3( part* )                  the commit's namespaces in name order
    part  = u32(len(ns)) ns u64(n)           ns in UTF-8; n versions, in write-id order:
            write_id{n}      8 bytes each (big-endian int64 of the write-id sequence)
            prev_write_id{n} 8 bytes each, zero for none
            content_id{n}    32 bytes each, zero for a tombstone
            valid_from{n}    i64 ns each
            key_length{n}    u32 each, then the n keys' UTF-8 bytes, concatenated
    hash  = blake3( "koru-chain-2" prev_hash commit_u64 system_time_i64 body )
            prev_hash: the previous commit's 32-byte hash, or nothing for commit 1

Stores upgraded from format 1 keep their format-1 hashes for the commits made
before the upgrade (``koru_core.lifecycle.verify`` checks both).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from blake3 import blake3

__all__ = ["ZERO_ID", "body_digest", "chain_hash"]

ZERO_ID = bytes(8)
_ZERO_CID = pa.scalar(bytes(32), pa.binary(32))
_ZERO_WID = pa.scalar(ZERO_ID, pa.binary(8))


def chain_hash(prev_hash: bytes | None, *, commit: int, system_time: int, body: bytes) -> bytes:
    """Return a commit's 32-byte chain hash (see the module docstring).

    Example:
        >>> chain_hash(None, commit=1, system_time=0, body=bytes(32)).hex()[:16]
        'a0aa3c1f5b6c9a09'
    """
    h = blake3(b"koru-chain-2")
    h.update(prev_hash or b"")
    h.update(struct.pack("<Qq", commit, system_time))
    h.update(body)
    return h.digest()


def body_digest(parts: Iterable[tuple[str, pa.Table]]) -> bytes:
    """Return the digest of a commit's versions (see the module docstring).

    Args:
        parts: (namespace, versions) pairs; versions have ``_key`` (string),
            ``_valid_from`` (timestamp[ns]), ``_write_id`` and ``_prev_write_id``
            (fixed_size_binary(8)) and ``_content_id`` (fixed_size_binary(32)), in
            write-id order. Empty tables are skipped.
    """
    h = blake3()
    for namespace, t in sorted(parts, key=lambda p: p[0]):
        n = t.num_rows
        if not n:
            continue
        name = namespace.encode()
        h.update(struct.pack("<I", len(name)) + name + struct.pack("<Q", n))
        h.update(_fixed(t["_write_id"], _ZERO_WID))
        h.update(_fixed(t["_prev_write_id"], _ZERO_WID))
        h.update(_fixed(t["_content_id"], _ZERO_CID))
        valid = t["_valid_from"].combine_chunks().cast(pa.int64())
        h.update(np.ascontiguousarray(valid.to_numpy(zero_copy_only=False), dtype="<i8").tobytes())
        keys = t["_key"].combine_chunks().cast(pa.large_string())
        lengths = pc.binary_length(keys).to_numpy(zero_copy_only=False)
        h.update(np.ascontiguousarray(lengths, dtype="<u4").tobytes())
        _, offsets, data = keys.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64)[keys.offset : keys.offset + n + 1]
        if data is not None:
            h.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])
    return h.digest()


def _fixed(column: pa.ChunkedArray | pa.Array, zero: pa.Scalar) -> memoryview:
    """The values of a fixed-size binary column as one contiguous buffer, nulls as zeros."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = pc.fill_null(arr, zero)
    width = arr.type.byte_width
    buf = arr.buffers()[1]
    return memoryview(buf)[arr.offset * width : (arr.offset + len(arr)) * width]
