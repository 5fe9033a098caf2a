"""The commit sequence: lock, base, prepare, persist, then update the hot tier and maintain.

:class:`Writer` turns a list of operations into exactly one commit (or none, when
every row records nothing). Writers of one store serialise on its write lock (a
thread lock within a process, a file lock across processes); the commit point is
:meth:`Catalog.record_commit`. Nothing after the commit point can turn the call into
a failure: updating the hot tier and the automatic maintenance
(:mod:`koru_core.lifecycle.auto`) log a warning and leave the rest for later.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._memory import give_back
from koru_core._time import now_ns
from koru_core.catalog.entries import CommitRecord, FileSwap
from koru_core.errors import ConflictError, HeadMovedError
from koru_core.hot.index import INDEX_COLUMNS
from koru_core.hot.tier import TOMBSTONE
from koru_core.input import check_new_namespaces
from koru_core.model import CommitResult
from koru_core.read.rules import row_value
from koru_core.write import hotsync
from koru_core.write.batches import Operation, group
from koru_core.write.persist import Staged, discard, publish, stage
from koru_core.write.prepare import prepare
from koru_core.write.versions import Prepared

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["CACHE_MAX_ROWS", "MAX_ATTEMPTS", "MAX_PREPARES", "RETRY_WAIT_MAX_S", "RETRY_WAIT_S", "ColdPart", "Writer"]

MAX_ATTEMPTS = 50
"""Times a commit is prepared again because other writers changed its keys before it gives up."""

MAX_PREPARES = 4 * MAX_ATTEMPTS
"""Times a commit is prepared in all before it gives up, counting those done again because
its namespace was consolidated meanwhile (the rows it was checked against moved to cold
files: nothing says its keys conflict, so those do not count as attempts lost to writers)."""

RETRY_WAIT_S = 0.002
"""Before preparing again, a writer waits a random time up to this many seconds, doubled
with every attempt, at most :data:`RETRY_WAIT_MAX_S` (full-jitter exponential backoff, as
AWS's "Exponential Backoff and Jitter" describes): writers that keep losing to each other
on shared keys spread out instead of meeting again at once."""

RETRY_WAIT_MAX_S = 0.25
"""The longest wait between two attempts of one commit (seconds)."""

log = logging.getLogger("koru")

_LOST_TO_WRITERS = "lost to writers"
"""Why a commit is prepared again: other writers' commits wrote its keys (counts toward
:data:`MAX_ATTEMPTS`)."""

_MOVED = "moved"
"""Why a commit is prepared again: its namespace was consolidated or reshaped meanwhile."""

CACHE_MAX_ROWS = 1024
"""Commits writing at most this many versions to a namespace refresh the value cache. A
commit of more versions frees its tables before automatic maintenance runs (its
:meth:`Writer.commit` returns no :class:`Prepared`), and the Arrow memory pool returns
freed memory to the operating system, so a long ingest does not hold its peak."""


ColdPart = Callable[..., "FileSwap | None"]
"""``(ctx, prepared, *, commit, system_time) -> FileSwap | None``: the cold files of a
namespace's part that goes straight to the cold layout
(:func:`koru_core.lifecycle.auto.consolidate_with_commit`), or None for a warm file."""


class Writer:
    """Commits operations to one store (see the module docstring).

    Args:
        ctx: The store's context.
        after_commit: Called with the context and the commit record after each commit
            (automatic maintenance); its errors become warnings.
        cold_part: Writes the cold files of a large part before the commit point, so the
            commit records them in place of a warm file (:data:`ColdPart`); its errors
            are logged and the part takes a warm file.
    """

    def __init__(self, ctx: StoreContext, *, after_commit: Callable[[StoreContext, CommitRecord], None] | None = None,
                 cold_part: ColdPart | None = None) -> None:
        self.ctx = ctx
        self.after_commit = after_commit
        self.cold_part = cold_part

    def commit(
        self, operations: Sequence[Operation], *, actor: str | None, run_id: str | None,
        metadata: dict[str, str] | None = None, expected: Mapping[tuple[str, str], int] | None = None,
    ) -> tuple[CommitResult, list[Prepared], CommitRecord | None]:
        """Turn ``operations`` into one durable commit.

        Args:
            expected: (namespace, ``_key``) → the commit of the key's current version the
                caller read (0: no version), checked on the head the commit is recorded on
                (a compare-and-set, and a transaction's read set).

        Returns:
            The result, what was prepared per namespace (none for a commit of more
            than :data:`CACHE_MAX_ROWS` versions: its tables are freed before automatic
            maintenance), and the commit record (None when nothing was recorded).

        Raises:
            StoreLockedError: another writer held the lock past the timeout.
            SchemaError, InvalidInputError, KeyNotFoundError: refused input (nothing written).
            StoreFullError: no space left (nothing written).
            ConflictError: a key of ``expected`` has another current version (names the
                key and both commits; nothing written).
        """
        ctx = self.ctx
        with ctx.lock:
            lost = 0  # attempts lost to other writers' commits on these keys
            for attempt in range(MAX_PREPARES):
                head, head_time, _ = ctx.catalog.head()
                if expected:
                    self._check_expected(expected, head)
                system_time = max(now_ns() // 1000 * 1000, head_time + 1000)
                rows = sum(op.batch.num_rows for op in operations)
                first = ctx.catalog.allocate_write_ids(rows + 1024)
                prepared = self._prepare(operations, head=head, system_time=system_time, first=first,
                                         actor=actor, run_id=run_id)
                if rows > CACHE_MAX_ROWS:  # preparing freed what it computed on the way: give it back
                    give_back()
                unchanged = sum(p.unchanged for p in prepared)
                if not any(p.versions.num_rows or p.skips.num_rows for p in prepared):
                    return CommitResult(commit=None, unchanged=unchanged), prepared, None
                cold = self._cold_parts(prepared, commit=head + 1, system_time=system_time)
                if cold:  # so did writing the cold files
                    give_back()
                staged = stage(ctx, prepared, cold)
                try:
                    record = self._publish(staged, operations, head=head, system_time=system_time, actor=actor,
                                           run_id=run_id, metadata=metadata, first=first)
                except BaseException:
                    discard(ctx, staged)
                    raise
                if isinstance(record, str):  # other writers' commits, or a consolidation: prepare again
                    discard(ctx, staged)
                    lost += record == _LOST_TO_WRITERS
                    if lost >= MAX_ATTEMPTS:
                        break
                    time.sleep(random.uniform(0, min(RETRY_WAIT_MAX_S, RETRY_WAIT_S * 2**attempt)))
                    continue
                if rows > CACHE_MAX_ROWS:  # and so did the commit hash and the catalog commit
                    give_back()
                self._update_hot_or_clear(record, prepared, record.commit - 1, staged)
                break
            if isinstance(record, str):
                msg = (f"koru: gave up after {attempt + 1} attempts ({lost} lost to other writers): other writers "
                       "kept changing the same keys")
                raise ConflictError(msg)
            result = CommitResult(
                commit=record.commit,
                written=record.written, unchanged=record.unchanged, deleted=record.deleted,
                namespaces=tuple(p.namespace for p in prepared if p.versions.num_rows),
            )
            if sum(p.versions.num_rows for p in prepared) > CACHE_MAX_ROWS:
                del staged  # a large commit's tables go before maintenance reads the store again
                prepared = []
                give_back()
            self._maintain(record)
        return result, prepared, record

    def _cold_parts(self, prepared: Sequence[Prepared], *, commit: int, system_time: int) -> list[FileSwap]:
        """The cold files of the parts that go straight to the cold layout (:data:`ColdPart`)."""
        if self.cold_part is None:
            return []
        swaps = []
        for p in prepared:
            try:
                swap = self.cold_part(self.ctx, p, commit=commit, system_time=system_time)
            except Exception as e:  # noqa: BLE001 - the part takes a warm file instead
                log.warning("koru: writing namespace %r of commit %s straight to cold files failed, so it takes a "
                            "warm file: %r", p.namespace, commit, e)
                continue
            if swap is not None:
                swaps.append(swap)
        return swaps

    def _check_expected(self, expected: Mapping[tuple[str, str], int], head: int) -> None:
        """Raise :class:`ConflictError` if a key's current version is not of the expected commit."""
        by_namespace: dict[str, list[tuple[str, int]]] = {}
        for (namespace, key), commit in expected.items():
            by_namespace.setdefault(namespace, []).append((key, commit))
        for namespace, items in sorted(by_namespace.items()):
            for key, commit in items:
                actual = hotsync.current_commit(self.ctx, namespace, key, head)
                if actual != commit:
                    now = "no version" if actual == 0 else f"its version of commit {actual}"
                    was = "no version" if commit == 0 else f"its version of commit {commit}"
                    msg = (f"key {key!r} of namespace {namespace!r} has {now} (at head {head}), not {was} as "
                           "expected: another write changed it; nothing was written")
                    raise ConflictError(msg, namespace=namespace, key=key, expected=commit, actual=actual)

    def _prepare(self, operations: Sequence[Operation], *, head: int, system_time: int, first: int,
                 actor: str | None, run_id: str | None) -> list[Prepared]:
        ctx = self.ctx
        prepared: list[Prepared] = []
        next_id = first
        with ctx.catalog.snapshot():
            infos = {ns: ctx.catalog.namespace(ns) for ns in group(operations)}
            if None in infos.values():  # issue 12 item 14: no two namespaces one SQL name
                check_new_namespaces([ns for ns, i in infos.items() if i is None], ctx.catalog.namespaces())
        for namespace, ops in group(operations).items():
            p = prepare(ctx, namespace, ops, info=infos[namespace], head=head, system_time=system_time,
                        first_write_id=next_id, actor=actor, run_id=run_id)
            next_id += p.versions.num_rows
            prepared.append(p)
        return prepared

    def _publish(self, staged: Staged, operations: Sequence[Operation], *, head: int, system_time: int,
                 actor: str | None, run_id: str | None, metadata: dict[str, str] | None,
                 first: int) -> CommitRecord | str:
        """Record the staged commit, rebasing it past other writers' commits (optimistic
        concurrency, as Delta Lake and DuckLake commit): when none of them touched this
        commit's keys, the same data is recorded on the new head (nothing is rewritten).

        Returns:
            The record, or why the commit must be prepared again: :data:`_LOST_TO_WRITERS`
            (another writer changed one of its keys, or its system time is no longer after
            the head's) or :data:`_MOVED` (its namespace was consolidated or reshaped
            meanwhile, or its cold files hold a commit number that was taken).
        """
        ctx = self.ctx
        base = head
        while True:
            try:
                return publish(ctx, staged, base=base, system_time=system_time, actor=actor, run_id=run_id,
                               metadata=metadata, first_write_id=first)
            except HeadMovedError:
                if staged.swaps:  # its cold files hold the commit's number: prepare again
                    return _MOVED
                new_head, new_time, _ = ctx.catalog.head()
                if system_time <= new_time:
                    return _LOST_TO_WRITERS
                why = self._untouched(staged.prepared, operations, base, new_head)
                if why is not None:
                    return why
                base = new_head

    def _untouched(self, prepared: Sequence[Prepared], operations: Sequence[Operation], base: int,
                   head: int) -> str | None:
        """None when the commits in (``base``, ``head``] wrote none of the keys prepared and
        changed no schema they write (so the unchanged rule, the version chain and the
        namespace's schema come out the same on ``head``), else why not (:data:`_LOST_TO_WRITERS`,
        :data:`_MOVED`). Read from those commits' own rows, never from the hot index (which
        another thread may have moved past ``base``)."""
        ctx = self.ctx
        ours = {p.namespace for p in prepared}
        theirs = {ns for c in ctx.catalog.commits(since=base, until=head) for ns in c.namespaces}
        for namespace in ours & theirs:
            if any(op.delete_missing for op in operations if op.batch.namespace == namespace):
                return _LOST_TO_WRITERS  # the live keys it tombstones may have changed
            p = next(p for p in prepared if p.namespace == namespace)
            keys = pc.unique(pa.concat_arrays([p.versions["_key"].combine_chunks(), p.skips["_key"].combine_chunks()]))
            with ctx.catalog.snapshot():
                info = ctx.catalog.namespace(namespace)
                if info is None or info.cold_commit > base or info.schema_commit > base:
                    return _MOVED  # consolidated meanwhile (their rows moved), or a schema changed
                files = ctx.catalog.files(namespace)
                written = [t["_key"] for kind in ("versions", "skips")
                           for _, t in hotsync.commit_rows(ctx, namespace, files, after=base, upto=head, kind=kind,
                                                           columns=("_key",))]
            if any(pc.any(pc.is_in(k, value_set=keys)).as_py() for k in written):
                return _LOST_TO_WRITERS
        return None

    def _update_hot_or_clear(self, record: CommitRecord, prepared: list[Prepared], base: int, staged: Staged) -> None:
        """Bring the hot tier past the commit, and keep its pending blobs' tables decoded
        (work after the commit point: it never fails the call)."""
        try:
            self._update_hot(record, prepared, base)
            sizes = {(b.namespace, b.kind): len(b.data) for b in staged.blobs}
            for p in prepared:
                for kind, table in (("versions", p.versions), ("skips", p.skips)):
                    size = sizes.get((p.namespace, kind))
                    if size is not None:
                        self.ctx.pending.prime(p.namespace, record.commit, kind, table, record.system_time, size)
        except Exception as e:  # noqa: BLE001 - the commit is durable; the caches are rebuilt
            self.ctx.hot.clear()
            self.ctx.pending.clear()
            warnings.warn(f"koru: commit {record.commit} is durable, but updating the hot tier failed: {e!r}",
                          RuntimeWarning, stacklevel=4)

    def _maintain(self, record: CommitRecord) -> None:
        """Automatic maintenance after the commit point: it never fails the call."""
        if self.after_commit is not None:
            try:
                self.after_commit(self.ctx, record)
            except Exception as e:  # noqa: BLE001 - maintenance is retried after a later commit
                log.warning("koru: automatic maintenance after commit %s failed: %r", record.commit, e)
                warnings.warn(f"koru: commit {record.commit} is durable; automatic maintenance failed "
                              f"and will be retried: {e!r}", RuntimeWarning, stacklevel=4)

    def _update_hot(self, record: CommitRecord, prepared: list[Prepared], base: int) -> None:
        commit = record.commit
        keep: dict[str, dict[str, Any]] = {}
        forget: set[str] = set()
        for p in prepared:
            index = self.ctx.hot.index(p.namespace)
            if index is not None and index.commit < base:  # rebased over other writers' commits: catch up
                index = hotsync.index_at(self.ctx, p.namespace, base)
            if index is None or index.commit != base:
                self.ctx.hot.drop_index(p.namespace)
                forget.add(p.namespace)
                continue
            v = p.versions
            if p.row is not None:
                r = p.row
                index.apply_one(r["_key"], r["_valid_from"], None if r["_deleted"] else r["_content_id"],
                                r["_write_id"], commit=commit)
            elif v.num_rows == 1 and not p.skips.num_rows:
                index.apply_one(
                    v["_key"][0].as_py(), v["_valid_from"].cast(pa.int64())[0].as_py(),
                    None if v["_deleted"][0].as_py() else v["_content_id"][0].as_py(),
                    v["_write_id"][0].as_py(), commit=commit,
                )
            elif v.num_rows or p.skips.num_rows:
                with_commit = v.append_column("_commit", pa.repeat(pa.scalar(commit, pa.int64()), v.num_rows))
                index.apply(with_commit.select(list(INDEX_COLUMNS)), commit=commit, skips=p.skips,
                            rows=p.version_rows, skip_rows=p.skip_rows)
            index.commit = commit
            if v.num_rows > CACHE_MAX_ROWS or p.is_reshaped:
                forget.add(p.namespace)
            else:
                keep[p.namespace] = self._current_values(p, index, commit, record.system_time)
        self.ctx.hot.advance(commit, keep=keep, forget=forget)

    @staticmethod
    def _current_values(p: Prepared, index: Any, commit: int, system_time: int) -> dict[str, Any]:
        """Values to cache: each written key whose head is now this commit's version (None: forget)."""
        names = list(p.schema.names)
        out: dict[str, Any] = {}
        v = p.versions
        now = now_ns()
        if p.row is not None:
            r = p.row
            k, valid = r["_key"], r["_valid_from"]
            head = index.get(k)
            is_head = head is not None and head.valid_from == valid and head.commit == commit and valid <= now
            return {k: (TOMBSTONE if r["_deleted"] else row_value(r, names)) if is_head else None}
        for k, valid, deleted, rec in zip(v["_key"].to_pylist(), v["_valid_from"].cast(pa.int64()).to_pylist(),
                                          v["_deleted"].to_pylist(), v.select(names).to_pylist()):
            head = index.get(k)
            if head is not None and head.valid_from == valid and head.commit == commit and valid <= now:
                out[k] = TOMBSTONE if deleted else row_value(rec, names)
            else:
                out[k] = None
        for k in p.skips["_key"].to_pylist():
            out.setdefault(k, None)
        return out


def refresh_index(ctx: StoreContext, namespace: str) -> None:
    """Bring a namespace's index up to the store's head (used by readers that check heads)."""
    hotsync.index_at(ctx, namespace, ctx.catalog.head()[0])
