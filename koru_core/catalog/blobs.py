"""Pending blobs: a small commit's versions kept in the catalog as an Arrow IPC stream.

A durable ``put`` then costs one catalog transaction rather than a Parquet file.
Each blob carries its blake3 checksum; a blob that fails it is never decoded.
"""

from __future__ import annotations

import pyarrow as pa
from blake3 import blake3

from koru_core.catalog.entries import PendingBlob
from koru_core.errors import CorruptionError

__all__ = ["decode_blob", "encode_table"]


def encode_table(table: pa.Table) -> tuple[bytes, bytes]:
    """Serialise ``table`` as an uncompressed Arrow IPC stream; returns (data, blake3 digest)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    return data, blake3(data).digest()


def decode_blob(blob: PendingBlob, *, where: str) -> pa.Table:
    """Verify a pending blob against its checksum and decode it.

    Raises:
        CorruptionError: the checksum does not match or the stream is unreadable; names ``where``.
    """
    if blake3(blob.data).digest() != blob.checksum:
        msg = f"{where}: checksum mismatch: the pending versions of namespace {blob.namespace!r}, commit {blob.commit} are corrupted"
        raise CorruptionError(msg)
    try:
        return pa.ipc.open_stream(blob.data).read_all()
    except pa.ArrowException as e:
        msg = f"{where}: unreadable Arrow IPC data in the pending versions of namespace {blob.namespace!r}, commit {blob.commit}"
        raise CorruptionError(msg) from e
