"""The catalog interface: every statement on a store's catalog is one of these verbs.

A store's catalog is the truth of what it holds (DESIGN.md, "Layout on disk"): the
commit log with its hash chain, each namespace's schema and key columns, the data
files per tier, the versions of small commits not yet in files (*pending* blobs),
files replaced but not yet deleted (*retired*), tags and reader cursors. Two
backends implement it: :class:`koru_core.catalog.sqlite.SQLiteCatalog` (the embedded
default, one machine) and :class:`koru_core.catalog.postgres.PostgresCatalog` (a
store shared by many machines). Nothing outside ``koru_core/catalog/`` writes SQL.

Consistency: each verb is atomic. ``with catalog.snapshot():`` makes every read
inside it see one commit (a read transaction). A commit is published by exactly one
call, :meth:`Catalog.record_commit`, which assigns the next commit number and system
time, chains the hash and records files and blobs in one transaction.
"""

from __future__ import annotations

import abc
import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa

from koru_core.catalog.entries import CommitDraft, CommitRecord, FileEntry, NamespaceInfo, PendingBlob
from koru_core.catalog.leases import ReaderLease
from koru_core.errors import CorruptionError, FormatError

__all__ = ["FORMAT_VERSION", "Catalog", "parse_schema"]

FORMAT_VERSION = 2
"""The on-disk format this code reads and writes (catalog ``meta.format_version``)."""

UPGRADE = (
    "upgrade it with `koru upgrade {old} {new}` (writes a format-2 copy, keeping every "
    "version, commit and hash), or re-import its data into a new store"
)


def parse_schema(data: bytes, *, where: str, namespace: str) -> pa.Schema:
    """A namespace's stored schema (an Arrow IPC schema message) as a :class:`pyarrow.Schema`.

    Parsed once per distinct message (the catalog reads a namespace's row on every
    commit; its schema rarely changes).

    Raises:
        CorruptionError: the bytes are not an Arrow schema; names ``where`` and the namespace.
    """
    try:
        return _parse_schema(bytes(data))
    except pa.ArrowException as e:
        msg = f"{where}: schema of namespace {namespace!r} is unreadable"
        raise CorruptionError(msg) from e


@functools.lru_cache(maxsize=256)
def _parse_schema(data: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(data))


class Catalog(abc.ABC):
    """The verbs of a store's catalog (see the module docstring)."""

    url: str
    read_only: bool
    store_id: str = ""
    format_version: int = FORMAT_VERSION
    content_format: int = 2
    format1_commits: int = 0
    """Commits 1..n carry format-1 hashes (a store upgraded from on-disk format 1; see
    :mod:`koru_core.lifecycle.format1`); 0 for a store made in format 2."""

    # -- reads -------------------------------------------------------------------

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A consistent read: every verb called inside sees the same commit."""

    @abc.abstractmethod
    def head(self) -> tuple[int, int, bytes | None]:
        """Return (last commit number, its system time ns, its hash); (0, 0, None) if empty."""

    @abc.abstractmethod
    def namespaces(self) -> list[str]:
        """Return every namespace name, sorted."""

    @abc.abstractmethod
    def namespace(self, name: str) -> NamespaceInfo | None:
        """Return what the catalog knows of a namespace, or None if it was never written."""

    @abc.abstractmethod
    def files(self, namespace: str | None = None) -> list[FileEntry]:
        """Return the data files of one namespace (or all), oldest first."""

    @abc.abstractmethod
    def pending(self, namespace: str, *, after: int = 0, upto: int | None = None,
                kind: Literal["versions", "skips"] = "versions") -> list[PendingBlob]:
        """Return a namespace's pending blobs of commits in (``after``, ``upto``], oldest first."""

    @abc.abstractmethod
    def pending_commits(self, namespace: str, *, kind: Literal["versions", "skips"] = "versions") -> list[tuple[int, int]]:
        """Return (commit, rows) of each pending blob of a namespace, without the data."""

    @abc.abstractmethod
    def commits(self, *, since: int = 0, until: int | None = None) -> list[CommitRecord]:
        """Return the commits in (``since``, ``until``], oldest first."""

    @abc.abstractmethod
    def commit_at(self, system_time: int) -> int:
        """Return the last commit recorded at or before ``system_time`` (ns), 0 if none."""

    @abc.abstractmethod
    def commit_of_write_id(self, write_id: int) -> int | None:
        """Return the commit whose write-id range holds ``write_id``, or None."""

    @abc.abstractmethod
    def tags(self) -> dict[str, int]:
        """Return tag name → commit."""

    @abc.abstractmethod
    def cursor(self, name: str) -> int | None:
        """Return the commit a named reader position points at, or None if never set."""

    @abc.abstractmethod
    def retired(self) -> dict[str, tuple[str, str, int, int | None]]:
        """Return retired path → (namespace, tier, bytes, retired_at ns)."""

    # -- writes ------------------------------------------------------------------

    @abc.abstractmethod
    def allocate_write_ids(self, count: int) -> int:
        """Reserve ``count`` write ids for a commit being prepared; return the first."""

    swaps_in_commit: bool = False
    """True when :meth:`record_commit` takes :attr:`CommitDraft.swaps` (cold files swapped
    in by the commit's own transaction)."""

    @abc.abstractmethod
    def record_commit(self, draft: CommitDraft) -> CommitRecord:
        """Publish a commit atomically (see :class:`CommitDraft`).

        Raises:
            ConflictError: the head moved past ``draft.base`` and the draft cannot be
                rebased; nothing was written.
            HeadMovedError: the head moved past ``draft.base``, or a swap of
                ``draft.swaps`` was refused (its namespace was consolidated meanwhile);
                nothing was written.
        """

    @abc.abstractmethod
    def swap_files(
        self, namespace: str, *, remove: Sequence[FileEntry], add: Sequence[FileEntry],
        absorb_pending_upto: int | None = None, cold_commit: int | None = None, retired_at: int | None = None,
        base_cold_commit: int | None = None,
    ) -> bool:
        """Replace files (consolidation, distillation) in one transaction.

        Removed files are recorded as retired at ``retired_at`` (ns), or, when None, at a
        time taken once the swap is visible to new readers (so a reader lease that starts
        before the stamp may still list them, and vacuum keeps them); pending blobs of
        commits up to ``absorb_pending_upto`` are dropped (their versions are in
        ``add``); the namespace's ``cold_commit`` is raised to ``cold_commit``.

        ``base_cold_commit``: the namespace's ``cold_commit`` the new files were built
        from; when given and the namespace's is no longer that (another consolidation
        swapped meanwhile, so ``add`` would hold its versions twice), the swap is refused.

        Returns:
            False, changing nothing, when a file of ``remove`` is no longer listed, or
            ``base_cold_commit`` is not the namespace's ``cold_commit``.
        """

    @abc.abstractmethod
    def bootstrap(
        self, *, commits: Sequence[CommitRecord], namespaces: Sequence[NamespaceInfo], files: Sequence[FileEntry],
        tags: dict[str, int], next_write_id: int, cursors: dict[str, int] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Fill an empty catalog in one transaction (``restore`` and ``upgrade``).

        ``meta`` adds catalog meta entries (e.g. ``format1_commits`` of an upgraded store).

        Raises:
            ConflictError: the catalog already holds commits.
        """

    @abc.abstractmethod
    def forget_retired(self, paths: Sequence[str]) -> None:
        """Drop retired entries whose files vacuum deleted."""

    @abc.abstractmethod
    def set_tag(self, name: str, commit: int) -> None:
        """Create or move a tag."""

    @abc.abstractmethod
    def set_cursor(self, name: str, commit: int) -> None:
        """Store a named reader position."""

    @abc.abstractmethod
    def set_key_columns(self, namespace: str, key_columns: Sequence[str]) -> None:
        """Record a namespace's key columns."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- reader leases (koru_core.catalog.leases) ----------------------------------

    @abc.abstractmethod
    def add_lease(self, holder: str, *, commit: int, ttl: float) -> ReaderLease:
        """Start a reader lease expiring ``ttl`` seconds from now on the catalog's clock.

        Take it *before* the catalog snapshot the plan reads. Expired leases are
        dropped on the way.

        Raises:
            InvalidInputError: ``ttl`` is not a positive number of seconds.
        """

    @abc.abstractmethod
    def renew_lease(self, lease_id: str, *, ttl: float) -> int | None:
        """Push a live lease's expiry to ``ttl`` seconds from now; return it (ns).

        Returns:
            None, changing nothing, if the lease expired or is unknown: vacuum may
            have deleted what it protected, so the reader must plan again.
        """

    @abc.abstractmethod
    def release_lease(self, lease_id: str) -> None:
        """End a lease (unknown ids are ignored)."""

    @abc.abstractmethod
    def live_leases(self) -> list[ReaderLease]:
        """Return the leases not expired, oldest mark first."""

    @abc.abstractmethod
    def vacuumable(self, *, retired_before: int) -> list[str]:
        """Return the retired paths vacuum may delete now, sorted.

        A path qualifies if it was retired at or before ``retired_before`` (ns), no live
        lease may still list it (see :mod:`koru_core.catalog.leases`) and no file entry
        lists it again.
        """

    # -- shared ------------------------------------------------------------------

    def _check_format(self, meta: dict[str, Any]) -> None:
        """Load ``meta`` (format version, content format, store id) or refuse the store."""
        if "format_version" not in meta or "store_id" not in meta:
            msg = f"{self.url}: the catalog has no format version or store id; it is not a koru catalog"
            raise CorruptionError(msg)
        version = int(meta["format_version"])
        if version != FORMAT_VERSION:
            self._refuse_format(version)
        self.store_id = str(meta["store_id"])
        self.format_version = version
        self.content_format = int(meta.get("content_format", 2))
        self.format1_commits = int(meta.get("format1_commits", 0))

    def _refuse_format(self, version: int | None) -> None:
        what = "an unknown format" if version is None else f"on-disk format {version}"
        msg = (
            f"{self.url}: this store was written in {what}, and this koru reads format "
            f"{FORMAT_VERSION}; " + UPGRADE.format(**self._upgrade_paths())
        )
        raise FormatError(msg)

    def _upgrade_paths(self) -> dict[str, str]:
        """The ``old``/``new`` arguments the upgrade hint names (a local store names its folder)."""
        return {"old": "OLD_STORE", "new": "NEW_STORE"}

    @contextlib.contextmanager
    def _nothing(self) -> Iterator[None]:
        yield
