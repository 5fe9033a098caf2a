"""Every Dagster snippet of the README runs (issue 14: `KoruIOManager(store="data.koru",
key="id")` raised a ValidationError, and `dagster asset materialize --select '*'` failed
for want of the `--partition` the README did not mention).

The Python blocks after ``<!-- dagster-snippet -->`` run as scripts in a temporary
folder; the ``dagster asset materialize`` lines after ``<!-- dagster-commands -->`` run
as written from the repository root; its ``dagster dev`` line is the command
``test_dagster_dev.py`` starts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dagster")
pytest.importorskip("polars")
pytest.importorskip("koru_duckdb")

import koru_core as koru  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(marker: str) -> list[str]:
    """The fenced blocks that follow ``<!-- marker -->`` in the README."""
    return re.findall(rf"<!-- {marker} -->\n```\w+\n(.*?)```", README, flags=re.S)


def run(args: list[str], *, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KORU_STORE": str(tmp_path / "koru-data"),
           "DAGSTER_HOME": str(home)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_readme_has_the_dagster_snippets() -> None:
    assert len(blocks("dagster-snippet")) == 2
    assert len(blocks("dagster-commands")) == 1
    assert 'KoruIOManager(store="data.koru", key="id")' in README


def test_the_partitioned_orders_snippet_gives_the_right_total(tmp_path: Path) -> None:
    first = blocks("dagster-snippet")[0]
    done = run([sys.executable, "-c", first], cwd=tmp_path, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "{'orders': 3}"
    with koru.open(tmp_path / "data.koru") as store:
        totals = {r["customer"]: r["total"] for r in store.as_of("customer_totals").to_pylist()}
        assert totals == {"ann": 10, "bob": 7}  # the cancelled o2 is not counted
        with pytest.raises(koru.KeyNotFoundError):
            store.get("orders", "2024-05-01|o2")


@pytest.mark.filterwarnings("ignore:Property `OpDefinition.version` is deprecated:DeprecationWarning")
def test_the_reacting_snippet_defines_loadable_definitions(tmp_path: Path) -> None:
    second = blocks("dagster-snippet")[1]
    check = "\nDefinitions.validate_loadable(defs)\nprint([s.name for s in defs.sensors])\n"
    done = run([sys.executable, "-c", second + check], cwd=tmp_path, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['koru_changes']"


def test_the_command_lines_materialize_a_partition_then_its_downstream(tmp_path: Path) -> None:
    lines = [shlex.split(line) for line in blocks("dagster-commands")[0].splitlines() if line.strip()]
    materialize = [args for args in lines if args[:3] == ["dagster", "asset", "materialize"]]
    assert len(materialize) == 2 and "--partition" in materialize[0]
    for args in materialize:
        done = run([sys.executable, "-m", "dagster", *args[1:]], cwd=ROOT, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "CheckError" not in done.stderr
    with koru.open(tmp_path / "koru-data") as store:
        assert store.namespaces() == ["aircraft_positions", "raw_flights", "route_statistics"]
        [day] = store.commits(metadata={"dagster/asset": "raw_flights", "dagster/partition": "2013-01-01"})
        positions = store.commits(namespace="aircraft_positions")[-1]
        assert positions.metadata["koru/inputs"] == f'{{"raw_flights": {day.commit}}}'
    dev = [args for args in lines if args[:2] == ["dagster", "dev"]]
    assert dev == [["dagster", "dev", "-f", "examples/dagster_project/definitions.py"]]  # test_dagster_dev.py runs it
