"""On-disk format 2: what each kind of data file holds, how it is sorted and named.

The catalog is the truth; this module fixes the shape of what it points at
(DESIGN.md, "Layout on disk" and "Reads"). Every file is Parquet with page checksums
and statistics. Ids are binary: ``_write_id`` and ``_prev_write_id`` are
``fixed_size_binary(8)`` (the big-endian int64 of the store's write-id sequence),
``_content_id`` is ``fixed_size_binary(32)``; the API shows them as hex.

================  ==================  =============================================  =====================
kind              tier                columns                                        sorted by
================  ==================  =============================================  =====================
versions          warm / hot blob     :data:`COMMIT_COLUMNS` + values                 _key, _valid_from
state             cold                :data:`COLD_COLUMNS` + values, _valid_to null   _key
history           cold                :data:`COLD_COLUMNS` + values, _valid_to set    _valid_from, _key
skips             warm / hot / cold   :data:`SKIP_COLUMNS` (+ _commit when cold)      _key, _valid_from
skeleton          deep                :data:`COLD_COLUMNS`, no values                 _key, _valid_from
================  ==================  =============================================  =====================

A warm file or a pending blob belongs to one commit, written before the catalog
assigns its number: its rows carry no ``_commit`` or ``_system_from``; readers take
both from the catalog entry. Cold files are written by consolidation, after the
commits are known, and carry every system column, plus:

- ``_valid_to``: the next ``_valid_from`` of the key (DESIGN.md), exact over every
  commit up to the consolidation head (the namespace's ``cold_commit``);
- ``_valid_to_commit``: the commit of that next version, so a read at an older
  commit knows whether the interval's end is visible to it.

The state files hold each key's last version: the as-of state at any time after
every key's last valid time is a plain scan of them, and "now" is the cheapest read.
History files are split by ``_valid_to`` (each consolidation run adds the versions it
closed, whose intervals end near the time of the run), so the as-of state at *t*
reads only files whose ``max_valid_to`` is after *t*; within a file, rows are sorted
by valid time, then key (then commit), so the versions that started by *t* are a prefix
of the file and row-group statistics skip the rest. A one-key read of a history file
finds its rows through the file's key order, which the reader's cache computes once
(:meth:`koru_core.storage.parquet.FileCache.key_order`).
"""

from __future__ import annotations

import functools
import uuid

import pyarrow as pa

from koru_core.model import CONTENT_ID, TIMESTAMP, WRITE_ID

__all__ = [
    "COLD_COLUMNS",
    "COLD_SCHEMA",
    "COMMIT_COLUMNS",
    "COMMIT_SCHEMA",
    "SKIP_SCHEMA",
    "cold_name",
    "cold_schema",
    "commit_schema",
    "warm_name",
]

COMMIT_SCHEMA = pa.schema(
    [
        pa.field("_key", pa.string(), nullable=False),
        pa.field("_valid_from", TIMESTAMP, nullable=False),
        pa.field("_write_id", WRITE_ID, nullable=False),
        pa.field("_prev_write_id", WRITE_ID),
        pa.field("_content_id", CONTENT_ID),
        pa.field("_deleted", pa.bool_(), nullable=False),
        pa.field("_actor", pa.string()),
        pa.field("_run_id", pa.string()),
        pa.field("_parents", pa.list_(pa.string())),
    ]
)
"""System columns of a warm file or a pending blob (no ``_commit``, ``_system_from``)."""

COMMIT_COLUMNS: tuple[str, ...] = tuple(COMMIT_SCHEMA.names)

COLD_SCHEMA = pa.schema(
    [
        pa.field("_key", pa.string(), nullable=False),
        pa.field("_valid_from", TIMESTAMP, nullable=False),
        pa.field("_valid_to", TIMESTAMP),
        pa.field("_valid_to_commit", pa.int64()),
        pa.field("_system_from", TIMESTAMP, nullable=False),
        pa.field("_commit", pa.int64(), nullable=False),
        *(COMMIT_SCHEMA.field(n) for n in COMMIT_COLUMNS[2:]),
    ]
)
"""System columns of a cold (state, history) or deep (skeleton) file."""

COLD_COLUMNS: tuple[str, ...] = tuple(COLD_SCHEMA.names)

SKIP_SCHEMA = pa.schema(
    [
        pa.field("_key", pa.string(), nullable=False),
        pa.field("_valid_from", TIMESTAMP, nullable=False),
        pa.field("_commit", pa.int64()),
        pa.field("_parents", pa.list_(pa.string())),
    ]
)
"""A skip record: a row equal to its key's version before it, at a later valid time.

``_commit`` is null in warm files and blobs (taken from the catalog entry)."""


@functools.lru_cache(maxsize=256)
def commit_schema(values: pa.Schema) -> pa.Schema:
    """Schema of a warm file or pending blob of a namespace with value schema ``values``
    (made once per distinct schema: a put asks for it on every commit)."""
    return pa.schema([*COMMIT_SCHEMA, *values])


@functools.lru_cache(maxsize=256)
def cold_schema(values: pa.Schema) -> pa.Schema:
    """Schema of a cold file of a namespace with value schema ``values`` (made once per
    distinct schema)."""
    return pa.schema([*COLD_SCHEMA, *values])


def warm_name(namespace: str, kind: str) -> str:
    """A unique warm file path: ``warm/namespace=<ns>/<kind>-<16 hex>.parquet``.

    Written before its commit has a number, so the name holds none.
    """
    return f"warm/namespace={namespace}/{kind}-{uuid.uuid4().hex[:16]}.parquet"


def cold_name(namespace: str, kind: str, head: int) -> str:
    """A unique cold file path: ``cold/namespace=<ns>/<kind>-<head:09d>-<8 hex>.parquet``."""
    return f"cold/namespace={namespace}/{kind}-{head:09d}-{uuid.uuid4().hex[:8]}.parquet"
