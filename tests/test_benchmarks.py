"""Smoke test of the benchmark harness (benchmarks/run.py) at a tiny size.

It runs every system and every extra once, in one process, and checks what the
lead reads: every system ran, every answer matched the brute force, and the goals
table has a row for each goal of issues 16 and 17. It asserts nothing about speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import duckdb_at_vs_scd2  # noqa: E402
import goals  # noqa: E402
import ingest_memory  # noqa: E402
import run  # noqa: E402


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    argv = ["--workload", "synthetic_all", "--keys", "300", "--versions", "3", "--puts", "10",
            "--reps", "3", "--budget", "0.1", "--puts-curve", "60", "--small-commits", "20",
            "--small-commits-reps", "3", "--memory-upsert-rows", "0", "--memory-import-rows", "0",
            "--results", str(out / "results"), "--out", str(out / "stores")]
    assert run.main(argv) == 0
    (path,) = (out / "results").glob("*.json")
    return json.loads(path.read_text())


def test_every_system_ran_and_every_answer_matches_brute_force(doc: dict) -> None:
    by = {r["system"]: r for r in doc["results"]}
    assert set(run.SYSTEMS) | set(run.READERS) | {"sqlite_wal_full"} <= set(by)
    for r in doc["results"]:
        assert r["status"] == "ok", (r["system"], r.get("reason"))
        assert not r["errors"], (r["system"], r["errors"])
        assert all(c["ok"] for c in r.get("checks", {}).values()), (r["system"], r["checks"])
    assert set(by["koru"]["checks"]) == {q.metric for q in run.measure.QUERIES}
    assert by["koru_cold"]["ingest"].startswith("shared")  # seeded from koru's store
    assert by["koru_cold"]["maintain_s"] > 0


def test_goals_table_covers_every_goal(doc: dict) -> None:
    rows = doc["goals"]
    labels = {r["goal"] for r in rows}
    wanted = {g.label for g in goals.GOALS if "synthetic_all" in g.workloads}
    assert wanted <= labels
    assert any(r["workload"] == "put_curve" and not r["info"] for r in rows)
    assert sum(r["workload"] == "small_commits" for r in rows) == 10
    assert all(r["ok"] is not None for r in rows if not r["info"])
    curve, small = doc["put_curve"], doc["small_commits"]
    assert curve["puts_done"] == 60 and len(curve["buckets"]) == 20
    assert [c["commits"] for c in small["checkpoints"]] == [2, 4, 10, 20, "reopened"]
    assert all(c["ok"] for c in small["checkpoints"])


def test_memory_child_reports_its_own_peak(tmp_path: Path) -> None:
    """The peak is the child's, not the parent's image at the fork (ru_maxrss would be)."""
    ballast = b"x" * (300 * 2**20)  # the parent is > 400 MiB now: that must not count
    (res,) = ingest_memory.run(["upsert"], upsert_rows=1000, import_rows=1, data=tmp_path / "d",
                               work=tmp_path / "w")
    del ballast
    assert res["returncode"] == 0, res["stderr"]
    assert res["child"]["written"] == 1000
    assert 30 < res["peak_mib"] < 350 and res["ok"] is True


def test_duckdb_at_vs_scd2_runs_on_the_public_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The script read an internal view (``__koru_versions_bench``) that the planner-based
    koru_duckdb no longer has; it reads ``koru_versions`` now. Its four sources must agree."""
    pytest.importorskip("duckdb")
    duckdb_at_vs_scd2.main(["--store", str(tmp_path / "s"), "--keys", "200", "--versions", "3", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "200 keys × 3 versions = 600 versions" in out
    assert "SELECT * (to Arrow)" in out
