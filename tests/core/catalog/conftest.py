"""One set of catalog tests, two backends: every test taking ``backend`` or ``catalog`` runs
against SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh schema ``t_<hex>`` in the
session server's ``koru_test`` database, ``tests/servers.py``, dropped afterwards; a server
that cannot start fails the test, never skips it)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import _drafts, _backends`

from _backends import Backend  # noqa: E402

from koru_core.catalog import Catalog  # noqa: E402


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
