"""The folders are the architecture (STYLE.md B1.1): koru_core knows nothing of
DuckDB, Polars or Dagster, and each integration depends on koru_core alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
INTEGRATIONS = ("koru_duckdb", "koru_polars", "koru_dagster")
ENGINES = ("duckdb", "polars", "dagster")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module a source file imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_import_koru_core_loads_no_engine() -> None:
    code = (
        "import sys, json, koru_core\n"
        "store = koru_core.open(sys.argv[1])\n"
        "store.put('users', 'a', {'x': 1}); store.get('users', 'a'); store.as_of('users')\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(ENGINES)!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code, tmp + "/s"], capture_output=True, text=True, env=env,
                             timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [], "importing and using koru_core loaded an engine"


APPLICATIONS = ("koru_core/cli/sql.py", "koru_core/demo.py")
"""The command line's ``koru sql`` and ``koru demo`` are applications of every
package (STYLE B3 places both in koru_core): they may load an integration inside
the function that needs it, never at module level, so importing koru_core (or its
CLI) never loads an engine."""


def test_koru_core_source_never_imports_integrations() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sources("koru_core")
        for name, line in imports_of(path)
        if name.split(".")[0] in INTEGRATIONS and str(path.relative_to(ROOT)) not in APPLICATIONS
    ]
    assert not bad, bad


@pytest.mark.parametrize("module", APPLICATIONS)
def test_applications_load_integrations_only_inside_functions(module: str) -> None:
    top = {name.split(".")[0] for name, _ in _top_level_imports(ROOT / module)}
    assert not top & set(INTEGRATIONS), f"{module} imports an integration at module level"


def test_the_cli_imports_no_engine() -> None:
    code = "import sys, koru_core.cli; print([m for m in ('duckdb', 'polars', 'dagster') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("package", INTEGRATIONS)
def test_integrations_depend_on_koru_core_alone(package: str) -> None:
    """koru_dagster may import koru_polars lazily, in a single module (B1.1)."""
    others = [p for p in INTEGRATIONS if p != package]
    hits: dict[str, list[str]] = {}
    for path in sources(package):
        for name, line in imports_of(path):
            if name.split(".")[0] in others:
                hits.setdefault(str(path.relative_to(ROOT)), []).append(f"{line}: {name}")
    if package == "koru_dagster":
        assert len(hits) <= 1, f"koru_dagster imports koru_polars from several modules: {hits}"
        assert not any("koru_duckdb" in n for v in hits.values() for n in v), hits
        for file in hits:
            top = {n for n, _ in _top_level_imports(ROOT / file)}
            assert not top & {"koru_polars"}, f"{file} imports koru_polars at module level"
    else:
        assert not hits, f"{package} imports another integration: {hits}"


def _top_level_imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found
