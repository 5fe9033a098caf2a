"""Content ids: blake3 of a record's canonical bytes, in the store's content-id format.

Two canonical forms exist, each specified (and pinned by hand-written vectors in
``tests/core/test_hashing.py``) in its own module:

- :mod:`koru_core.hashing.format2` (stores of on-disk format 2, the default): binary,
  fixed-width little-endian numbers; a column is encoded without per-row Python;
- :mod:`koru_core.hashing.format1` (stores upgraded from on-disk format 1, whose
  commit hash chain covers format-1 ids): decimal text.

A store records its format (catalog ``meta.content_format``) and hashes every write
with it, so the unchanged rule always compares ids of one form. Ids are 32 bytes
(``fixed_size_binary(32)`` in Arrow); the API shows them as 64 lowercase hex characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa

from koru_core.errors import InvalidInputError
from koru_core.hashing import format1, format2

__all__ = ["CONTENT_FORMATS", "ContentFormat", "content_id", "content_ids"]

ContentFormat = Literal[1, 2]
CONTENT_FORMATS: tuple[int, ...] = (1, 2)


def content_ids(table: pa.Table, *, format: ContentFormat = 2) -> pa.Array:
    """Return the content id of every row of ``table`` (value columns only).

    Returns:
        ``fixed_size_binary(32)``, one id per row.

    Raises:
        InvalidInputError: duplicate column names, a type with no canonical form, or
            an unknown ``format``.

    Example:
        >>> from blake3 import blake3
        >>> content_ids(pa.table({"age": [31]}), format=1)[0].as_py() == blake3(b"3:agei2:31").digest()
        True
    """
    return _module(format).content_ids(table)


def content_id(value: Mapping[str, Any], *, format: ContentFormat = 2) -> bytes:
    """Return the 32-byte content id of one record (a mapping of field name to value).

    Equal to ``content_ids(pa.Table.from_pylist([value]), format=format)[0]``.

    Raises:
        InvalidInputError: not a mapping, a value Arrow cannot convert, or an unknown ``format``.

    Example:
        >>> content_id({"age": 31}) == content_id({"age": 31.0})
        True
    """
    return _module(format).content_id(value)


def _module(format: object) -> Any:
    if format == 2:
        return format2
    if format == 1:
        return format1
    msg = f"unknown content-id format {format!r} (known: {list(CONTENT_FORMATS)})"
    raise InvalidInputError(msg)
