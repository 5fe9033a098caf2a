"""Retention policies for distillation: which versions of a namespace to keep.

A policy looks at every version of a namespace and says, per version, whether
it keeps it. Policies compose by union: a version is kept when *any* policy
given for its namespace keeps it. Whatever the policies, distillation never
drops a key's current version (tombstones included), a version whose valid
time is still in the future, or a version pinned by a tag (see
:meth:`koru_core.Store.tag`): those rules are in :mod:`.distill`, not here.

Each policy's ``keep(versions, context)`` takes the versions sorted by
(``_key``, ``_valid_from``, ``_commit``) with columns ``_key`` (string),
``_valid_from``, ``_valid_to``, ``_system_from`` (timestamp[ns, UTC]) and
``_commit`` (int64), and returns a boolean array aligned with them.

Example:
    >>> from datetime import timedelta
    >>> import koru_core as koru
    >>> policies = {"users": [koru.KeepLast(3), koru.KeepFor(timedelta(days=30))], "logs": koru.Thinning()}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koru_core.errors import InvalidInputError

__all__ = ["KeepAll", "KeepFor", "KeepLast", "Pin", "Policy", "PolicyContext", "Thinning"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyContext:
    """What a policy may need besides the versions: now (ns, UTC) and the tags (name → commit)."""

    now: int
    tags: dict[str, int]


class Policy(Protocol):
    """A retention policy (see module docstring)."""

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return a bool array: True for each version this policy keeps."""
        ...


def _ns(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1_000


def _check_duration(name: str, d: object) -> None:
    if not isinstance(d, timedelta) or d < timedelta(0):
        msg = f"{name} must be a non-negative datetime.timedelta, got {d!r}"
        raise InvalidInputError(msg)


def _groups(keys: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For sorted keys: (is first row of its key, group number per row)."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    n = len(keys)
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = ~np.asarray(pc.equal(keys.slice(1), keys.slice(0, n - 1)).to_numpy(zero_copy_only=False))
    return first, np.cumsum(first) - 1


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.int64()).to_numpy()


@dataclass(frozen=True, slots=True)
class KeepAll:
    """Keep every version (the default for namespaces no policy names)."""

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return True for every version."""
        return np.ones(versions.num_rows, dtype=bool)


@dataclass(frozen=True, slots=True)
class KeepLast:
    """Keep the last ``n`` versions of each key (by valid time, then commit).

    Raises:
        InvalidInputError: ``n`` is not an int ≥ 1.
    """

    n: int

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            msg = f"KeepLast: n must be an int >= 1, got {self.n!r}"
            raise InvalidInputError(msg)

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return True for the last ``n`` versions of each key."""
        first, group = _groups(versions["_key"])
        starts = np.flatnonzero(first)
        sizes = np.diff(np.append(starts, len(first)))
        position = np.arange(len(first)) - starts[group]
        return sizes[group] - position <= self.n


@dataclass(frozen=True, slots=True)
class KeepFor:
    """Keep versions written within ``duration`` of now (system time) or valid at
    any time within it (``_valid_to`` null or later than now − ``duration``):
    ``as_of(at=t)`` for every ``t`` in that window keeps its answer.

    Raises:
        InvalidInputError: ``duration`` is not a non-negative timedelta.
    """

    duration: timedelta

    def __post_init__(self) -> None:
        _check_duration("KeepFor: duration", self.duration)

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return True for versions written, or valid, within ``duration`` of ``context.now``."""
        since = context.now - _ns(self.duration)
        valid_to = versions["_valid_to"].cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy()
        return (_ints(versions["_system_from"]) >= since) | (valid_to > since)


@dataclass(frozen=True, slots=True, kw_only=True)
class Thinning:
    """Keep every version whose valid time is within ``every_for`` of now; the
    last version of each key per UTC day within ``daily_for``; and, with
    ``monthly_beyond``, the last per UTC month before that (else none).

    Raises:
        InvalidInputError: a duration is negative or ``daily_for < every_for``.
    """

    every_for: timedelta = timedelta(days=7)
    daily_for: timedelta = timedelta(days=90)
    monthly_beyond: bool = True

    def __post_init__(self) -> None:
        _check_duration("Thinning: every_for", self.every_for)
        _check_duration("Thinning: daily_for", self.daily_for)
        if self.daily_for < self.every_for:
            msg = f"Thinning: daily_for ({self.daily_for}) must be >= every_for ({self.every_for})"
            raise InvalidInputError(msg)

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return True for the versions the thinning schedule keeps (see the class docstring)."""
        valid = _ints(versions["_valid_from"])
        age = context.now - valid
        day = valid.astype("datetime64[ns]").astype("datetime64[D]").astype(np.int64)
        month = valid.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        first, _ = _groups(versions["_key"])
        last_of_key = np.append(first[1:], True)
        last_of_day = last_of_key | np.append(day[1:] != day[:-1], True)
        last_of_month = last_of_key | np.append(month[1:] != month[:-1], True)
        recent = age <= _ns(self.every_for)
        daily = (age <= _ns(self.daily_for)) & last_of_day
        monthly = (age > _ns(self.daily_for)) & last_of_month & self.monthly_beyond
        return recent | daily | monthly


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    """Keep a commit whole: every version it wrote, and each key's version
    current at that commit (so ``as_of(version=commit)`` keeps its answer).
    Give ``commit`` (a number) or ``tag`` (a name given to :meth:`Store.tag`).

    Raises:
        InvalidInputError: neither or both given; at distillation, an unknown tag.
    """

    commit: int | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if (self.commit is None) == (self.tag is None):
            msg = f"Pin: give exactly one of commit= or tag=, got commit={self.commit!r}, tag={self.tag!r}"
            raise InvalidInputError(msg)

    def keep(self, versions: pa.Table, context: PolicyContext) -> np.ndarray:
        """Return True for the pinned commit's versions and each key's version current at it."""
        commit = self.commit
        if self.tag is not None:
            if self.tag not in context.tags:
                msg = f"Pin: no tag {self.tag!r} (tags: {sorted(context.tags)})"
                raise InvalidInputError(msg)
            commit = context.tags[self.tag]
        return pinned(versions, commit=int(commit), now=context.now)  # type: ignore[arg-type]


def pinned(versions: pa.Table, *, commit: int, now: int) -> np.ndarray:
    """bool per version: written by ``commit``, or its key's current version at ``commit``."""
    commits = _ints(versions["_commit"])
    visible = (commits <= commit) & (_ints(versions["_valid_from"]) <= now)
    first, group = _groups(versions["_key"])
    rows = np.flatnonzero(visible)
    keep = commits == commit
    if len(rows):  # last visible row per key: rows are sorted, so the last index of each group
        g = group[rows]
        last = rows[np.append(g[1:] != g[:-1], True)]
        keep[last] = True
    return keep
