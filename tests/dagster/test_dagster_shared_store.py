"""KoruIOManager on a shared store (S3 + PostgreSQL) under Dagster's multiprocess executor (issue 15):
four steps in four processes commit concurrently; a fifth reads them, pinned."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from servers import SharedStore

pytest.importorskip("dagster")
pytest.importorskip("psycopg")

HERE = Path(__file__).parent


def test_steps_in_separate_processes_write_one_shared_store(shared_store: SharedStore, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import DagsterInstance, execute_job, reconstructable

    monkeypatch.setenv("KORU_TEST_STORE", shared_store.location)
    monkeypatch.setenv("KORU_TEST_CATALOG", shared_store.catalog)
    monkeypatch.setenv("KORU_TEST_STORAGE_OPTIONS", json.dumps(shared_store.storage_options))
    monkeypatch.setenv("PYTHONPATH", str(HERE) + ":" + ":".join(sys.path))
    monkeypatch.syspath_prepend(str(HERE))
    import _shared_job

    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        result = execute_job(reconstructable(_shared_job.make_job), instance=instance)
        assert result.success
        pids = {e.pid for e in result.all_events if e.is_step_success}
        assert len(pids) == _shared_job.PARTS + 1, "the steps did not run in separate processes"
    with shared_store.open(read_only=True) as store:
        assert store.verify().is_ok
        writes = [c for c in store.commits() if c.run_id == result.run_id]
        assert len(writes) == _shared_job.PARTS + 1
        assert sorted(n for c in writes for n in c.namespaces) == sorted([*(f"part_{i}" for i in range(4)), "total"])
        total = {r["part"]: r["v"] for r in store.as_of("total").to_pylist()}
        assert total == {f"part_{i}": sum(i * 1000 + j for j in range(50)) for i in range(_shared_job.PARTS)}
        history = store.history("part_2", "p2-7").to_pylist()
        assert [(r["v"], r["_run_id"]) for r in history] == [(2007, result.run_id)]
