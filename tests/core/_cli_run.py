"""Run ``koru`` as users do, ``python -m koru_core.cli`` in a real subprocess, and check its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def koru_cli(*args: str, store: Path | None = None, columns: int = 80, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``koru ARGS`` (``--store`` given after the subcommand, as issue 13 asks to allow)."""
    full = {k: v for k, v in os.environ.items() if k != "KORU_STORE"}
    full.update(PYTHONPATH=str(ROOT), COLUMNS=str(columns), **(env or {}))
    tail = [] if store is None else ["--store", str(store)]
    return subprocess.run([sys.executable, "-m", "koru_core.cli", *args, *tail], capture_output=True, text=True,
                          env=full, timeout=timeout, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr
