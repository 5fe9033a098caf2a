"""The calls :class:`koru_core.Store`'s lifecycle methods delegate to.

Each takes the store, checks its arguments and calls the module that does the
work with the store's catalog, write lock and reader leases.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from koru_core.errors import InvalidInputError, NamespaceNotFoundError
from koru_core.lifecycle import consolidate as _consolidate
from koru_core.lifecycle import distill as _distill
from koru_core.lifecycle import snapshot as _snapshot
from koru_core.lifecycle import vacuum as _vacuum
from koru_core.lifecycle import verify as _verify
from koru_core.lifecycle._history import with_pruned
from koru_core.model import MaintenanceResult, VerifyReport

if TYPE_CHECKING:
    from koru_core.store import Store

__all__ = ["auto_consolidate", "check_namespace_exists", "consolidate", "distill", "restore", "snapshot", "tag", "vacuum", "verify", "with_pruned"]


def check_namespace_exists(store: Store, namespace: str | None) -> None:
    """Raise :class:`NamespaceNotFoundError` unless ``namespace`` is None or exists."""
    if namespace is not None and namespace not in store._catalog.namespaces():
        msg = f"namespace {namespace!r} does not exist (namespaces: {store._catalog.namespaces()})"
        raise NamespaceNotFoundError(msg)


def consolidate(store: Store, namespace: str | None) -> MaintenanceResult:
    """See :meth:`koru_core.Store.consolidate`."""
    check_namespace_exists(store, namespace)
    return _consolidate.consolidate(
        store.path, store._catalog, lock=store._writer.lock, leases=store._leases, namespace=namespace
    )


def auto_consolidate(store: Store, namespaces: list[str]) -> None:
    """Consolidate each of ``namespaces`` holding at least
    :data:`~koru_core.lifecycle.consolidate.AUTO_CONSOLIDATE_WARM_FILES` warm files."""
    limit = _consolidate.AUTO_CONSOLIDATE_WARM_FILES
    for ns in namespaces:
        if sum(e.tier == "warm" for e in store._catalog.files(ns)) >= limit:
            _consolidate.consolidate(store.path, store._catalog, lock=store._writer.lock, leases=store._leases, namespace=ns)


def vacuum(store: Store, retain: timedelta) -> MaintenanceResult:
    """See :meth:`koru_core.Store.vacuum`."""
    if not isinstance(retain, timedelta) or retain < timedelta(0):
        msg = f"retain must be a non-negative datetime.timedelta, got {retain!r}"
        raise InvalidInputError(msg)
    return _vacuum.vacuum(store.path, store._catalog, lock=store._writer.lock, retain=retain)


def verify(store: Store) -> VerifyReport:
    """See :meth:`koru_core.Store.verify`."""
    return _verify.verify(store.path, store._catalog)


def distill(store: Store, policies: _distill.Policies, namespace: str | None) -> MaintenanceResult:
    """See :meth:`koru_core.Store.distill`."""
    check_namespace_exists(store, namespace)
    return _distill.distill(
        store.path, store._catalog, lock=store._writer.lock, leases=store._leases, policies=policies, namespace=namespace
    )


def tag(store: Store, name: str, commit: int | None) -> int:
    """See :meth:`koru_core.Store.tag`."""
    head = store._catalog.head()[0]
    commit = head if commit is None else commit
    if not isinstance(name, str) or not name:
        msg = f"tag name must be a non-empty str, got {name!r}"
        raise InvalidInputError(msg)
    if not isinstance(commit, int) or isinstance(commit, bool) or not 1 <= commit <= head:
        msg = f"tag {name!r}: commit must be a commit number in 1..{head}, got {commit!r}"
        raise InvalidInputError(msg)
    with store._catalog.write() as con:
        con.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (name, commit))
    return commit


def snapshot(store: Store, path: str | os.PathLike[str]) -> Path:
    """See :meth:`koru_core.Store.snapshot`."""
    token = store._leases.acquire()
    try:
        return _snapshot.write_bundle(store.path, store._catalog, Path(path).absolute())
    finally:
        store._leases.release(token)


def restore(snapshot_path: str | os.PathLike[str], store_path: str | os.PathLike[str]) -> Store:
    """Rebuild a store from a snapshot bundle and open it.

    Args:
        snapshot_path: A folder written by :meth:`koru_core.Store.snapshot`.
        store_path: The new store's folder; must be missing or empty.

    Returns:
        The restored, open :class:`~koru_core.Store`: its versions, commit log
        (hash chain included), pruned skeletons and tags equal the source's at
        the snapshot's commit.

    Raises:
        CorruptionError: a bundle file is missing or fails its blake3 (names it;
            nothing is written).
        InvalidInputError: ``store_path`` exists and is not an empty folder.

    Example:
        >>> import tempfile, koru_core as koru
        >>> src = koru.open(tempfile.mkdtemp()); _ = src.put("users", "a", {"age": 1})
        >>> bundle = src.snapshot(tempfile.mkdtemp() + "/bundle")
        >>> koru.restore(bundle, tempfile.mkdtemp() + "/copy").get("users", "a")
        {'age': 1}
    """
    from koru_core.store import open as open_store

    _snapshot.restore_bundle(Path(snapshot_path).absolute(), Path(store_path).absolute())
    return open_store(store_path)
