"""The catalog of a store: one interface (:class:`Catalog`), one module per backend.

See :mod:`koru_core.catalog.base` for the verbs, :mod:`koru_core.catalog.sqlite` for
the embedded default and :mod:`koru_core.catalog.postgres` for a store shared by many
machines; :func:`open_catalog` picks the backend from where the catalog lives.
``PostgresCatalog`` is imported on first use (it needs psycopg, ``koru-lake[postgres]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koru_core.catalog.base import FORMAT_VERSION, Catalog
from koru_core.catalog.blobs import decode_blob, encode_table
from koru_core.catalog.entries import (
    CommitDraft,
    CommitRecord,
    FileEntry,
    FileKind,
    FileSwap,
    NamespaceInfo,
    PendingBlob,
    Tier,
)
from koru_core.catalog.leases import ReaderLease
from koru_core.catalog.postgres_schema import is_postgres_url
from koru_core.catalog.sqlite import Durability, SQLiteCatalog
from koru_core.errors import InvalidInputError

if TYPE_CHECKING:
    from koru_core.catalog.postgres import PostgresCatalog

__all__ = [
    "FORMAT_VERSION",
    "Catalog",
    "CommitDraft",
    "CommitRecord",
    "FileEntry",
    "FileKind",
    "FileSwap",
    "NamespaceInfo",
    "PendingBlob",
    "PostgresCatalog",
    "ReaderLease",
    "SQLiteCatalog",
    "Tier",
    "decode_blob",
    "encode_table",
    "open_catalog",
]


def open_catalog(
    target: str | os.PathLike[str], *, read_only: bool = False, create: bool = False, content_format: int = 2,
    timeout: float = 10.0, durability: Durability = "full",
) -> Catalog:
    """Open a store's catalog: PostgreSQL for a ``postgresql://`` or ``postgres://`` URL, SQLite for a local file.

    Args:
        target: A libpq URL (``postgresql://user@host/db?koru_schema=NAME``, see
            :mod:`koru_core.catalog.postgres_schema`) or the path of a SQLite catalog file
            (``<store>/catalog.sqlite``).
        read_only: Open for reads only; write verbs raise ``PermissionError`` (on
            PostgreSQL the reader-lease verbs still work).
        create: Create the catalog. SQLite: the file must not exist yet. PostgreSQL:
            create it if the schema holds none (idempotent, safe under concurrent opens).
        content_format: Content-id format of a new store.
        timeout: Seconds to wait for a lock (and, on PostgreSQL, to connect).
        durability: SQLite only (see :class:`SQLiteCatalog`); a PostgreSQL commit is as
            durable as the server's ``synchronous_commit``.

    Returns:
        A :class:`SQLiteCatalog` or a :class:`PostgresCatalog`.

    Raises:
        InvalidInputError: another URL scheme (``s3://`` holds files, not a catalog), or a
            PostgreSQL URL with no catalog and ``create=False``.
        ImportError: a PostgreSQL URL without psycopg installed (names the extra).
        ConnectionError, CorruptionError, FormatError, StoreLockedError: see the backends.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "catalog.sqlite"
        >>> catalog = open_catalog(path, create=True)
        >>> type(catalog).__name__, catalog.head()
        ('SQLiteCatalog', (0, 0, None))
        >>> catalog.close()
    """
    if is_postgres_url(target):
        from koru_core.catalog.postgres import PostgresCatalog

        return PostgresCatalog(str(target), create=create, content_format=content_format, read_only=read_only,
                               timeout=timeout)
    text = os.fspath(target)
    if not isinstance(text, str) or not text or ("://" in text and not text.startswith("file://")):
        msg = (f"a catalog is a postgresql:// URL or the path of a SQLite file, got {target!r} "
               "(object storage holds a store's files, not its catalog)")
        raise InvalidInputError(msg)
    path = Path(text.removeprefix("file://"))
    return SQLiteCatalog(path, durability=durability, timeout=timeout, create=create, content_format=content_format,
                         read_only=read_only)


def __getattr__(name: str) -> Any:
    if name == "PostgresCatalog":  # needs psycopg: ImportError naming koru-lake[postgres] if it is missing
        from koru_core.catalog.postgres import PostgresCatalog

        return PostgresCatalog
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
