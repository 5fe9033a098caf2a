"""Catalog handles on either backend, and a thread runner, for the catalog tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from koru_core.catalog import Catalog, open_catalog


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


def run_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads; return the results, re-raising the first error."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results
