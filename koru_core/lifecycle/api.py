"""The calls :class:`koru_core.Store`'s lifecycle methods delegate to.

Each takes the store, checks its arguments and calls the module that does the
work with the store's catalog, write lock and reader leases.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from koru_core._time import now_ns
from koru_core.errors import InvalidInputError, NamespaceNotFoundError, ReadOnlyError
from koru_core.lifecycle import consolidate as _consolidate
from koru_core.lifecycle import distill as _distill
from koru_core.lifecycle import snapshot as _snapshot
from koru_core.lifecycle import vacuum as _vacuum
from koru_core.lifecycle import verify as _verify
from koru_core.model import MaintenanceResult, VerifyReport

if TYPE_CHECKING:
    from koru_core.store import Store

__all__ = [
    "check_namespace_exists", "consolidate", "distill", "require_writable", "restore", "snapshot", "tag", "vacuum",
    "verify",
]


def check_namespace_exists(store: Store, namespace: str | None) -> None:
    """Raise :class:`NamespaceNotFoundError` unless ``namespace`` is None or exists."""
    names = store._ctx.catalog.namespaces()
    if namespace is not None and namespace not in names:
        msg = f"namespace {namespace!r} does not exist (namespaces: {names})"
        raise NamespaceNotFoundError(msg)


def require_writable(store: Store, action: str) -> None:
    """Raise :class:`ReadOnlyError` before a maintenance action on a read-only store writes anything."""
    if store._ctx.read_only:
        msg = f"store {str(store.path)!r} is read-only: {action} would write; nothing was written"
        raise ReadOnlyError(msg)


def _totals(store: Store) -> tuple[int, int, int]:
    """(files, bytes, full versions) the catalog lists."""
    cat = store._ctx.catalog
    with cat.snapshot():
        files = [e for e in cat.files() if e.kind != "skips"]
        pending = sum(n for ns in cat.namespaces() for _, n in cat.pending_commits(ns))
    return len(files), sum(e.bytes for e in files), sum(e.rows for e in files if e.tier != "deep") + pending


def _result(action: str, before: tuple[int, int, int], after: tuple[int, int, int], names: list[str]) -> MaintenanceResult:
    return MaintenanceResult(action=action, files_before=before[0], files_after=after[0], bytes_before=before[1],
                             bytes_after=after[1], versions_before=before[2], versions_after=after[2],
                             namespaces=tuple(sorted(names)))


def consolidate(store: Store, namespace: str | None) -> MaintenanceResult:
    """See :meth:`koru_core.Store.consolidate`."""
    check_namespace_exists(store, namespace)
    require_writable(store, "consolidate")
    ctx = store._ctx
    names = [namespace] if namespace is not None else ctx.catalog.namespaces()
    before = _totals(store)
    token = ctx.leases.acquire()  # protects the files this run writes from vacuum until swapped in
    try:
        acted = _consolidate.consolidate_all(ctx, names)
    finally:
        ctx.leases.release(token)
    if ctx.auto_maintain:
        _vacuum.delete_retired(ctx, limit=now_ns())
    return _result("consolidate", before, _totals(store), acted)


def vacuum(store: Store, retain: timedelta) -> MaintenanceResult:
    """See :meth:`koru_core.Store.vacuum`."""
    if not isinstance(retain, timedelta) or retain < timedelta(0):
        msg = f"retain must be a non-negative datetime.timedelta, got {retain!r}"
        raise InvalidInputError(msg)
    require_writable(store, "vacuum")
    return _vacuum.vacuum(store._ctx, retain=retain)


def verify(store: Store, expected_head: str | None = None) -> VerifyReport:
    """See :meth:`koru_core.Store.verify`."""
    if expected_head is not None:
        text = expected_head.strip().lower() if isinstance(expected_head, str) else ""
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            msg = f"expected_head must be a commit hash (64 hex characters, Commit.hash), got {expected_head!r}"
            raise InvalidInputError(msg)
        expected_head = text
    return _verify.verify(store._ctx, expected_head=expected_head)


def distill(store: Store, policies: _distill.Policies, namespace: str | None) -> MaintenanceResult:
    """See :meth:`koru_core.Store.distill`."""
    check_namespace_exists(store, namespace)
    require_writable(store, "distill")
    before = _totals(store)
    acted = _distill.distill(store._ctx, policies=policies, namespace=namespace)
    return _result("distill", before, _totals(store), acted)


def tag(store: Store, name: str, commit: int | None) -> int:
    """See :meth:`koru_core.Store.tag`."""
    head = store._ctx.catalog.head()[0]
    commit = head if commit is None else commit
    if not isinstance(name, str) or not name:
        msg = f"tag name must be a non-empty str, got {name!r}"
        raise InvalidInputError(msg)
    if not isinstance(commit, int) or isinstance(commit, bool) or not 1 <= commit <= head:
        msg = f"tag {name!r}: commit must be a commit number in 1..{head}, got {commit!r}"
        raise InvalidInputError(msg)
    require_writable(store, "tag")
    store._ctx.catalog.set_tag(name, commit)
    return commit


def snapshot(store: Store, path: str | os.PathLike[str]) -> Path:
    """See :meth:`koru_core.Store.snapshot`."""
    ctx = store._ctx
    token = ctx.leases.acquire()
    try:
        return _snapshot.write_bundle(ctx, Path(path).absolute())
    finally:
        ctx.leases.release(token)


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
