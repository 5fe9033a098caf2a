"""Making a commit durable and visible: data first, then one catalog transaction.

A namespace's versions (and skip records) of a commit up to :data:`PENDING_MAX_ROWS`
rows go into the catalog itself as a pending blob, so a durable ``put`` costs one
catalog transaction; more go to a warm Parquet file written and fsynced *before* the
transaction. Either way the commit becomes visible, all of it, exactly when
:meth:`~koru_core.catalog.base.Catalog.record_commit` commits, and is durable when
the call returns. A failure before that leaves nothing visible: a warm file written
for a commit that never got recorded is an orphan that vacuum removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from koru_core.catalog.blobs import encode_table
from koru_core.catalog.entries import CommitDraft, CommitRecord, FileEntry, FileSwap, PendingBlob
from koru_core.chain import body_digest
from koru_core.layout import warm_name
from koru_core.storage.parquet import write_parquet
from koru_core.write.versions import Prepared

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["PENDING_MAX_ROWS", "WARM_ROW_GROUP_ROWS", "Staged", "discard", "persist", "publish", "stage"]

PENDING_MAX_ROWS = 1024
"""A commit's versions (or skip records) of one namespace up to this many stay in the catalog."""

WARM_ROW_GROUP_ROWS = 64 * 1024
"""Rows per row group of a warm file."""


def _warm(ctx: StoreContext, namespace: str, kind: str, table: pa.Table) -> FileEntry:
    rel = warm_name(namespace, kind)
    size, checksum = write_parquet(ctx.storage, rel, table, row_group_size=WARM_ROW_GROUP_ROWS, compression="lz4")
    valid = table["_valid_from"].cast(pa.int64())
    keys = table["_key"]
    entry = FileEntry(
        namespace=namespace, tier="warm", kind=kind, path=rel, rows=table.num_rows, bytes=size,
        checksum=checksum, min_commit=0, max_commit=0,
        min_valid=pc.min(valid).as_py(), max_valid=pc.max(valid).as_py(),
        min_key=pc.min(keys).as_py(), max_key=pc.max(keys).as_py(),
    )
    ctx.files.prime(entry, table)  # consolidation reads it next: from memory
    return entry


def _blob(namespace: str, kind: str, table: pa.Table) -> PendingBlob:
    data, checksum = encode_table(table)
    return PendingBlob(namespace=namespace, commit=0, system_time=0, kind=kind, rows=table.num_rows,  # type: ignore[arg-type]
                       data=data, checksum=checksum)


@dataclass(frozen=True, slots=True)
class Staged:
    """A commit's data, written but not yet visible: its warm files, pending blobs and the
    cold files of parts that go straight to the cold layout (:class:`FileSwap`)."""

    prepared: tuple[Prepared, ...]
    files: tuple[FileEntry, ...]
    blobs: tuple[PendingBlob, ...]
    swaps: tuple[FileSwap, ...] = ()


def stage(ctx: StoreContext, prepared: Sequence[Prepared], swaps: Sequence[FileSwap] = ()) -> Staged:
    """Write the commit's data: warm files (written and fsynced) for large parts, blobs for
    small ones; nothing for the namespaces of ``swaps``, whose cold files hold their part.

    Raises:
        StoreFullError: no space for a warm file (nothing is left behind).
    """
    files: list[FileEntry] = []
    blobs: list[PendingBlob] = []
    cold = {s.namespace for s in swaps}
    try:
        for p in prepared:
            if p.namespace in cold:
                continue
            for kind, table in (("versions", p.versions), ("skips", p.skips)):
                if not table.num_rows:
                    continue
                if table.num_rows > PENDING_MAX_ROWS:
                    files.append(_warm(ctx, p.namespace, kind, table))
                else:
                    blobs.append(_blob(p.namespace, kind, table))
    except BaseException:
        discard(ctx, Staged(tuple(prepared), tuple(files), (), tuple(swaps)))
        raise
    return Staged(tuple(prepared), tuple(files), tuple(blobs), tuple(swaps))


def publish(
    ctx: StoreContext, staged: Staged, *, base: int, system_time: int, actor: str | None, run_id: str | None,
    metadata: dict[str, str] | None, first_write_id: int,
) -> CommitRecord:
    """Record the staged commit in one catalog transaction: the commit point.

    The staged data stays in place when this raises (the caller retries with a new base
    or calls :func:`discard`).

    Raises:
        StoreFullError: no space for the catalog (nothing is visible).
        HeadMovedError: the head moved past ``base`` (nothing is visible).
    """
    prepared = staged.prepared
    written = [p for p in prepared if p.versions.num_rows or p.skips.num_rows]
    total = sum(p.versions.num_rows for p in prepared)
    draft = CommitDraft(
        base=base, system_time=system_time, actor=actor, run_id=run_id, metadata=metadata,
        namespaces=tuple(sorted(p.namespace for p in written)),
        written=sum(p.written for p in prepared), unchanged=sum(p.unchanged for p in prepared),
        deleted=sum(p.deleted for p in prepared),
        first_write_id=first_write_id if total else None,
        last_write_id=first_write_id + total - 1 if total else None,
        body=body_digest([(p.namespace, p.versions if p.row is None else [p.row]) for p in prepared]),
        schemas={p.namespace: (p.schema, p.key_columns) for p in written if p.is_reshaped},
        files=staged.files, blobs=staged.blobs, swaps=staged.swaps,
    )
    return ctx.catalog.record_commit(draft)


def discard(ctx: StoreContext, staged: Staged) -> None:
    """Remove staged warm and cold files that were never recorded (rather than leave orphans for vacuum)."""
    written = [*staged.files, *(e for s in staged.swaps for e in s.add)]
    ctx.files.forget([e.path for e in written])
    for e in written:
        try:
            ctx.storage.delete(e.path)
        except OSError:
            pass


def persist(
    ctx: StoreContext, prepared: Sequence[Prepared], *, base: int, system_time: int, actor: str | None,
    run_id: str | None, metadata: dict[str, str] | None, first_write_id: int,
) -> CommitRecord:
    """Write the commit's data, then record the commit in one catalog transaction.

    Raises:
        StoreFullError: no space for a warm file or for the catalog (nothing is visible).
        HeadMovedError: the head moved past ``base`` (nothing is visible, nothing left behind).
    """
    staged = stage(ctx, prepared)
    try:
        return publish(ctx, staged, base=base, system_time=system_time, actor=actor, run_id=run_id,
                       metadata=metadata, first_write_id=first_write_id)
    except BaseException:
        discard(ctx, staged)
        raise
