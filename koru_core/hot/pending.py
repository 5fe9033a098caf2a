"""Decoded pending versions: a small commit's blob is verified and decoded once per store.

Pending blobs are immutable once their commit is recorded, so the decoded table is
kept, keyed by (namespace, commit, kind), until consolidation absorbs the commit.
A read then costs one catalog query for the list of pending commits, and no
decoding. Bounded in bytes (least recently used out).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc

from koru_core.catalog.blobs import decode_blob
from koru_core.model import TIMESTAMP

if TYPE_CHECKING:
    from koru_core.catalog.base import Catalog
    from koru_core.read.plan import Source

__all__ = ["PendingCache"]

_ORDER = ("_key", "_valid_from", "_commit")


class PendingCache:
    """Decoded pending blobs of one store.

    Args:
        catalog: The store's catalog.
        limit: Bytes of decoded tables to keep.
    """

    def __init__(self, catalog: Catalog, *, limit: int) -> None:
        self.catalog = catalog
        self.limit = limit
        # (namespace, commit, kind) -> (table, system time, bytes: its blob's size, the
        # size of its uncompressed Arrow IPC stream, read without a pass over the buffers)
        self._tables: OrderedDict[tuple[str, int, str], tuple[pa.Table, int, int]] = OrderedDict()
        self._bytes = 0
        self._combined: dict[str, tuple[tuple[int, ...], pa.Table]] = {}  # namespace -> (commits, table)
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Decoded bytes held (the commits' tables and the concatenations)."""
        return self._bytes + sum(t.nbytes for _, t in self._combined.values())

    def clear(self) -> None:
        """Drop every decoded table."""
        with self._lock:
            self._tables.clear()
            self._combined.clear()
            self._bytes = 0

    def prime(self, namespace: str, commit: int, kind: Literal["versions", "skips"], table: pa.Table,
              system_time: int, size: int) -> None:
        """Remember the table of a pending blob this store just recorded (``table`` is what
        the blob holds; ``system_time`` ns; ``size`` the blob's bytes), so that reads and
        consolidation decode nothing."""
        with self._lock:
            self._add((namespace, commit, kind), table, system_time, size)

    def _add(self, key: tuple[str, int, str], table: pa.Table, system_time: int, size: int) -> None:
        """Keep a decoded blob within the byte limit, least recently used out (lock held)."""
        if self.limit <= 0 or key in self._tables or size > self.limit // 4:
            return
        self._tables[key] = (table, system_time, size)
        self._bytes += size
        while self._bytes > self.limit and self._tables:
            _, (_, _, old) = self._tables.popitem(last=False)
            self._bytes -= old

    def tables(self, namespace: str, *, upto: int | None = None, after: int = 0,
               kind: Literal["versions", "skips"] = "versions") -> list[tuple[int, int, pa.Table]]:
        """Return (commit, system time, table) of each pending blob in (``after``, ``upto``], oldest first.

        Call inside a catalog snapshot to see one commit.

        Raises:
            CorruptionError: a blob fails its checksum.
        """
        listed = [c for c, _ in self.catalog.pending_commits(namespace, kind=kind) if after < c <= (upto or 2**62)]
        found: dict[int, tuple[pa.Table, int, int]] = {}
        missing = []
        with self._lock:
            for c in listed:
                hit = self._tables.get((namespace, c, kind))
                if hit is None:
                    missing.append(c)
                else:
                    found[c] = hit
                    self._tables.move_to_end((namespace, c, kind))
        decoded: dict[int, tuple[pa.Table, int, int]] = {}
        if missing:
            for blob in self.catalog.pending(namespace, after=min(missing) - 1, upto=max(missing), kind=kind):
                if blob.commit in missing:
                    decoded[blob.commit] = (decode_blob(blob, where=self.catalog.url), blob.system_time, len(blob.data))
        with self._lock:
            for c, hit in decoded.items():
                self._add((namespace, c, kind), *hit)
        found.update(decoded)
        return [(c, found[c][1], found[c][0]) for c in listed]

    def load(self, namespace: str, *, upto: int | None = None) -> list[Source]:
        """The pending versions of ``namespace`` up to commit ``upto``, as one plan source.

        The commits' tables are concatenated (columns a commit lacks are null, types
        promoted) with ``_commit`` and ``_system_from`` as columns, so a read handles one
        table however many small commits are pending, and sorted by ``_key``,
        ``_valid_from`` and ``_commit``, so a point read finds one key's rows by binary
        search (:attr:`Source.is_key_sorted`). The concatenation is kept for the
        last list of commits read (a new commit makes a new one), when it fits in the byte
        limit beside the commits' tables.

        Returns:
            ``[]`` when nothing is pending, else one ``Source(kind="pending")`` whose
            ``table`` holds the system columns of a pending blob, ``_commit`` (int64),
            ``_system_from`` (timestamp ns, UTC) and the value columns.
        """
        from koru_core.read.plan import Source

        parts = self.tables(namespace, upto=upto)
        if not parts:
            return []
        commits = tuple(c for c, _, _ in parts)
        with self._lock:
            hit = self._combined.get(namespace)
        if hit is not None and hit[0] == commits:
            table = hit[1]
        else:
            table = pa.concat_tables(
                [t.append_column("_commit", pa.repeat(pa.scalar(c, pa.int64()), t.num_rows))
                  .append_column("_system_from", pa.repeat(pa.scalar(st, TIMESTAMP), t.num_rows))
                 for c, st, t in parts], promote_options="permissive")
            table = table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in _ORDER])).combine_chunks()
            table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))  # as files read
            with self._lock:
                if self._bytes + table.nbytes <= self.limit:  # the byte limit covers both
                    self._combined[namespace] = (commits, table)
        return [Source(kind="pending", table=table)]
