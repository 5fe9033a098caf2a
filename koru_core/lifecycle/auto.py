"""Automatic maintenance after commits: consolidation past thresholds, then deleting replaced files.

On by default (``koru.open(..., auto_consolidate=True)``); off, nothing runs by itself
and ``consolidate()``/``vacuum()`` are the user's. After each commit, for each
namespace it wrote, the store consolidates when the namespace's *overlay* (pending
versions and warm files not yet consolidated) holds

- at least :data:`AUTO_COMMITS` commits, or
- at least :data:`AUTO_ROWS` versions and as many as a quarter of its cold state
  (so a large table is rewritten when enough of it changed, a small one often),

then deletes the files that consolidation replaced once no reader lease needs them.
A commit whose part of a namespace passes the second threshold by itself, onto an empty
overlay, is consolidated before its commit point instead (:func:`consolidate_with_commit`):
the commit records the cold files in place of a warm one.
It runs in the writing call, after the commit point: it never turns the call into a
failure (:class:`~koru_core.write.writer.Writer` turns its errors into warnings, and
the next commit tries again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from koru_core._time import now_ns
from koru_core.catalog.entries import FileSwap
from koru_core.lifecycle.consolidate import consolidate_commit, consolidate_namespace
from koru_core.lifecycle.vacuum import delete_retired

if TYPE_CHECKING:
    from koru_core.catalog.entries import CommitRecord
    from koru_core.context import StoreContext
    from koru_core.write.versions import Prepared

__all__ = ["AUTO_COMMITS", "AUTO_ROWS", "after_commit", "consolidate_with_commit", "needs_consolidation"]

AUTO_COMMITS = 64
"""Overlay commits of a namespace that trigger consolidation."""

AUTO_ROWS = 64 * 1024
"""Overlay versions of a namespace that (with a quarter of its state) trigger consolidation."""


def needs_consolidation(ctx: StoreContext, namespace: str, record: CommitRecord | None = None) -> bool:
    """True when the namespace's overlay passes a threshold (module docstring).

    ``record``: the commit just made. When it wrote this namespace alone, right after the
    commit the counts were last taken at (no other writer in between), the counts are
    carried forward from :attr:`StoreContext.overlay` instead of read from the catalog.
    """
    known = ctx.overlay.get(namespace)
    if (record is not None and known is not None and record.namespaces == (namespace,)
            and known[0] == record.commit - 1):
        at, commits, rows, state = record.commit, known[1] + 1, known[2] + record.written + record.deleted, known[3]
    else:
        with ctx.catalog.snapshot():
            info = ctx.catalog.namespace(namespace)
            files = ctx.catalog.files(namespace)
            pending = ctx.catalog.pending_commits(namespace)
            at = ctx.catalog.head()[0]
        if info is None:
            return False
        warm = [e for e in files if e.tier == "warm" and e.kind == "versions"]
        commits = len(pending) + len(warm)
        rows = sum(n for _, n in pending) + sum(e.rows for e in warm)
        state = sum(e.rows for e in files if e.tier == "cold" and e.kind == "state")
    ctx.overlay[namespace] = (at, commits, rows, state)
    return commits >= AUTO_COMMITS or (rows >= AUTO_ROWS and rows * 4 >= state)


def consolidate_with_commit(ctx: StoreContext, p: Prepared, *, commit: int, system_time: int) -> FileSwap | None:
    """The cold files of a commit that goes straight to the cold layout, or None.

    A namespace's part of a commit does when its overlay is empty (no warm file or
    pending blob after its ``cold_commit``), the part alone passes :data:`AUTO_ROWS` and a
    quarter of the state (so the run after the commit would consolidate it at once), and
    the catalog records file swaps in the commit's transaction. Its rows are then encoded
    once, into the new state and history files, instead of a warm file first; the
    commit records them (:class:`~koru_core.catalog.entries.FileSwap`).

    Args:
        p: The namespace's prepared part.
        commit, system_time: The commit's number and system time (ns, UTC) if recorded
            on the head it was prepared on.

    Returns:
        The swap for :attr:`CommitDraft.swaps`, or None (the part takes a warm file).

    Raises:
        CorruptionError, StoreFullError: as :func:`consolidate_commit` (nothing is left behind).
    """
    rows = p.versions.num_rows
    if not ctx.catalog.swaps_in_commit or rows < AUTO_ROWS:
        return None
    with ctx.catalog.snapshot():
        info = ctx.catalog.namespace(p.namespace)
        files = ctx.catalog.files(p.namespace)
        pending = ctx.catalog.pending_commits(p.namespace) + ctx.catalog.pending_commits(p.namespace, kind="skips")
    if pending or any(e.tier == "warm" for e in files):
        return None
    state = sum(e.rows for e in files if e.tier == "cold" and e.kind == "state")
    if rows * 4 < state:
        return None
    cold_commit = info.cold_commit if info is not None else 0
    removed, added = consolidate_commit(ctx, p.namespace, p.versions, p.skips, p.schema, files=files,
                                        cold_commit=cold_commit, commit=commit, system_time=system_time)
    ctx.overlay.pop(p.namespace, None)  # counted again from the catalog after the commit
    return FileSwap(p.namespace, tuple(removed), tuple(added), cold_commit)


def after_commit(ctx: StoreContext, record: CommitRecord) -> None:
    """Consolidate the namespaces ``record`` wrote that need it, then delete replaced files."""
    changed = False
    for namespace in record.namespaces:
        if needs_consolidation(ctx, namespace, record):
            changed |= consolidate_namespace(ctx, namespace)
    if changed or ctx.catalog.retired():
        delete_retired(ctx, limit=now_ns())
