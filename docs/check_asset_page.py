"""Look at an asset page of the example project in a real browser (issue 14).

Materializes ``examples/dagster_project`` into a temporary store and Dagster
instance, starts ``dagster dev`` on 127.0.0.1 (a free port), opens the events
view of ``aircraft_positions`` in headless Chromium (Debian's ``chromium``
package, driven over the DevTools protocol), checks that the page shows what a
user needs (the commit, the pinned inputs, rows written / unchanged / deleted,
the data version) and saves a screenshot to ``docs/dagster-asset-page.png``.
Everything it starts is stopped, in bounded time.

Not a CI test (CI machines need not carry Chromium): run it by hand after a
change to what the IO manager reports::

    apt-get install -y chromium
    pip install -e ".[dagster,demo]"
    python docs/check_asset_page.py
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect  # comes with dagster-webserver (uvicorn[standard])

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "examples" / "dagster_project" / "definitions.py"
SCREENSHOT = ROOT / "docs" / "dagster-asset-page.png"
ASSET = "aircraft_positions"
WANTED = ["koru/commit", "koru/inputs", "koru/input_ranges", "koru/rows_written", "koru/rows_unchanged",
          "koru/rows_deleted", "koru/data_version", "raw_flights"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def materialize_project(env: dict[str, str]) -> None:
    """Every day of raw_flights, then the downstream assets, twice (the re-run is unchanged)."""
    code = (
        "from dagster import DagsterInstance, materialize\n"
        "from dagster_project.definitions import defs, raw_flights, aircraft_positions, route_statistics\n"
        "from dagster_project.assets import DAYS\n"
        "resources = defs.resources\n"
        "instance = DagsterInstance.get()\n"
        "for _ in range(2):\n"
        "    for day in DAYS.get_partition_keys():\n"
        "        assert materialize([raw_flights], partition_key=day, instance=instance, resources=resources).success\n"
        "    down = [raw_flights, aircraft_positions, route_statistics]\n"
        "    assert materialize(down, selection=down[1:], instance=instance, resources=resources).success\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600, capture_output=True)


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
        return json.loads(answer.read())


def wait_for_assets(port: int, deadline: float) -> list[str]:
    while time.monotonic() < deadline:
        try:
            nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
            if nodes:
                return sorted("/".join(n["assetKey"]["path"]) for n in nodes)
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError("dagster dev did not list the assets in time")


def page_url(port: int, deadline: float) -> str:
    """The DevTools websocket of the browser's one tab."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:  # noqa: S310
                return next(t for t in json.loads(answer.read()) if t["type"] == "page")["webSocketDebuggerUrl"]
        except (OSError, StopIteration):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Page:
    """The one tab of a headless Chromium, over the DevTools protocol."""

    def __init__(self, ws: object) -> None:
        self._ws = ws
        self._id = 0

    def call(self, method: str, **params: object) -> dict:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == self._id:
                return message.get("result", {})

    def js(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 20)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def look(port: int, deadline: float) -> tuple[str, bytes]:
    """Open the asset's events view; return its text and a PNG of it."""
    debug = free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={debug}",
         "--window-size=1280,1060", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        with connect(page_url(debug, deadline), max_size=None) as ws:
            page = Page(ws)
            page.call("Page.enable")
            page.call("Emulation.setDeviceMetricsOverride", width=1280, height=1060, deviceScaleFactor=1,
                      mobile=False)
            page.call("Page.navigate", url=f"http://127.0.0.1:{port}/assets/{ASSET}?view=events")
            text = ""
            while time.monotonic() < deadline and not all(w in text for w in WANTED):
                time.sleep(1)
                text = str(page.js("document.body.innerText") or "")
            time.sleep(1)  # let the last layout settle
            return text, base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    finally:
        stop(browser)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": str(home), "KORU_STORE": str(Path(tmp) / "koru-data"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "examples")])}
        materialize_project(env)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-f", str(PROJECT), "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            print("assets:", wait_for_assets(port, deadline))
            graphql(port, "mutation { setNuxSeen }")  # no "Join the Dagster community" dialog over the page
            text, png = look(port, deadline)
        finally:
            stop(server)
    missing = [w for w in WANTED if w not in text]
    SCREENSHOT.write_bytes(png)
    print(f"screenshot: {SCREENSHOT} ({len(png) // 1024} KiB)")
    if missing:
        print("missing on the asset page:", missing)
        return 1
    print("shown:", ", ".join(WANTED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
