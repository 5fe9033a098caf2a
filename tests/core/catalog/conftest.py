"""One set of catalog tests, two backends: every test taking ``backend`` or ``catalog`` runs
against SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh schema ``t_<hex>`` in the
session server's ``koru_test`` database, ``tests/servers.py``, dropped afterwards; a server
that cannot start fails the test, never skips it)."""

from __future__ import annotations

import sys
import uuid
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
    schema: str = ""
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
        b = Backend("sqlite", str(tmp_path / "catalog.sqlite"))
    else:
        server = request.getfixturevalue("pg_server")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        b = Backend("postgres", f"{server.url}?koru_schema={schema}", schema=schema)
    try:
        yield b
    finally:
        b.close()
        if b.schema:
            server.execute(f"DROP SCHEMA IF EXISTS {b.schema} CASCADE", database="koru_test")


@pytest.fixture
def catalog(backend: Backend) -> Catalog:
    """A new, empty catalog on each backend."""
    return backend.open()
