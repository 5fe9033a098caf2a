"""The commit an input is pinned to, found in the store when Dagster has no record.

Every commit a materialization writes carries, in its metadata, the asset and
partition(s) it wrote and the run id (:data:`koru_dagster.metadata.COMMIT_ASSET` …).
A pinned input (the default) reads the upstream as of:

1. the commit the Dagster instance's latest materialization recorded
   (``koru/commit``), when the instance holds one (a persistent instance); else
2. the last commit in the store written by a Dagster materialization of that
   asset (and partition), whichever Dagster instance ran it — so
   ``materialize()`` with its throwaway instance pins too; else
3. the store's latest commit: the upstream was never materialized by Dagster
   (a namespace loaded by ``koru import`` or a script), so the latest is all there is.

A write made outside Dagster after the pinned commit is never read. For a
partitioned upstream each partition is pinned to its own commit; partitions are
then read together at the newest of those commits, except the ones a later
commit could have touched (a write outside Dagster, or another deployment's
materialization of that partition), which are read at their own commit. Nothing
here imports Dagster.

Example:
    >>> from koru_dagster._requests import ReadRequest, Slice
    >>> _ = store.put("users", "carol", {"age": 5})   # written outside Dagster
    >>> resolve(store, ReadRequest(namespace="users", asset="users", scope=Slice())).summary
    3
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from koru_core.watch import head
from koru_dagster import metadata as md

if TYPE_CHECKING:
    from collections.abc import Iterable

    import koru_core as koru
    from koru_dagster._requests import PartitionRef, ReadRequest

__all__ = ["Pin", "commit_of", "last_materialization", "partitions_of", "resolve"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    """The commit(s) one input is read at.

    Attributes:
        groups: ``(commit, partitions)`` pairs; ``partitions`` None means the
            whole slice of the request. One pair unless partitions had to be read
            at different commits.
    """

    groups: tuple[tuple[int, tuple[PartitionRef, ...] | None], ...]

    @property
    def summary(self) -> int | dict[str, int]:
        """The commit read (int), or partition key → commit when they differ."""
        if len(self.groups) == 1:
            return self.groups[0][0]
        return {p.key: commit for commit, parts in self.groups for p in parts or ()}


def commit_of(summary: int | dict[str, int]) -> int:
    """The newest commit of a :attr:`Pin.summary`."""
    return summary if isinstance(summary, int) else max(summary.values(), default=0)


def partitions_of(commit: koru.Commit) -> frozenset[str]:
    """The partition keys a materialization's commit wrote (empty: unpartitioned or not Dagster's)."""
    meta = commit.metadata
    if md.COMMIT_PARTITION in meta:
        return frozenset([meta[md.COMMIT_PARTITION]])
    if md.COMMIT_PARTITIONS in meta:
        return frozenset(json.loads(meta[md.COMMIT_PARTITIONS]))
    return frozenset()


def last_materialization(
    store: koru.Store, *, asset: str, namespace: str, partitions: Iterable[str] = ()
) -> koru.Commit | None:
    """The last commit a Dagster materialization of ``asset`` wrote to ``namespace``.

    Args:
        partitions: Only commits that wrote one of these partitions; empty: only
            commits of the unpartitioned asset.
    """
    wanted = frozenset(partitions)
    found = None
    for commit in store.commits(namespace=namespace, metadata={md.COMMIT_ASSET: asset}):
        written = partitions_of(commit)
        if (written & wanted) if wanted else not written:
            found = commit
    return found


def resolve(store: koru.Store, request: ReadRequest) -> Pin:
    """Return the commit(s) to read ``request`` at (see the module docstring)."""
    if request.version is not None:
        return Pin(groups=((request.version, None),))
    latest = head(store)
    if not request.pin:
        return Pin(groups=((latest, None),))
    if request.partitions is None:
        if request.recorded is not None:
            return Pin(groups=((request.recorded, None),))
        own = last_materialization(store, asset=request.asset, namespace=request.namespace)
        return Pin(groups=((own.commit if own else latest, None),))
    return _partitioned(store, request, request.partitions, latest)


def _partitioned(
    store: koru.Store, request: ReadRequest, partitions: tuple[PartitionRef, ...], latest: int
) -> Pin:
    last: dict[str, int] = {}  # partition → last commit of a Dagster materialization of it
    foreign: list[int] = []  # commits that may have touched any partition
    for commit in store.commits(namespace=request.namespace):
        written = partitions_of(commit)
        if commit.metadata.get(md.COMMIT_ASSET) == request.asset and written:
            last.update(dict.fromkeys(written, commit.commit))
        else:
            foreign.append(commit.commit)
    pins = {p.key: p.recorded or last.get(p.key) or latest for p in partitions}
    top = max(pins.values())
    groups: dict[int, list[PartitionRef]] = {}
    for p in partitions:
        mine = pins[p.key]
        touched = bisect.bisect_right(foreign, top) > bisect.bisect_right(foreign, mine)
        touched = touched or mine < last.get(p.key, 0) <= top
        groups.setdefault(mine if touched else top, []).append(p)
    if list(groups) == [top] and len(groups[top]) == len(partitions):
        return Pin(groups=((top, None),))
    return Pin(groups=tuple((c, tuple(ps)) for c, ps in sorted(groups.items())))
