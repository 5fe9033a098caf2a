"""Checking and converting what callers write: namespaces, keys, values, tables, valid times.

Everything here runs before a commit starts, so bad input is refused with
:class:`InvalidInputError` (or :class:`SchemaError`) and nothing is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._time import to_ns
from koru_core.errors import InvalidInputError
from koru_core.model import SYSTEM_COLUMNS, TIMESTAMP
from koru_core.schema import PLAIN_TYPES, non_finite_error, normalize_table

__all__ = [
    "Batch",
    "NAMESPACE_MAX_LENGTH",
    "RESERVED_PREFIX",
    "batch_from_table",
    "batch_from_value",
    "check_key",
    "check_metadata",
    "check_namespace",
    "check_new_namespaces",
    "encode_composite_key",
    "to_arrow",
]

_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

NAMESPACE_MAX_LENGTH = 128
"""Longest namespace name, in characters (ASCII, so bytes). A namespace names folders
(``warm/namespace=<ns>/``) and temporary files of the engines (``pending-<ns>-<hex>.parquet``):
128 keeps every such name well inside the file systems' 255-byte limit (143 on eCryptfs)."""

RESERVED_PREFIX = "__koru"
"""Namespace names starting with this (in any case) are refused: koru_duckdb names its own
functions and temporary objects with it, so a namespace (a view) can never collide with them."""
KEY_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows bound for one namespace in one commit, checked and normalised.

    Attributes:
        namespace: Valid namespace name.
        keys: string array, one key per row, non-empty.
        values: Value columns (normalised types); all-null rows for tombstones.
        valid_from: int64 ns since epoch (UTC) per row, or None for "the commit's
            system time".
        is_deleted: bool per row, or None when no row is a tombstone.
        parents: list<string> per row, or None when no row has parents.
        record: For a single put, the value as a dict of fields (the fast path
            hashes it without Arrow); None otherwise.
        key_columns: The key columns of an upsert (empty for put and delete).
    """

    namespace: str
    keys: pa.Array
    values: pa.Table
    valid_from: pa.Array | None
    is_deleted: pa.Array | None
    parents: pa.Array | None
    record: Any = None
    key_columns: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        return len(self.keys)


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a valid SQL identifier ``[A-Za-z_][A-Za-z0-9_]*`` of at most
    :data:`NAMESPACE_MAX_LENGTH` characters, not starting with :data:`RESERVED_PREFIX`.

    Raises:
        InvalidInputError: otherwise (namespaces become SQL table names and folder names).

    Example:
        >>> check_namespace("users")
        'users'
    """
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        msg = f"namespace must match [A-Za-z_][A-Za-z0-9_]*, got {namespace!r}"
        raise InvalidInputError(msg)
    if len(namespace) > NAMESPACE_MAX_LENGTH:
        msg = (f"namespace {namespace[:20] + '...'!r} is {len(namespace)} characters long; at most "
               f"{NAMESPACE_MAX_LENGTH} fit every file system's name limit")
        raise InvalidInputError(msg)
    if namespace.lower().startswith(RESERVED_PREFIX):
        msg = f"namespace {namespace!r}: names starting with {RESERVED_PREFIX!r} are reserved for koru's own objects"
        raise InvalidInputError(msg)
    return namespace


def check_new_namespaces(new: Iterable[str], existing: Iterable[str]) -> None:
    """Refuse a new namespace whose name equals an existing one but for case.

    Namespaces are SQL table names, and SQL (DuckDB) resolves identifiers without
    regard to case: ``users`` and ``Users`` would be one view, and one folder on a
    case-insensitive file system.

    Raises:
        InvalidInputError: names the new and the existing namespace.
    """
    folded = {name.casefold(): name for name in existing}
    for name in new:
        other = folded.get(name.casefold())
        if other is not None and other != name:
            msg = (f"namespace {name!r} differs from the existing namespace {other!r} only in case; SQL "
                   "(DuckDB) and case-insensitive file systems cannot tell them apart")
            raise InvalidInputError(msg)
        folded[name.casefold()] = name


def check_key(namespace: str, key: object) -> str:
    """Return ``key`` if it is a non-empty str.

    Raises:
        InvalidInputError: otherwise.
    """
    if not isinstance(key, str) or not key:
        msg = f"namespace {namespace!r}: key must be a non-empty str, got {key!r}"
        raise InvalidInputError(msg)
    return key


def check_metadata(metadata: object) -> dict[str, str] | None:
    """Return commit metadata as a plain dict of str → str (None when empty or None).

    Raises:
        InvalidInputError: ``metadata`` is not a mapping of non-empty str keys to str values.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        msg = f"metadata must be a mapping of str to str, got {type(metadata).__name__}"
        raise InvalidInputError(msg)
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if not isinstance(k, str) or not k or not isinstance(v, str):
            msg = f"metadata must map non-empty str keys to str values, got {k!r}: {v!r}"
            raise InvalidInputError(msg)
        out[k] = v
    return out or None


def _check_parents(namespace: str, parents: Iterable[str]) -> list[str]:
    if isinstance(parents, (str, bytes)) or not isinstance(parents, Iterable):
        msg = (f"namespace {namespace!r}: parents must be a list of write ids, got {parents!r} "
               f"(for one parent, write [{parents!r}])")
        raise InvalidInputError(msg)
    out = list(parents)
    for p in out:
        if not isinstance(p, str) or not p:
            msg = f"namespace {namespace!r}: parents must be write ids (non-empty str), got {p!r}"
            raise InvalidInputError(msg)
    return out


def to_arrow(data: Any, namespace: str) -> pa.Table:
    """Return ``data`` as a pyarrow Table.

    Accepts a pyarrow ``Table``, ``RecordBatch`` or ``RecordBatchReader``, a Polars
    ``DataFrame``, a pandas ``DataFrame``, or a list of dicts (one per row).

    Raises:
        InvalidInputError: any other type, or values Arrow cannot represent.
    """
    try:
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        if isinstance(data, pa.RecordBatchReader):
            return data.read_all()
        module = type(data).__module__
        if module.startswith("polars") and hasattr(data, "to_arrow"):
            return data.to_arrow()
        if module.startswith("pandas") and hasattr(data, "to_dict"):
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            if not all(isinstance(row, Mapping) for row in data):
                msg = f"namespace {namespace!r}: a list of rows must hold dicts only"
                raise InvalidInputError(msg)
            for i, row in enumerate(data):
                _refuse_sets(namespace, f"row {i}", row)
            return pa.Table.from_pylist(list(data))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError) as e:
        msg = f"namespace {namespace!r}: the data cannot be represented in Arrow: {e}"
        raise InvalidInputError(msg) from e
    msg = (
        f"namespace {namespace!r}: expected a pyarrow Table/RecordBatchReader, a Polars or "
        f"pandas DataFrame, or a list of dicts, got {type(data).__name__}"
    )
    raise InvalidInputError(msg)


def encode_composite_key(parts: Sequence[pa.Array]) -> pa.Array:
    """Join key columns (already strings) into one key per row.

    The parts are joined with ``|``; a ``\\`` or ``|`` inside a part is escaped
    with a backslash, so distinct tuples give distinct keys.

    Example:
        >>> encode_composite_key([pa.array(["a|b", "x"]), pa.array(["c", "y"])]).to_pylist()
        ['a\\\\|b|c', 'x|y']
    """
    if len(parts) == 1:
        return parts[0]
    escaped = [
        pc.replace_substring(pc.replace_substring(p, "\\", "\\\\"), KEY_SEPARATOR, "\\" + KEY_SEPARATOR)
        for p in parts
    ]
    return pc.binary_join_element_wise(*escaped, KEY_SEPARATOR)


def _key_array(namespace: str, table: pa.Table, key: str | Sequence[str]) -> pa.Array:
    names = [key] if isinstance(key, str) else list(key)
    if not names:
        msg = f"namespace {namespace!r}: key must name at least one column"
        raise InvalidInputError(msg)
    parts = []
    for name in names:
        if name not in table.column_names:
            msg = f"namespace {namespace!r}: key column {name!r} is not in the data {table.column_names}"
            raise InvalidInputError(msg)
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(column.type) or pa.types.is_nested(column.type):
            msg = f"namespace {namespace!r}: key column {name!r} has type {column.type}; use strings or ints"
            raise InvalidInputError(msg)
        if column.null_count:
            msg = f"namespace {namespace!r}: key column {name!r} has {column.null_count} null(s)"
            raise InvalidInputError(msg)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        parts.append(column.cast(pa.string()))
    keys = encode_composite_key(parts)
    empty = pc.sum(pc.equal(pc.utf8_length(keys), 0).cast(pa.int64())).as_py() or 0
    if empty:
        msg = f"namespace {namespace!r}: {empty} row(s) have an empty key ''"
        raise InvalidInputError(msg)
    return keys


def _valid_from_column(namespace: str, table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        msg = f"namespace {namespace!r}: valid_from column {name!r} is not in the data {table.column_names}"
        raise InvalidInputError(msg)
    column = table.column(name).combine_chunks()
    if not pa.types.is_timestamp(column.type):
        msg = f"namespace {namespace!r}: valid_from column {name!r} must be a timestamp, got {column.type}"
        raise InvalidInputError(msg)
    if column.type.tz is None:
        msg = (
            f"namespace {namespace!r}: valid_from column {name!r} is a naive timestamp; "
            "give it a zone (koru does not guess one)"
        )
        raise InvalidInputError(msg)
    if column.null_count:
        msg = f"namespace {namespace!r}: valid_from column {name!r} has {column.null_count} null(s)"
        raise InvalidInputError(msg)
    try:
        return column.cast(TIMESTAMP).cast(pa.int64())
    except pa.ArrowInvalid as e:  # out of the timestamp[ns] range
        msg = f"namespace {namespace!r}: valid_from column {name!r}: {e}"
        raise InvalidInputError(msg) from e


def _split_system_columns(namespace: str, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
    """Drop system columns from input; turn ``_write_id`` / ``_parents`` into per-row parents."""
    parents = None
    if "_parents" in table.column_names:
        parents = table.column("_parents").combine_chunks().cast(pa.list_(pa.string()))
    if "_write_id" in table.column_names:
        ids = table.column("_write_id").combine_chunks().cast(pa.string())
        as_list = pc.if_else(
            pc.is_null(ids),
            pa.scalar([], pa.list_(pa.string())),
            pa.ListArray.from_arrays(pa.array(range(len(ids) + 1), pa.int32()), ids),
        )
        parents = as_list if parents is None else _concat_lists(parents, as_list)
    keep = []
    for name in table.column_names:
        if name in SYSTEM_COLUMNS:
            continue
        if name.startswith("_"):
            msg = (
                f"namespace {namespace!r}: column {name!r} starts with '_', which koru reserves "
                f"for system columns {list(SYSTEM_COLUMNS)}"
            )
            raise InvalidInputError(msg)
        keep.append(name)
    return table.select(keep), parents


def _concat_lists(a: pa.Array, b: pa.Array) -> pa.Array:
    rows = [(x or []) + (y or []) for x, y in zip(a.to_pylist(), b.to_pylist())]
    return pa.array(rows, pa.list_(pa.string()))


def batch_from_table(
    namespace: str,
    data: Any,
    *,
    key: str | Sequence[str],
    valid_from: datetime | str | None,
    parents: Iterable[str],
) -> Batch:
    """Check and convert an ``upsert`` argument into a :class:`Batch`.

    Args:
        namespace: Target namespace.
        data: See :func:`to_arrow`.
        key: Key column name, or several for a composite key.
        valid_from: A tz-aware datetime for every row, the name of a timestamp
            column holding each row's valid time, or None (the commit's time).
        parents: Write ids every row was derived from. A ``_write_id`` column
            (from a koru read) adds that row's source version as a parent;
            other system columns in the data are ignored.

    Raises:
        InvalidInputError: bad namespace, missing or null or empty key, bad
            valid time, reserved column names, NaN/inf, or two rows with the same
            key and valid time.
    """
    check_namespace(namespace)
    table = to_arrow(data, namespace)
    common = _check_parents(namespace, parents)
    keys = _key_array(namespace, table, key)
    if isinstance(valid_from, str):
        valid = _valid_from_column(namespace, table, valid_from)
        # the valid-time column becomes _valid_from, not a value field: otherwise no two
        # rows of a key at different valid times could ever be equal (unchanged rule)
        table = table.drop_columns([valid_from])
    elif valid_from is None:
        valid = None
    else:
        valid = pa.array([to_ns(valid_from, what="valid_from")] * table.num_rows, pa.int64())
    values, row_parents = _split_system_columns(namespace, table)
    values = normalize_table(values.combine_chunks(), namespace)
    if common:
        extra = pa.array([common] * table.num_rows, pa.list_(pa.string()))
        row_parents = extra if row_parents is None else _concat_lists(row_parents, extra)
    _check_unique(namespace, keys, valid)
    names = (key,) if isinstance(key, str) else tuple(key)
    return Batch(namespace, keys, values, valid, None, row_parents, None, names)


def _check_unique(namespace: str, keys: pa.Array, valid: pa.Array | None) -> None:
    """Raise if two rows share (key, valid time): found as equal neighbours in sorted
    order (a sort needs no hash table: at 1M keys 100 MB less memory than a group-by)."""
    n = len(keys)
    if n < 2:
        return
    t = pa.table({"k": keys} if valid is None else {"k": keys, "v": valid})
    t = t.take(pc.sort_indices(t, sort_keys=[(c, "ascending") for c in t.column_names]))
    same = pc.equal(t["k"].slice(1), t["k"].slice(0, n - 1))
    if valid is not None:
        same = pc.and_(same, pc.equal(t["v"].slice(1), t["v"].slice(0, n - 1)))
    at = pc.indices_nonzero(pc.fill_null(same, False)).to_numpy()
    if len(at):
        pairs = 1 + int((np.diff(at) > 1).sum())  # each run of equal neighbours is one pair
        msg = (
            f"namespace {namespace!r}: {pairs} (key, valid time) pair(s) occur more than "
            f"once in one batch, e.g. key {t['k'][int(at[0])].as_py()!r}"
        )
        raise InvalidInputError(msg)


def _refuse_sets(namespace: str, key: str, value: Any) -> None:
    """Refuse sets anywhere in a value: they have no order, so the list Arrow
    makes of one (and its content id) would differ between processes."""
    if isinstance(value, (set, frozenset)):
        msg = f"namespace {namespace!r}, key {key!r}: sets have no order; give a sorted list instead of {value!r}"
        raise InvalidInputError(msg)
    if isinstance(value, Mapping):
        for item in value.values():
            _refuse_sets(namespace, key, item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_sets(namespace, key, item)


def batch_from_value(
    namespace: str,
    key: str,
    value: Any,
    *,
    valid_from: datetime | None,
    parents: Iterable[str],
    is_deleted: bool = False,
) -> Batch:
    """Check and convert one ``put`` (or ``delete``, with ``is_deleted``) into a Batch.

    A dict value's items become fields; any other value is stored in a field
    named ``value``.

    Raises:
        InvalidInputError: bad namespace or key, a value Arrow cannot represent,
            naive ``valid_from``, reserved field names, NaN/inf.
    """
    check_namespace(namespace)
    check_key(namespace, key)
    row_parents = _check_parents(namespace, parents)
    valid = None if valid_from is None else pa.array([to_ns(valid_from, what="valid_from")], pa.int64())
    if is_deleted:
        values = pa.table({"__n": [None]}).drop_columns(["__n"])  # one row, no fields
    else:
        record = dict(value) if isinstance(value, Mapping) else {"value": value}
        _refuse_sets(namespace, key, record)
        for name in record:
            if not isinstance(name, str) or not name or name.startswith("_"):
                msg = f"namespace {namespace!r}, key {key!r}: field name {name!r} must be a non-empty str not starting with '_'"
                raise InvalidInputError(msg)
        plain = all(type(v) in PLAIN_TYPES for v in record.values())
        try:
            if plain and record:  # a column per field, already normalised (as from_pylist infers them)
                values = pa.table({name: pa.array([v]) for name, v in record.items()})
            else:
                values = pa.Table.from_pylist([record])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError) as e:
            msg = f"namespace {namespace!r}, key {key!r}: the value cannot be represented in Arrow: {e}"
            raise InvalidInputError(msg) from e
        if not record:  # an empty dict is one row with no fields (from_pylist would give zero rows)
            values = pa.table({"__n": [None]}).drop_columns(["__n"])
        elif plain:
            for name, v in record.items():
                if type(v) is float and not math.isfinite(v):
                    raise non_finite_error(namespace, name, 1)
        else:
            values = normalize_table(values, namespace)
    return Batch(
        namespace,
        pa.array([key], pa.string()),
        values,
        valid,
        pa.array([True]) if is_deleted else None,
        pa.array([row_parents], pa.list_(pa.string())) if row_parents else None,
        None if is_deleted else record,
    )
