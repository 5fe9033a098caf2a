"""Every DuckDB snippet of the README runs and answers as the core does (issue 13).

The Python blocks after ``<!-- duckdb-snippet -->`` run with ``store`` holding the
customers of ``examples/02_time_travel_duckdb.py`` (commit 5 is a late arrival: acme
went "team" in March). Each ``con.sql(...)`` line's rows are collected and checked.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import koru_core as koru

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def blocks() -> list[str]:
    return re.findall(r"<!-- duckdb-snippet -->\n```python\n(.*?)```", README, flags=re.S)


@pytest.fixture
def customers(store: koru.Store) -> koru.Store:
    store.put("customers", "acme", {"plan": "free", "seats": 3}, valid_from=utc(2024, 1, 1))
    store.put("customers", "globex", {"plan": "pro", "seats": 40}, valid_from=utc(2024, 2, 1))
    store.put("customers", "acme", {"plan": "pro", "seats": 12}, valid_from=utc(2024, 6, 1))
    store.delete("customers", "globex", valid_from=utc(2024, 9, 1))
    store.put("customers", "acme", {"plan": "team", "seats": 8}, valid_from=utc(2024, 3, 1))
    return store


def run(block: str, store: koru.Store) -> list[list[tuple[Any, ...]]]:
    """Run ``block`` with ``store``; the rows of each ``con.sql(...)`` line, in order."""
    lines = [
        re.sub(r"^con\.sql\((.*)\)(\s*#.*)?$", r"results.append(sorted(con.sql(\1).fetchall()))", line)
        for line in block.splitlines()
    ]
    scope: dict[str, Any] = {"store": store, "results": []}
    exec("\n".join(lines), scope)  # noqa: S102 - the README's own code
    scope["con"].close()
    return scope["results"]  # type: ignore[no-any-return]


def test_the_readme_has_the_duckdb_snippets() -> None:
    assert len(blocks()) == 2


def test_the_connect_snippet(customers: koru.Store) -> None:
    valid, same, v4, system, history, changes, commits = run(blocks()[0], customers)
    assert valid == same == [("acme", "team"), ("globex", "pro")]  # the late arrival holds on April 1
    assert [r[:2] for r in v4] == [("pro", 12)]  # commit 4: before the late arrival was recorded
    assert system == []  # 2024-06-01 is before the store's first commit: an empty state
    assert [r[0] for r in history] == ["free", "pro", "team"]
    assert {r[2] for r in changes} <= {"insert", "update", "delete"} and changes
    assert len(commits) == 5


def test_the_install_snippet(customers: koru.Store) -> None:
    valid, both, system, count = run(blocks()[1], customers)
    assert valid == [("acme", "team"), ("globex", "pro")]
    assert both == [("acme", "free"), ("globex", "pro")]  # commit 4 did not know of March yet
    assert system == []
    assert count == [(1,)]
    assert valid == sorted((r["_key"], r["plan"]) for r in customers.as_of("customers", at=utc(2024, 4, 1)).to_pylist())
