"""Commit drafts, file entries and blobs for the catalog tests (no store needed)."""

from __future__ import annotations

import time

import pyarrow as pa
from blake3 import blake3

from koru_core.catalog import CommitDraft, FileEntry, PendingBlob

SCHEMA = pa.schema([("name", pa.string()), ("age", pa.int64())])


def draft(
    base: int, *, tag: str = "", namespaces: tuple[str, ...] = ("users",), files: tuple[FileEntry, ...] = (),
    blobs: tuple[PendingBlob, ...] = (), schemas: dict | None = None, system_time: int | None = None,
    write_ids: tuple[int, int] | None = None, actor: str | None = "test", run_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> CommitDraft:
    """A draft on ``base`` whose body digest is blake3 of ``tag`` (distinct tags, distinct hashes)."""
    first, last = write_ids if write_ids is not None else (None, None)
    written = 0 if first is None else last - first + 1
    return CommitDraft(
        base=base, system_time=time.time_ns() if system_time is None else system_time, actor=actor, run_id=run_id,
        metadata=metadata, namespaces=namespaces, written=written, unchanged=1, deleted=0,
        first_write_id=first, last_write_id=last, body=blake3(tag.encode()).digest(),
        schemas=schemas if schemas is not None else {}, files=files, blobs=blobs,
    )


def warm(path: str, *, namespace: str = "users", kind: str = "versions", rows: int = 3, key: str = "a") -> FileEntry:
    """A warm file entry (its commit and system time are filled in by ``record_commit``)."""
    return FileEntry(namespace=namespace, tier="warm", kind=kind, path=path, rows=rows, bytes=100 + rows,
                     checksum=blake3(path.encode()).digest(), min_commit=0, max_commit=0, min_valid=1, max_valid=2,
                     min_key=key, max_key=key + "z")


def cold(path: str, *, namespace: str = "users", upto: int = 1, rows: int = 5) -> FileEntry:
    """A cold state file covering commits 1..``upto``."""
    return FileEntry(namespace=namespace, tier="cold", kind="state", path=path, rows=rows, bytes=1000 + rows,
                     checksum=blake3(path.encode()).digest(), min_commit=1, max_commit=upto, min_valid=0,
                     max_valid=9, max_valid_to=None, max_valid_to_commit=None, min_key="a", max_key="z")


def blob(data: bytes, *, namespace: str = "users", kind: str = "versions", rows: int = 2) -> PendingBlob:
    """A pending blob (its commit and system time are filled in by ``record_commit``)."""
    return PendingBlob(namespace=namespace, commit=0, system_time=0, kind=kind, rows=rows, data=data,
                       checksum=blake3(data).digest())
