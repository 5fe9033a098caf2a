"""Shared fixtures: a real store in ``tmp_path``; nothing is mocked.

With ``KORU_NO_SKIP=1`` (CI sets it, STYLE.md B11) every skipped test or module
is reported as a failure, so a missing extra cannot hide a suite.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import model` from any test folder

from servers import pg_server, pg_url, s3_bucket, s3_server, shared_store  # noqa: E402, F401  # real servers (issue 15)

import koru_core as koru  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> Iterator[koru.Store]:
    """An empty store in a fresh temporary folder, closed after the test."""
    s = koru.open(tmp_path / "store.koru")
    try:
        yield s
    finally:
        s.close()


def _no_skip() -> bool:
    return os.environ.get("KORU_NO_SKIP", "") not in ("", "0")


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and _no_skip():
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"KORU_NO_SKIP=1: skips count as failures: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip(outcome.get_result())
