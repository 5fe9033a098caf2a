"""``import koru_duckdb`` without its extra fails with an ImportError naming the extra (STYLE.md B8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import koru_duckdb

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("missing", ["duckdb", "sqlglot"])
def test_missing_engine_names_the_extra(missing: str) -> None:
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "try:\n    import koru_duckdb\nexcept ImportError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "koru_duckdb needs DuckDB: pip install 'koru-lake[duckdb]'", done.stderr


def test_public_api() -> None:
    assert koru_duckdb.__all__ == sorted(koru_duckdb.__all__) == ["KoruConnection", "KoruInstall", "connect", "export", "install"]
    for name in koru_duckdb.__all__:
        assert "Example" in (getattr(koru_duckdb, name).__doc__ or ""), name
