"""The Polars examples run: ``examples/03_polars_lazy.py`` and the flights notebook (nbclient)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("polars")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _env() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def test_polars_lazy_example_runs():
    script = EXAMPLES / "03_polars_lazy.py"
    source = script.read_text()
    assert source.startswith('"""')
    assert len(source.splitlines()) < 60
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "CommitResult(commit=2, written=2" in out.stdout
    assert "update" in out.stdout


def test_flights_notebook_executes(monkeypatch):
    pytest.importorskip("matplotlib")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(EXAMPLES / "flights_notebook.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300,
                                    resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "CommitResult(commit=1" in text
    assert "CommitResult(commit=3" in text
    assert "versions" in text and "_valid_to" in text  # the aircraft's history
    assert "jan_4" in text and "jan_11" in text  # the fleet at two dates
    assert "insert" in text and "update" in text  # the change feed
    assert "commit 3 changed" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # one plot
