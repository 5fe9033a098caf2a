"""blake3 over many byte strings at once: each element of a binary column hashed on its own.

A Python loop over ``blake3.blake3(b).digest()`` costs about 1 µs a row. For large
columns the rows are handed to polars-hash (Rust blake3 over an Arrow binary column,
https://github.com/ion-elgreco/polars-hash), about 5x faster on this machine; it is imported
lazily, so ``import koru_core`` never loads Polars. Both give the 32-byte blake3
digest (the ``blake3`` package's default output length).
"""

from __future__ import annotations

import binascii

import numpy as np
import pyarrow as pa
from blake3 import blake3

__all__ = ["COLUMN_ROWS", "hash_one", "hash_rows"]

COLUMN_ROWS = 2048
"""Columns of at least this many rows are hashed by polars-hash (when installed)."""


def hash_one(data: bytes) -> bytes:
    """Return the 32-byte blake3 digest of ``data``."""
    return blake3(data).digest()


def hash_rows(rows: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Return the blake3 digest of each element of a binary column, as ``fixed_size_binary(32)``.

    Args:
        rows: ``large_binary`` (or ``binary``) array without nulls.
    """
    if isinstance(rows, pa.Array):
        rows = pa.chunked_array([rows])
    n = len(rows)
    if n >= COLUMN_ROWS:
        digests = _polars_hash(rows)
        if digests is not None:
            return digests
    out = np.empty((n, 32), dtype=np.uint8)
    i = 0
    for chunk in rows.chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        width = "q" if pa.types.is_large_binary(chunk.type) else "i"
        offsets = memoryview(offsets_buf).cast(width)[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
        data = memoryview(data_buf if data_buf is not None else b"")
        for a, b in zip(offsets, offsets[1:]):
            out[i] = np.frombuffer(blake3(data[a:b]).digest(), dtype=np.uint8)
            i += 1
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(out)])


def _polars_hash(rows: pa.ChunkedArray) -> pa.Array | None:
    try:
        import polars as pl
        import polars_hash as plh
    except ImportError:  # pragma: no cover - polars-hash is a base dependency
        return None
    frame = pl.DataFrame({"b": pl.from_arrow(rows.cast(pa.large_binary()))})
    hexes = frame.select(plh.col("b").chash.blake3())["b"].to_arrow(compat_level=pl.CompatLevel.newest())
    return _unhex_views(hexes)


def _unhex_views(hexes: pa.Array) -> pa.Array:
    """Decode a ``string_view`` array of 64-character hex digests to ``fixed_size_binary(32)``.

    A view array keeps each 64-character string (too long to inline) in one of its
    data buffers at (buffer index, offset); Polars writes them in row order, so the
    common case is one ``binascii.unhexlify`` over contiguous bytes.
    """
    n = len(hexes)
    buffers = hexes.buffers()
    views = np.frombuffer(buffers[1], dtype=np.int32, count=4 * (hexes.offset + n)).reshape(-1, 4)[hexes.offset:]
    if n == 0:
        return pa.array([], pa.binary(32))
    if not (views[:, 0] == 64).all():  # pragma: no cover - blake3 hex digests are 64 characters
        msg = "polars-hash returned digests that are not 64 hex characters"
        raise ValueError(msg)
    data = [np.frombuffer(b, dtype=np.uint8) if b is not None else np.zeros(0, np.uint8) for b in buffers[2:]]
    starts = np.concatenate([[0], np.cumsum([len(d) for d in data])]).astype(np.int64)
    flat = np.concatenate(data) if len(data) > 1 else data[0]
    pos = starts[views[:, 2]] + views[:, 3].astype(np.int64)
    if n == 1 or (np.diff(pos) == 64).all():
        chars = flat[pos[0] : pos[0] + 64 * n]
    else:
        chars = flat[(pos[:, None] + np.arange(64)).ravel()]
    raw = binascii.unhexlify(chars.tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(raw)])
