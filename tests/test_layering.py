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


OPTIONAL_DEPENDENCIES = {
    "koru_dagster": {"koru_polars": None, "koru_duckdb": "koru_dagster/sql.py"},
}
"""The integration-to-integration imports allowed, each lazy (inside a function) and in one
module: koru_dagster may load koru_polars (STYLE B1.1; in any one module), and koru_duckdb in
``koru_dagster/sql.py`` alone, where ``koru_sql_asset`` runs its query (issue 14: a SQL asset
needs DuckDB, so ``koru-lake[dagster]`` users without the duckdb extra can use every other asset)."""


@pytest.mark.parametrize("package", INTEGRATIONS)
def test_integrations_depend_on_koru_core_alone(package: str) -> None:
    """Each integration imports koru_core and no other integration, except the lazy imports
    of :data:`OPTIONAL_DEPENDENCIES`."""
    allowed = OPTIONAL_DEPENDENCIES.get(package, {})
    others = [p for p in INTEGRATIONS if p != package]
    hits: dict[str, dict[str, str]] = {}  # imported integration -> {file: lines}
    for path in sources(package):
        for name, line in imports_of(path):
            top = name.split(".")[0]
            if top in others:
                hits.setdefault(top, {}).setdefault(str(path.relative_to(ROOT)), "")
                hits[top][str(path.relative_to(ROOT))] += f"{line} "
    unexpected = {other: files for other, files in hits.items() if other not in allowed}
    assert not unexpected, f"{package} imports another integration: {unexpected}"
    for other, files in hits.items():
        assert len(files) == 1, f"{package} imports {other} from several modules: {files}"
        file = next(iter(files))
        if allowed[other] is not None:
            assert file == allowed[other], f"{package} may import {other} only in {allowed[other]}, not {file}"
        top = {n for n, _ in _top_level_imports(ROOT / file)}
        assert other not in top, f"{file} imports {other} at module level (it must be lazy: an optional extra)"


def _top_level_imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found
