"""Keys as they were written: str, int, or the parts of a composite key → the ``_key`` string.

DESIGN.md, "Keys": a record is addressed by its key as it was written. ``_key`` is
the canonical string encoding: a str as is; an int in decimal (as the upsert of an
int key column encodes it); a composite key's parts, each so encoded, joined with
``|`` with a ``\\`` or ``|`` inside a part escaped by a backslash
(:func:`koru_core.input.encode_composite_key`). A composite key is given as a tuple
of its parts in key-column order, or as a mapping of key column to value; a str is
taken as the encoded ``_key`` itself (what every read returns in ``_key``).

Example:
    >>> encode_key("people", ("4", "F", "0-4"), ("loc", "sex", "age"))
    '4|F|0-4'
    >>> encode_key("people", {"sex": "F", "age": "0-4", "loc": 4}, ("loc", "sex", "age"))
    '4|F|0-4'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from koru_core.errors import InvalidInputError

__all__ = ["KeyLike", "encode_key", "key_fields", "value_with_key_fields"]

KeyLike = str | int | Sequence[Any] | Mapping[str, Any]
"""What a key-taking method accepts (see the module docstring)."""

_SEP = "|"


def _part(namespace: str, value: Any, column: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        where = f"key column {column!r}" if column else "a key part"
        msg = f"namespace {namespace!r}: {where} must be a str or an int, got {value!r}"
        raise InvalidInputError(msg)
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace(_SEP, "\\" + _SEP)


def encode_key(namespace: str, key: object, key_columns: Sequence[str] = ()) -> str:
    """Return the ``_key`` of ``key`` in a namespace whose key columns are ``key_columns``.

    Raises:
        InvalidInputError: an empty or non-str/int key, a tuple or mapping of the wrong
            shape (the message names the key columns), or a composite key for a
            namespace without key columns.
    """
    cols = tuple(key_columns)
    if isinstance(key, str):
        if not key:
            msg = f"namespace {namespace!r}: key must be a non-empty str, got ''"
            raise InvalidInputError(msg)
        _check_text(namespace, key)
        return key
    if isinstance(key, bool):
        msg = f"namespace {namespace!r}: key must be a str, an int or (for key columns {list(cols)}) a tuple or mapping, got {key!r}"
        raise InvalidInputError(msg)
    if isinstance(key, int):
        if len(cols) > 1:
            msg = f"namespace {namespace!r}: the key has {len(cols)} columns {list(cols)}; give a tuple or a mapping, got {key!r}"
            raise InvalidInputError(msg)
        return str(key)
    if isinstance(key, Mapping):
        if not cols:
            msg = f"namespace {namespace!r}: has no key columns (written by put only); give the key as a str, got {key!r}"
            raise InvalidInputError(msg)
        if set(key) != set(cols):
            msg = (
                f"namespace {namespace!r}: a key mapping must name exactly the key columns {list(cols)}, "
                f"got {sorted(map(str, key))}"
            )
            raise InvalidInputError(msg)
        return _join(namespace, [key[c] for c in cols], cols)
    if isinstance(key, (tuple, list)):
        if not cols:
            msg = f"namespace {namespace!r}: has no key columns (written by put only); give the key as a str, got {key!r}"
            raise InvalidInputError(msg)
        if len(key) != len(cols):
            msg = (
                f"namespace {namespace!r}: the key has {len(cols)} column(s) {list(cols)}; "
                f"got {len(key)} part(s) {key!r}"
            )
            raise InvalidInputError(msg)
        return _join(namespace, list(key), cols)
    msg = (
        f"namespace {namespace!r}: key must be a str, an int, or a tuple/mapping of the key columns "
        f"{list(cols)}, got {key!r}"
    )
    raise InvalidInputError(msg)


def key_fields(key: object, key_columns: Sequence[str], string_columns: Sequence[str] = ()) -> dict[str, Any]:
    """The key columns' values a key as written gives, to store beside a put's value.

    A namespace with key columns holds them as fields (an upsert's rows carry them), so
    a ``put`` by key keeps its record alike: ``put("people", (4, "F"), {"n": 1})`` in
    a namespace keyed by ``loc, sex`` stores ``{"loc": 4, "sex": "F", "n": 1}``.

    Args:
        key: The key as written (already checked by :func:`encode_key`).
        key_columns: The namespace's key columns.
        string_columns: Those of them whose stored type is a string: a str key of a
            one-column key is then that column's value (a str key of a composite key is
            the encoded ``_key``, whose parts have lost their types, so it gives nothing).

    Returns:
        Column → value; empty when the key gives none.
    """
    cols = tuple(key_columns)
    if not cols:
        return {}
    if isinstance(key, Mapping):
        return {c: key[c] for c in cols}
    if isinstance(key, (tuple, list)):
        return dict(zip(cols, key, strict=True))
    if len(cols) == 1 and (isinstance(key, int) or cols[0] in string_columns):
        return {cols[0]: key}
    return {}


def value_with_key_fields(namespace: str, value: Any, fields: dict[str, Any]) -> Any:
    """``value`` (a dict) with the key columns it lacks added from ``fields``.

    Raises:
        InvalidInputError: the value holds a key column with another value than the key's.
    """
    if not fields or not isinstance(value, dict):
        return value
    for column, part in fields.items():
        if column in value and value[column] is not None and value[column] != part:
            msg = (f"namespace {namespace!r}: the value's key column {column!r} is {value[column]!r}, "
                   f"but the key gives {part!r}")
            raise InvalidInputError(msg)
    return {**fields, **{k: v for k, v in value.items() if k not in fields or v is not None}}


def _join(namespace: str, parts: list[Any], cols: tuple[str, ...]) -> str:
    if len(parts) == 1:  # one key column: its value is the key, unescaped (as upsert encodes it)
        _part(namespace, parts[0], cols[0])
        return encode_key(namespace, parts[0], ())
    return _SEP.join(_part(namespace, v, c) for v, c in zip(parts, cols))


def _check_text(namespace: str, key: str) -> None:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as e:
        msg = f"namespace {namespace!r}: key {key!r} is not valid Unicode text (it holds a lone surrogate)"
        raise InvalidInputError(msg) from e
