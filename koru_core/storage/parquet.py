"""Writing koru's Parquet data files, and reading them through a verified, decoded cache.

Writing: a table is serialised in memory (zstd or lz4, page checksums, statistics,
dictionaries only for columns that repeat: :func:`dictionary_columns`),
written durably by the storage, and its size and blake3 recorded by the caller in
the catalog.

Reading: a :class:`FileCache` (one per open store, bounded by bytes) checks a file's
size and blake3 against the catalog the first time the store reads it, and
remembers the file's (size, mtime, ctime, inode). Every read plan re-checks those
with one ``stat`` per file; a file that changed in any way is hashed again before it
is read. File times tick coarsely (a kernel clock tick, a few ms; seconds on some
file systems), so a file changed within :func:`racy_window` (:data:`FINE_RACY_NS`
where times have sub-second digits, else :data:`RACY_NS`) of the moment it was hashed
could keep the same times: such a file stays *racy* and is hashed again by every plan
until its times are older than that (the "racily clean" rule of git's index). Decoded
row groups are kept (least recently used first out), so repeated reads of the same
files decode nothing: the hot tier of DESIGN.md. Parquet page checksums are verified
on every decode.

Residual window (documented in README, "Integrity"): bytes that rot on the device
underneath an unchanged file after it was hashed are caught by the page checksums
when the core decodes them; DuckDB and Polars read the files themselves and do not
check page checksums, so for them such damage is caught by the next ``verify`` or by
a new process (which hashes every file it reads once).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from blake3 import blake3

from koru_core._threads import pool
from koru_core.catalog.entries import FileEntry
from koru_core.errors import CorruptionError

if TYPE_CHECKING:
    from koru_core.storage import Storage
    from koru_core.storage.local import FileStat

__all__ = [
    "DICTIONARY_MAX_SHARE", "DICTIONARY_SAMPLE_ROWS", "ENCODE_THREADS", "FINE_RACY_NS", "RACY_NS", "FileCache", "ParquetSink",
    "dictionary_columns", "racy_window", "write_parquet",
]

Compression = Literal["zstd", "lz4", "none"]

_RANDOM_IDS = frozenset({"_write_id", "_prev_write_id", "_content_id", "_last_write_id"})
"""Columns of unique ids: a dictionary would only be built to be dropped."""

DICTIONARY_SAMPLE_ROWS = 16 * 1024
"""Rows of a column sampled (its first ones) to choose dictionary encoding."""

DICTIONARY_MAX_SHARE = 4
"""A column is dictionary-encoded when its sample has at most 1/4 as many distinct values as rows."""

RACY_NS = 2_000_000_000
"""A file whose mtime or ctime is less than this (2 s, in ns) before the moment it was
hashed is hashed again at the next plan: its times cannot yet tell a later change. For
file times that carry sub-second digits, :data:`FINE_RACY_NS` applies instead."""

FINE_RACY_NS = 50_000_000
"""The racy window (50 ms, in ns) of a file whose mtime and ctime have sub-second digits:
such a file system stamps times from the kernel's coarse clock, which ticks every 1–10 ms
(one jiffy), so a change 50 ms after the hash shows in the times."""


def racy_window(st: FileStat) -> int:
    """The racy window (ns) for a file of :data:`FileStat` ``st``: :data:`FINE_RACY_NS` when
    its mtime and ctime are not whole seconds (a fine-grained file system), else :data:`RACY_NS`."""
    return FINE_RACY_NS if st[1] % 1_000_000_000 and st[2] % 1_000_000_000 else RACY_NS


def write_parquet(
    storage: Storage, rel: str, table: pa.Table, *, row_group_size: int, compression: Compression = "zstd",
) -> tuple[int, bytes]:
    """Write ``table`` durably as Parquet at ``rel``.

    Returns:
        (size in bytes, blake3 of the file's bytes).

    Raises:
        StoreFullError: no space left (nothing is left behind).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink, compression=compression, row_group_size=max(1, row_group_size),
        write_page_checksum=True, write_statistics=True,
        use_dictionary=dictionary_columns(table),
    )
    data = sink.getvalue()
    storage.write(rel, memoryview(data))
    return data.size, blake3(data).digest()


ENCODE_THREADS = 2
"""Threads that encode :class:`ParquetSink` row groups while the caller computes the next
rows (Arrow's Parquet writer releases the GIL; one file is encoded on one thread)."""


class ParquetSink:
    """One Parquet file written from a sequence of tables, as :func:`write_parquet` writes one.

    Rows are buffered until a whole row group of ``row_group_size`` rows is there, so the
    file has the same row groups as if it were written at once; the encoded file is kept
    in memory (compressed: the data's decoded size is never held) and written durably by
    the storage in :meth:`close`. Dictionary columns are chosen from the first rows
    (:func:`dictionary_columns`). Whole row groups are encoded on a background thread
    (:data:`ENCODE_THREADS`), one batch at a time per sink and in order, so two sinks (a
    run's state and history files) and the caller's work proceed together; memory: one
    batch in flight per sink.

    Args:
        storage: Where the file goes.
        rel: Its path in the storage.
        schema: The tables' Arrow schema (every :meth:`write` is cast to it).
        row_group_size: Rows per row group.
        compression: The Parquet codec.
    """

    def __init__(self, storage: Storage, rel: str, schema: pa.Schema, *, row_group_size: int,
                 compression: Compression = "zstd") -> None:
        self.storage, self.rel, self.schema = storage, rel, schema
        self.row_group_size = max(1, row_group_size)
        self.compression = compression
        self.rows = 0
        self._sink = pa.BufferOutputStream()
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._encoding: Future[None] | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows (a table of :attr:`schema`'s columns)."""
        if not table.num_rows:
            return
        self._buffer.append(table.select(self.schema.names).cast(self.schema))
        self._buffered += table.num_rows
        self.rows += table.num_rows
        if self._buffered >= self.row_group_size:
            self._flush(whole_groups=True)

    def _flush(self, *, whole_groups: bool) -> None:
        table = pa.concat_tables(self._buffer)
        n = table.num_rows // self.row_group_size * self.row_group_size if whole_groups else table.num_rows
        if not n:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._sink, self.schema, compression=self.compression, write_page_checksum=True,
                write_statistics=True, use_dictionary=dictionary_columns(table),
            )
        self._wait()
        self._encoding = pool("parquet", ENCODE_THREADS).submit(_encode, self._writer, table.slice(0, n),
                                                                 self.row_group_size)
        rest = table.slice(n)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows

    def _wait(self) -> None:
        """Wait for the batch being encoded (its error, if any, is raised here)."""
        if self._encoding is not None:
            encoding, self._encoding = self._encoding, None
            encoding.result()

    def encoded(self) -> pa.Buffer:
        """Finish the file in memory and return its bytes, without writing it (the sink is done)."""
        if self._buffer:
            self._flush(whole_groups=False)
        self._wait()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression=self.compression,
                                            write_page_checksum=True, write_statistics=True)
        self._writer.close()
        return self._sink.getvalue()

    def close(self) -> tuple[int, bytes]:
        """Write the file durably; returns (size in bytes, blake3 of its bytes).

        Raises:
            StoreFullError: no space left (nothing is left behind).
        """
        data = self.encoded()
        self.storage.write(self.rel, memoryview(data))
        return data.size, blake3(data).digest()


def _encode(writer: pq.ParquetWriter, table: pa.Table, row_group_size: int) -> None:
    """Encode ``table``'s row groups on a pool thread, then give the Arrow memory the
    thread freed back (mimalloc keeps a heap per thread, out of the caller's reach)."""
    writer.write_table(table, row_group_size=row_group_size)
    pa.default_memory_pool().release_unused()


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns of ``table`` worth dictionary encoding: those whose first
    :data:`DICTIONARY_SAMPLE_ROWS` rows repeat (at most 1/:data:`DICTIONARY_MAX_SHARE`
    distinct). Parquet writers build a column's dictionary until it passes its page
    limit and then fall back to plain pages, so a mostly-distinct column (keys in key
    order, prices, ids) costs a dictionary that is thrown away, and its plain pages
    compress better: on 200k synthetic versions, 30 % less write time and 12 % fewer
    bytes than dictionaries on every column.

    Returns:
        Names of ``table``'s columns, in its order: booleans, nested and dictionary
        columns always (Arrow's writer decides for those), the id columns never, a
        column of a type with no distinct count (null) never.
    """
    sample = table.slice(0, DICTIONARY_SAMPLE_ROWS)
    n = sample.num_rows
    always, counted = set(), []
    for name in table.column_names:
        kind = sample.schema.field(name).type
        if name in _RANDOM_IDS or pa.types.is_null(kind):  # a null column has no distinct count: written plain
            continue
        if pa.types.is_boolean(kind) or pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
            always.add(name)
        else:
            counted.append(name)
    distinct = _distinct_counts(sample.select(counted))
    return [c for c in table.column_names if c in always or (c in distinct and distinct[c] * DICTIONARY_MAX_SHARE <= n)]


def _distinct_counts(sample: pa.Table) -> dict[str, int]:
    """Distinct values (null counted as one) per column of ``sample``: Polars' ``n_unique``
    over every column at once, about 3x faster here than :func:`pyarrow.compute.count_distinct`
    per column; that where Polars cannot take a column's type."""
    import polars as pl  # a base dependency (polars-hash); imported here so ``import koru_core`` stays light

    if not sample.num_columns:
        return {}
    try:
        counts = pl.from_arrow(sample).select(pl.all().n_unique())  # type: ignore[union-attr]
        return dict(zip(sample.column_names, counts.row(0), strict=True))
    except Exception:  # noqa: BLE001 - a type Polars does not read: count with Arrow
        out = {}
        for name in sample.column_names:
            try:
                out[name] = pc.count_distinct(sample[name], mode="all").as_py()
            except pa.ArrowNotImplementedError:
                continue
        return out


class _Verified:
    """Files any store of this process hashed, by URI: ``(checksum, stat, times trusted)``.

    Metadata only (no decoded bytes), at most :data:`SHARED_VERIFIED` entries, least
    recently added out. A store reading a file another store (or an earlier opening)
    verified trusts it on the same terms as its own record: same checksum, and the
    same size, times and inode, outside the racy window.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, FileStat, bool]] = OrderedDict()

    def get(self, uri: str) -> tuple[bytes, FileStat, bool] | None:
        with self._lock:
            return self._entries.get(uri)

    def put(self, uri: str, known: tuple[bytes, FileStat, bool]) -> None:
        with self._lock:
            if not known[2]:
                self._entries.pop(uri, None)  # racy: each store hashes it again until its times are old
                return
            self._entries[uri] = known
            self._entries.move_to_end(uri)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)


SHARED_VERIFIED = 65536
"""Files remembered as verified across the stores of one process (:class:`_Verified`)."""

_SHARED = _Verified(SHARED_VERIFIED)

SHARED_TYPES = 4096
"""Files whose column types (from the footer) are remembered across the stores of one
process, by URI and checksum, least recently added out: a store opened for one scan
(``scan_koru(path)``) plans without parsing footers again."""

_SHARED_TYPES: OrderedDict[tuple[str, bytes], list[tuple[str, pa.DataType]]] = OrderedDict()
_SHARED_TYPES_LOCK = threading.Lock()


_BY_KEY = "__by_key:"
"""Prefix of a column's copy in key order in a file's cache slot (:meth:`FileCache.read_by_key`)."""


def _whole_slot(e: FileEntry, md: pq.FileMetaData) -> tuple[str, int]:
    """The cache slot of a file's whole columns: ``(path, -1)``, or ``(path, 0)`` for a file
    of one row group (its only row group is the whole file)."""
    return (e.path, -1 if md.num_row_groups > 1 else 0)


@dataclass(frozen=True, slots=True)
class RowGroupStats:
    """Per row group of a file: the bounds of ``_key``, ``_valid_from`` and ``_valid_to``
    its statistics give (the physical values: UTF-8 bytes, int64 ns), for pruning.

    Attributes:
        key_min, key_max: UTF-8 bytes per group, None where the file has no statistics.
        valid_min: int64 ns per group (``np.iinfo(np.int64).min`` where unknown).
        valid_to_max: int64 ns per group (``np.iinfo(np.int64).max`` where unknown or a
            row's ``_valid_to`` is null: the group may hold an open version).
    """

    COLUMNS: ClassVar[tuple[str, ...]] = ("_key", "_valid_from", "_valid_to")

    key_min: list[bytes | None]
    key_max: list[bytes | None]
    valid_min: np.ndarray
    valid_to_max: np.ndarray


def _row_group_stats(md: pq.FileMetaData, index: dict[str, int | None]) -> RowGroupStats:
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    n = md.num_row_groups
    arrow = md.schema.to_arrow_schema()
    scale = {name: _NS_PER.get(getattr(arrow.field(name).type, "unit", "ns"), 1)
             for name in ("_valid_from", "_valid_to") if name in arrow.names}  # raw values in the stored unit
    key_min: list[bytes | None] = [None] * n
    key_max: list[bytes | None] = [None] * n
    valid_min = np.full(n, lo, dtype=np.int64)
    valid_to_max = np.full(n, hi, dtype=np.int64)
    for g in range(n):
        rg = md.row_group(g)
        if index["_key"] is not None:
            st = rg.column(index["_key"]).statistics
            if st is not None and st.has_min_max:
                key_min[g], key_max[g] = _utf8(st.min_raw), _utf8(st.max_raw)
        if index["_valid_from"] is not None:
            st = rg.column(index["_valid_from"]).statistics
            if st is not None and st.has_min_max:
                valid_min[g] = st.min_raw * scale["_valid_from"]
        if index["_valid_to"] is not None:
            st = rg.column(index["_valid_to"]).statistics
            if st is not None and st.has_min_max and st.null_count == 0:
                valid_to_max[g] = st.max_raw * scale["_valid_to"]
    return RowGroupStats(key_min, key_max, valid_min, valid_to_max)


_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _utf8(raw: object) -> bytes:
    return raw if isinstance(raw, bytes) else str(raw).encode()


class FileCache:
    """Verified files and decoded row groups of one store (see the module docstring).

    Args:
        storage: Where the files are.
        limit: Bytes of decoded data to keep (0 keeps none).

    Thread-safe.
    """

    def __init__(self, storage: Storage, *, limit: int) -> None:
        self.storage = storage
        self.limit = limit
        self._lock = threading.RLock()
        self._verified: dict[str, tuple[bytes, FileStat, bool]] = {}  # checksum, stat, times trusted (not racy)
        self._meta: dict[str, pq.FileMetaData] = {}
        self._types: dict[str, list[tuple[str, pa.DataType]]] = {}
        self._name_sets: dict[str, frozenset[str]] = {}
        self._starts: dict[str, np.ndarray] = {}
        self._stats: dict[str, RowGroupStats] = {}
        self._estimates: dict[str, int] = {}  # decoded bytes, from the footer
        self._groups: OrderedDict[tuple[str, int], dict[str, pa.Array]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Decoded bytes held."""
        return self._bytes

    def clear(self) -> None:
        """Drop every decoded row group (files stay verified)."""
        with self._lock:
            self._groups.clear()
            self._bytes = 0

    def validate(self, entries: Sequence[FileEntry]) -> None:
        """Check that each file is present and unchanged since it was verified; hash new or changed ones.

        Raises:
            CorruptionError: a file is missing, a symlink, of the wrong size or blake3.
        """
        for e in entries:
            known = self._verified.get(e.path)
            if known is None:  # another store of this process may have hashed it
                known = _SHARED.get(self.storage.uri(e.path))
            if self.storage.immutable and known is not None and known[0] == e.checksum:
                continue  # object storage: a file once written never changes
            st = self.storage.stat(e.path)
            if st is None:
                msg = f"{self.storage.uri(e.path)}: data file of namespace {e.namespace!r} is missing"
                raise CorruptionError(msg)
            if known is not None and known == (e.checksum, st, True):
                self._verified.setdefault(e.path, known)
                continue
            self._verify(e, st)

    def _verify(self, e: FileEntry, st: FileStat) -> None:
        started = time.time_ns()
        if st[0] != e.bytes:
            msg = f"{self.storage.uri(e.path)}: data file is {st[0]} bytes, the catalog recorded {e.bytes}"
            raise CorruptionError(msg)
        data = self.storage.read(e.path)
        if blake3(data, max_threads=blake3.AUTO).digest() != e.checksum:
            msg = f"{self.storage.uri(e.path)}: data file does not match its blake3 checksum in the catalog"
            raise CorruptionError(msg)
        with self._lock:
            known = self._verified.get(e.path)
            # racy: a change in the same clock tick as this hash would not show in its times
            self._verified[e.path] = (e.checksum, st, started - max(st[1], st[2]) >= racy_window(st))
            _SHARED.put(self.storage.uri(e.path), self._verified[e.path])
            if known is None or known[:2] != (e.checksum, st):  # other bytes than those decoded before
                self._meta.pop(e.path, None)
                self._types.pop(e.path, None)
                self._name_sets.pop(e.path, None)
                self._starts.pop(e.path, None)
                self._stats.pop(e.path, None)
                self._estimates.pop(e.path, None)
                for k in [k for k in self._groups if k[0] == e.path]:
                    self._drop(k)

    def metadata(self, e: FileEntry) -> pq.FileMetaData:
        """The file's Parquet footer (parsed once)."""
        md = self._meta.get(e.path)
        if md is None:
            try:
                md = pq.ParquetFile(self.storage.source(e.path)).metadata
            except (pa.ArrowException, OSError) as err:
                msg = f"{self.storage.uri(e.path)}: data file is corrupted: {err}"
                raise CorruptionError(msg) from err
            with self._lock:
                self._meta[e.path] = md
        return md

    def prime(self, e: FileEntry, table: pa.Table) -> None:
        """Remember a file this store just wrote: verified (its checksum is the one computed
        while writing it) and, within the byte limit, decoded (``table`` is what it holds),
        so that the next read of it, by a reader or by consolidation, decodes nothing."""
        st = self.storage.stat(e.path)
        if st is None:
            return
        md = self.metadata(e)
        with self._lock:  # racy until its times are racy_window old: hashed again by the next plan till then
            self._verified[e.path] = (e.checksum, st, time.time_ns() - max(st[1], st[2]) >= racy_window(st))
            if self.limit <= 0 or table.nbytes > self.limit // 4 or not md.num_row_groups:
                return
            slot = self._groups.setdefault(_whole_slot(e, md), {})
            for c in table.column_names:
                if c not in slot:
                    arr = table[c].combine_chunks()
                    slot[c] = arr
                    self._bytes += arr.nbytes
            self._evict()

    def key_order(self, e: FileEntry) -> tuple[pa.Array, pa.Array]:
        """A file's ``_key`` column and the row order that sorts it (uint32), for finding one
        key's rows in a file that is not sorted by key; computed once, kept with the file's
        decoded columns (counted in the byte limit)."""
        keys = self.read(e, ["_key"])["_key"]
        keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        slot_key = _whole_slot(e, self.metadata(e))
        with self._lock:
            slot = self._groups.get(slot_key)
            order = slot.get("__key_order") if slot is not None else None
        if order is None:
            order = pc.sort_indices(keys).cast(pa.uint32())
            with self._lock:
                slot = self._groups.get(slot_key)
                if slot is not None and self.limit > 0:
                    slot["__key_order"] = order
                    self._bytes += order.nbytes
                    self._evict()
        return keys, order

    def keeps_by_key(self, e: FileEntry) -> bool:
        """True when point reads of the file should use :meth:`read_by_key`: it has one row
        group (at most a row group's rows, so the copy in key order is small), or its copy
        in key order is kept already, or may be: its decoded size (:meth:`_decoded_estimate`)
        is at most 1/8 of the byte limit and, with the copies already kept, at most 1/4.

        Raises:
            CorruptionError: the file's footer cannot be read.
        """
        if self.metadata(e).num_row_groups < 2:
            return True
        estimate = self._decoded_estimate(e)
        if estimate * 8 > self.limit:
            return False
        with self._lock:
            slot = self._groups.get((e.path, -1))
            if slot is not None and f"{_BY_KEY}_key" in slot:
                return True
            kept = sum(a.nbytes for slot in self._groups.values() for c, a in slot.items()
                       if c.startswith(_BY_KEY))
        return (kept + estimate) * 4 <= self.limit

    def _decoded_estimate(self, e: FileEntry) -> int:
        """Bytes the file's columns take decoded: three times its pages' uncompressed size
        from the footer (what Arrow arrays of koru's files take, ids and strings included);
        computed once per file."""
        estimate = self._estimates.get(e.path)
        if estimate is None:
            md = self.metadata(e)
            estimate = 3 * sum(md.row_group(g).total_byte_size for g in range(md.num_row_groups))
            with self._lock:
                self._estimates[e.path] = estimate
        return estimate

    def holds_whole(self, e: FileEntry, columns: Sequence[str]) -> bool:
        """True when ``columns`` (those the file has) of every row group are decoded and kept,
        as one chunk per column: :meth:`read` of the whole file then decodes and copies nothing.

        Raises:
            CorruptionError: the file's footer cannot be read.
        """
        md = self.metadata(e)
        wanted = [c for c in columns if c in self._names(e)]
        with self._lock:
            slot = self._groups.get(_whole_slot(e, md))
            return slot is not None and all(c in slot for c in wanted)

    def may_keep_whole(self, e: FileEntry) -> bool:
        """True when decoding the whole file for point reads stays within budget: its
        decoded size (:meth:`_decoded_estimate`) is at most 1/4 of the byte limit, and with
        the files already kept whole at most half of it. Beyond that a point read gathers
        from the row groups holding its rows, so many large files never push each other
        out in turn.

        Raises:
            CorruptionError: the file's footer cannot be read.
        """
        estimate = self._decoded_estimate(e)
        if estimate * 4 > self.limit:
            return False
        with self._lock:
            whole = sum(a.nbytes for (_, g), slot in self._groups.items() if g == -1 for a in slot.values())
        return (whole + estimate) * 2 <= self.limit

    def read_by_key(self, e: FileEntry, columns: Sequence[str]) -> pa.Table:
        """Read ``columns`` of a verified file with its rows in ``_key`` order (a stable sort:
        one key's rows stay in file order), for point reads of a file not sorted by key.

        The reordered columns are kept with the file's decoded columns (counted in the byte
        limit), so the next point read of the file slices them. Columns the file lacks come
        back absent, as in :meth:`read` (so ``columns`` should hold ``_key``, which every
        file has: a selection of no column has no rows).

        Raises:
            CorruptionError: as :meth:`read`.
        """
        md = self.metadata(e)
        wanted = [c for c in columns if c in self._names(e)]
        slot_key = _whole_slot(e, md)
        with self._lock:
            slot = self._groups.get(slot_key)
            have = {c: slot[f"{_BY_KEY}{c}"] for c in wanted if slot is not None and f"{_BY_KEY}{c}" in slot}
        missing = [c for c in wanted if c not in have]
        if missing:
            _, order = self.key_order(e)
            taken = self.read(e, missing).take(order)
            with self._lock:
                slot = self._groups.get(slot_key)
                for c in missing:
                    arr = taken[c].combine_chunks()
                    have[c] = arr
                    if slot is not None and self.limit > 0 and f"{_BY_KEY}{c}" not in slot:
                        slot[f"{_BY_KEY}{c}"] = arr
                        self._bytes += arr.nbytes
                self._evict()
        return pa.table({c: have[c] for c in wanted})

    def column_types(self, e: FileEntry) -> list[tuple[str, pa.DataType]]:
        """The file's columns as (name, Arrow type), in order, from its footer (once per file
        and process: call it on a validated file, whose checksum names its bytes).

        Raises:
            CorruptionError: the footer cannot be read.
        """
        types = self._types.get(e.path)
        if types is None:
            shared = (self.storage.uri(e.path), e.checksum)  # the same bytes in any store of this process
            with _SHARED_TYPES_LOCK:
                types = _SHARED_TYPES.get(shared)
            if types is None:
                types = [(f.name, f.type) for f in self.metadata(e).schema.to_arrow_schema()]
                with _SHARED_TYPES_LOCK:
                    _SHARED_TYPES[shared] = types
                    while len(_SHARED_TYPES) > SHARED_TYPES:
                        _SHARED_TYPES.popitem(last=False)
            with self._lock:
                self._types[e.path] = types
        return types

    def _names(self, e: FileEntry) -> frozenset[str]:
        names = self._name_sets.get(e.path)
        if names is None:
            names = frozenset(name for name, _ in self.column_types(e))
            with self._lock:
                self._name_sets[e.path] = names
        return names

    def row_group_starts(self, e: FileEntry) -> np.ndarray:
        """The first row of each row group, then the row count (int64, ``num_row_groups + 1``
        values), from the footer; computed once per file."""
        starts = self._starts.get(e.path)
        if starts is None:
            md = self.metadata(e)
            starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)]).astype(np.int64)
            with self._lock:
                self._starts[e.path] = starts
        return starts

    def row_group_stats(self, e: FileEntry) -> RowGroupStats:
        """The statistics reads prune row groups by, from the footer, once per file
        (pyarrow builds a statistics object per call: 20 µs per row group and column)."""
        stats = self._stats.get(e.path)
        if stats is None:
            stats = _row_group_stats(self.metadata(e), {n: self.column_index(e, n) for n in RowGroupStats.COLUMNS})
            with self._lock:
                self._stats[e.path] = stats
        return stats

    def column_index(self, e: FileEntry, name: str) -> int | None:
        """The leaf index of a top-level primitive column (for row-group statistics), or None."""
        md = self.metadata(e)
        if not md.num_row_groups:
            return None
        rg = md.row_group(0)
        for i in range(rg.num_columns):
            if rg.column(i).path_in_schema == name:
                return i
        return None

    def read(self, e: FileEntry, columns: Sequence[str], *, row_groups: Sequence[int] | None = None,
             keep: bool = True) -> pa.Table:
        """Read ``columns`` of a verified file (all row groups, or the given ones), in file order.

        Columns the file lacks come back absent (the caller conforms schemas). A whole-file
        read returns one chunk per column (kept combined, so a later ``take`` over it does
        not concatenate row groups again); a read of some row groups slices it.
        ``keep=False``: what was not decoded already is not kept (consolidation's reads of
        the files it replaces, which no later read will want).

        Raises:
            CorruptionError: a page fails its checksum or the file cannot be decoded.
        """
        md = self.metadata(e)
        names = self._names(e)
        wanted = [c for c in columns if c in names]
        groups = list(range(md.num_row_groups)) if row_groups is None else list(row_groups)
        whole = self._whole(e, md, wanted, groups)
        if whole is not None:
            self.hits += 1
            return whole
        missing: dict[int, list[str]] = {}
        with self._lock:
            for g in groups:
                have = self._groups.get((e.path, g))
                need = [c for c in wanted if have is None or c not in have]
                if need:
                    missing[g] = need
                elif have is not None:
                    self._groups.move_to_end((e.path, g))
        loaded: dict[int, dict[str, pa.Array]] = {}
        if missing and not keep and wanted and len(missing) == len(groups) \
                and all(len(need) == len(wanted) for need in missing.values()):
            self.misses += 1  # nothing of it decoded, nothing to keep: the decoded table as it comes
            return self._decode(e, md, groups, wanted)
        if missing:
            self.misses += 1
            loaded = self._load(e, md, missing, keep=keep)
        else:
            self.hits += 1
        parts = []
        with self._lock:
            for g in groups:
                have = {**(self._groups.get((e.path, g)) or {}), **loaded.get(g, {})}
                if wanted:
                    parts.append(pa.table({c: have[c] for c in wanted}))
                else:
                    parts.append(pa.table({"__n": pa.nulls(md.row_group(g).num_rows)}).drop_columns(["__n"]))
        if not parts:
            return pa.table({c: pa.array([], md.schema.to_arrow_schema().field(c).type) for c in wanted})
        if len(parts) == 1:
            return parts[0]
        table = pa.concat_tables(parts)
        if row_groups is None and wanted and keep:
            return self._keep_whole(e, md, table)
        return table

    def _whole(self, e: FileEntry, md: pq.FileMetaData, wanted: list[str], groups: list[int]) -> pa.Table | None:
        """The read from the file's combined columns, when they hold every wanted column."""
        if not wanted or md.num_row_groups < 2:
            return None
        with self._lock:
            slot = self._groups.get((e.path, -1))
            if slot is None or any(c not in slot for c in wanted):
                return None
            self._groups.move_to_end((e.path, -1))
            table = pa.table({c: slot[c] for c in wanted})
        if groups == list(range(md.num_row_groups)):
            return table
        starts = [0]
        for g in range(md.num_row_groups):
            starts.append(starts[-1] + md.row_group(g).num_rows)
        return pa.concat_tables([table.slice(starts[g], starts[g + 1] - starts[g]) for g in groups])

    def _keep_whole(self, e: FileEntry, md: pq.FileMetaData, table: pa.Table) -> pa.Table:
        """Combine a whole-file read into one chunk per column and keep that instead of its row groups."""
        combined = {c: table[c].combine_chunks() for c in table.column_names}
        if self.limit <= 0:
            return pa.table(combined)
        with self._lock:
            slot = self._groups.setdefault((e.path, -1), {})
            self._groups.move_to_end((e.path, -1))
            for c, arr in combined.items():
                if c not in slot:
                    slot[c] = arr
                    self._bytes += arr.nbytes
            for g in range(md.num_row_groups):
                part = self._groups.get((e.path, g))
                if part is None:
                    continue
                for c in combined:
                    dropped = part.pop(c, None)
                    if dropped is not None:
                        self._bytes -= dropped.nbytes
                if not part:
                    del self._groups[(e.path, g)]
            self._evict()
        return pa.table(combined)

    def _load(self, e: FileEntry, md: pq.FileMetaData, missing: dict[int, list[str]], *,
              keep: bool = True) -> dict[int, dict[str, pa.Array]]:
        columns = sorted({c for cs in missing.values() for c in cs})
        groups = sorted(missing)
        table = self._decode(e, md, groups, columns)
        start = 0
        out: dict[int, dict[str, pa.Array]] = {}
        with self._lock:
            for g in groups:
                n = md.row_group(g).num_rows
                piece = table.slice(start, n)
                start += n
                out[g] = {c: piece[c].combine_chunks() for c in columns}
                if self.limit <= 0 or not keep:
                    continue
                slot = self._groups.setdefault((e.path, g), {})
                self._groups.move_to_end((e.path, g))
                for c, arr in out[g].items():
                    if c not in slot:
                        slot[c] = arr
                        self._bytes += arr.nbytes
            self._evict()
        return out

    def _decode(self, e: FileEntry, md: pq.FileMetaData, groups: list[int], columns: list[str]) -> pa.Table:
        """Decode ``columns`` of row groups ``groups`` of a verified file, checking every page's checksum.

        Raises:
            CorruptionError: a page fails its checksum or the file cannot be decoded.
        """
        try:
            f = pq.ParquetFile(self.storage.source(e.path), metadata=md, page_checksum_verification=True)
            return f.read_row_groups(groups, columns=columns)
        except (pa.ArrowException, OSError) as err:
            msg = f"{self.storage.uri(e.path)}: data file is corrupted: {err}"
            raise CorruptionError(msg) from err

    def _drop(self, k: tuple[str, int]) -> None:
        slot = self._groups.pop(k, None)
        if slot:
            self._bytes -= sum(a.nbytes for a in slot.values())

    def _evict(self) -> None:
        while self._bytes > self.limit and self._groups:
            self._drop(next(iter(self._groups)))

    def forget(self, paths: Sequence[str]) -> None:
        """Forget files that were deleted (vacuum)."""
        with self._lock:
            for p in paths:
                self._verified.pop(p, None)
                self._meta.pop(p, None)
                self._types.pop(p, None)
                self._name_sets.pop(p, None)
                self._starts.pop(p, None)
                self._stats.pop(p, None)
                self._estimates.pop(p, None)
                for k in [k for k in self._groups if k[0] == p]:
                    self._drop(k)
