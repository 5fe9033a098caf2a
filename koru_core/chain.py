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
            strings(_key) strings(_actor) strings(_run_id)
            parent_count{n}  u32 each, then strings of every parent, in order
    strings(c) = length{n} (u32 each, 0xffffffff for null) then the n values' UTF-8 bytes
    hash  = blake3( "koru-chain-2" prev_hash commit_u64 system_time_i64 body
                    text(actor) text(run_id) text(metadata) )
            prev_hash: the previous commit's 32-byte hash, or nothing for commit 1;
            text(x) = u32(len) and the UTF-8 bytes, 0xffffffff for None; metadata as
            JSON with sorted keys (``json.dumps(m, sort_keys=True)``), None when empty

Stores upgraded from format 1 keep their format-1 hashes for the commits made
before the upgrade (``koru_core.lifecycle.verify`` checks both).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from blake3 import blake3

__all__ = ["ZERO_ID", "body_digest", "chain_hash"]

ZERO_ID = bytes(8)
_ZERO_CID = pa.scalar(bytes(32), pa.binary(32))
_ZERO_WID = pa.scalar(ZERO_ID, pa.binary(8))
_NULL = struct.pack("<I", 0xFFFFFFFF)


def chain_hash(
    prev_hash: bytes | None, *, commit: int, system_time: int, body: bytes, actor: str | None = None,
    run_id: str | None = None, metadata: dict[str, str] | None = None,
) -> bytes:
    """Return a commit's 32-byte chain hash (see the module docstring).

    Example:
        >>> chain_hash(None, commit=1, system_time=0, body=bytes(32)).hex()[:16]
        'bd5e2e73775513f2'
    """
    h = blake3(b"koru-chain-2")
    h.update(prev_hash or b"")
    h.update(struct.pack("<Qq", commit, system_time))
    h.update(body)
    for text in (actor, run_id, json.dumps(metadata, sort_keys=True) if metadata else None):
        h.update(_NULL if text is None else struct.pack("<I", len(text.encode())) + text.encode())
    return h.digest()


def body_digest(parts: Iterable[tuple[str, pa.Table | Sequence[Mapping[str, Any]]]]) -> bytes:
    """Return the digest of a commit's versions (see the module docstring).

    Args:
        parts: (namespace, versions) pairs; versions have ``_key`` (string),
            ``_valid_from`` (timestamp[ns]), ``_write_id`` and ``_prev_write_id``
            (fixed_size_binary(8)), ``_content_id`` (fixed_size_binary(32)), ``_actor``,
            ``_run_id`` (string) and ``_parents`` (list<string>), in write-id order.
            Versions may also be given as rows of those columns' Python values
            (``_valid_from`` int ns, ids bytes; the same digest). Empty parts are skipped.
    """
    h = blake3()
    for namespace, t in sorted(parts, key=lambda p: p[0]):
        n = t.num_rows if isinstance(t, pa.Table) else len(t)
        if not n:
            continue
        name = namespace.encode()
        h.update(struct.pack("<I", len(name)) + name + struct.pack("<Q", n))
        if not isinstance(t, pa.Table):
            _small_part(h, {c: [r[c] for r in t] for c in _DIGEST_COLUMNS})
            continue
        if n <= SMALL_ROWS:
            _small_part(h, {c: t[c].cast(pa.int64()).to_pylist() if c == "_valid_from" else t[c].to_pylist()
                            for c in _DIGEST_COLUMNS})
            continue
        h.update(_fixed(t["_write_id"], _ZERO_WID))
        h.update(_fixed(t["_prev_write_id"], _ZERO_WID))
        h.update(_fixed(t["_content_id"], _ZERO_CID))
        valid = t["_valid_from"].combine_chunks().cast(pa.int64())
        h.update(np.ascontiguousarray(valid.to_numpy(zero_copy_only=False), dtype="<i8").tobytes())
        for name in ("_key", "_actor", "_run_id"):
            _strings(h, t[name])
        parents = t["_parents"].combine_chunks().cast(pa.large_list(pa.string()))
        counts = pc.fill_null(pc.list_value_length(parents), 0).to_numpy(zero_copy_only=False)
        h.update(np.ascontiguousarray(counts, dtype="<u4").tobytes())
        _strings(h, pc.list_flatten(parents))
    return h.digest()


SMALL_ROWS = 64
"""Up to this many versions a part is fed from Python values: the same bytes, without the
fixed cost of Arrow compute calls (a single ``put``'s commit)."""


_DIGEST_COLUMNS = ("_write_id", "_prev_write_id", "_content_id", "_valid_from", "_key", "_actor", "_run_id",
                   "_parents")


def _small_part(h: Any, cols: Mapping[str, list[Any]]) -> None:
    """Feed one part's columns as :func:`body_digest` does, from Python values
    (``_valid_from`` as int ns)."""
    for name, zero in (("_write_id", ZERO_ID), ("_prev_write_id", ZERO_ID), ("_content_id", bytes(32))):
        h.update(b"".join(zero if v is None else v for v in cols[name]))
    valid = cols["_valid_from"]
    h.update(struct.pack(f"<{len(valid)}q", *valid))
    for name in ("_key", "_actor", "_run_id"):
        _small_strings(h, cols[name])
    parents = cols["_parents"]
    h.update(struct.pack(f"<{len(parents)}I", *(0 if p is None else len(p) for p in parents)))
    _small_strings(h, [x for p in parents if p for x in p])


def _small_strings(h: Any, values: list[str | None]) -> None:
    encoded = [None if v is None else v.encode() for v in values]
    h.update(struct.pack(f"<{len(encoded)}I", *(0xFFFFFFFF if b is None else len(b) for b in encoded)))
    h.update(b"".join(b for b in encoded if b is not None))


def _strings(h: Any, column: pa.ChunkedArray | pa.Array) -> None:
    """Feed ``strings(c)`` of the module docstring: lengths (null: 0xffffffff), then the bytes."""
    arr = (column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column).cast(pa.large_string())
    n = len(arr)
    lengths = pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False).astype("<u4")
    if arr.null_count:
        lengths[arr.is_null().to_numpy(zero_copy_only=False)] = 0xFFFFFFFF
    h.update(np.ascontiguousarray(lengths).tobytes())
    if not n:
        return
    _, offsets, data = arr.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    if data is not None:
        h.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])


def _fixed(column: pa.ChunkedArray | pa.Array, zero: pa.Scalar) -> memoryview:
    """The values of a fixed-size binary column as one contiguous buffer, nulls as zeros."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = pc.fill_null(arr, zero)
    width = arr.type.byte_width
    buf = arr.buffers()[1]
    return memoryview(buf)[arr.offset * width : (arr.offset + len(arr)) * width]
