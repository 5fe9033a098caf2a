"""Sorted runs of history rows, spilled and merged in bounded memory (an external merge sort).

A consolidation that works key range by key range closes versions in each range, and
those must end up in one history file sorted by :data:`HISTORY_ORDER` (valid time,
key, commit). Each range's closed versions, sorted, are one *run*; :class:`Runs` keeps
small runs in memory and spills the rest to temporary Parquet files, and
:func:`merge_runs` merges runs (and history files, which are runs too) a batch at a
time: the k-way merge of external sorting (Knuth, TAOCP vol. 3, 5.4.1), with a
*frontier* instead of a heap: every row before the smallest last (valid time, key) of
the runs' current batches can be given out, since no run holds anything before it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from koru_core.read.rules import bisect_key

__all__ = ["HISTORY_ORDER", "Runs", "encoded_run", "first_row", "last_row", "merge_runs"]

HISTORY_ORDER = [("_valid_from", "ascending"), ("_key", "ascending"), ("_commit", "ascending")]
"""History files are sorted by valid time, then key: the versions that hold at a time *t*
start at or before it, a prefix of each file that row-group statistics find (an as-of
read decodes little more than the versions alive at *t*); a key's rows are found by its
``_key`` statistics within runs of one valid time, or by a scan of the ``_key`` column."""

SPILL_BATCH_ROWS = 64 * 1024
"""Rows per row group of a spilled run, and per batch read back."""


class Runs:
    """Sorted runs (tables sorted by :data:`HISTORY_ORDER`, one schema), up to
    ``memory_rows`` rows in memory, the rest spilled to a temporary folder (removed by
    :meth:`close`).

    Args:
        memory_rows: Rows kept in memory before runs go to disk.
    """

    def __init__(self, *, memory_rows: int) -> None:
        self.memory_rows = memory_rows
        self.rows = 0
        self._in_memory: list[pa.Table] = []
        self._held = 0
        self._files: list[Path] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def add(self, run: pa.Table) -> None:
        """Keep one sorted run."""
        if not run.num_rows:
            return
        self.rows += run.num_rows
        if self._held + run.num_rows <= self.memory_rows:
            self._in_memory.append(run)
            self._held += run.num_rows
            return
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="koru-runs-")
        path = Path(self._dir.name) / f"run-{len(self._files):06d}.parquet"
        pq.write_table(run, path, row_group_size=SPILL_BATCH_ROWS, compression="lz4")
        self._files.append(path)

    def sources(self) -> list[Iterable[pa.Table]]:
        """Each run as batches in its order (for :func:`merge_runs`)."""
        return [*([t] for t in self._in_memory), *(_batches(p) for p in self._files)]

    def close(self) -> None:
        """Drop the runs and their temporary files."""
        self._in_memory.clear()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def encoded_run(data: pa.Buffer) -> Iterator[pa.Table]:
    """A sorted run held as an encoded Parquet file in memory, a row group at a time."""
    return _batches(data)


def _batches(path: Path | pa.Buffer) -> Iterator[pa.Table]:
    f = pq.ParquetFile(pa.BufferReader(path) if isinstance(path, pa.Buffer) else path)
    for g in range(f.num_row_groups):
        yield f.read_row_group(g)


def first_row(t: pa.Table) -> tuple[int, str, int]:
    """The (valid time ns, key, commit) of a sorted run's first row."""
    return t["_valid_from"][0].value, t["_key"][0].as_py(), t["_commit"][0].as_py()


def last_row(t: pa.Table) -> tuple[int, str, int]:
    """The (valid time ns, key, commit) of a sorted run's last row."""
    n = t.num_rows - 1
    return t["_valid_from"][n].value, t["_key"][n].as_py(), t["_commit"][n].as_py()


def merge_runs(sources: Iterable[Iterable[pa.Table]], schema: pa.Schema) -> Iterator[pa.Table]:
    """Merge sorted runs into one sequence of tables sorted by :data:`HISTORY_ORDER`.

    Args:
        sources: Each run as its tables in order (every row of a run's table comes at or
            after the rows of its earlier tables); tables of ``schema``'s columns.
        schema: The rows' schema (every table is cast to it).

    Yields:
        Tables of ``schema`` whose concatenation is every row of every run, sorted.
        Memory: one batch per run, plus rows tied at the frontier.
    """
    runs = [iter(s) for s in sources]
    buffers: list[pa.Table | None] = [None] * len(runs)
    done = [False] * len(runs)
    for i in range(len(runs)):
        _refill(runs, buffers, done, i, schema)
    while True:
        live = [i for i in range(len(runs)) if not done[i]]
        if not live:
            rest = [b for b in buffers if b is not None and b.num_rows]
            if rest:
                yield pa.concat_tables(rest).sort_by(HISTORY_ORDER)
            return
        frontier = min(_last(buffers[i]) for i in live)  # type: ignore[arg-type]
        out = []
        for i, b in enumerate(buffers):
            if b is None or not b.num_rows:
                continue
            cut = _before(b, frontier)
            if cut:
                out.append(b.slice(0, cut))
                buffers[i] = b.slice(cut)
        if out:
            yield pa.concat_tables(out).sort_by(HISTORY_ORDER)
        for i in live:  # a run whose batch is all at the frontier reads on (so the frontier moves)
            b = buffers[i]
            if b is None or not b.num_rows or _last(b) == frontier:
                _refill(runs, buffers, done, i, schema)


def _refill(runs: list[Iterator[pa.Table]], buffers: list[pa.Table | None], done: list[bool], i: int,
            schema: pa.Schema) -> None:
    """Append run ``i``'s next non-empty table to its buffer, or mark it done."""
    for t in runs[i]:
        if t.num_rows:
            t = t.select(schema.names).cast(schema)
            b = buffers[i]
            buffers[i] = t if b is None or not b.num_rows else pa.concat_tables([b, t])
            return
    done[i] = True


def _last(t: pa.Table) -> tuple[int, str]:
    return last_row(t)[:2]


def _before(t: pa.Table, frontier: tuple[int, str]) -> int:
    """How many leading rows of sorted ``t`` come before (valid time, key) ``frontier``."""
    valid, key = frontier
    v = t["_valid_from"].combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    lo = int(np.searchsorted(v, valid, side="left"))
    hi = int(np.searchsorted(v, valid, side="right"))
    if lo == hi:
        return lo
    return lo + bisect_key(t["_key"].slice(lo, hi - lo).combine_chunks(), key, right=False)
