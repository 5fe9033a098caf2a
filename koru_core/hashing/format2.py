"""Content-id format 2: blake3 over a binary canonical form (fixed-width little-endian words).

Format 2 is the content id of every store created with on-disk format 2. It has the
same equalities as format 1 (:mod:`koru_core.hashing.format1`): equal values have equal
ids whatever the Arrow widths, column order or null columns, and ``31 == 31.0``. It
differs in the bytes, which are laid out so that a whole column is encoded with NumPy
and ``pyarrow.compute`` as a matrix of 64-bit words, with no per-row Python and no
number ever formatted as text: every field has one 8-byte word; the field names, the
same on every row of a table, enter as one digest; tags follow the words, and the
variable-length payloads come last. This docstring is the specification;
``tests/core/test_hashing.py`` pins it with hand-written byte vectors. Words are
little-endian (``i64``, ``u64``, ``f64``)::

    record := b""                        when no field is non-null, else
              blake3(names) word* tag* pad payload*
                                         over the non-null fields, in order of their
                                         UTF-8 name bytes (null fields are omitted):
    names  := (u32(len(name)) name)*     of those fields, in that order (u32 little-endian)
    word   := 8 bytes per field
    tag    := 1 ASCII byte per field
    pad    := zero bytes up to a multiple of 8 bytes of tags
    payload:= the bytes of the fields that have one (the word holds their length)

    tag  Arrow type(s)                                         word            payload
    i    int8..int64, uint8..uint64 below 2**63; a float with  i64             -
         an integral value and |x| < 2**53 (-0.0 -> 0); a
         decimal with no fraction that fits
    u    uint64 of 2**63 or more                               u64             -
    f    other floats (float16/32 widened; NaN as              f64             -
         0x7ff8000000000000)
    b    bool                                                  u64 0 or 1      -
    t    timestamp with a time zone: UTC ns since the epoch    i64             -
    T    timestamp without a zone: ns since the epoch          i64             -
    d    date32, date64: days since 1970-01-01                 i64             -
    h    time32, time64: ns since midnight                     i64             -
    D    duration: ns                                          i64             -
    s    string, large_string, string_view                     u64 n           the n UTF-8 bytes
    y    binary, large_binary, binary_view, fixed_size_binary  u64 n           the n bytes
    N    other decimals                                        u64 n           n bytes of positional
                                                                               text, no exponent or
                                                                               trailing zeros ("-0.001")
    S    struct (a nested dict)                                u64 n           its ``record``, n bytes
    L    list, large_list, list_view, fixed_size_list          u64 count       item* of the elements
    M    map                                                   u64 count       (item(key) item(value))*,
                                                                               entries sorted by their bytes
    item := tag word payload             a list element or map entry part;
            "n"                          a null element, or a null map value

Dictionary arrays encode their decoded values, extension arrays their storage.
Example: ``{"age": 31, "name": "Al"}`` -> ``blake3(03000000 "age" 04000000 "name")``
``1f00000000000000 0200000000000000 "i" "s" 000000000000 "Al"``.

The content id is ``blake3(record)``, 32 bytes (64 hex characters at the API edge).
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._threads import pool
from koru_core.errors import InvalidInputError
from koru_core.hashing._blake3 import hash_one, hash_rows

__all__ = ["content_id", "content_ids", "encode_record", "encode_rows"]

_B = pa.large_binary()
_EMPTY = pa.scalar(b"", _B)
_MAX_EXACT = 2.0**53
_BATCH_ROWS = 32768  # rows encoded and hashed at a time: bounds the transient memory
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
        >>> names = struct.pack("<I", 3) + b"age" + struct.pack("<I", 4) + b"name"
        >>> words = struct.pack("<qq", 31, 2)
        >>> canonical = blake3(names).digest() + words + b"is" + bytes(6) + b"Al"
        >>> content_ids(pa.table({"age": [31], "name": ["Al"]}))[0].as_py() == blake3(canonical).digest()
        True
    """
    parts = _parts(table)
    if len(parts) == 1:
        return hash_rows(encode_rows(table))
    return pa.concat_arrays(list(pool("hash", _workers()).map(_hash_part, parts)))


def _hash_part(part: pa.Table) -> pa.Array:
    """One slice's content ids, on a pool thread; the Arrow memory the thread freed on the
    way goes back to the system (mimalloc keeps a heap per thread, which the caller's
    ``release_unused`` does not reach)."""
    ids = hash_rows(encode_rows(part))
    pa.default_memory_pool().release_unused()
    return ids


_PARALLEL_ROWS = _BATCH_ROWS
"""Tables of more rows than this are encoded and hashed in slices of this many rows,
two or more at a time on a thread pool (NumPy, pyarrow and polars-hash release the GIL):
a slice's canonical bytes and hex digests are the only transient memory (a few MB a
slice on 5 columns, instead of the whole table's, 300 MB at 1M rows). Smaller slices
cost nothing measurable here, and the allocators of pyarrow and Polars hold less once
they are freed: 1M rows of 3 columns raised the resident set by 96 MB in slices of 32k
rows, 169 MB in slices of 128k."""

def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _parts(table: pa.Table) -> list[pa.Table]:
    n = table.num_rows
    if n <= _PARALLEL_ROWS:
        return [table]
    return [table.slice(i, _PARALLEL_ROWS) for i in range(0, n, _PARALLEL_ROWS)]


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
        _records(names, batch.columns, batch.num_rows)
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


# --- vectorised encoding: Arrow columns -> one record per row -------------------------


@dataclass(slots=True)
class _Part:
    """One field's encoding over ``n`` rows: its tag (one for all rows, or a uint8 vector),
    its words (``uint64`` vector of the 8 bytes), the rows where it is non-null (None: all)
    and the payloads of fields that have them (``large_binary``, no nulls)."""

    names: bytes  # u32(len(name)) name
    valid: np.ndarray | None
    tag: bytes | np.ndarray
    word: np.ndarray
    payload: pa.Array | None = None


def _u64(values: np.ndarray, dtype: str) -> np.ndarray:
    """The 8 bytes of each value (``<i8``, ``<u8``, ``<f8``) as a uint64 vector."""
    return np.ascontiguousarray(values, dtype=dtype).view(np.uint64)


def _valid(arr: pa.Array) -> np.ndarray | None:
    if not arr.null_count:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _binary(matrix: np.ndarray) -> pa.Array:
    """Each row of a uint8 matrix as one large_binary value."""
    n, width = matrix.shape
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, data]).cast(_B)


def _name_prefix(name: str) -> bytes:
    b = name.encode()
    return struct.pack("<I", len(b)) + b


def _records(names: list[str], arrays: list[pa.Array], n: int) -> pa.Array:
    """The ``record`` of each row of these columns (large_binary, no nulls)."""
    order = sorted(range(len(names)), key=lambda i: names[i].encode())
    parts = [_part(arrays[i], _name_prefix(names[i])) for i in order]
    payloads = [p.payload for p in parts if p.payload is not None]  # b"" where null
    tail = (None if not payloads else payloads[0] if len(payloads) == 1
            else pc.binary_join_element_wise(*payloads, _EMPTY))
    nullable = [p for p in parts if p.valid is not None]
    if not nullable:
        return _group(parts, None, n, tail)
    # rows with the same fields present share a layout: group them by their pattern of nulls
    absent = np.zeros((n, len(nullable)), dtype=bool)
    for c, p in enumerate(nullable):
        absent[:, c] = ~p.valid  # type: ignore[operator]
    if len(nullable) <= 62:
        codes = (absent.astype(np.int64) << np.arange(len(nullable), dtype=np.int64)).sum(axis=1)
        _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    else:
        _, inverse, counts = np.unique(np.packbits(absent, axis=1), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(counts) == 1:
        return _group([p for p in parts if p.valid is None or p.valid[0]], None, n, tail)
    by_group = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    pieces = []
    for g in range(len(counts)):
        rows = by_group[bounds[g] : bounds[g + 1]]
        first = rows[0]
        pieces.append(_group([p for p in parts if p.valid is None or p.valid[first]], rows, len(rows), tail))
    where = np.empty(n, dtype=np.int64)
    where[by_group] = np.arange(n, dtype=np.int64)
    return pa.concat_arrays(pieces).take(pa.array(where))


def _group(present: list[_Part], rows: np.ndarray | None, n: int, tail: pa.Array | None) -> pa.Array:
    """The records of ``rows`` (None: all), in which exactly the ``present`` fields are non-null;
    ``tail`` is every row's payloads joined (a null field's payload is empty)."""
    if not present:
        return pa.repeat(_EMPTY, n)
    k = len(present)
    tag_words = (k + 7) // 8
    out = np.zeros((n, 4 + k + tag_words), dtype=np.uint64)
    out[:, :4] = np.frombuffer(hash_one(b"".join(p.names for p in present)), dtype=np.uint64)
    for j, p in enumerate(present):
        out[:, 4 + j] = p.word if rows is None else p.word[rows]
    raw = out.view(np.uint8)
    at = 8 * (4 + k)
    for j, p in enumerate(present):
        raw[:, at + j] = p.tag[0] if isinstance(p.tag, bytes) else (p.tag if rows is None else p.tag[rows])
    head = _binary(raw)
    if tail is None or not any(p.payload is not None for p in present):
        return head
    return pc.binary_join_element_wise(head, tail if rows is None else tail.take(pa.array(rows)), _EMPTY)


def _sized(tag: bytes, payload: pa.Array, names: bytes, valid: np.ndarray | None = None) -> _Part:
    """A field of tag ``tag`` whose word is the byte length of its payload."""
    payload = payload.cast(_B)
    lengths = pc.fill_null(pc.binary_length(payload), 0).to_numpy(zero_copy_only=False)
    return _Part(names, _valid(payload) if valid is None else valid, tag, _u64(lengths, "<i8"),
                 payload=pc.fill_null(payload, b"") if payload.null_count else payload)


def _part(arr: pa.Array, names: bytes = b"") -> _Part:
    """One field (or list element column): tag, word and payload of every row."""
    t, is_ = arr.type, pa.types
    if isinstance(t, pa.ExtensionType):
        return _part(arr.storage, names)
    if is_.is_dictionary(t):
        return _part(arr.dictionary_decode(), names)
    if is_.is_null(t):
        return _Part(names, np.zeros(len(arr), dtype=bool), b"n", np.zeros(len(arr), dtype=np.uint64))
    if is_.is_boolean(t):
        raw = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.int64)
        return _Part(names, _valid(arr), b"b", _u64(raw, "<i8"))
    if is_.is_integer(t):
        if t == pa.uint64():
            raw = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
            tags = np.where(raw >= np.uint64(2**63), ord("u"), ord("i")).astype(np.uint8)
            return _Part(names, _valid(arr), tags, raw)
        raw = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return _Part(names, _valid(arr), b"i", _u64(raw, "<i8"))
    if is_.is_floating(t):
        return _float(arr, names)
    if t in _BYTES_TAGS or is_.is_fixed_size_binary(t):
        return _sized(_BYTES_TAGS.get(t, b"y"), arr, names)
    if is_.is_timestamp(t) or is_.is_time(t) or is_.is_duration(t):
        tag = (b"t" if t.tz else b"T") if is_.is_timestamp(t) else (b"h" if is_.is_time(t) else b"D")
        ints = pc.fill_null(arr.cast(pa.int64() if t.bit_width == 64 else pa.int32()), 0)
        raw = ints.to_numpy(zero_copy_only=False).astype(np.int64) * _ZEROS[t.unit]
        return _Part(names, _valid(arr), tag, _u64(raw, "<i8"))
    if is_.is_date(t):
        days = pc.fill_null(arr.cast(pa.date32(), safe=False).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
        return _Part(names, _valid(arr), b"d", _u64(days.astype(np.int64), "<i8"))
    if is_.is_decimal(t):
        return _decimal(arr, names)
    if is_.is_struct(t):
        children = [t.field(i).name for i in range(t.num_fields)]
        return _sized(b"S", _records(children, arr.flatten(), len(arr)), names, valid=_valid(arr))
    if isinstance(t, _LIST_TYPES):
        return _list(arr, names)
    msg = f"cannot compute a content id for Arrow type {t}"
    raise InvalidInputError(msg)


def _float(arr: pa.Array, names: bytes) -> _Part:
    x = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        is_int = np.isfinite(x) & (np.floor(x) == x) & (np.abs(x) < _MAX_EXACT)
    word = _u64(x, "<f8").copy()
    if is_int.any():
        word[is_int] = _u64(x[is_int].astype(np.int64), "<i8")
    nan = np.isnan(x)
    if nan.any():
        word[nan] = np.uint64(0x7FF8000000000000)
    tags = np.where(is_int, ord("i"), ord("f")).astype(np.uint8)
    return _Part(names, _valid(arr), tags, word)


def _decimal(arr: pa.Array, names: bytes) -> _Part:
    """Decimals (rare): tag, word and payload per value from the Python encoder."""
    tags, words, payloads = [], [], []
    for v in arr.to_pylist():
        tag, word, payload = (b"i", 0, b"") if v is None else _enc_decimal(v)
        tags.append(tag[0])
        words.append(word)
        payloads.append(payload)
    word_arr = np.array([w if w < 2**63 else w - 2**64 for w in words], dtype=np.int64)
    return _Part(names, _valid(arr), np.array(tags, dtype=np.uint8), _u64(word_arr, "<i8"),
                 payload=pa.array(payloads, _B))


def _items(arr: pa.Array) -> pa.Array:
    """``item`` bytes of each element of an array (``"n"`` for a null element), large_binary."""
    part = _part(arr)
    n = len(arr)
    head = np.empty((n, 9), dtype=np.uint8)
    head[:, 0] = part.tag[0] if isinstance(part.tag, bytes) else part.tag
    head[:, 1:] = part.word.view(np.uint8).reshape(n, 8)
    out = _binary(head)
    if part.payload is not None:
        out = pc.binary_join_element_wise(out, part.payload, _EMPTY)
    if part.valid is None:
        return out
    return pc.if_else(pa.array(part.valid), out, pa.scalar(b"n", _B))


def _list(arr: pa.Array, names: bytes) -> _Part:
    is_map = pa.types.is_map(arr.type)
    if is_map:
        arr = arr.cast(pa.list_(pa.struct([arr.type.key_field, arr.type.item_field])))
    counts = pc.list_value_length(arr).fill_null(0).cast(pa.int64())
    if is_map:
        keys, values = arr.flatten().flatten()
        elems = pc.binary_join_element_wise(_items(keys), _items(values), _EMPTY)
        by_row = pa.table({"row": pc.list_parent_indices(arr), "entry": elems})
        elems = elems.take(pc.sort_indices(by_row, [("row", "ascending"), ("entry", "ascending")]))
    else:
        elems = _items(arr.flatten())
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(counts)])
    body = pc.binary_join(pa.LargeListArray.from_arrays(offsets, elems), _EMPTY)
    return _Part(names, _valid(arr), b"M" if is_map else b"L", _u64(counts.to_numpy(), "<i8"),
                 payload=pc.fill_null(body, b""))


# --- pure-Python encoding of one record --------------------------------------------


class _UnsupportedError(Exception):
    """A Python value of a type the fast encoder leaves to Arrow."""


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Return the canonical bytes of one record (a mapping of field name to value).

    Raises:
        _UnsupportedError: a value of a type left to Arrow (callers fall back).
    """
    names, words, tags, tail = [], [], [], []
    for name in sorted(record, key=lambda k: k.encode() if type(k) is str else b""):
        v = record[name]
        if v is None:
            continue
        if type(name) is not str:
            raise _UnsupportedError
        tag, word, payload = _BY_TYPE.get(type(v), _unsupported)(v)
        names.append(_name_prefix(name))
        words.append(struct.pack("<Q", word))
        tags.append(tag)
        tail.append(payload)
    if not names:
        return b""
    pad = b"\0" * (-len(tags) % 8)
    return hash_one(b"".join(names)) + b"".join(words) + b"".join(tags) + pad + b"".join(tail)


def _unsupported(v: Any) -> tuple[bytes, int, bytes]:
    raise _UnsupportedError


def _i64(v: int) -> int:
    """An i64's word as an unsigned 64-bit int."""
    return v & 0xFFFFFFFFFFFFFFFF


def _enc_int(v: int) -> tuple[bytes, int, bytes]:
    if -(2**63) <= v < 2**63:
        return b"i", _i64(v), b""
    if 2**63 <= v < 2**64:
        return b"u", v, b""
    raise _UnsupportedError


def _enc_float(v: float) -> tuple[bytes, int, bytes]:
    if v != v:
        return b"f", 0x7FF8000000000000, b""
    if v.is_integer() and -_MAX_EXACT < v < _MAX_EXACT:
        return b"i", _i64(int(v)), b""
    return b"f", struct.unpack("<Q", struct.pack("<d", v))[0], b""


def _enc_decimal(v: Decimal) -> tuple[bytes, int, bytes]:
    if not v.is_finite():
        raise _UnsupportedError
    if v == v.to_integral_value() and -(2**63) <= int(v) < 2**63:
        return b"i", _i64(int(v)), b""
    text = format(v.normalize(), "f").encode()
    return b"N", len(text), text


def _ns(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _enc_datetime(v: dt.datetime) -> tuple[bytes, int, bytes]:
    if v.utcoffset() is not None:
        return b"t", _i64(_ns(v - _EPOCH_UTC)), b""
    if v.tzinfo is not None:
        raise _UnsupportedError
    return b"T", _i64(_ns(v - _EPOCH)), b""


def _enc_time(v: dt.time) -> tuple[bytes, int, bytes]:
    if v.tzinfo is not None:
        raise _UnsupportedError
    nanos = ((v.hour * 60 + v.minute) * 60 + v.second) * 10**9 + v.microsecond * 1000
    return b"h", nanos, b""


def _enc_list(v: list[Any] | tuple[Any, ...]) -> tuple[bytes, int, bytes]:
    kinds = {type(e) for e in v}
    if float in kinds and int in kinds:  # Arrow infers a float list: 2**53 -> 2.0**53
        v = [float(e) if type(e) is int else e for e in v]
    items = []
    for e in v:
        if e is None:
            items.append(b"n")
        else:
            tag, word, payload = _BY_TYPE.get(type(e), _unsupported)(e)
            items.append(tag + struct.pack("<Q", word) + payload)
    return b"L", len(v), b"".join(items)


def _enc_record(v: dict[str, Any]) -> tuple[bytes, int, bytes]:
    data = encode_record(v)
    return b"S", len(data), data


_BY_TYPE: dict[type, Any] = {
    str: lambda v: (b"s", len(b := v.encode()), b),
    int: _enc_int,
    float: _enc_float,
    bool: lambda v: (b"b", 1 if v else 0, b""),
    bytes: lambda v: (b"y", len(v), v),
    Decimal: _enc_decimal,
    dt.datetime: _enc_datetime,
    dt.date: lambda v: (b"d", _i64(v.toordinal() - _EPOCH_ORDINAL), b""),
    dt.time: _enc_time,
    dt.timedelta: lambda v: (b"D", _i64(_ns(v)), b""),
    dict: _enc_record,
    list: _enc_list,
    tuple: _enc_list,
}
