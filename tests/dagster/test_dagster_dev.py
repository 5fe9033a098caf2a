"""`dagster dev` serves the example project (issue 14: it said "dagster-webserver must be
installed" and no extra brought it). Started on 127.0.0.1 on a free port, asked for its
asset list over GraphQL, then stopped; bounded in time and always killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("dagster")

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "examples" / "dagster_project" / "definitions.py"
ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
        return json.loads(answer.read())


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C the process group (dagster dev stops its webserver, daemon and code server), then kill it."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    except ProcessLookupError:
        pass
    proc.wait(timeout=20)


def test_dagster_dev_serves_the_example_project(tmp_path: Path) -> None:
    pytest.importorskip("dagster_webserver")  # the `dagster` extra brings it; checked here, not at collection
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "KORU_STORE": str(tmp_path / "store"),
           "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-f", str(DEFINITIONS), "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline, assets = time.monotonic() + 240, []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                nodes = graphql(port, ASSETS_QUERY)["data"]["assetNodes"]
                assets = sorted("/".join(n["assetKey"]["path"]) for n in nodes)
            except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
                assets = []
            if assets:
                break
            time.sleep(1)
    finally:
        stop(proc)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert "must be installed" not in output, output[-2000:]
    assert assets == ["aircraft_positions", "carrier_delays", "raw_flights", "route_statistics"], output[-3000:]
