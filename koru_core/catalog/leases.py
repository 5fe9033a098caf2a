"""Reader leases kept in the catalog, so that vacuum on one machine spares the files a
reader on another machine still reads (issue 15).

The problem. Consolidation and distillation *retire* files (:meth:`Catalog.swap_files`);
vacuum later deletes them. A reader that made its plan before a swap still lists the
retired files. On one machine the store keeps leases as files in ``<store>/readers/``
(:mod:`koru_core.lifecycle.leases`); a reader on another host has no such folder, and
its clock is not the vacuuming host's clock.

The design. A lease is one catalog row: ``(lease_id, holder, commit, mark, expires_at)``.

- **mark** orders the lease against swaps with the catalog's own serialisation, not
  with clocks. On PostgreSQL every swap that retires files takes the next value of a
  *retire epoch* counter (a row it updates, so swaps are serialised on it) and stamps
  its retired rows with it; :meth:`Catalog.add_lease` reads the last *committed* epoch
  in its statement (READ COMMITTED). A plan made after the lease therefore sees every
  swap of epoch ``<= mark`` and lists none of its files, while a swap of epoch
  ``> mark`` may have happened after the plan's snapshot. So a retired file of epoch
  ``e`` may be deleted only if ``e <= mark`` for every live lease. On SQLite (one
  machine, one clock) the mark is the lease's start time in ns and the rule is the one
  of the lease files: ``retired_at < mark``.
- **expires_at** is on the catalog's clock (PostgreSQL ``now()``; the local clock for
  SQLite), set from a time-to-live the reader gives, so clients' clocks never meet.
  A reader renews well before expiry (every ``ttl / 3``); :meth:`Catalog.renew_lease`
  of an expired lease fails (returns None) rather than resurrecting it, since vacuum
  may already have ignored it: the reader must plan again. A reader that dies simply
  stops renewing; its lease expires and is dropped by the next :meth:`add_lease`.
- **commit** is the head the reader planned at (shown by ``koru stats``; retention may
  later keep that commit's versions too).

The protocol (a reader, then vacuum)::

    lease = catalog.add_lease("host-a:1234", commit=head, ttl=60)   # BEFORE the snapshot
    with catalog.snapshot(): plan = ...                               # lists files
    ... read; catalog.renew_lease(lease.lease_id, ttl=60) every 20 s ...
    catalog.release_lease(lease.lease_id)

    paths = catalog.vacuumable(retired_before=now_ns() - retain)      # vacuum, any host
    delete the files; catalog.forget_retired(paths)

:meth:`Catalog.vacuumable` applies the rule in one catalog read: retired at or before
``retired_before`` (the grace for readers holding a plan without a lease, such as a
DuckDB view handed a file list), not protected by a live lease, and not listed again.

Example:
    >>> lease = ReaderLease(lease_id="9f2c", holder="host-a:1234", commit=7, mark=3, expires_at=10**18)
    >>> lease.commit, lease.mark
    (7, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from koru_core.errors import InvalidInputError

__all__ = ["ReaderLease", "ttl_ns"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderLease:
    """One live reader lease, as the catalog records it (see the module docstring).

    Attributes:
        lease_id: Unique id (32 hex characters) given by :meth:`Catalog.add_lease`.
        holder: Who holds it, for people (e.g. ``"host-a:1234"``).
        commit: The head commit the reader planned at.
        mark: Its place among swaps: the retire epoch on PostgreSQL, the start time in
            ns on SQLite.
        expires_at: When it expires, ns since the epoch on the catalog's clock.
    """

    lease_id: str
    holder: str
    commit: int
    mark: int
    expires_at: int


def ttl_ns(ttl: float) -> int:
    """Return a lease's time-to-live in ns, refusing anything but a positive finite number of seconds.

    Raises:
        InvalidInputError: ``ttl`` is not a positive, finite number of seconds.

    Example:
        >>> ttl_ns(1.5)
        1500000000
    """
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        msg = f"lease ttl must be a positive number of seconds, got {ttl!r}"
        raise InvalidInputError(msg)
    return int(ttl * 1e9)
