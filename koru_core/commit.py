"""Making a commit durable and visible, and flushing pending versions to warm files.

A commit is one SQLite transaction on the catalog. Versions of a namespace that
are few (≤ :data:`PENDING_MAX_ROWS`) go into the catalog itself as an Arrow IPC
blob; more go to a warm Parquet file written and fsynced *before* the
transaction. Either way the commit becomes visible, all of it, exactly when the
transaction commits, and is durable when the call returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import blake3
import pyarrow as pa
import pyarrow.compute as pc

from koru_core._parquet import write_file
from koru_core.catalog import Catalog, FileEntry, encode_table, insert_file
from koru_core.errors import ConflictError
from koru_core.scan import stored_schema
from koru_core.schema import conform
from koru_core.write import Prepared

__all__ = ["FLUSH_ROWS", "PENDING_MAX_ROWS", "flush", "persist"]

PENDING_MAX_ROWS = 1024
"""A commit's versions of one namespace up to this many stay in the catalog."""

FLUSH_ROWS = 32 * 1024
"""Pending versions of a namespace past this many are flushed to one warm file."""

FLUSH_COMMITS = 64
"""…and so are they past this many commits: every read decodes each pending
commit's blob, so many tiny commits cost readers more than one small file."""


def _sorted(table: pa.Table) -> pa.Table:
    order = pc.sort_indices(table, sort_keys=[("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")])
    return table.take(order)


def _file_entry(namespace: str, path: str, table: pa.Table, size: int, checksum: str) -> FileEntry:
    valid = table["_valid_from"].cast(pa.int64())
    commits = table["_commit"]
    return FileEntry(
        namespace=namespace, tier="warm", path=path, rows=table.num_rows, bytes=size, checksum=checksum,
        min_commit=pc.min(commits).as_py(), max_commit=pc.max(commits).as_py(),
        min_valid=pc.min(valid).as_py(), max_valid=pc.max(valid).as_py(),
    )


def persist(
    root: Path,
    catalog: Catalog,
    prepared: Sequence[Prepared],
    *,
    commit: int,
    system_time: int,
    actor: str | None,
    run_id: str | None,
    unchanged: int,
    commit_hash: str,
    prev_hash: str | None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write the commit's versions and record the commit atomically.

    Raises:
        ConflictError: another writer recorded commit ``commit`` first (the
            write lock makes this a broken-lock condition, not a normal one).
        CorruptionError: the catalog is unreadable.
    """
    files: list[FileEntry] = []
    blobs: list[tuple[str, int, bytes]] = []
    for p in prepared:
        if p.versions.num_rows > PENDING_MAX_ROWS:
            rel = f"warm/namespace={p.namespace}/commit={commit:09d}.parquet"
            size, checksum = write_file(p.versions, root / rel)
            files.append(_file_entry(p.namespace, rel, p.versions, size, checksum))
        elif p.versions.num_rows:
            blobs.append((p.namespace, p.versions.num_rows, encode_table(p.versions)))
    names = sorted(p.namespace for p in prepared if p.versions.num_rows)
    with catalog.write() as con:
        last = con.execute("SELECT coalesce(max(commit_number), 0) FROM commits").fetchone()[0]
        if last != commit - 1:
            msg = f"{catalog.path}: commit {commit} was taken by another writer (last is {last})"
            raise ConflictError(msg)
        con.execute(
            "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                commit, system_time, actor, run_id, json.dumps(names),
                sum(p.written for p in prepared), unchanged, sum(p.deleted for p in prepared),
                commit_hash, prev_hash, json.dumps(metadata, sort_keys=True) if metadata else None,
            ),
        )
        for p in prepared:
            if not p.versions.num_rows:
                continue
            schema = p.schema.serialize().to_pybytes()
            con.execute(
                "INSERT INTO namespaces VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "schema = excluded.schema, schema_commit = excluded.schema_commit "
                "WHERE namespaces.schema != excluded.schema",
                (p.namespace, schema, commit, commit),
            )
        for entry in files:
            insert_file(con, entry)
        for namespace, rows, data in blobs:
            con.execute(
                "INSERT INTO pending VALUES (?, ?, ?, ?, ?)",
                (namespace, commit, rows, data, blake3.blake3(data).hexdigest()),
            )


def flush(root: Path, catalog: Catalog, namespace: str, *, min_rows: int = FLUSH_ROWS) -> FileEntry | None:
    """Move a namespace's pending versions into one warm Parquet file, if there
    are at least ``min_rows`` of them or :data:`FLUSH_COMMITS` pending commits.
    Call with the write lock held.

    Returns:
        The new file's entry, or None if nothing was flushed.
    """
    rows, commits = catalog.pending_rows(namespace)
    if rows == 0 or (rows < min_rows and commits < FLUSH_COMMITS):
        return None
    with catalog.read():
        tables = catalog.pending(namespace)
        value_schema = catalog.schema(namespace)
    assert value_schema is not None
    schema = stored_schema(value_schema)
    table = _sorted(pa.concat_tables([conform(t, schema) for t in tables]))
    first, last = pc.min(table["_commit"]).as_py(), pc.max(table["_commit"]).as_py()
    rel = f"warm/namespace={namespace}/commit={first:09d}-{last:09d}.parquet"
    size, checksum = write_file(table, root / rel)
    entry = _file_entry(namespace, rel, table, size, checksum)
    with catalog.write() as con:
        insert_file(con, entry)
        con.execute("DELETE FROM pending WHERE namespace = ? AND commit_number <= ?", (namespace, last))
    return entry
