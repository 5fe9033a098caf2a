"""Shared checks for the koru_polars tests: comparing frames with koru_core's Arrow answers."""

from __future__ import annotations

import datetime as dt

import polars as pl
from polars.testing import assert_frame_equal

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def day(n: float) -> dt.datetime:
    """``T0`` plus ``n`` days (tz-aware, UTC)."""
    return T0 + dt.timedelta(days=n)


def as_frame(table: object) -> pl.DataFrame:
    """A ``Store.as_of``/``versions``/``changes`` Arrow table as a DataFrame."""
    frame = pl.from_arrow(table)  # type: ignore[arg-type]
    assert isinstance(frame, pl.DataFrame)
    return frame


def assert_same_rows(actual: pl.DataFrame, expected: pl.DataFrame, by: tuple[str, ...] = ("_key",)) -> None:
    """Equal columns (names, order, dtypes) and equal rows once sorted by ``by``."""
    assert actual.columns == expected.columns
    assert_frame_equal(actual.sort(*by), expected.sort(*by), check_dtypes=True)
