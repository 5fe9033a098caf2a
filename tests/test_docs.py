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


def test_every_cli_command_and_option_is_documented() -> None:
    """Every ``koru`` command has help and appears in the README's command line part, with
    each of its options (sqlite-utils ``test_docs.py``; issue 13 added commands and options)."""
    import click

    from koru_core.cli import main
    from koru_core.cli._common import common_options

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    part = readme[readme.index("## The command line"):]
    part = part[: part.index("\n## ", 1)]
    shared = {opt for option in common_options() for opt in option.opts} | {"--help", "-h", "--version"}
    missing = [f"--{p.name}" for p in main.params if isinstance(p, click.Option) and p.opts[0] not in part
               and p.opts[0] not in ("--version",)]
    for name, command in sorted(main.commands.items()):
        assert command.help and len(command.help.split()) > 3, f"koru {name} has no help"
        if f"`koru {name}" not in part and f"/ `koru {name}" not in part:
            missing.append(f"koru {name}")
        for param in command.params:
            if isinstance(param, click.Option):
                missing += [f"koru {name} {o}" for o in param.opts if o not in shared and o not in part]
    assert not missing, f"not in README.md's command line part: {missing}"
