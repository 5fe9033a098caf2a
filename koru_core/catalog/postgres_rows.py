"""Rows of the PostgreSQL catalog's tables <-> koru's catalog records (``koru_core.catalog.entries``).

Keys (``min_key``/``max_key``) are stored as UTF-8 ``bytea``: PostgreSQL ``text`` cannot
hold NUL, and a key may. Metadata is JSON text with sorted keys, as the chain hashes it.

Example:
    >>> FILE_COLUMNS[:3]
    ('path', 'namespace', 'tier')
"""

from __future__ import annotations

import json
from typing import Any

from koru_core.catalog.entries import COMMIT_COLUMNS, FILE_COLUMNS, FILE_FIELDS, CommitRecord, FileEntry
from koru_core.catalog.leases import ReaderLease

__all__ = [
    "INSERT_COMMIT",
    "INSERT_FILE",
    "commit_record",
    "commit_row",
    "file_entry",
    "file_row",
    "lease_entry",
]

INSERT_FILE = f"INSERT INTO files ({', '.join(FILE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(FILE_COLUMNS))})"
INSERT_COMMIT = f"INSERT INTO commits VALUES ({', '.join(['%s'] * len(COMMIT_COLUMNS))})"


def lease_entry(row: tuple[Any, ...]) -> ReaderLease:
    lease_id, holder, commit, mark, expires_at = row
    return ReaderLease(lease_id=lease_id, holder=holder, commit=int(commit), mark=int(mark), expires_at=int(expires_at))


def file_row(entry: FileEntry, *, commit: int | None, system_time: int | None) -> tuple[Any, ...]:
    values = {f: getattr(entry, f) for f in FILE_FIELDS}
    values["commit"], values["system_time"] = commit, system_time
    if commit is not None:  # a warm file: its rows all belong to that commit
        values["min_commit"] = values["max_commit"] = commit
    for k in ("min_key", "max_key"):
        if values[k] is not None:
            values[k] = values[k].encode()
    return tuple(values[f] for f in FILE_FIELDS)


def file_entry(row: tuple[Any, ...]) -> FileEntry:
    values = dict(zip(FILE_FIELDS, row))
    values["checksum"] = bytes(values["checksum"])
    for k in ("min_key", "max_key"):
        if values[k] is not None:
            values[k] = bytes(values[k]).decode()
    return FileEntry(**values)


def commit_row(c: CommitRecord) -> tuple[Any, ...]:
    return (c.commit, c.system_time, c.actor, c.run_id, list(c.namespaces), c.written, c.unchanged, c.deleted,
            c.first_write_id, c.last_write_id, c.hash, c.prev_hash,
            json.dumps(c.metadata, sort_keys=True) if c.metadata else None)


def commit_record(row: tuple[Any, ...]) -> CommitRecord:
    c, t, a, r, ns, w, u, d, first, last, h, prev, meta = row
    return CommitRecord(
        commit=int(c), system_time=int(t), actor=a, run_id=r, namespaces=tuple(ns),
        written=int(w), unchanged=int(u), deleted=int(d), first_write_id=first, last_write_id=last,
        hash=bytes(h), prev_hash=None if prev is None else bytes(prev), metadata=json.loads(meta) if meta else {},
    )
