"""Every docstring example in the four packages runs and prints what it says (STYLE B9).

Examples that use ``store`` get a fresh store holding two users, alice
(``{"name": "Alice", "age": 31}``) and bob (``{"name": "Bob", "age": 40}``), so
each example reads the same state whatever ran before it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from datetime import timedelta
from pathlib import Path

import pytest

import koru_core

PACKAGES = ("koru_core", "koru_duckdb", "koru_polars", "koru_dagster")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return names


def _seeded_store(folder: Path) -> koru_core.Store:
    store = koru_core.open(folder)
    store.put("users", "alice", {"name": "Alice", "age": 31})
    store.put("users", "bob", {"name": "Bob", "age": 40})
    return store


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str, tmp_path: Path) -> None:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    stores = []
    for i, test in enumerate(tests):
        if not test.examples:
            continue
        store = _seeded_store(tmp_path / f"store-{i}")
        stores.append(store)
        test.globs.update(store=store, koru=koru_core, timedelta=timedelta)
        runner.run(test)
    for store in stores:
        store.close()
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see output)"


def test_the_store_documents_examples() -> None:
    """Every public Store method shows an example (STYLE B9)."""
    missing = [
        name
        for name in dir(koru_core.Store)
        if not name.startswith("_")
        and callable(getattr(koru_core.Store, name))
        and ">>>" not in (getattr(koru_core.Store, name).__doc__ or "")
    ]
    assert not missing, f"Store methods without an example: {missing}"
