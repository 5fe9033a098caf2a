"""Turning a ``source``/``target`` argument into a store, and keeping a scan's files alive.

A :class:`koru_core.ReadPlan` holds a *reader lease*: while the plan object is
alive (and its store is open), vacuum keeps every file the plan lists, even
after consolidation replaced them. A lazy frame is read long after
``scan_koru`` returns, so :func:`hold` ties the plan (and, for a path source,
the store opened for it) to the frame's own plan: an ``Object`` literal that
projection pushdown removes before execution, but which lives in the logical
plan of the frame and of every frame derived from it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

import koru_core as koru
from koru_core import InvalidInputError, ReadPlan, Store
from koru_core._time import to_ns
from koru_core.storage.objects import is_object_url

__all__ = ["Lease", "StoreLike", "hold", "plan_scan", "time_ns", "writing"]


StoreLike = str | os.PathLike[str] | Store
"""What ``scan_koru`` and ``write_koru`` accept as a store: a folder or an open :class:`Store`."""


class Lease:
    """Keeps a scan plan (so its files outlive vacuum) and its store alive.

    A store opened from a path for this plan is closed when the lease is
    garbage collected; an open ``Store`` passed in is left to its owner.
    """

    __slots__ = ("__weakref__", "plan", "store")

    def __init__(self, plan: ReadPlan, store: Store) -> None:
        self.plan = plan
        self.store = store

    def __repr__(self) -> str:
        return f"<koru lease: {self.plan.namespace!r} at commit {self.plan.commit}>"


def plan_scan(source: StoreLike, namespace: str, *, version: int | None | Callable[[Store], int | None],
              at: object = None, shape: str = "as_of", catalog: str | None = None,
              storage_options: dict[str, str] | None = None) -> Lease:
    """Resolve ``source`` and return the lease of the plan (``Store.plan``) of ``namespace``.

    Args:
        source: A store folder or an open store.
        namespace: The namespace.
        version: The commit bound, or a function of the opened store returning it
            (for bounds that depend on the store's head, as a change feed's ``until``).
        at: The valid time of an as-of plan.
        shape: As :meth:`koru_core.Store.plan`.
        catalog, storage_options: As :func:`koru_core.open`, for a shared store
            (``s3://`` or a PostgreSQL catalog), opened read-only for the scan.

    Raises:
        InvalidInputError: ``source`` is neither a Store nor a path, the path
            holds no koru store (reads never create one), or bad ``version``.
        NamespaceNotFoundError: the namespace was never written.
    """
    if isinstance(source, Store):
        if catalog is not None or storage_options is not None:
            msg = "catalog and storage_options are for a store given by its URL, not an open Store"
            raise InvalidInputError(msg)
        return Lease(_plan(source, namespace, version=version, at=at, shape=shape), source)
    if not isinstance(source, (str, os.PathLike)):
        msg = f"source must be a store path or a koru Store, got {type(source).__name__}"
        raise InvalidInputError(msg)
    if catalog is not None or is_object_url(source):
        store = koru.open(source, create=False, read_only=True, catalog=catalog, storage_options=storage_options)
    else:
        path = Path(source)
        if not (path / "catalog.sqlite").is_file():
            msg = f"no koru store at {str(path)!r} (it has no catalog.sqlite)"
            raise InvalidInputError(msg)
        store = koru.open(path, create=False, storage_options=storage_options)
    try:
        lease = Lease(_plan(store, namespace, version=version, at=at, shape=shape), store)
    except BaseException:
        store.close()
        raise
    weakref.finalize(lease, store.close)
    return lease


def _plan(store: Store, namespace: str, *, version: int | None | Callable[[Store], int | None], at: object,
          shape: str) -> ReadPlan:
    bound = version(store) if callable(version) else version
    return store.plan(namespace, at=at, version=bound, shape=shape)  # type: ignore[arg-type]


def hold(frame: pl.LazyFrame, lease: Lease) -> pl.LazyFrame:
    """Return ``frame`` with ``lease`` kept alive by its logical plan (no column, no cost)."""
    return frame.with_columns(pl.lit(lease, dtype=pl.Object).alias("__koru_lease")).drop("__koru_lease")


@contextmanager
def writing(target: StoreLike, *, catalog: str | None = None,
            storage_options: dict[str, str] | None = None) -> Iterator[Store]:
    """Yield an open store for a write, creating the folder's store if missing.

    A store opened here is closed on exit; an open ``Store`` is left open.

    Raises:
        InvalidInputError: ``target`` is neither a Store nor a path.
    """
    if isinstance(target, Store):
        yield target
        return
    if not isinstance(target, (str, os.PathLike)):
        msg = f"target must be a store path or a koru Store, got {type(target).__name__}"
        raise InvalidInputError(msg)
    store = koru.open(target, catalog=catalog, storage_options=storage_options)
    try:
        yield store
    finally:
        store.close()


def time_ns(value: object, *, what: str) -> int:
    """Return a timezone-aware datetime as nanoseconds since the Unix epoch (UTC).

    The core's conversion (:func:`koru_core._time.to_ns`): a pandas ``Timestamp``
    keeps its nanoseconds; a ``datetime`` has µs precision.

    Raises:
        InvalidInputError: not a datetime, naive (koru does not guess a zone), or
            outside the timestamp[ns] range.
    """
    return to_ns(value, what=what)  # type: ignore[arg-type]
