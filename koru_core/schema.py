"""Value schemas: normalising Arrow types, the union of a namespace's schemas, and widening.

A namespace's schema is the union of the value fields written so far. A new
field is added (older rows read it as null). A field written with another type
keeps the wider of the two types when one widens to the other losslessly;
otherwise the write is refused with :class:`SchemaError`.

Lossless widenings (the rules of Arrow's ``unify_schemas(promote_options="permissive")``
restricted to those that never lose a value):

* ``null`` → any type;
* signed ints to wider signed ints; unsigned ints to wider unsigned, or to a
  wider signed int; ints of at most 32 bits → ``float64``; ``float16/32`` → ``float64``;
* ``timestamp`` with the same zone to a finer unit (s → ms → us → ns);
* ``list<a>`` → ``list<b>`` and ``struct`` field by field, by the rules above;
  ``fixed_size_list<a>[n]`` → ``list<b>`` when ``a`` → ``b``.

One rule is not a widening: a field stored as a vector,
``fixed_size_list<float…>[n]``, keeps its type when a batch brings lists of
numbers (a Python list, a NumPy array, ``list<double>``), and the values are
cast to it, the way DuckDB inserts ``DOUBLE[]`` into a ``FLOAT[n]`` column
(float64 values round to float32). A list of another length is refused with
:class:`InvalidInputError`, so every vector of a column has its dimension.

Types are normalised first, so physical variants are one type: ``large_string``
and ``string_view`` are ``string``, ``large_binary`` is ``binary``,
``large_list`` is ``list``, dictionary arrays are their value type, and a
timezone-aware timestamp is in ``UTC``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from koru_core.errors import InvalidInputError, SchemaError

__all__ = [
    "PLAIN_TYPES", "conform", "conform_input", "non_finite_error", "normalize_table", "normalize_type", "union_schema",
    "widen_type",
]

_UNIT_RANK = {"s": 0, "ms": 1, "us": 2, "ns": 3}


def normalize_type(t: pa.DataType) -> pa.DataType:
    """Return the canonical Arrow type koru stores for ``t`` (see module docstring)."""
    if pa.types.is_dictionary(t):
        return normalize_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(normalize_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(normalize_type(t.value_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(normalize_type(t.value_type), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type)) for f in t])
    if pa.types.is_timestamp(t) and t.tz is not None and t.tz != "UTC":
        return pa.timestamp(t.unit, tz="UTC")
    return t


PLAIN_TYPES = (str, int, float, bool, type(None))
"""Python types a value keeps exactly through the Arrow column it infers (string, int64,
double, bool, null): the types :func:`normalize_type` leaves as they are."""


def non_finite_error(namespace: str, name: str, bad: int) -> InvalidInputError:
    """The error for a float field holding ``bad`` NaN or infinite values (koru refuses them)."""
    return InvalidInputError(
        f"namespace {namespace!r}: field {name!r} holds {bad} NaN or infinite value(s); "
        "koru stores finite floats only (use null for a missing value)"
    )


def _reject_non_finite(name: str, column: pa.ChunkedArray, namespace: str) -> None:
    t = column.type
    if pa.types.is_floating(t):
        bad = pc.sum(pc.invert(pc.is_finite(column)).cast(pa.int64())).as_py() or 0
        if bad:
            raise non_finite_error(namespace, name, bad)
    elif pa.types.is_struct(t):
        for i, field in enumerate(t):
            child = pa.chunked_array([chunk.field(i) for chunk in column.chunks], field.type)
            _reject_non_finite(f"{name}.{field.name}", child, namespace)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        values = pa.chunked_array([chunk.flatten() for chunk in column.chunks], t.value_type)
        _reject_non_finite(f"{name}[]", values, namespace)


def normalize_table(table: pa.Table, namespace: str) -> pa.Table:
    """Cast every column of ``table`` to its normalised type and check its values.

    Args:
        table: Value columns only.
        namespace: For error messages.

    Returns:
        The same columns, cast to :func:`normalize_type` of their types, without
        schema or field metadata (``table`` itself when nothing changes).

    Raises:
        InvalidInputError: a float field holds NaN or ±inf (koru refuses them: NaN
            equals nothing, so "unchanged" and SQL comparisons would lie), or a
            column cannot be cast.
    """
    columns = []
    cast = False
    for name, column in zip(table.column_names, table.columns):
        target = normalize_type(column.type)
        if target != column.type:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                msg = f"namespace {namespace!r}: field {name!r} of type {column.type} cannot be stored"
                raise InvalidInputError(msg) from e
            cast = True
        _reject_non_finite(name, column, namespace)
        columns.append(column)
    if not cast and table.schema.metadata is None and all(f.metadata is None for f in table.schema):
        return table  # already normalised, and no metadata to drop
    return pa.table(columns, names=table.column_names)


def widen_type(old: pa.DataType, new: pa.DataType) -> pa.DataType | None:
    """Return the type both ``old`` and ``new`` values fit in losslessly, or None.

    Example:
        >>> widen_type(pa.int32(), pa.int64())
        DataType(int64)
        >>> widen_type(pa.int64(), pa.string()) is None
        True
    """
    if old == new:
        return old
    if pa.types.is_null(old):
        return new
    if pa.types.is_null(new):
        return old
    for a, b in ((old, new), (new, old)):
        if _widens_to(a, b):
            return b
    if _is_list(old) and _is_list(new) and not (pa.types.is_fixed_size_list(old) and pa.types.is_fixed_size_list(new)):
        inner = widen_type(old.value_type, new.value_type)
        return None if inner is None else pa.list_(inner)
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        fields = {f.name: f.type for f in old}
        for f in new:
            if f.name in fields:
                merged = widen_type(fields[f.name], f.type)
                if merged is None:
                    return None
                fields[f.name] = merged
            else:
                fields[f.name] = f.type
        return pa.struct([pa.field(n, t) for n, t in fields.items()])
    return None


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_fixed_size_list(t)


def _is_vector(t: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type)


def _fits_vector(stored: pa.DataType, new: pa.DataType) -> bool:
    """True if values of ``new`` are cast to the vector type ``stored`` (module docstring)."""
    if not (_is_vector(stored) and _is_list(new)):
        return False
    inner = new.value_type
    if pa.types.is_fixed_size_list(new) and new.list_size != stored.list_size:
        return False
    return pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_null(inner)


def _widens_to(a: pa.DataType, b: pa.DataType) -> bool:
    """True if every value of type ``a`` is exactly representable in type ``b``."""
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        if pa.types.is_signed_integer(a):
            return pa.types.is_signed_integer(b) and b.bit_width > a.bit_width
        return b.bit_width > a.bit_width
    if pa.types.is_integer(a) and pa.types.is_float64(b):
        return a.bit_width <= 32
    if pa.types.is_floating(a) and pa.types.is_float64(b):
        return True
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return a.tz == b.tz and _UNIT_RANK[b.unit] > _UNIT_RANK[a.unit]
    return False


def union_schema(namespace: str, old: pa.Schema, new: pa.Schema) -> pa.Schema:
    """Return the union of a namespace's stored value schema and a batch's.

    Fields keep their first-seen order; new fields are appended.

    Raises:
        SchemaError: a field's two types do not widen losslessly; the message
            names the namespace, the field and both types.
    """
    fields = {f.name: f.type for f in old}
    for f in new:
        if f.name not in fields:
            fields[f.name] = f.type
            continue
        if _fits_vector(fields[f.name], f.type):
            continue
        merged = widen_type(fields[f.name], f.type)
        if merged is None:
            msg = (
                f"namespace {namespace!r}: field {f.name!r} is stored as {fields[f.name]} "
                f"and cannot widen losslessly to {f.type}"
            )
            raise SchemaError(msg)
        fields[f.name] = merged
    return pa.schema([pa.field(n, t) for n, t in fields.items()])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s fields: missing ones null, others cast.

    The casts are widenings checked by :func:`union_schema`, so they cannot fail
    on valid data.
    """
    if table.schema.equals(schema, check_metadata=True):
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.table(columns, schema=schema)


def conform_input(namespace: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """:func:`conform` for incoming values, whose casts can fail on one rule:
    lists cast to a vector field must have its dimension.

    Raises:
        InvalidInputError: a list's length is not the vector field's dimension;
            the message names the namespace, the field and both lengths.
    """
    for name in table.column_names:
        target = schema.field(name).type
        column = table.column(name)
        if _is_vector(target) and column.type != target:
            lengths = pc.list_value_length(column)
            wrong = pc.not_equal(lengths, target.list_size)
            if pc.any(wrong).as_py():
                got = pc.min(lengths.filter(wrong)).as_py()
                msg = (
                    f"namespace {namespace!r}: field {name!r} is a vector of {target.list_size} values "
                    f"({target}); got a list of {got}"
                )
                raise InvalidInputError(msg)
    return conform(table, schema)
