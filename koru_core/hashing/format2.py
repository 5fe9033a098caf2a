"""Content-id format 2: blake3 over a binary canonical form (fixed-width little-endian numbers).

Format 2 is the content id of every store created with on-disk format 2. It has the
same equalities as format 1 (:mod:`koru_core.hashing.format1`): equal values have equal
ids whatever the Arrow widths, column order or null columns, and ``31 == 31.0``. It
differs in the bytes: numbers are fixed-width little-endian words instead of decimal
text, and lengths are ``u32`` words instead of ASCII, so a whole column is encoded with
NumPy and ``pyarrow.compute`` and no float is ever formatted. This docstring is the
specification; ``tests/core/test_hashing.py`` pins it with hand-written byte vectors.
``u32``, ``i32``, ``i64``, ``u64`` and ``f64`` are little-endian::

    record := field*               the non-null fields, sorted by UTF-8 name bytes;
                                   null fields are omitted (all null -> b"")
    field  := u32(len(name)) name value
    value  := tag payload          one ASCII tag byte

    tag  Arrow type(s) -> payload
    i    int8..int64, uint8..uint64 below 2**63; a float with an integral value and
         |x| < 2**53 (-0.0 -> 0); a decimal with no fraction that fits -> i64
    u    uint64 of 2**63 or more -> u64
    f    other floats (float16/32 widened to float64) -> f64 (NaN as 0x7ff8000000000000)
    N    other decimals -> u32(n) and n bytes of positional text without exponent or
         trailing zeros ("-0.001")
    b    bool -> one byte, 0x01 or 0x00
    s    string, large_string, string_view -> u32(n) and the n UTF-8 bytes
    y    binary, large_binary, binary_view, fixed_size_binary -> u32(n) and the n bytes
    t    timestamp with a time zone -> i64 UTC nanoseconds since the epoch
    T    timestamp without a zone -> i64 nanoseconds since the epoch (no zone is guessed)
    d    date32, date64 -> i32 days since 1970-01-01
    h    time32, time64 -> i64 nanoseconds since midnight
    D    duration -> i64 nanoseconds
    S    struct (a nested dict) -> u32(n) and its fields encoded as a ``record`` of n bytes
    L    list, large_list, list_view, fixed_size_list -> u32(count) and value*
    M    map -> u32(count) and (key value)*, entries sorted by their bytes
    n    a null element of a list, or a null map value -> no payload

Dictionary arrays encode their decoded values, extension arrays their storage.
Example: ``{"age": 31, "name": "Al"}`` ->
``03000000 "age" "i" 1f00000000000000  04000000 "name" "s" 02000000 "Al"``.

The content id is ``blake3(record)``, 32 bytes (64 hex characters at the API edge).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.errors import InvalidInputError
from koru_core.hashing._blake3 import hash_rows, hash_one

__all__ = ["content_id", "content_ids", "encode_record", "encode_rows"]

_B = pa.large_binary()
_EMPTY = pa.scalar(b"", _B)
_MAX_EXACT = 2.0**53
_BATCH_ROWS = 65536  # rows encoded at a time: bounds the encoder's transient memory
_BYTES_TAGS = {pa.string(): b"s", pa.large_string(): b"s", pa.string_view(): b"s",
               pa.binary(): b"y", pa.large_binary(): b"y", pa.binary_view(): b"y"}
_LIST_TYPES = (pa.ListType, pa.LargeListType, pa.FixedSizeListType, pa.ListViewType,
               pa.LargeListViewType, pa.MapType)
_ZEROS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = 719163  # dt.date(1970, 1, 1).toordinal()
_NAN = struct.pack("<Q", 0x7FF8000000000000)


def content_ids(table: pa.Table) -> pa.Array:
    """Compute the format-2 content id of every row of a table.

    Args:
        table: The value columns only (no ``_`` system columns); any column order,
            any number of record batches. Column names must be unique.

    Returns:
        ``fixed_size_binary(32)`` array of ``table.num_rows`` ids (blake3 of each row's
        canonical bytes, see the module docstring).

    Raises:
        InvalidInputError: two columns share a name, or a column has an Arrow type
            with no canonical form (e.g. union).

    Example:
        >>> import struct
        >>> from blake3 import blake3
        >>> canonical = b"".join([struct.pack("<I", 3), b"agei", struct.pack("<q", 31),
        ...                       struct.pack("<I", 4), b"names", struct.pack("<I", 2), b"Al"])
        >>> content_ids(pa.table({"age": [31], "name": ["Al"]}))[0].as_py() == blake3(canonical).digest()
        True
    """
    return hash_rows(encode_rows(table))


def encode_rows(table: pa.Table) -> pa.ChunkedArray:
    """Return the canonical bytes of every row (``large_binary``, no nulls), in order.

    Raises:
        InvalidInputError: as :func:`content_ids`.
    """
    names = table.column_names
    if len(set(names)) != len(names):
        msg = f"cannot compute content ids: duplicate column names in {names!r}"
        raise InvalidInputError(msg)
    chunks = [
        _join_fields(names, batch.columns, batch.num_rows)
        for batch in table.to_batches(max_chunksize=_BATCH_ROWS)
        if batch.num_rows
    ]
    return pa.chunked_array(chunks, _B)


def content_id(value: Mapping[str, Any]) -> bytes:
    """Compute the format-2 content id of one record given as a Python mapping.

    Equal to ``content_ids(pa.Table.from_pylist([value]))[0]`` for every value from
    which Arrow can infer a table, without Arrow for the common Python types.

    Args:
        value: Field name (str) -> value: None, bool, int, float, str, bytes, Decimal,
            datetime (aware -> UTC), date, time, timedelta, nested dicts and lists;
            other types (numpy scalars, ...) are converted by Arrow.

    Returns:
        32 bytes.

    Raises:
        InvalidInputError: ``value`` is not a mapping, or Arrow cannot convert a value
            of a type the fast path does not know.

    Example:
        >>> content_id({"name": "Al", "age": 31.0}) == content_id({"age": 31, "name": "Al"})
        True
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        msg = f"cannot compute a content id: expected a mapping of field names, got {value!r}"
        raise InvalidInputError(msg)
    try:
        data = encode_record(value)
    except (_UnsupportedError, TypeError, AttributeError, OverflowError, struct.error):
        try:
            table = pa.Table.from_pylist([dict(value)])
        except (pa.ArrowException, TypeError, ValueError) as e:
            msg = f"cannot compute a content id: Arrow cannot convert {value!r}"
            raise InvalidInputError(msg) from e
        return bytes(content_ids(table)[0].as_py())
    return hash_one(data)


# --- vectorised encoding: Arrow array -> large_binary array of value bytes ---------


def _fixed(prefix: bytes, tags: np.ndarray | bytes, payload: np.ndarray, valid: pa.Array | None) -> pa.Array:
    """``prefix + tag + payload`` per row as large_binary (null where ``valid`` is false).

    ``payload`` is an (n, w) uint8 matrix; ``tags`` one byte for all rows or a uint8 vector.
    """
    n, width = payload.shape
    head = len(prefix) + 1
    out = np.empty((n, head + width), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, len(prefix)] = np.frombuffer(tags, dtype=np.uint8)[0] if isinstance(tags, bytes) else tags
    out[:, head:] = payload
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(head + width), n, [None, pa.py_buffer(out)])
    arr = arr.cast(_B)
    return arr if valid is None else pc.if_else(valid, arr, pa.scalar(None, _B))


def _words(values: np.ndarray, dtype: str) -> np.ndarray:
    """The (n, w) little-endian byte matrix of a numeric vector."""
    v = np.ascontiguousarray(values, dtype=dtype)
    return v.view(np.uint8).reshape(len(v), v.dtype.itemsize)


def _valid(arr: pa.Array) -> pa.Array | None:
    return arr.is_valid() if arr.null_count else None


def _sized(prefix: bytes, tag: bytes, payload: pa.Array) -> pa.Array:
    """``prefix + tag + u32(len(payload)) + payload`` per row; null where payload is null."""
    payload = payload.cast(_B)
    lengths = pc.fill_null(pc.binary_length(payload), 0).to_numpy(zero_copy_only=False)
    head = _fixed(prefix, tag, _words(lengths, "<u4"), None)
    return pc.binary_join_element_wise(head, payload, _EMPTY)


def _name_prefix(name: str) -> bytes:
    b = name.encode()
    return struct.pack("<I", len(b)) + b


def _join_fields(names: list[str], arrays: list[pa.Array], n: int) -> pa.Array:
    """Record bytes of each row: its non-null fields, sorted by name."""
    pairs = sorted(zip(names, arrays), key=lambda p: p[0].encode())
    fields = [_encode_array(arr, _name_prefix(name)) for name, arr in pairs]
    if not fields:
        return pa.nulls(n, _B).fill_null(b"")
    if len(fields) == 1:
        return pc.fill_null(fields[0], b"")
    return pc.binary_join_element_wise(*fields, _EMPTY, null_handling="replace", null_replacement=b"")


def _encode_int(arr: pa.Array, prefix: bytes) -> pa.Array:
    t = arr.type
    valid = _valid(arr)
    if t == pa.uint64():
        raw = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        tags = np.where(raw >= np.uint64(2**63), ord("u"), ord("i")).astype(np.uint8)
        return _fixed(prefix, tags, _words(raw, "<u8"), valid)
    raw = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return _fixed(prefix, b"i", _words(raw, "<i8"), valid)


def _encode_float(arr: pa.Array, prefix: bytes) -> pa.Array:
    x = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        is_int = np.isfinite(x) & (np.floor(x) == x) & (np.abs(x) < _MAX_EXACT)
    words = np.empty((len(x), 8), dtype=np.uint8)
    words[:] = _words(np.where(is_int, x, 0).astype(np.int64), "<i8")
    floats = _words(np.where(np.isnan(x), np.nan, x), "<f8")
    nan = np.isnan(x)
    words[~is_int] = floats[~is_int]
    if nan.any():
        words[nan] = np.frombuffer(_NAN, dtype=np.uint8)
    tags = np.where(is_int, ord("i"), ord("f")).astype(np.uint8)
    return _fixed(prefix, tags, words, _valid(arr))


def _encode_decimal(arr: pa.Array, prefix: bytes) -> pa.Array:
    values = arr.to_pylist()
    return pa.array([None if v is None else prefix + _enc_decimal(v) for v in values], _B)


def _encode_time_like(arr: pa.Array, prefix: bytes, tag: bytes) -> pa.Array:
    unit = arr.type.unit
    ints = pc.fill_null(arr.cast(pa.int64() if arr.type.bit_width == 64 else pa.int32()), 0)
    raw = ints.to_numpy(zero_copy_only=False).astype(np.int64) * _ZEROS[unit]
    return _fixed(prefix, tag, _words(raw, "<i8"), _valid(arr))


def _encode_list(arr: pa.Array, prefix: bytes) -> pa.Array:
    is_map = pa.types.is_map(arr.type)
    if is_map:
        arr = arr.cast(pa.list_(pa.struct([arr.type.key_field, arr.type.item_field])))
    lengths = pc.list_value_length(arr).fill_null(0).cast(pa.int64())
    if is_map:
        keys, items = arr.flatten().flatten()
        elems = pc.binary_join_element_wise(_encode_array(keys), _encode_array(items).fill_null(b"n"), _EMPTY)
        by_row = pa.table({"row": pc.list_parent_indices(arr), "entry": elems})
        elems = elems.take(pc.sort_indices(by_row, [("row", "ascending"), ("entry", "ascending")]))
    else:
        elems = _encode_array(arr.flatten()).fill_null(b"n")
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)])
    body = pc.binary_join(pa.LargeListArray.from_arrays(offsets, elems), _EMPTY)
    head = _fixed(prefix, b"M" if is_map else b"L", _words(lengths.to_numpy(), "<u4"), None)
    framed = pc.binary_join_element_wise(head, body, _EMPTY)
    return pc.if_else(arr.is_valid(), framed, pa.scalar(None, _B))


def _encode_array(arr: pa.Array, prefix: bytes = b"") -> pa.Array:
    """prefix + value bytes (tag, payload) per element; null where ``arr`` is null."""
    t, is_ = arr.type, pa.types
    if isinstance(t, pa.ExtensionType):
        return _encode_array(arr.storage, prefix)
    if is_.is_dictionary(t):
        return _encode_array(arr.dictionary_decode(), prefix)
    if is_.is_null(t):
        return pa.nulls(len(arr), _B)
    if is_.is_boolean(t):
        raw = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint8).reshape(-1, 1)
        return _fixed(prefix, b"b", raw, _valid(arr))
    if is_.is_integer(t):
        return _encode_int(arr, prefix)
    if is_.is_floating(t):
        return _encode_float(arr, prefix)
    if t in _BYTES_TAGS or is_.is_fixed_size_binary(t):
        return _sized(prefix, _BYTES_TAGS.get(t, b"y"), arr)
    if is_.is_timestamp(t):
        return _encode_time_like(arr, prefix, b"t" if t.tz else b"T")
    if is_.is_date(t):
        days = pc.fill_null(arr.cast(pa.date32(), safe=False).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        return _fixed(prefix, b"d", _words(days, "<i4"), _valid(arr))
    if is_.is_time(t) or is_.is_duration(t):
        return _encode_time_like(arr, prefix, b"h" if is_.is_time(t) else b"D")
    if is_.is_decimal(t):
        return _encode_decimal(arr, prefix)
    if is_.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        record = _join_fields(names, arr.flatten(), len(arr))
        return pc.if_else(arr.is_valid(), _sized(prefix, b"S", record), pa.scalar(None, _B))
    if isinstance(t, _LIST_TYPES):
        return _encode_list(arr, prefix)
    msg = f"cannot compute a content id for Arrow type {t}"
    raise InvalidInputError(msg)


# --- pure-Python encoding of one record --------------------------------------------


class _UnsupportedError(Exception):
    """A Python value of a type the fast encoder leaves to Arrow."""


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Return the canonical bytes of one record (a mapping of field name to value).

    Raises:
        _UnsupportedError: a value of a type left to Arrow (callers fall back).
    """
    parts = []
    for name in sorted(record, key=lambda k: k.encode() if type(k) is str else b""):
        v = record[name]
        if v is not None:
            if type(name) is not str:
                raise _UnsupportedError
            parts.append(_name_prefix(name))
            parts.append(_BY_TYPE.get(type(v), _unsupported)(v))
    return b"".join(parts)


def _unsupported(v: Any) -> bytes:
    raise _UnsupportedError


def _enc_int(v: int) -> bytes:
    if -(2**63) <= v < 2**63:
        return b"i" + struct.pack("<q", v)
    if 2**63 <= v < 2**64:
        return b"u" + struct.pack("<Q", v)
    raise _UnsupportedError


def _enc_float(v: float) -> bytes:
    if v != v:
        return b"f" + _NAN
    if v.is_integer() and -_MAX_EXACT < v < _MAX_EXACT:
        return b"i" + struct.pack("<q", int(v))
    return b"f" + struct.pack("<d", v)


def _enc_decimal(v: Decimal) -> bytes:
    if not v.is_finite():
        raise _UnsupportedError
    if v == v.to_integral_value() and -(2**63) <= int(v) < 2**63:
        return b"i" + struct.pack("<q", int(v))
    text = format(v.normalize(), "f").encode()
    return b"N" + struct.pack("<I", len(text)) + text


def _ns(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _enc_datetime(v: dt.datetime) -> bytes:
    if v.utcoffset() is not None:
        return b"t" + struct.pack("<q", _ns(v - _EPOCH_UTC))
    if v.tzinfo is not None:
        raise _UnsupportedError
    return b"T" + struct.pack("<q", _ns(v - _EPOCH))


def _enc_time(v: dt.time) -> bytes:
    if v.tzinfo is not None:
        raise _UnsupportedError
    nanos = ((v.hour * 60 + v.minute) * 60 + v.second) * 10**9 + v.microsecond * 1000
    return b"h" + struct.pack("<q", nanos)


def _enc_sized(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload


def _enc_list(v: list[Any] | tuple[Any, ...]) -> bytes:
    kinds = {type(e) for e in v}
    if float in kinds and int in kinds:  # Arrow infers a float list: 2**53 -> 2.0**53
        v = [float(e) if type(e) is int else e for e in v]
    body = [b"n" if e is None else _BY_TYPE.get(type(e), _unsupported)(e) for e in v]
    return b"L" + struct.pack("<I", len(v)) + b"".join(body)


_BY_TYPE: dict[type, Any] = {
    str: lambda v: _enc_sized(b"s", v.encode()),
    int: _enc_int,
    float: _enc_float,
    bool: lambda v: b"b\x01" if v else b"b\x00",
    bytes: lambda v: _enc_sized(b"y", v),
    Decimal: _enc_decimal,
    dt.datetime: _enc_datetime,
    dt.date: lambda v: b"d" + struct.pack("<i", v.toordinal() - _EPOCH_ORDINAL),
    dt.time: _enc_time,
    dt.timedelta: lambda v: b"D" + struct.pack("<q", _ns(v)),
    dict: lambda v: _enc_sized(b"S", encode_record(v)),
    list: _enc_list,
    tuple: _enc_list,
}
