"""vacuum(): replaced and orphaned files go, never one a live reader needs (issues 5, 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import koru_core as koru


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201 - manual maintenance: vacuum is the test's to call
    s = koru.open(tmp_path / "store.koru", auto_consolidate=False)
    yield s
    s.close()


def _read(plan: koru.ReadPlan):  # noqa: ANN202
    from koru_polars.scan import as_of_frame

    return as_of_frame(plan).collect().sort("_key")


def _fill(store: koru.Store) -> None:
    for r in range(4):
        store.upsert("users", [{"id": f"k{j}", "n": r * 10 + j} for j in range(2000)], key="id")


def _data_files(store: koru.Store) -> set[str]:
    return {p.relative_to(store.path).as_posix() for d in ("warm", "cold", "deep") for p in (store.path / d).rglob("*.parquet")}


def test_vacuum_deletes_replaced_files_after_retain(store: koru.Store) -> None:
    _fill(store)
    warm = _data_files(store)
    expected = store.versions("users")
    store.consolidate()
    cold = {e.path for e in store._ctx.catalog.files("users")}
    kept = store.vacuum()  # default retain: 7 days
    assert kept.files_after == kept.files_before == len(warm) + len(cold)
    result = store.vacuum(retain=timedelta(0))
    assert result.action == "vacuum" and result.namespaces == ("users",)
    assert result.files_after == len(cold) and result.bytes_after < result.bytes_before
    assert _data_files(store) == cold
    assert store.versions("users").equals(expected)
    assert store.verify().is_ok


def test_a_reader_pinned_to_an_old_commit_keeps_working(store: koru.Store) -> None:
    _fill(store)
    expected = store.as_of("users", version=2, sort=True)
    plan = store.plan("users", version=2)  # a reader holds its plan (and so its lease)
    store.upsert("users", [{"id": "new", "n": 1}], key="id")
    store.consolidate()
    store.vacuum(retain=timedelta(0))
    assert all(Path(f).exists() for f in plan.files)
    assert _read(plan).to_arrow().select(expected.column_names).cast(expected.schema).equals(expected)
    assert store.as_of("users", version=2, sort=True).equals(expected)  # a new plan at the old commit reads cold files
    old = set(plan.files)
    del plan
    store.vacuum(retain=timedelta(0))
    assert not any(Path(f).exists() for f in old)
    assert store.as_of("users", version=2, sort=True).equals(expected)


_READER = textwrap.dedent(
    """
    import sys, koru_core as koru
    from koru_polars.scan import versions_frame
    store = koru.open(sys.argv[1])
    plan = store.plan("users", version=2, shape="versions")
    print(len(plan.files), flush=True)
    sys.stdin.readline()
    print(versions_frame(plan).collect().height, flush=True)
    sys.stdin.readline()
    """
)


def test_a_reader_in_another_process_keeps_its_files(store: koru.Store) -> None:
    _fill(store)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", _READER, str(store.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        assert int(proc.stdout.readline()) == 2
        warm = _data_files(store)
        store.consolidate()
        store.vacuum(retain=timedelta(0))
        assert warm <= _data_files(store)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert int(proc.stdout.readline()) == 4000
        proc.send_signal(signal.SIGKILL)  # dies holding its lease: the lease file is cleaned up
        proc.wait()
    store.vacuum(retain=timedelta(0))
    assert _data_files(store) == {e.path for e in store._ctx.catalog.files("users")}
    assert len(list((store.path / "readers").glob("*.lease"))) <= 1  # only this process's own


def test_orphans_go_and_listed_files_stay(store: koru.Store) -> None:
    _fill(store)
    listed = _data_files(store)
    orphan = store.path / "warm" / "namespace=users" / "versions-left-by-a-crash.parquet"
    orphan.write_bytes(b"left by a crash")
    tmp = store.path / "warm" / "namespace=users" / ".versions-x.parquet.1234abcd.tmp"
    tmp.write_bytes(b"half written")
    store.vacuum()
    assert orphan.exists() and tmp.exists()  # younger than retain
    store.vacuum(retain=timedelta(0))
    assert not orphan.exists() and not tmp.exists()
    assert _data_files(store) == listed
    assert store.verify().is_ok


@pytest.mark.parametrize("retain", [timedelta(days=-1), 7, None])
def test_vacuum_refuses_a_bad_retain(store: koru.Store, retain: object) -> None:
    with pytest.raises(koru.InvalidInputError, match="retain"):
        store.vacuum(retain=retain)  # type: ignore[arg-type]
