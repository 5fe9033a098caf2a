"""Vectorised conversion between lowercase hex strings and fixed-size binary.

The hot tier's index holds content ids (64 hex characters) and write ids (16)
as ``fixed_size_binary`` (32 and 8 bytes), less than half the memory of the
strings. Arrow has no hex codec, so these go through NumPy lookup tables over
the arrays' data buffers: no Python object per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["from_hex", "to_hex"]

_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_PAIRS = (_DIGITS[np.arange(256) >> 4].astype("<u2") | (_DIGITS[np.arange(256) & 15].astype("<u2") << 8)).astype("<u2")
"""Per byte value, its two lowercase hex digits as a little-endian uint16 (first digit in the low byte)."""
_QUADS = (_PAIRS[np.arange(65536) & 255].astype("<u4") | (_PAIRS[np.arange(65536) >> 8].astype("<u4") << 16))
"""Per two bytes read as a little-endian uint16, their four hex digits as a little-endian
uint32: half the lookups of :data:`_PAIRS` (the ids' widths, 8 and 32, are even)."""
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[_DIGITS] = np.arange(16, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def from_hex(values: pa.Array | pa.ChunkedArray, width: int) -> pa.Array:
    """Decode hex strings of ``2 * width`` characters to ``fixed_size_binary(width)``.

    Args:
        values: string array; nulls stay null.
        width: bytes per value.

    Returns:
        A ``fixed_size_binary(width)`` array of the same length.

    Raises:
        ValueError: a value is not ``2 * width`` characters long (a bug: ids
            are made by koru, never taken from input).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    filled = pc.fill_null(values.cast(pa.string()), "0" * (2 * width))
    lengths = pc.utf8_length(filled)
    if n and (pc.min(lengths).as_py() != 2 * width or pc.max(lengths).as_py() != 2 * width):
        msg = f"expected hex strings of {2 * width} characters"
        raise ValueError(msg)
    offsets = np.frombuffer(filled.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * filled.offset)
    chars = np.frombuffer(filled.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(n, 2 * width)
    packed = (_NIBBLE[chars[:, 0::2]] << 4) | _NIBBLE[chars[:, 1::2]]
    out = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(packed.tobytes())])
    return out if values.null_count == 0 else pc.if_else(pc.is_valid(values), out, pa.scalar(None, out.type))


def to_hex(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Encode ``fixed_size_binary`` values as lowercase hex strings (nulls stay null).

    Returns:
        A string array of the same length.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n, width = len(values), values.type.byte_width
    raw = np.frombuffer(values.buffers()[1], dtype=np.uint8, count=n * width, offset=values.offset * width)
    digits = np.take(_QUADS, raw.view("<u2")) if width % 2 == 0 else _PAIRS[raw]  # each byte's two digits, in order
    chars = pa.py_buffer(digits)
    offsets = pa.py_buffer(np.arange(0, 2 * width * (n + 1), 2 * width, dtype=np.int32))
    nulls = values.null_count
    if nulls and values.offset == 0:  # the input's validity bitmap serves as is
        return pa.StringArray.from_buffers(n, offsets, chars, values.buffers()[0], nulls)
    out = pa.StringArray.from_buffers(n, offsets, chars)
    return out if nulls == 0 else pc.if_else(pc.is_valid(values), out, pa.scalar(None, pa.string()))
