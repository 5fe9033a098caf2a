"""The data model: system columns, their Arrow types, and the value objects writes return.

A version is one row. System columns start with ``_``; the value's fields are
ordinary columns beside them. Every system column, with its Arrow type:

============== ======================== ===============================================
column         Arrow type               meaning
============== ======================== ===============================================
_key           string                   the record's identity in its namespace
_valid_from    timestamp[ns, UTC]       when the fact became true (valid time)
_valid_to      timestamp[ns, UTC]       next ``_valid_from`` of the key; null if current
_system_from   timestamp[ns, UTC]       when the commit was recorded (system time)
_commit        int64                    commit number, 1, 2, 3 … per store
_write_id      string                   unique id of this version (16 hex chars)
_prev_write_id string                   the key's previously written version, or null
_content_id    string                   blake3 of the canonical value (64 hex); null if deleted
_deleted       bool                     a tombstone
_actor         string                   provenance: who wrote it (nullable)
_run_id        string                   provenance: which run wrote it (nullable)
_parents       list<string>             write ids this version was derived from
============== ======================== ===============================================

This is the shape every read returns. In files the ids are stored as bytes
(:data:`WRITE_ID`, :data:`CONTENT_ID`; see :mod:`koru_core.layout`) and shown as
lowercase hex here. ``_valid_to`` is stored in cold files (exact as of their
consolidation) and computed on read otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

__all__ = [
    "CONTENT_ID",
    "STORED_COLUMNS",
    "SYSTEM_COLUMNS",
    "SYSTEM_SCHEMA",
    "TIMESTAMP",
    "Commit",
    "CommitResult",
    "FieldChange",
    "Lineage",
    "MaintenanceResult",
    "Version",
    "VerifyReport",
    "WRITE_ID",
    "version_from_row",
    "write_id_hex",
]

TIMESTAMP = pa.timestamp("ns", tz="UTC")
"""The Arrow type of every time koru records: nanoseconds since the Unix epoch, UTC."""

WRITE_ID = pa.binary(8)
"""How a write id is stored: the big-endian bytes of an int64 of the store's write-id sequence."""

CONTENT_ID = pa.binary(32)
"""How a content id is stored: the 32-byte blake3 digest."""

SYSTEM_SCHEMA = pa.schema(
    [
        pa.field("_key", pa.string(), nullable=False),
        pa.field("_valid_from", TIMESTAMP, nullable=False),
        pa.field("_valid_to", TIMESTAMP),
        pa.field("_system_from", TIMESTAMP, nullable=False),
        pa.field("_commit", pa.int64(), nullable=False),
        pa.field("_write_id", pa.string(), nullable=False),
        pa.field("_prev_write_id", pa.string()),
        pa.field("_content_id", pa.string()),
        pa.field("_deleted", pa.bool_(), nullable=False),
        pa.field("_actor", pa.string()),
        pa.field("_run_id", pa.string()),
        pa.field("_parents", pa.list_(pa.string())),
    ]
)
"""Every system column with its Arrow type, in file order."""

SYSTEM_COLUMNS: tuple[str, ...] = tuple(SYSTEM_SCHEMA.names)
STORED_COLUMNS: tuple[str, ...] = tuple(n for n in SYSTEM_COLUMNS if n != "_valid_to")
"""The system columns written to warm files (``_valid_to`` is derived)."""


def write_id_hex(write_id: int) -> str:
    """Return a write id (an int of the store's write-id sequence) as the API shows it:
    16 lowercase hex characters, which sort in write order.

    Example:
        >>> write_id_hex(42)
        '000000000000002a'
    """
    return f"{write_id:016x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """One immutable version of a key, as written or read.

    Attributes:
        namespace: The namespace.
        key: The key.
        value: The value (a dict of fields, or a scalar for a ``value``-only
            namespace); ``None`` for a tombstone.
        valid_from: Valid time (UTC).
        system_from: System time of the commit (UTC).
        commit: Commit number.
        write_id: Unique id of this version.
        prev_write_id: The key's previously written version, or ``None``.
        content_id: blake3 hex of the canonical value; ``None`` for a tombstone.
        is_deleted: True for a tombstone.
        actor, run_id: Provenance, or ``None``.
        parents: Write ids this version was derived from.
        is_unchanged: True when the write was a no-op because the value equalled
            the key's as-of version; then the other fields describe that version.
        valid_to: When the next version of the key (by valid time, as known at the
            read's commit) takes over, or ``None`` while current or when not read
            (a version just written); from :meth:`Store.version_at` and history.
    """

    namespace: str
    key: str
    value: Any
    valid_from: datetime
    system_from: datetime
    commit: int
    write_id: str
    prev_write_id: str | None
    content_id: str | None
    is_deleted: bool = False
    actor: str | None = None
    run_id: str | None = None
    parents: tuple[str, ...] = ()
    is_unchanged: bool = False
    valid_to: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitResult:
    """What one write call did.

    Attributes:
        commit: The commit number, or ``None`` when nothing was written (every
            row was unchanged), so no commit was made.
        written: Versions written (values, not tombstones).
        unchanged: Rows skipped because they equalled the key's as-of version.
        deleted: Tombstones written.
        namespaces: The namespaces the commit touched, sorted.
    """

    commit: int | None
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """One entry of the commit log.

    Attributes:
        commit: Commit number (1, 2, 3 …).
        system_time: When it was recorded (UTC, ns precision).
        actor, run_id: Provenance given by the writer, or ``None``.
        namespaces: Namespaces it wrote, sorted.
        written, unchanged, deleted: Counts, as in :class:`CommitResult`.
        metadata: The writer's ``metadata=`` (str → str), as delta-rs's
            ``CommitProperties(custom_metadata=…)``; empty when none was given.
        hash: The commit's chain hash (64 hex): keep the last one elsewhere and check
            the store against it with ``Store.verify(expected_head=…)``.
    """

    commit: int
    system_time: datetime
    actor: str | None
    run_id: str | None
    namespaces: tuple[str, ...]
    written: int
    unchanged: int
    deleted: int
    metadata: dict[str, str] = field(default_factory=dict)
    hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One field that differs between two versions of a key.

    ``before`` or ``after`` is ``None`` when the field was absent (or null) on
    that side.
    """

    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Lineage:
    """The ancestor graph of a version, across namespaces.

    Attributes:
        nodes: One row per version reached: ``_write_id``, ``namespace``,
            ``_key``, ``_commit`` (int64), ``_valid_from``/``_system_from``
            (timestamp[ns, UTC]), ``_content_id``, ``_actor``, ``_run_id``,
            ``depth`` (int64, 0 for the start).
        edges: One row per link: ``child`` and ``parent`` write ids, and
            ``kind`` (``"parent"`` for provenance, ``"previous"`` for the key's
            previous version).
    """

    nodes: pa.Table
    edges: pa.Table
    root: str = field(default="")


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceResult:
    """What a maintenance action (consolidate, distill, vacuum) changed.

    Attributes:
        action: ``"consolidate"``, ``"distill"`` or ``"vacuum"``.
        files_before, files_after: Data files the catalog lists (all tiers).
        bytes_before, bytes_after: Their total size in bytes.
        versions_before, versions_after: Stored versions (full rows, not
            counting pruned skeletons).
        namespaces: The namespaces acted on, sorted.
    """

    action: str
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    versions_before: int
    versions_after: int
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """The outcome of :meth:`Store.verify`.

    Attributes:
        is_ok: True when nothing was found wrong.
        problems: One line per problem, naming the file, commit, namespace or
            write id concerned.
        commits_checked, files_checked, versions_checked: What was checked.
    """

    is_ok: bool
    problems: tuple[str, ...]
    commits_checked: int
    files_checked: int
    versions_checked: int


def version_from_row(namespace: str, row: dict[str, Any], value: Any, *, is_unchanged: bool) -> Version:
    """Build a :class:`Version` from one stored row (``to_pylist`` form) and its value."""
    return Version(
        namespace=namespace,
        key=row["_key"],
        value=None if row["_deleted"] else value,
        valid_from=row["_valid_from"],
        system_from=row["_system_from"],
        commit=row["_commit"],
        write_id=row["_write_id"],
        prev_write_id=row["_prev_write_id"],
        content_id=row["_content_id"],
        is_deleted=row["_deleted"],
        actor=row["_actor"],
        run_id=row["_run_id"],
        parents=tuple(row["_parents"] or ()),
        is_unchanged=is_unchanged,
        valid_to=row.get("_valid_to"),
    )
