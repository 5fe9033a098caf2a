"""Fixtures for the Dagster suite: a temp Dagster instance, the example project on sys.path.

Dagster is imported inside the fixture, so a core-only install still collects this
folder; each test module starts with ``pytest.importorskip("dagster")``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))  # `import dagster_project`


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Any]:
    """A DagsterInstance in a temp folder, shared by every materialize of one test."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster_home")) as inst:
        yield inst


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    """The path of a fresh koru store folder."""
    return str(tmp_path / "store.koru")
