"""Data files on S3-compatible object storage (issue 15), through ``pyarrow.fs.S3FileSystem``.

The same methods as :class:`koru_core.storage.local.LocalStorage`, on a URL
``s3://bucket/prefix``. An object PUT is atomic (a reader sees the whole object or
none), and koru names every data file it writes uniquely (a commit, a consolidation
and a distillation each write new names), so a file, once written, never changes:
:attr:`ObjectStorage.immutable` lets the file cache trust a file it verified once
without asking the server again.

Options (:func:`resolve_options`) take the keys and conventions of ``deltalake`` and
``pl.scan_delta`` (the object_store crate's): ``aws_endpoint_url``,
``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
``aws_region``, ``aws_allow_http``, in any case, with or without the ``aws_``
prefix; a key not given is read from the environment variable tools already read
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP``).
The same resolved options go to Polars (``storage_options``) and to the ``s3fs``
file system DuckDB reads through (:func:`fsspec_filesystem`).

Example:
    >>> storage = ObjectStorage("s3://lake/sales", {"aws_endpoint_url": "http://127.0.0.1:8333",
    ...                         "aws_access_key_id": "k", "aws_secret_access_key": "s", "aws_region": "us-east-1"})
    >>> storage.uri("warm/namespace=users/c1.parquet")
    's3://lake/sales/warm/namespace=users/c1.parquet'
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from koru_core.errors import CorruptionError, InvalidInputError, ReadOnlyError
from koru_core.storage.local import FileStat

__all__ = ["OBJECT_SCHEMES", "ObjectStorage", "fsspec_filesystem", "is_object_url", "resolve_options"]

OBJECT_SCHEMES = ("s3://", "s3a://")
"""URL schemes of object storage koru writes to."""

_KEYS = {
    "endpoint_url": "endpoint_url", "endpoint": "endpoint_url",
    "access_key_id": "access_key_id", "secret_access_key": "secret_access_key",
    "session_token": "session_token", "token": "session_token",
    "region": "region", "default_region": "region",
    "allow_http": "allow_http",
}
_ENV = {
    "endpoint_url": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "allow_http": ("AWS_ALLOW_HTTP",),
}


def is_object_url(target: object) -> bool:
    """True for an ``s3://`` (or ``s3a://``) URL."""
    return isinstance(target, str) and target.lower().startswith(OBJECT_SCHEMES)


def resolve_options(options: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve ``storage_options`` and the environment into canonical keys.

    Args:
        options: ``deltalake``/``pl.scan_delta``-style options (see the module docstring), or None.
        environ: The environment (default ``os.environ``).

    Returns:
        ``{"endpoint_url", "access_key_id", "secret_access_key", "session_token",
        "region", "allow_http"}``, each present only when given or set in the environment.

    Raises:
        InvalidInputError: ``options`` is not a mapping of str to str/bool, or names a key
            koru does not know (named, with the known ones).
    """
    if options is not None and not isinstance(options, Mapping):
        msg = f"storage_options must be a dict of str to str, got {type(options).__name__}"
        raise InvalidInputError(msg)
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for raw, value in (options or {}).items():
        name = str(raw).lower().removeprefix("aws_")
        if not isinstance(raw, str) or name not in _KEYS:
            known = ", ".join(sorted(f"aws_{k}" for k in set(_KEYS.values())))
            msg = f"storage_options: unknown key {raw!r} (koru reads {known})"
            raise InvalidInputError(msg)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            msg = f"storage_options[{raw!r}] must be a str, got {type(value).__name__}"
            raise InvalidInputError(msg)
        out[_KEYS[name]] = value
    for key, names in _ENV.items():
        if key not in out:
            for n in names:
                if env.get(n):
                    out[key] = env[n]
                    break
    return out


def fsspec_filesystem(storage_options: Mapping[str, Any] | None) -> Any:
    """An ``s3fs.S3FileSystem`` for ``storage_options`` (as :func:`resolve_options` reads them):
    what DuckDB reads ``s3://`` files through (``duckdb.register_filesystem``; DuckDB has
    no httpfs extension offline). Needs ``pip install 'koru-lake[s3]'``.

    Raises:
        InvalidInputError: bad options.
        ImportError: s3fs is not installed.
    """
    import s3fs

    o = resolve_options(storage_options)
    client: dict[str, Any] = {}
    if "region" in o:
        client["region_name"] = o["region"]
    return s3fs.S3FileSystem(key=o.get("access_key_id"), secret=o.get("secret_access_key"),
                             token=o.get("session_token"), endpoint_url=o.get("endpoint_url"),
                             client_kwargs=client, skip_instance_cache=True)


class ObjectStorage:
    """The data files of a store under ``s3://bucket/prefix``.

    Args:
        url: ``s3://bucket`` or ``s3://bucket/prefix`` (the bucket must exist).
        options: ``storage_options`` (see the module docstring).

    Raises:
        InvalidInputError: a malformed URL, or bad options.
    """

    immutable = True
    """A file once written never changes (see the module docstring)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("s3", "s3a") or not parts.netloc or parts.query or parts.fragment:
            msg = f"an object-store location is s3://bucket[/prefix], got {url!r}"
            raise InvalidInputError(msg)
        prefix = parts.path.strip("/")
        if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
            msg = f"{url!r}: the prefix must not hold empty, '.' or '..' parts"
            raise InvalidInputError(msg)
        self.bucket = parts.netloc
        self.prefix = prefix
        self.url = f"s3://{self.bucket}" + (f"/{prefix}" if prefix else "")
        self.options = resolve_options(options)
        self.filesystem = pafs.S3FileSystem(**self._pyarrow_kwargs())

    def __repr__(self) -> str:
        return f"ObjectStorage({self.url!r})"

    def _pyarrow_kwargs(self) -> dict[str, Any]:
        o = self.options
        kw: dict[str, Any] = {"allow_bucket_creation": False, "allow_bucket_deletion": False}
        if "endpoint_url" in o:
            ep = urlsplit(o["endpoint_url"] if "://" in o["endpoint_url"] else f"https://{o['endpoint_url']}")
            kw["endpoint_override"] = ep.netloc
            kw["scheme"] = ep.scheme
        elif o.get("allow_http", "").lower() == "true":
            kw["scheme"] = "http"
        for ours, theirs in (("access_key_id", "access_key"), ("secret_access_key", "secret_key"),
                             ("session_token", "session_token"), ("region", "region")):
            if ours in o:
                kw[theirs] = o[ours]
        return kw

    # -- what engines need -------------------------------------------------------

    def _key(self, rel: str) -> str:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            msg = f"{self.url}: refusing the path {rel!r} (it must stay inside the store)"
            raise InvalidInputError(msg)
        return f"{self.bucket}/{self.prefix}/{rel}" if self.prefix else f"{self.bucket}/{rel}"

    def uri(self, rel: str) -> str:
        """The URL an engine reads ``rel`` at (``s3://bucket/prefix/rel``)."""
        return f"s3://{self._key(rel)}"

    def storage_options(self) -> dict[str, str]:
        """Options for Polars' ``scan_parquet`` (object_store keys: ``aws_endpoint_url`` …)."""
        out = {f"aws_{k}": v for k, v in self.options.items()}
        endpoint = self.options.get("endpoint_url", "")
        if endpoint.startswith("http://"):
            out["aws_allow_http"] = "true"
        return out

    def source(self, rel: str) -> pa.NativeFile:
        """An open random-access file of ``rel`` (for ``pq.ParquetFile``)."""
        try:
            return self.filesystem.open_input_file(self._key(rel))
        except FileNotFoundError as e:
            msg = f"{self.uri(rel)}: data file is missing"
            raise CorruptionError(msg) from e

    def check(self) -> None:
        """Check that the bucket exists and can be listed.

        Raises:
            InvalidInputError: no such bucket, or it cannot be reached (names the URL, never a secret).
        """
        try:
            info = self.filesystem.get_file_info(self.bucket)
        except OSError as e:
            msg = f"{self.url}: the object store cannot be reached: {e}"
            raise InvalidInputError(msg) from e
        if info.type == pafs.FileType.NotFound:
            msg = f"{self.url}: no bucket {self.bucket!r} (create it first; koru never creates buckets)"
            raise InvalidInputError(msg)

    # -- the LocalStorage methods -------------------------------------------------

    def write(self, rel: str, data: bytes | memoryview) -> None:
        """Write ``data`` at ``rel`` in one PUT (atomic: readers see all of it or nothing).

        Raises:
            ReadOnlyError: the server refused the write (no permission).
            OSError: any other failure (nothing is visible at ``rel``).
        """
        key = self._key(rel)
        try:
            with self.filesystem.open_output_stream(key) as out:
                out.write(data)
        except OSError as e:
            if "AccessDenied" in str(e) or "ACCESS_DENIED" in str(e):
                msg = f"{self.uri(rel)}: cannot be written ({e}): the store is read-only; nothing was written"
                raise ReadOnlyError(msg) from e
            raise

    def read(self, rel: str) -> bytes:
        """Return the bytes of ``rel``.

        Raises:
            CorruptionError: it is missing.
        """
        try:
            with self.filesystem.open_input_stream(self._key(rel)) as f:
                return bytes(f.read())
        except FileNotFoundError as e:
            msg = f"{self.uri(rel)}: data file is missing"
            raise CorruptionError(msg) from e

    def stat(self, rel: str) -> FileStat | None:
        """Return (size, mtime ns, mtime ns, 0) of ``rel``, or None if it is missing."""
        info = self.filesystem.get_file_info(self._key(rel))
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type != pafs.FileType.File:
            msg = f"{self.uri(rel)}: is not an object; koru refuses it"
            raise CorruptionError(msg)
        mtime = int(info.mtime_ns or 0)
        return (int(info.size or 0), mtime, mtime, 0)

    def delete(self, rel: str) -> None:
        """Delete ``rel`` if present."""
        try:
            self.filesystem.delete_file(self._key(rel))
        except FileNotFoundError:
            pass

    def walk(self, folder: str) -> Iterator[tuple[str, int, int]]:
        """Yield (relative path, size, mtime ns) of the objects under ``folder``."""
        base = self._key(folder)
        start = len(base) - len(folder)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File:
                yield info.path[start:], int(info.size or 0), int(info.mtime_ns or 0)
