"""Opening a store: checking the folder, the catalog and the options, and building its context.

A store folder holds ``catalog.sqlite`` (the truth), ``warm/``, ``cold/``, ``deep/``
(data files), ``readers/`` (reader leases) and ``write.lock``. Opening never
writes to a store it did not create: an existing catalog is first read through a
read-only connection (so a failed open can never checkpoint or delete its WAL),
and only then opened for writing. A folder that is not writable is opened
read-only by itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from koru_core._lock import WriteLock
from koru_core.catalog.postgres_schema import is_postgres_url
from koru_core.catalog.sqlite import SQLiteCatalog
from koru_core.context import StoreContext
from koru_core.errors import InvalidInputError, StoreFullError
from koru_core.hot.pending import PendingCache
from koru_core.hot.tier import HotTier
from koru_core.lifecycle.catalog_leases import CatalogLeases
from koru_core.lifecycle.leases import Leases
from koru_core.storage import Storage
from koru_core.storage.local import LocalStorage, check_no_symlink
from koru_core.storage.objects import ObjectStorage, is_object_url
from koru_core.storage.parquet import FileCache

__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_STORE", "Durability", "close_context", "open_context"]

DEFAULT_STORE = "koru-data"
"""The store folder used when none is given (the CLI also reads ``KORU_STORE``)."""

DEFAULT_MEMORY_LIMIT = 512 * 1024 * 1024
"""Default bound of the in-memory tiers, in bytes."""

CATALOG = "catalog.sqlite"

Durability = Literal["full", "process"]


def _check_options(durability: object, lock_timeout: object, memory_limit: object, create: object,
                   read_only: object, auto: object) -> None:
    if durability not in ("full", "process"):
        msg = f"durability must be 'full' or 'process', got {durability!r}"
        raise InvalidInputError(msg)
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not lock_timeout >= 0:
        msg = f"lock_timeout must be a non-negative number of seconds, got {lock_timeout!r}"
        raise InvalidInputError(msg)
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit <= 0:
        msg = f"memory_limit must be a positive number of bytes, got {memory_limit!r}"
        raise InvalidInputError(msg)
    if create not in (None, True, False):
        msg = f"create must be None, True or False, got {create!r}"
        raise InvalidInputError(msg)
    for name, value in (("read_only", read_only), ("auto_consolidate", auto)):
        if not isinstance(value, bool):
            msg = f"{name} must be True or False, got {value!r}"
            raise InvalidInputError(msg)


def _check_folder(path: Path, create: bool | None, read_only: bool) -> bool:
    """Check the folder; returns True when a new store is to be created there."""
    if path.exists() and not path.is_dir():
        msg = f"store path {str(path)!r} exists and is not a folder"
        raise InvalidInputError(msg)
    check_no_symlink(path, CATALOG)
    if (path / CATALOG).exists():
        return False
    if create is False or read_only:
        msg = f"no koru store at {str(path)!r} (it has no {CATALOG})" + (" and create=False" if create is False else "")
        raise InvalidInputError(msg)
    if create is None and path.is_dir() and any(path.iterdir()):
        msg = f"{str(path)!r} is a non-empty folder that holds no koru store; pass create=True to make one there anyway"
        raise InvalidInputError(msg)
    return True


def _wal_has_commits(catalog: Path) -> bool:
    wal = catalog.with_name(catalog.name + "-wal")
    return wal.exists() and wal.stat().st_size > 32


def open_context(
    target: str | os.PathLike[str], *, durability: Durability, lock_timeout: float, auto_consolidate: bool,
    memory_limit: int, create: bool | None, read_only: bool, catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> StoreContext:
    """Open (or create) the store at ``target`` and return its context.

    A local folder with no ``catalog`` is the embedded store (SQLite catalog, file
    lock); an ``s3://`` URL, or any location with a ``catalog`` URL, is a shared store
    (:func:`_open_shared`).

    Raises:
        InvalidInputError, CorruptionError, FormatError: see :func:`koru_core.open`.
    """
    _check_options(durability, lock_timeout, memory_limit, create, read_only, auto_consolidate)
    if storage_options is not None and not is_object_url(target):
        msg = "storage_options are for an object-store location (s3://bucket/prefix); a local folder takes none"
        raise InvalidInputError(msg)
    if is_object_url(target) or catalog is not None:
        return _open_shared(target, catalog=catalog, storage_options=storage_options, lock_timeout=lock_timeout,
                            auto_consolidate=auto_consolidate, memory_limit=memory_limit, create=create,
                            read_only=read_only)
    text = os.fspath(target)
    if not isinstance(text, str) or ("://" in text and not text.startswith("file://")):
        msg = f"a store is a local folder or an s3://bucket/prefix URL, got {target!r}"
        raise InvalidInputError(msg)
    root = Path(text.removeprefix("file://")).absolute()
    is_new = _check_folder(root, create, read_only)
    why = "opened with read_only=True"
    if is_new:
        root.mkdir(parents=True, exist_ok=True)
    elif not read_only and (not os.access(root, os.W_OK) or os.statvfs(root).f_flag & os.ST_RDONLY):
        read_only, why = True, "its folder is not writable: a read-only mount or no write permission"
    try:
        if not is_new:  # the files, then a read-only connection, before any connection that may write
            SQLiteCatalog(root / CATALOG, timeout=lock_timeout, read_only=True).close()
        catalog = SQLiteCatalog(root / CATALOG, durability=durability, timeout=lock_timeout, create=is_new,
                                read_only=read_only, check_files=False)
    except StoreFullError:
        if is_new or _wal_has_commits(root / CATALOG):
            raise
        # a full disk: SQLite cannot make the catalog's -shm, so read the file as it stands
        # (read-only; reopen to write once space is freed)
        catalog = SQLiteCatalog(root / CATALOG, timeout=lock_timeout, read_only=True, check_files=False,
                                immutable=True)
        read_only, why = True, "the disk was full when it was opened; reopen it once space is freed"
    storage = LocalStorage(root)
    return StoreContext(
        root=root, storage=storage, catalog=catalog,
        files=FileCache(storage, limit=memory_limit // 2),
        pending=PendingCache(catalog, limit=memory_limit // 8),
        hot=HotTier(limit=memory_limit - memory_limit // 2 - memory_limit // 8),
        leases=Leases(root, read_only=read_only),
        lock=WriteLock(root / "write.lock", timeout=lock_timeout, read_only=read_only, why=why),
        memory_limit=memory_limit, auto_maintain=auto_consolidate and not read_only, read_only=read_only,
    )


def _open_shared(
    target: str | os.PathLike[str], *, catalog: str | None, storage_options: dict[str, str] | None,
    lock_timeout: float, auto_consolidate: bool, memory_limit: int, create: bool | None, read_only: bool,
) -> StoreContext:
    """A store shared by many processes and hosts: files on object storage (or a shared
    folder), the catalog in PostgreSQL, optimistic commits, leases in the catalog."""
    if catalog is None:
        msg = (f"{target!r} is on object storage, which cannot hold a catalog: pass "
               "catalog='postgresql://…' (or set KORU_CATALOG for the CLI)")
        raise InvalidInputError(msg)
    if not is_postgres_url(catalog):
        msg = (f"a shared store's catalog is a postgresql:// URL, got {catalog!r} (the embedded SQLite "
               "catalog lives in the store folder: open a local folder without catalog=)")
        raise InvalidInputError(msg)
    storage: Storage
    if is_object_url(target):
        storage = ObjectStorage(str(target), storage_options)
        storage.check()
        root: Path | str = storage.url
    else:
        path = Path(os.fspath(target)).absolute()
        if not read_only and create is not False:
            path.mkdir(parents=True, exist_ok=True)
        storage = LocalStorage(path)
        root = path
    from koru_core.catalog.postgres import PostgresCatalog

    cat = PostgresCatalog(catalog, create=create is not False and not read_only, read_only=read_only,
                          timeout=lock_timeout)
    return StoreContext(
        root=root, storage=storage, catalog=cat,  # type: ignore[arg-type]
        files=FileCache(storage, limit=memory_limit // 2),
        pending=PendingCache(cat, limit=memory_limit // 8),
        hot=HotTier(limit=memory_limit - memory_limit // 2 - memory_limit // 8),
        leases=CatalogLeases(cat),  # type: ignore[arg-type]
        lock=WriteLock(None, timeout=lock_timeout, read_only=read_only, where=str(root),
                       why="opened with read_only=True"),
        memory_limit=memory_limit, auto_maintain=auto_consolidate and not read_only, read_only=read_only,
    )


def close_context(ctx: StoreContext) -> None:
    """Release everything an open store holds (idempotent)."""
    ctx.leases.close()
    ctx.catalog.close()
    ctx.close()
