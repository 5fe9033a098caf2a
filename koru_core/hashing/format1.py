"""Content-id format 1: blake3 over a textual canonical form (stores of on-disk format 1).

A content id is ``blake3(canonical_bytes(record))``, 32 bytes (64 lowercase hex
characters at the API edge; the ``blake3`` package, default output). Equal values have
equal ids whatever the Arrow widths, column order or null columns. This docstring is the
specification (content-id format 1; new stores use :mod:`koru_core.hashing.format2`); ``tests/core/test_hashing.py`` pins it with
hand-written byte vectors. ``<n>`` is an ASCII decimal length or count (bytes)::

    record := field*               the non-null fields, sorted by UTF-8 name bytes;
                                   null fields are omitted (all null -> b"")
    field  := <n> ":" name value   name in UTF-8, n = its byte length
    value  := tag <n> ":" payload  one ASCII tag byte, n = len(payload)

    tag  Arrow type(s) -> payload
    i    int8..uint64; a float with an integral value and |x| < 2**53; a decimal with
         no fraction -> decimal text, "-" if negative ("31", "-7"; -0.0 -> "0")
    f    other floats (float16/32 widened to float64) -> Python repr: "0.1", "1e+16",
         "9007199254740994.0", "nan", "inf", "-inf"
    N    other decimals -> positional text without exponent or trailing zeros: "-0.001"
    b    bool -> "1" or "0"
    s    string, large_string, string_view -> the UTF-8 bytes
    y    binary, large_binary, binary_view, fixed_size_binary -> the raw bytes
    t    timestamp with a time zone -> UTC nanoseconds since the epoch, decimal text
    T    timestamp without a zone -> nanoseconds since the epoch (no zone is guessed)
    d    date32, date64 -> days since 1970-01-01
    h    time32, time64 -> nanoseconds since midnight
    D    duration -> nanoseconds
    S    struct (a nested dict) -> its fields encoded as a ``record``
    L    list, large_list, list_view, fixed_size_list -> <count> ":" value*
    M    map -> <count> ":" (key value)*, entries sorted by their bytes (encodings are
         prefix-free, so this orders by key first)
    n    a null element of a list, or a null map value -> empty payload ("n0:")

Dictionary arrays encode their decoded values, extension arrays their storage.
Example: ``{"name": "Alice", "age": 31, "x": None}`` -> ``3:agei2:314:names5:Alice``.

`content_ids` encodes whole columns with ``pyarrow.compute`` (numpy formats float
reprs) and hashes them with :func:`koru_core.hashing._blake3.hash_rows`. `content_id` encodes one
dict in pure Python for the single-record write path and hands values of other types
(numpy scalars, pandas timestamps, ...) to Arrow, so the two always agree.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from koru_core.errors import InvalidInputError
from koru_core.hashing._blake3 import hash_one, hash_rows

__all__ = ["content_id", "content_ids"]

_B = pa.large_binary()
_lit = functools.partial(pa.scalar, type=_B)
_EMPTY = pa.scalar(b"", _B)
_COLON = pa.scalar(b":", _B)
_NULL_VALUE = b"n0:"
_ZEROS = {"s": 9, "ms": 6, "us": 3}  # zeros appended to reach nanoseconds
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = 719163  # dt.date(1970, 1, 1).toordinal()
_MAX_EXACT = 2.0**53
_BYTES_TAGS = {pa.string(): b"s", pa.large_string(): b"s", pa.string_view(): b"s",
               pa.binary(): b"y", pa.large_binary(): b"y", pa.binary_view(): b"y"}
_LIST_TYPES = (pa.ListType, pa.LargeListType, pa.FixedSizeListType, pa.ListViewType,
               pa.LargeListViewType, pa.MapType)
_BATCH_ROWS = 32768  # rows encoded at a time: bounds memory, keeps buffers in cache


def content_ids(table: pa.Table) -> pa.Array:
    """Compute the content id of every row of a table.

    Args:
        table: The value columns only (no ``_`` system columns); any column order,
            any number of record batches. Column names must be unique.

    Returns:
        ``fixed_size_binary(32)`` array of ``table.num_rows`` ids: blake3 of each
        row's canonical bytes (see the module docstring).

    Raises:
        InvalidInputError: if two columns share a name, or a column has an Arrow
            type with no canonical form (e.g. union).

    Example:
        >>> t = pa.table({"name": ["Alice"], "age": [31]})
        >>> content_ids(t)[0].as_py().hex()[:16]
        'd3ec372f7b6affcc'
    """
    names = table.column_names
    if len(set(names)) != len(names):
        msg = f"cannot compute content ids: duplicate column names in {names!r}"
        raise InvalidInputError(msg)
    rows = [_join_fields(names, b.columns, b.num_rows) for b in table.to_batches(max_chunksize=_BATCH_ROWS)]
    return hash_rows(pa.chunked_array([r for r in rows if len(r)], _B))


def content_id(value: Mapping[str, Any]) -> bytes:
    """Compute the content id of one record given as a Python mapping.

    Equal to ``content_ids(pa.Table.from_pylist([value]))[0]`` for every value from
    which Arrow can infer a table, but about 100 times faster for small records.

    Args:
        value: Field name (str) -> value: None, bool, int, float, str, bytes,
            Decimal, datetime (aware -> UTC), date, time, timedelta, nested dicts
            and lists; other types (numpy scalars, ...) are converted by Arrow.

    Returns:
        32 bytes.

    Raises:
        InvalidInputError: if `value` is not a mapping, or Arrow cannot convert a
            value of a type the fast path does not know.

    Example:
        >>> content_id({"age": 31, "name": "Alice", "email": None}).hex()[:16]
        'd3ec372f7b6affcc'
        >>> content_id({"name": "Alice", "age": 31.0}) == content_id({"age": 31, "name": "Alice"})
        True
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        msg = f"cannot compute a content id: expected a mapping of field names, got {value!r}"
        raise InvalidInputError(msg)
    try:
        data = _encode_record(value)
    except (_UnsupportedError, TypeError, AttributeError, OverflowError):
        try:
            table = pa.Table.from_pylist([dict(value)])
        except (pa.ArrowException, TypeError, ValueError) as e:
            msg = f"cannot compute a content id: Arrow cannot convert {value!r}"
            raise InvalidInputError(msg) from e
        return bytes(content_ids(table)[0].as_py())
    return hash_one(data)


# --- vectorised encoding: Arrow array -> large_binary array of value bytes -------


def _join(*parts: Any) -> pa.Array:
    """Concatenate large_binary arrays/scalars element-wise; null if any part is."""
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _frame(tag: bytes | pa.Array, payload: pa.Array, prefix: bytes) -> pa.Array:
    """prefix + tag + <len(payload)> + ':' + payload per element; null where payload is."""
    size = pc.binary_length(payload).cast(pa.string()).cast(_B)
    if isinstance(tag, bytes):
        return _join(_lit(prefix + tag), size, _COLON, payload)
    return _join(_lit(prefix), tag, size, _COLON, payload)


def _text(ints: pa.Array) -> pa.Array:
    """Decimal text of each integer, as large_binary."""
    return ints.cast(pa.string()).cast(_B)


def _ns_text(arr: pa.Array, unit: str) -> pa.Array:
    """Decimal text of integer nanoseconds, exact for any unit (zeros appended)."""
    ints = arr.cast(pa.int32() if arr.type.bit_width == 32 else pa.int64())
    if unit == "ns":
        return _text(ints)
    scaled = _join(_text(ints), _lit(b"0" * _ZEROS[unit]))
    return pc.if_else(pc.equal(ints, 0), _lit(b"0"), scaled)


def _join_fields(names: list[str], arrays: list[pa.Array], n: int) -> pa.Array:
    """Record bytes of each row: its non-null fields, sorted by name."""
    pairs = sorted(zip(names, arrays), key=lambda p: p[0].encode())
    fields = [_encode_array(arr, _name_frame(name)) for name, arr in pairs]
    if not fields:
        return pa.nulls(n, _B).fill_null(b"")
    return pc.binary_join_element_wise(*fields, _EMPTY, null_handling="replace",
                                       null_replacement=b"")


def _encode_float(arr: pa.Array, prefix: bytes) -> pa.Array:
    x = arr.cast(pa.float64())
    is_int = pc.and_(pc.is_finite(x), pc.equal(pc.floor(x), x))
    is_int = pc.and_(is_int, pc.less(pc.abs(x), _MAX_EXACT)).fill_null(True)
    text = _text(pc.if_else(is_int, x, 0.0).cast(pa.int64()))
    other = pc.invert(is_int)
    if pc.any(other).as_py():
        text = pc.replace_with_mask(text, other, _float_reprs(x.filter(other)))
    return _frame(pc.if_else(is_int, _lit(b"i"), _lit(b"f")), text, prefix)


def _float_reprs(x: pa.Array) -> pa.Array:
    """Python ``repr`` of each (non-null) float64, as large_binary."""
    try:
        import numpy as np  # noqa: PLC0415 - optional: pyarrow does not require numpy
    except ImportError:  # pragma: no cover - numpy comes with pandas and koru-lake[vector]
        return pa.array([float.__repr__(v).encode() for v in x.to_pylist()], _B)
    # numpy formats a float64 exactly as Python's repr (shortest round-trip, same cut-offs)
    text = np.asarray(x.to_numpy(zero_copy_only=False)).astype(str)
    return pa.array(text, pa.large_string()).cast(_B)


def _encode_decimal(arr: pa.Array, prefix: bytes) -> pa.Array:
    s = arr.cast(pa.string())
    if pc.any(pc.match_substring(s, "E")).as_py():  # Arrow chose scientific notation
        encoded = [None if v is None else prefix + _enc_decimal(v) for v in arr.to_pylist()]
        return pa.array(encoded, _B)
    s = pc.replace_substring_regex(s, r"^(-?\d*\.\d*?)0+$", r"\1")  # trailing zeros
    s = pc.replace_substring_regex(s, r"\.$", "")  # (Arrow decimals have no -0)
    tag = pc.if_else(pc.match_substring(s, "."), _lit(b"N"), _lit(b"i"))
    return _frame(tag, s.cast(_B), prefix)


def _encode_list(arr: pa.Array, prefix: bytes) -> pa.Array:
    is_map = pa.types.is_map(arr.type)
    if is_map:
        arr = arr.cast(pa.list_(pa.struct([arr.type.key_field, arr.type.item_field])))
    lengths = pc.list_value_length(arr).fill_null(0).cast(pa.int64())
    if is_map:
        keys, items = arr.flatten().flatten()
        elems = _join(_encode_array(keys), _encode_array(items).fill_null(_NULL_VALUE))
        by_row = pa.table({"row": pc.list_parent_indices(arr), "entry": elems})
        elems = elems.take(pc.sort_indices(by_row, [("row", "ascending"), ("entry", "ascending")]))
    else:
        elems = _encode_array(arr.flatten()).fill_null(_NULL_VALUE)
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)])
    body = pc.binary_join(pa.LargeListArray.from_arrays(offsets, elems), _EMPTY)
    framed = _frame(b"M" if is_map else b"L", _join(_text(lengths), _COLON, body), prefix)
    return pc.if_else(arr.is_valid(), framed, pa.scalar(None, _B))


def _encode_array(arr: pa.Array, prefix: bytes = b"") -> pa.Array:
    """prefix + value bytes (tag, length, payload) per element; null where arr is null."""
    t, is_ = arr.type, pa.types
    if isinstance(t, pa.ExtensionType):
        return _encode_array(arr.storage, prefix)
    if is_.is_dictionary(t):
        return _encode_array(arr.dictionary_decode(), prefix)
    if is_.is_null(t):
        return pa.nulls(len(arr), _B)
    if is_.is_boolean(t):
        return _frame(b"b", pc.if_else(arr, _lit(b"1"), _lit(b"0")), prefix)
    if is_.is_integer(t):
        return _frame(b"i", _text(arr), prefix)
    if is_.is_floating(t):
        return _encode_float(arr, prefix)
    if t in _BYTES_TAGS or is_.is_fixed_size_binary(t):
        return _frame(_BYTES_TAGS.get(t, b"y"), arr.cast(_B), prefix)
    if is_.is_timestamp(t):
        return _frame(b"t" if t.tz else b"T", _ns_text(arr, t.unit), prefix)
    if is_.is_date(t):
        return _frame(b"d", _text(arr.cast(pa.date32(), safe=False).cast(pa.int32())), prefix)
    if is_.is_time(t) or is_.is_duration(t):
        return _frame(b"h" if is_.is_time(t) else b"D", _ns_text(arr, t.unit), prefix)
    if is_.is_decimal(t):
        return _encode_decimal(arr, prefix)
    if is_.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        record = _join_fields(names, arr.flatten(), len(arr))
        return pc.if_else(arr.is_valid(), _frame(b"S", record, prefix), pa.scalar(None, _B))
    if isinstance(t, _LIST_TYPES):
        return _encode_list(arr, prefix)
    msg = f"cannot compute a content id for Arrow type {t}"
    raise InvalidInputError(msg)


# --- pure-Python encoding of one record ----------------------------------------


class _UnsupportedError(Exception):
    """A Python value of a type the fast encoder leaves to Arrow."""


@functools.lru_cache(maxsize=4096)
def _name_frame(name: str) -> bytes:
    if type(name) is not str:
        raise _UnsupportedError
    b = name.encode()
    return b"%d:%b" % (len(b), b)


def _encode_record(record: Mapping[str, Any]) -> bytes:
    parts = []
    for name in sorted(record):
        v = record[name]
        if v is not None:
            parts.append(_name_frame(name))
            parts.append(_BY_TYPE.get(type(v), _unsupported)(v))
    return b"".join(parts)


def _unsupported(v: Any) -> bytes:
    raise _UnsupportedError


def _tagged(tag: bytes, payload: bytes) -> bytes:
    return b"%b%d:%b" % (tag, len(payload), payload)


def _enc_float(v: float) -> bytes:
    if v.is_integer() and -_MAX_EXACT < v < _MAX_EXACT:
        return _tagged(b"i", b"%d" % int(v))
    return _tagged(b"f", float.__repr__(v).encode())


def _enc_decimal(v: Decimal) -> bytes:
    if not v.is_finite():
        raise _UnsupportedError
    if v == v.to_integral_value():
        return _tagged(b"i", b"%d" % int(v))
    return _tagged(b"N", format(v.normalize(), "f").encode())


def _ns(delta: dt.timedelta) -> bytes:
    return b"%d" % ((delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000)


def _enc_datetime(v: dt.datetime) -> bytes:
    if v.utcoffset() is not None:
        return _tagged(b"t", _ns(v - _EPOCH_UTC))
    if v.tzinfo is not None:
        raise _UnsupportedError
    return _tagged(b"T", _ns(v - _EPOCH))


def _enc_time(v: dt.time) -> bytes:
    if v.tzinfo is not None:
        raise _UnsupportedError
    return _tagged(b"h", _ns(dt.timedelta(hours=v.hour, minutes=v.minute, seconds=v.second,
                                          microseconds=v.microsecond)))


def _enc_list(v: list[Any] | tuple[Any, ...]) -> bytes:
    kinds = {type(e) for e in v}
    if float in kinds and int in kinds:  # Arrow infers a float list: 2**53 -> 2.0**53
        v = [float(e) if type(e) is int else e for e in v]
    body = [_NULL_VALUE if e is None else _BY_TYPE.get(type(e), _unsupported)(e) for e in v]
    return _tagged(b"L", b"%d:%b" % (len(v), b"".join(body)))


_BY_TYPE: dict[type, Any] = {
    str: lambda v: _tagged(b"s", v.encode()),
    int: lambda v: _tagged(b"i", b"%d" % v),
    float: _enc_float,
    bool: lambda v: b"b1:1" if v else b"b1:0",
    bytes: lambda v: _tagged(b"y", v),
    Decimal: _enc_decimal,
    dt.datetime: _enc_datetime,
    dt.date: lambda v: _tagged(b"d", b"%d" % (v.toordinal() - _EPOCH_ORDINAL)),
    dt.time: _enc_time,
    dt.timedelta: lambda v: _tagged(b"D", _ns(v)),
    dict: lambda v: _tagged(b"S", _encode_record(v)),
    list: _enc_list,
    tuple: _enc_list,
}
