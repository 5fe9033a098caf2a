"""Change notifications: follow a store's commits as they land, from any process.

:func:`watch` (``Store.watch``, ``koru watch``) yields one :class:`CommitEvent`
per new commit, oldest first. It works across processes by polling the catalog:
every ``poll_interval`` seconds (default :data:`DEFAULT_POLL_INTERVAL`, 0.5 s) it
reads the number of the store's last commit (one small SQLite query), and only
when that moved does it read the new commits. A commit is seen once the
catalog records it, so a watcher never sees a half-written commit. The
latency from a commit to its event is at most ``poll_interval`` plus the read.

A named watcher (``name="…"``) keeps its position, the last commit it has
handled, in the store's catalog, so it survives restarts of the watching
process. The position moves when the loop asks for the next event, i.e. after
the loop body handled the event: a process that dies while handling an event
sees it again after a restart (at-least-once delivery), and so does a loop
left with ``break``. Commits that match no watched namespace move it too.

Example:
    >>> _ = store.put("users", "carol", {"age": 5})
    >>> [(e.commit, e.namespaces, e.written) for e in watch(store, "users", since=2, timeout=0)]
    [(3, ('users',), 1)]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from koru_core.errors import InvalidInputError
from koru_core.input import check_namespace

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pyarrow as pa

    from koru_core.model import Commit
    from koru_core.store import Store

__all__ = ["DEFAULT_POLL_INTERVAL", "CommitEvent", "head", "watch"]

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between two reads of the catalog while no commit lands."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitEvent:
    """One commit, as a watcher sees it land.

    Attributes:
        commit: Commit number.
        system_time: When it was recorded (UTC).
        namespaces: Namespaces it wrote, sorted (all of them, not only the watched ones).
        written, unchanged, deleted: Row counts, as in :class:`~koru_core.CommitResult`.
        actor, run_id: Provenance given by the writer, or None.
        metadata: The writer's commit metadata (str → str).
        changes: With ``with_changes=True``, watched namespace → its change feed
            for this commit (``Store.changes(ns, since=commit - 1, until=commit)``);
            otherwise None.
    """

    commit: int
    system_time: datetime
    namespaces: tuple[str, ...]
    written: int
    unchanged: int
    deleted: int
    actor: str | None
    run_id: str | None
    metadata: dict[str, str]
    changes: dict[str, pa.Table] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready values (times as ISO 8601, changes as row lists).

        Example:
            >>> [e] = watch(store, since=1, timeout=0)
            >>> e.to_dict()["namespaces"]
            ['users']
        """
        out: dict[str, Any] = {
            "commit": self.commit,
            "system_time": self.system_time.isoformat(),
            "namespaces": list(self.namespaces),
            "written": self.written,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "actor": self.actor,
            "run_id": self.run_id,
            "metadata": dict(self.metadata),
        }
        if self.changes is not None:
            out["changes"] = {
                ns: [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]
                for ns, table in self.changes.items()
            }
        return out


def _plain(value: Any) -> Any:
    """A change-feed value as JSON takes it: times as ISO 8601, bytes as hex."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def head(store: Store, namespace: str | None = None) -> int:
    """Return the store's last commit number, or the last that wrote ``namespace`` (0 if none).

    Example:
        >>> head(store), head(store, "users"), head(store, "nothing")
        (2, 2, 0)
    """
    if namespace is None:
        return store.version()
    commits = store.commits(namespace=check_namespace(namespace))
    return commits[-1].commit if commits else 0


def watch(
    store: Store,
    namespace: str | Sequence[str] | None = None,
    *,
    since: int | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float | None = None,
    name: str | None = None,
    with_changes: bool = False,
) -> Iterator[CommitEvent]:
    """Yield each commit after ``since`` as it lands, waiting for new ones.

    Args:
        store: An open store; commits made by any process show up.
        namespace: Only commits that wrote this namespace (or one of these); None: every commit.
        since: Yield the commits after this commit number (0: from the first).
            Default: the named position if ``name`` has one, else the store's
            last commit (only commits made from now on).
        poll_interval: Seconds between two reads of the catalog (> 0).
        timeout: Stop once this many seconds pass with no commit to yield
            (0: yield what has landed, then stop). None: wait forever.
        name: Keep the position under this name in the store (see the module
            docstring); ``since`` overrides it for this call.
        with_changes: Attach each commit's change feed per watched namespace
            (:attr:`CommitEvent.changes`), read when the event is yielded.

    Returns:
        An iterator of :class:`CommitEvent`, oldest commit first.

    Raises:
        InvalidInputError: a bad namespace, ``since`` < 0, ``poll_interval`` <= 0,
            ``timeout`` < 0 or an empty ``name`` (raised here, before any wait).

    Example:
        >>> [e.commit for e in watch(store, since=0, timeout=0)]
        [1, 2]
    """
    wanted = _namespaces(namespace)
    _check(since=since, poll_interval=poll_interval, timeout=timeout, name=name)
    if since is None:
        saved = store._ctx.catalog.cursor(name) if name is not None else None
        since = saved if saved is not None else head(store)
    return _follow(
        store, wanted, since=since, poll_interval=poll_interval, timeout=timeout, name=name,
        with_changes=with_changes,
    )


def _follow(
    store: Store, wanted: frozenset[str] | None, *, since: int, poll_interval: float,
    timeout: float | None, name: str | None, with_changes: bool,
) -> Iterator[CommitEvent]:
    position = saved = since
    idle_since = time.monotonic()
    while True:
        if head(store) > position:
            for commit in store.commits(since=position):
                position = commit.commit
                if wanted is not None and not wanted.intersection(commit.namespaces):
                    continue
                yield _event(store, commit, wanted, with_changes=with_changes)
                idle_since = time.monotonic()
                if name is not None:  # the consumer is back: it handled this commit
                    store._ctx.catalog.set_cursor(name, position)
                    saved = position
            if name is not None and position != saved:  # skipped commits move the position too
                store._ctx.catalog.set_cursor(name, position)
                saved = position
        if timeout is not None and time.monotonic() - idle_since >= timeout:
            return
        wait = poll_interval if timeout is None else min(poll_interval, timeout)
        time.sleep(max(wait, 0.0))


def _event(
    store: Store, commit: Commit, wanted: frozenset[str] | None, *, with_changes: bool
) -> CommitEvent:
    changes = None
    if with_changes:
        names = [ns for ns in commit.namespaces if wanted is None or ns in wanted]
        changes = {ns: store.changes(ns, since=commit.commit - 1, until=commit.commit) for ns in names}
    return CommitEvent(
        commit=commit.commit, system_time=commit.system_time, namespaces=commit.namespaces,
        written=commit.written, unchanged=commit.unchanged, deleted=commit.deleted,
        actor=commit.actor, run_id=commit.run_id, metadata=dict(commit.metadata), changes=changes,
    )


def _namespaces(namespace: str | Sequence[str] | None) -> frozenset[str] | None:
    if namespace is None:
        return None
    names = [namespace] if isinstance(namespace, str) else list(namespace)
    if not names:
        msg = "namespace must be a name, a non-empty list of names, or None, got []"
        raise InvalidInputError(msg)
    return frozenset(check_namespace(n) for n in names)


def _check(*, since: object, poll_interval: object, timeout: object, name: object) -> None:
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        msg = f"since must be a commit number (int >= 0), got {since!r}"
        raise InvalidInputError(msg)
    if not isinstance(poll_interval, (int, float)) or isinstance(poll_interval, bool) or poll_interval <= 0:
        msg = f"poll_interval must be a number of seconds > 0, got {poll_interval!r}"
        raise InvalidInputError(msg)
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0):
        msg = f"timeout must be a number of seconds >= 0 or None, got {timeout!r}"
        raise InvalidInputError(msg)
    if name is not None and (not isinstance(name, str) or not name):
        msg = f"name must be a non-empty str, got {name!r}"
        raise InvalidInputError(msg)
