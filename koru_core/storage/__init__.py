"""Where a store's data files live, and how they are written and read.

:class:`LocalStorage` is a local folder (the embedded default); object storage
(``s3://``) implements the same methods. :mod:`koru_core.storage.parquet` writes
koru's Parquet files and reads them through a verified, decoded cache.
"""

from koru_core.storage.local import FileStat, LocalStorage, check_no_symlink, full_disk
from koru_core.storage.objects import ObjectStorage, is_object_url
from koru_core.storage.parquet import FileCache, write_parquet

Storage = LocalStorage | ObjectStorage
"""Where a store's data files are: a local folder or an object-store prefix."""

__all__ = [
    "FileCache", "FileStat", "LocalStorage", "ObjectStorage", "Storage", "check_no_symlink", "full_disk",
    "is_object_url", "write_parquet",
]
