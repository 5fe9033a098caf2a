"""Reader leases of a shared store, kept in its catalog (issue 15).

A store whose catalog is PostgreSQL is read and written from many hosts, so a lease
file in a local folder (:mod:`koru_core.lifecycle.leases`) cannot tell a vacuum on
another host what this process still reads. :class:`CatalogLeases` has the same
methods, backed by the catalog's lease rows (the protocol, its ``mark`` and its
expiry on the server's clock are in :mod:`koru_core.catalog.leases`):

- a plan is covered by a catalog lease taken *before* its catalog snapshot, so the
  lease's mark is not later than the plan's view (plans of one store object share
  leases: see :class:`CatalogLeases`);
- a daemon thread renews live leases every ``ttl / 3`` seconds; a lease no plan holds
  is released within about a second;
- a process that dies stops renewing: its leases expire after ``ttl`` seconds.

Vacuum asks the catalog which retired files no live lease of any host may still list
(:meth:`CatalogLeases.vacuumable`). A file no catalog entry lists is an orphan only
once it is :data:`ORPHAN_GRACE_NS` old, whatever ``retain`` says: a writer on another
host may be between writing its data files and the catalog transaction that lists them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from koru_core._time import now_ns
from koru_core.lifecycle.leases import Lease

if TYPE_CHECKING:
    from koru_core.catalog.base import Catalog

__all__ = ["DEFAULT_TTL", "ORPHAN_GRACE_NS", "CatalogLeases"]

DEFAULT_TTL = 60.0
"""Seconds a catalog lease lives without renewal."""

ORPHAN_GRACE_NS = 3600 * 10**9
"""An unlisted file younger than this (ns) is never an orphan on a shared store."""

log = logging.getLogger("koru")


class CatalogLeases:
    """The reader leases of one open store object, as catalog rows (thread-safe).

    Every lease statement runs on one worker thread of this object, with its own
    catalog connection, never on the caller's: a plan may start or end (a
    :class:`~koru_core.lifecycle.leases.Lease` may be garbage collected) while the
    caller's connection is inside a catalog snapshot. Starting a plan waits for
    the worker only when it needs a new lease; ending one never waits.

    A lease no plan holds any more stays the current one for ``reuse`` seconds, so a
    loop of reads takes about one lease a second, not one a read (a plan made after
    a lease started is covered by it: its mark is earlier, which only makes vacuum
    keep more).

    Args:
        catalog: The store's (shared) catalog; its lease verbs work read-only too.
        ttl: Seconds a lease lives between renewals.
        reuse: Seconds an idle lease is reused by new plans before it is released.
    """

    def __init__(self, catalog: Catalog, *, ttl: float = DEFAULT_TTL, reuse: float = 1.0) -> None:
        self._catalog = catalog
        self._ttl = ttl
        self._reuse = reuse
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.RLock()  # a Lease the GC collects inside a locked section releases here
        self._refs: dict[str, int] = {}  # lease id -> plans holding it
        self._taken: dict[str, float] = {}  # lease id -> time.monotonic() when taken
        self._tokens: dict[int, str] = {}
        self._current: str | None = None
        self._next = 0
        self._pid = os.getpid()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pid != os.getpid():  # forked: the parent's threads and leases are not ours
            self._pid, self._pool, self._ticker = os.getpid(), None, None
            self._refs, self._taken, self._tokens, self._current = {}, {}, {}, None
            self._holder = f"{socket.gethostname()}:{os.getpid()}"
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="koru-leases")
        if self._ticker is None or not self._ticker.is_alive():
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="koru-lease-renewer", daemon=True)
            self._ticker.start()
        return self._pool

    def acquire(self) -> int:
        """Start a lease now; returns its token for :meth:`release`.

        Raises:
            ConnectionError: the catalog cannot be reached (no plan can be made either).
        """
        with self._lock:
            pool = self._worker()
            self._next += 1
            token = self._next
            cur = self._current
            if cur is not None and (self._refs[cur] or time.monotonic() - self._taken[cur] < self._reuse):
                self._refs[cur] += 1
                self._tokens[token] = cur
                return token
        lease_id = pool.submit(self._add).result()
        with self._lock:
            self._refs[lease_id] = 1
            self._taken[lease_id] = time.monotonic()
            self._tokens[token] = lease_id
            old, self._current = self._current, lease_id
            if old is not None and not self._refs.get(old):
                self._drop(old)
        return token

    def _add(self) -> str:
        head = self._catalog.head()[0]
        return self._catalog.add_lease(self._holder, commit=head, ttl=self._ttl).lease_id

    def release(self, token: int) -> None:
        """End the lease ``token`` (unknown tokens are ignored); never waits for the catalog."""
        with self._lock:
            lease_id = self._tokens.pop(token, None)
            if lease_id is None:
                return
            self._refs[lease_id] -= 1
            if not self._refs[lease_id] and lease_id != self._current:
                self._drop(lease_id)

    def _drop(self, lease_id: str) -> None:
        """Forget ``lease_id`` and end its row on the worker (called with the lock held)."""
        self._refs.pop(lease_id, None)
        self._taken.pop(lease_id, None)
        if self._pool is not None:
            self._pool.submit(self._quietly, self._catalog.release_lease, lease_id)

    @staticmethod
    def _quietly(verb: Any, lease_id: str, **kw: Any) -> Any:
        try:
            return verb(lease_id, **kw)
        except Exception as e:  # noqa: BLE001 - an unreleased lease expires by itself; renewals retry
            log.debug("koru: reader lease %s: %s failed: %r", lease_id, getattr(verb, "__name__", verb), e)
            return False

    def lease(self) -> Lease:
        """Start a :class:`~koru_core.lifecycle.leases.Lease` (ended when released or garbage collected)."""
        return Lease(self)  # type: ignore[arg-type]

    def _tick(self) -> None:
        last_renewal = time.monotonic()
        while not self._stop.wait(min(self._reuse, self._ttl / 3)):
            now = time.monotonic()
            with self._lock:
                cur = self._current
                if cur is not None and not self._refs[cur] and now - self._taken[cur] >= self._reuse:
                    self._current = None
                    self._drop(cur)
                live = list(self._refs) if now - last_renewal >= self._ttl / 3 else []
                pool = self._pool
            if live and pool is not None:
                last_renewal = now
                for lease_id in live:
                    pool.submit(self._renew, lease_id)

    def _renew(self, lease_id: str) -> None:
        if self._quietly(self._catalog.renew_lease, lease_id, ttl=self._ttl) is None:
            log.warning("koru: reader lease %s expired before it was renewed; a vacuum may have deleted "
                        "files a plan in use still lists", lease_id)

    def vacuumable(self, catalog: Catalog, *, retired_before: int) -> list[str]:
        """Retired paths no live lease of any host may still list, retired at or before ``retired_before`` (ns)."""
        return catalog.vacuumable(retired_before=retired_before)

    def orphan_bound(self, cutoff: int) -> int:
        """The latest modification time (ns) at which an unlisted file is an orphan
        (``cutoff``, and at least :data:`ORPHAN_GRACE_NS` ago)."""
        return min(cutoff, now_ns() - ORPHAN_GRACE_NS)

    def close(self) -> None:
        """End every lease of this object and stop its threads (waits for the catalog)."""
        self._stop.set()
        with self._lock:
            ids = list(self._refs) if self._pid == os.getpid() else []
            self._refs.clear()
            self._taken.clear()
            self._tokens.clear()
            self._current = None
            pool, self._pool = (self._pool, None) if self._pid == os.getpid() else (None, None)
        if pool is not None:
            for lease_id in ids:
                pool.submit(self._quietly, self._catalog.release_lease, lease_id)
            pool.shutdown(wait=True)
