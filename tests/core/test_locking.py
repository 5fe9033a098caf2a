"""One writer per store across processes; readers keep a consistent view (issue 2, item 3).

The interleavings are forced, not slept for: the child process says ``ready``
when it holds the lock, and commits only when the parent tells it to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import koru_core as koru

PROCS = Path(__file__).parent / "_procs"
ROOT = Path(__file__).parents[2]


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(PROCS / script), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def expect_line(proc: subprocess.Popen[str], want: str) -> str:
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith(want):
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"expected {want!r} from the child, got {line!r}; stderr: {err[-3000:]}")
    return line.strip()


@pytest.fixture
def holder(tmp_path: Path):
    """A child process holding an open transaction (and so the write lock) on a store
    that already has one commit."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("acct", "a", {"bal": 100})
    proc = spawn("holder.py", str(path))
    yield path, proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_second_writer_gets_store_locked_error_and_writes_nothing(holder) -> None:
    path, proc = holder
    store = koru.open(path, lock_timeout=0.5)  # opened before the lock is taken
    try:
        expect_line(proc, "ready")
        started = time.monotonic()
        with pytest.raises(koru.StoreLockedError, match=str(path)):
            store.put("acct", "a", {"bal": 1})
        waited = time.monotonic() - started
        assert 0.4 <= waited < 5, f"waited {waited:.2f} s for a 0.5 s lock timeout"
        with pytest.raises(koru.StoreLockedError):
            store.upsert("acct", [{"id": "z", "bal": 1}], key="id")
        with pytest.raises(koru.StoreLockedError):
            with store.transaction() as tx:
                tx.put("acct", "b", {"bal": 1})
        assert [c.commit for c in store.commits()] == [1]
        assert store.get("acct", "a") == {"bal": 100}, "the reader is not blocked"
        proc.stdin.write("go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        assert expect_line(proc, "") == "2"
        assert proc.wait(timeout=30) == 0
        assert [c.commit for c in store.commits()] == [1, 2]
        assert store.get("acct", "held") == {"bal": 7}
        assert store.commits()[-1].actor == "holder"
        v = store.put("acct", "a", {"bal": 1})  # the lock is free again
        assert v.commit == 3
    finally:
        store.close()


def test_a_reader_can_open_the_store_while_a_writer_holds_the_lock(holder) -> None:
    path, proc = holder
    expect_line(proc, "ready")
    with koru.open(path, lock_timeout=0.5) as reader:
        assert reader.get("acct", "a") == {"bal": 100}
        assert reader.keys("acct") == ["a"]
    proc.stdin.write("go\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    assert expect_line(proc, "") == "2"


def test_writer_waits_for_the_lock_within_its_timeout(holder) -> None:
    path, proc = holder
    store = koru.open(path, lock_timeout=20)
    try:
        expect_line(proc, "ready")
        result: dict[str, object] = {}

        def write() -> None:
            result["v"] = store.put("acct", "waiter", {"bal": 1})

        t = threading.Thread(target=write)
        t.start()
        t.join(0.3)
        assert t.is_alive(), "the put did not wait for the lock"
        proc.stdin.write("go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        t.join(20)
        assert not t.is_alive()
        assert result["v"].commit == 3  # type: ignore[attr-defined]
    finally:
        store.close()


def test_readers_see_a_consistent_commit_while_a_writer_works(tmp_path: Path) -> None:
    """Transfers between ten accounts keep the total at 1000 in every commit; a reader
    in this process checks the total on every read while a writer process transfers."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.upsert("acct", [{"id": f"a{i}", "bal": 100} for i in range(10)], key="id")
    proc = spawn("transfers.py", str(path), "60", "7")
    reads = 0
    seen: set[int] = set()
    try:
        with koru.open(path) as reader:
            expect_line(proc, "ready")
            last = 0
            while proc.poll() is None or reads < 5:
                table = reader.as_of("acct")
                assert table.num_rows == 10
                assert sum(table["bal"].to_pylist()) == 1000, f"read {reads} saw a partial commit"
                head = max(table["_commit"].to_pylist())
                assert head >= last, "commits went backwards"
                last = head
                seen.add(head)
                if head > 1:
                    older = reader.as_of("acct", version=head - 1)
                    assert sum(older["bal"].to_pylist()) == 1000
                assert sum(reader.get("acct", f"a{i}")["bal"] for i in range(10)) >= 0
                reads += 1
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        assert out.strip().endswith("done")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert len(seen) >= 3, f"the reads did not overlap the writes (saw commits {sorted(seen)})"
    with koru.open(path) as s:
        assert sum(s.as_of("acct")["bal"].to_pylist()) == 1000
        for c in s.commits()[1:]:
            assert sum(s.as_of("acct", version=c.commit)["bal"].to_pylist()) == 1000
