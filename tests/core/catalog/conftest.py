"""One set of catalog tests, two backends: every test taking ``backend`` or ``catalog`` runs
against SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh database on the session's
server, ``tests/servers.py``; a server that cannot start fails the test, never skips it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import _drafts`

from koru_core.catalog import Catalog, open_catalog  # noqa: E402


@dataclass
class Backend:
    """Where one test's catalog lives, and every handle the test opened on it (closed afterwards)."""

    name: str
    target: str
    created: bool = False
    handles: list[Catalog] = field(default_factory=list)

    def open(self, *, read_only: bool = False, timeout: float = 10.0) -> Catalog:
        """Open a new handle (the first one creates the catalog)."""
        catalog = open_catalog(self.target, create=not self.created and not read_only, read_only=read_only,
                               timeout=timeout)
        self.created = True
        self.handles.append(catalog)
        return catalog

    def close(self) -> None:
        for catalog in self.handles:
            catalog.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The catalog's place for this test, on each backend."""
    if request.param == "sqlite":
        target = str(tmp_path / "catalog.sqlite")
    else:
        target = request.getfixturevalue("pg_url") + "?koru_schema=store_a"
    b = Backend(request.param, target)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def catalog(backend: Backend) -> Catalog:
    """A new, empty catalog on each backend."""
    return backend.open()
