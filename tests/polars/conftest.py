"""Fixtures for the koru_polars tests: real stores in ``tmp_path``, nothing mocked."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

import koru_core as koru

sys.path.insert(0, str(Path(__file__).parent))  # `import polars_checks` from the tests (after importorskip)


def day(n: float) -> dt.datetime:
    """2024-01-01 UTC plus ``n`` days (as ``polars_checks.day``; this module must not need Polars)."""
    return dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=n)


@pytest.fixture
def store(tmp_path):
    s = koru.open(tmp_path / "data.koru")
    yield s
    s.close()


@pytest.fixture
def users(store):
    """Namespace ``users`` with a value correction that a filter-then-as-of would get wrong.

    ``alice``: age 40 at day 1, corrected to 20 at day 2 (a later commit).
    ``bob``: age 10 at day 1, then 50 at day 3; ``carol``: 60 at day 1, deleted at day 2.
    Commits 1-2 are flushed to data files; commits 3-4 are still pending.
    """
    store.upsert("users", [{"id": "alice", "age": 40}, {"id": "bob", "age": 10},
                           {"id": "carol", "age": 60}], key="id", valid_from=day(1))
    store.put("users", "alice", {"id": "alice", "age": 20}, valid_from=day(2))
    store.flush()
    store.delete("users", "carol", valid_from=day(2))
    store.put("users", "bob", {"id": "bob", "age": 50}, valid_from=day(3))
    return store
