"""Writing and reading koru's immutable Parquet data files, durably and with checksums.

Files are written whole to a temporary name, fsynced, renamed into place and the
folder fsynced, then recorded in the catalog; a crash before the catalog commit
leaves only an unreferenced file (removed by vacuum). Each file's blake3 and size
are recorded; pages carry CRC32 checksums (Parquet ``page_checksum``) that the
core verifies on every read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import blake3
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from koru_core.catalog import FileEntry
from koru_core.errors import CorruptionError

__all__ = ["read_files", "verify_files", "write_file"]

_VERIFIED: set[tuple[str, str]] = set()
"""(absolute path, blake3) of the files this process wrote or has checked whole."""

ROW_GROUP_ROWS = 16 * 1024
"""Rows per row group in warm files: small enough for min/max pruning on
``_key``/``_valid_from``/``_commit``, large enough to keep per-group overhead low."""

_SCAN_OPTIONS = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
_FORMAT = ds.ParquetFileFormat(default_fragment_scan_options=_SCAN_OPTIONS)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(table: pa.Table, path: Path, *, row_group_size: int = ROW_GROUP_ROWS) -> tuple[int, str]:
    """Write ``table`` durably as a zstd Parquet file at ``path`` (``row_group_size`` rows per group).

    Returns:
        (size in bytes, blake3 hex of the file's bytes).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression="zstd", row_group_size=row_group_size,
        write_page_checksum=True, write_statistics=True,
    )
    data = sink.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    checksum = blake3.blake3(data).hexdigest()
    _VERIFIED.add((str(path), checksum))
    return data.size, checksum


def verify_files(root: Path, entries: Sequence[FileEntry]) -> None:
    """Check each file's size and blake3 against the catalog, once per process.

    Parquet page checksums cover data pages but not the footer, whose
    statistics drive pruning; a damaged footer could make a reader skip rows
    silently. Hashing each file whole the first time this process reads it
    (blake3 runs at GB/s) closes that gap for every reader: the core, DuckDB
    and Polars all get their file lists through :func:`koru_core.scan.plan_scan`.

    Raises:
        CorruptionError: a file is missing, has the wrong size or the wrong
            blake3; names the file.
    """
    todo = [e for e in entries if (str(root / e.path), e.checksum) not in _VERIFIED]
    if not todo:
        return
    _check_sizes(root, todo)
    for e in todo:
        path = root / e.path
        digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != e.checksum:
            msg = f"{path}: data file does not match its blake3 checksum in the catalog"
            raise CorruptionError(msg)
        _VERIFIED.add((str(path), e.checksum))


def _check_sizes(root: Path, entries: Sequence[FileEntry]) -> None:
    for e in entries:
        try:
            size = (root / e.path).stat().st_size
        except FileNotFoundError as err:
            msg = f"{root / e.path}: data file of namespace {e.namespace!r} is missing"
            raise CorruptionError(msg) from err
        if size != e.bytes:
            msg = f"{root / e.path}: data file is {size} bytes, the catalog recorded {e.bytes}"
            raise CorruptionError(msg)


def read_files(
    root: Path,
    entries: Sequence[FileEntry],
    *,
    schema: pa.Schema,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
) -> pa.Table:
    """Read data files as one table with ``schema`` (older files' missing columns are null).

    Raises:
        CorruptionError: a file is missing, has the wrong size, or fails to
            decode (bad page checksum, truncated footer); names the file.
    """
    if not entries:
        names = list(columns) if columns is not None else schema.names
        return schema.empty_table().select(names)
    _check_sizes(root, entries)
    paths = [str(root / e.path) for e in entries]
    try:
        dataset = ds.dataset(paths, schema=schema, format=_FORMAT)
        return dataset.to_table(columns=list(columns) if columns is not None else None, filter=filter)
    except (pa.ArrowException, OSError) as e:
        for path in paths:  # name the file that fails
            try:
                pq.read_table(path, page_checksum_verification=True)
            except (pa.ArrowException, OSError) as err:
                msg = f"{path}: data file is corrupted: {err}"
                raise CorruptionError(msg) from err
        msg = f"{root}: reading data files failed: {e}"
        raise CorruptionError(msg) from e
