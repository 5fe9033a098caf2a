"""What the catalog records, as frozen value objects shared by every backend.

Times are int64 nanoseconds since the epoch (UTC); write ids are int64 values of the
store's write-id sequence (shown as 16 hex characters at the API edge); hashes and
checksums are 32-byte blake3 digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

__all__ = [
    "COMMIT_COLUMNS",
    "FILE_COLUMNS",
    "FILE_FIELDS",
    "CommitDraft",
    "CommitRecord",
    "FileEntry",
    "FileSwap",
    "FileKind",
    "NamespaceInfo",
    "PendingBlob",
    "Tier",
]

Tier = Literal["warm", "cold", "deep"]
FileKind = Literal["versions", "state", "history", "skips", "skeleton"]
"""What a data file holds:

- ``versions`` (warm): the versions one commit wrote to one namespace;
- ``state`` (cold): each key's last version (``_valid_to`` null) at the consolidation head;
- ``history`` (cold): closed versions (``_valid_to`` set), partitioned by ``_valid_to``;
- ``skips`` (warm or cold): rows skipped as unchanged at a later valid time (key, valid
  time, commit), kept so that a later correction can bring them back (DESIGN.md, "As-of");
- ``skeleton`` (deep): system columns of versions dropped by distillation.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One immutable data file, as the catalog lists it.

    Attributes:
        namespace: Its namespace.
        tier, kind: See :data:`Tier` and :data:`FileKind`.
        path: Relative to the store root, ``/``-separated.
        rows: Rows in the file.
        bytes: File size in bytes.
        checksum: blake3 of the file's bytes (32 bytes).
        commit: For a warm file, the one commit it belongs to (its rows carry no
            ``_commit`` or ``_system_from`` column: readers take them from here);
            None for files that store those columns.
        system_time: That commit's system time (ns), or None.
        min_commit, max_commit: Range of the commits of its rows.
        min_valid, max_valid: Range of ``_valid_from`` (ns).
        max_valid_to: Largest ``_valid_to`` (ns) of a history file, None if any is open.
        max_valid_to_commit: Largest ``_valid_to_commit`` of a history file (None otherwise).
        min_key, max_key: Range of ``_key`` (for pruning point reads).
    """

    namespace: str
    tier: Tier
    kind: FileKind
    path: str
    rows: int
    bytes: int
    checksum: bytes
    commit: int | None = None
    system_time: int | None = None
    min_commit: int
    max_commit: int
    min_valid: int
    max_valid: int
    max_valid_to: int | None = None
    max_valid_to_commit: int | None = None
    min_key: str | None = None
    max_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingBlob:
    """One namespace's versions (or skip records) of one small commit, kept in the catalog.

    Attributes:
        namespace: Its namespace.
        commit: The commit; ``system_time`` its system time (ns).
        kind: ``"versions"`` or ``"skips"``.
        rows: Rows in the blob.
        data: An Arrow IPC stream (uncompressed).
        checksum: blake3 of ``data`` (32 bytes).
    """

    namespace: str
    commit: int
    system_time: int
    kind: Literal["versions", "skips"]
    rows: int
    data: bytes
    checksum: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceInfo:
    """A namespace as the catalog knows it.

    Attributes:
        name: The namespace.
        schema: The value schema (union of every field written so far).
        key_columns: The key columns of its upserts, in order (empty when written by
            ``put`` only or never declared).
        created_commit: The commit that created it.
        schema_commit: The last commit that changed its schema.
        cold_commit: Every commit up to this one is in cold files (0: none).
    """

    name: str
    schema: pa.Schema
    key_columns: tuple[str, ...] = ()
    created_commit: int = 0
    schema_commit: int = 0
    cold_commit: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitRecord:
    """One entry of the commit log.

    Attributes:
        commit: Its number, 1, 2, 3 … (gap-free).
        system_time: ns since the epoch (UTC), never decreasing.
        actor, run_id: Provenance given by the writer.
        namespaces: Namespaces it wrote, sorted.
        written, unchanged, deleted: Counts (see :class:`koru_core.CommitResult`).
        first_write_id, last_write_id: The write ids its versions took (inclusive), or None.
        hash, prev_hash: The chain hash of this commit and of the one before (32 bytes).
        metadata: The writer's str → str metadata.
    """

    commit: int
    system_time: int
    actor: str | None
    run_id: str | None
    namespaces: tuple[str, ...]
    written: int
    unchanged: int
    deleted: int
    first_write_id: int | None
    last_write_id: int | None
    hash: bytes
    prev_hash: bytes | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitDraft:
    """A commit ready to publish: everything :meth:`Catalog.record_commit` writes in one transaction.

    Attributes:
        base: The head commit the writer prepared against; the catalog refuses the draft
            (``ConflictError``) if the head moved and the draft cannot be rebased.
        system_time: Proposed system time (ns); the catalog raises it past the head's.
        actor, run_id, metadata: Provenance.
        namespaces: Names written, sorted.
        written, unchanged, deleted: Counts.
        first_write_id, last_write_id: Write-id range of the versions (inclusive) or None.
        body: blake3 digest of the commit's versions (:func:`koru_core.chain.body_digest`);
            the catalog chains it: ``hash = chain_hash(prev hash, commit, system time, body)``,
            so a commit renumbered on rebase needs no new pass over its versions.
        schemas: Namespace → (value schema, key columns) to record (new or changed only).
        files: Warm files already on disk (their ``commit``/``system_time`` are filled in
            by the catalog).
        blobs: Pending blobs (``commit``/``system_time`` filled in by the catalog).
        swaps: Cold files written in place of warm files (:class:`FileSwap`); only for
            catalogs whose ``swaps_in_commit`` is True.
    """

    base: int
    system_time: int
    actor: str | None
    run_id: str | None
    metadata: dict[str, str] | None
    namespaces: tuple[str, ...]
    written: int
    unchanged: int
    deleted: int
    first_write_id: int | None
    last_write_id: int | None
    body: bytes
    schemas: dict[str, tuple[pa.Schema, tuple[str, ...]]]
    files: tuple[FileEntry, ...] = ()
    blobs: tuple[PendingBlob, ...] = ()
    swaps: tuple[FileSwap, ...] = ()


@dataclass(frozen=True, slots=True)
class FileSwap:
    """Cold files a commit writes in place of a warm file, swapped in by the commit's own
    transaction (:attr:`CommitDraft.swaps`, on catalogs whose :attr:`Catalog.swaps_in_commit`).

    The commit's versions, and the namespace's state rows they touch, are already in the
    cold layout (:func:`koru_core.lifecycle.consolidate.consolidate_commit`): recording the
    commit also lists ``add``, retires ``remove`` and raises the namespace's ``cold_commit``
    to the commit, as :meth:`Catalog.swap_files` would right after it.

    Attributes:
        namespace: The namespace.
        remove: Files the new ones replace (state shards, folded history files).
        add: The new cold files (their ``_commit`` column holds the commit's number).
        base_cold_commit: The namespace's ``cold_commit`` they were built from; the commit
            is refused (``HeadMovedError``) if it is no longer that, or a file of ``remove``
            is no longer listed.
    """

    namespace: str
    remove: tuple[FileEntry, ...]
    add: tuple[FileEntry, ...]
    base_cold_commit: int


# -- the catalog tables' columns, shared by both backends ---------------------------

FILE_COLUMNS = (
    "path", "namespace", "tier", "kind", "rows", "bytes", "checksum", "commit_number", "system_time",
    "min_commit", "max_commit", "min_valid", "max_valid", "max_valid_to", "max_valid_to_commit",
    "min_key", "max_key",
)
"""Columns of the ``files`` table, in order."""
FILE_FIELDS = tuple("commit" if c == "commit_number" else c for c in FILE_COLUMNS)
"""The :class:`FileEntry` attribute (or row value) each of :data:`FILE_COLUMNS` holds."""
COMMIT_COLUMNS = (
    "commit_number", "system_time", "actor", "run_id", "namespaces", "written", "unchanged", "deleted",
    "first_write_id", "last_write_id", "hash", "prev_hash", "metadata",
)
"""Columns of the ``commits`` table, in order."""
