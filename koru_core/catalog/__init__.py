"""The catalog of a store: one interface (:class:`Catalog`), one module per backend.

See :mod:`koru_core.catalog.base` for the verbs and :mod:`koru_core.catalog.sqlite`
for the embedded default.
"""

from koru_core.catalog.base import FORMAT_VERSION, Catalog
from koru_core.catalog.blobs import decode_blob, encode_table
from koru_core.catalog.entries import (
    CommitDraft,
    CommitRecord,
    FileEntry,
    FileKind,
    NamespaceInfo,
    PendingBlob,
    Tier,
)
from koru_core.catalog.sqlite import SQLiteCatalog

__all__ = [
    "FORMAT_VERSION",
    "Catalog",
    "CommitDraft",
    "CommitRecord",
    "FileEntry",
    "FileKind",
    "NamespaceInfo",
    "PendingBlob",
    "SQLiteCatalog",
    "Tier",
    "decode_blob",
    "encode_table",
]
