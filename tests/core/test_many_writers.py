"""Many writer processes on one shared store: S3 (SeaweedFS) + PostgreSQL, real processes (issue 15).

Four writers × 200 commits each, on different keys, on the same keys, and mixed with a
process running consolidation and vacuum and a reader process that has only the URLs;
then writers killed with SIGKILL at random moments; then read-modify-write counters with
``put(expected_version=)``. Afterwards, the store is checked against a model of the
acknowledged writes built from DESIGN.md's rules, not from koru's code:

- every acknowledged commit is in the commit log, under the number it was acknowledged
  with, with exactly the rows its writer sent (none partial); no (writer, seq) twice;
- commit numbers run 1..n with no gap, and ``verify()`` proves the hash chain;
- a key's versions are the rows written to it, one per commit that wrote it, each
  version's ``_prev_write_id`` the write id of the version before it (a linear chain);
- the as-of state now holds, for each key, the value of the last commit that wrote it
  (valid time defaults to the commit's system time, which grows with the commit
  number), in the core, in DuckDB and in Polars.

Writers killed by SIGKILL may have committed without acknowledging; such a commit is
in the log (its metadata names writer and seq) and the model takes it as written, but
it must still be whole.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from servers import SharedStore

pytest.importorskip("psycopg")
pytest.importorskip("s3fs")

HERE = Path(__file__).parent
SCRIPT = HERE / "_procs" / "shared_writer.py"
ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(HERE / "_procs"))
from shared_writer import rows_of  # noqa: E402

WRITERS = 4
COMMITS = 200


def _spawn(shared: SharedStore, tmp: Path, role: str, name: str, **cfg: Any) -> tuple[subprocess.Popen[bytes], Path]:
    acks = tmp / f"{name}.acks"
    config = {"location": shared.location, "catalog": shared.catalog, "storage_options": shared.storage_options,
              "role": role, "acks": str(acks), "stop": str(tmp / "stop"), **cfg}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), json.dumps(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, acks


def _acks(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait(procs: list[subprocess.Popen[bytes]], *, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            pytest.fail(f"a worker process did not finish in {timeout:.0f} s")
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]


def _check_against_model(shared: SharedStore, mode: str, acked: dict[int, list[dict[str, Any]]],
                         *, whole: bool = True) -> dict[str, str]:
    """Check the store against the acknowledged writes (module docstring); returns the model state."""
    store = shared.open(read_only=True)
    try:
        commits = store.commits()
        assert [c.commit for c in commits] == list(range(1, len(commits) + 1))  # gap-free
        logged: dict[tuple[int, int], int] = {}
        for c in commits:
            if "writer" in c.metadata:
                ws = (int(c.metadata["writer"]), int(c.metadata["seq"]))
                assert ws not in logged, f"(writer, seq) {ws} committed twice: {logged[ws]} and {c.commit}"
                logged[ws] = c.commit
        for w, lines in acked.items():
            for line in lines:
                assert logged.get((w, line["seq"])) == line["commit"], f"acknowledged commit {w}/{line} is lost"
            if whole:
                assert sorted(s for (ww, s) in logged if ww == w) == list(range(COMMITS))
        # the model: rows per commit in commit order; the last commit writing a key wins
        expected_rows: dict[int, list[dict[str, Any]]] = {c: rows_of(mode, w, s) for (w, s), c in logged.items()}
        state: dict[str, str] = {}
        writes: dict[str, list[int]] = {}
        for c in sorted(expected_rows):
            for row in expected_rows[c]:
                state[row["id"]] = row["v"]
                writes.setdefault(row["id"], []).append(c)
        by_commit = {c.commit: c for c in commits}
        for c, rows in expected_rows.items():
            assert by_commit[c].written == len(rows), f"commit {c} is partial"
        report = store.verify()
        assert report.is_ok, report.problems
        # the core: as-of now and every key's history
        core = store.as_of("t")
        assert dict(zip(core["_key"].to_pylist(), core["v"].to_pylist(), strict=True)) == state
        for key, cs in writes.items():
            hist = store.history("t", key).to_pylist()
            assert [r["_commit"] for r in hist] == cs
            assert [r["v"] for r in hist] == [next(x["v"] for x in expected_rows[c] if x["id"] == key) for c in cs]
            assert [r["_prev_write_id"] for r in hist] == [None] + [r["_write_id"] for r in hist[:-1]]
    finally:
        store.close()
    # DuckDB and Polars, from the URLs alone
    import koru_duckdb
    import koru_polars

    con = koru_duckdb.connect(shared.location, catalog=shared.catalog, storage_options=shared.storage_options)
    try:
        assert dict(con.sql("SELECT _key, v FROM t").fetchall()) == state
    finally:
        con.close()
    frame = koru_polars.read_koru(shared.location, "t", catalog=shared.catalog, storage_options=shared.storage_options)
    assert dict(zip(frame["_key"].to_list(), frame["v"].to_list(), strict=True)) == state
    return state


@pytest.mark.parametrize("mode", ["different", "same"])
def test_four_writers_commit_200_times_each_and_every_answer_matches_the_model(
    shared_store: SharedStore, tmp_path: Path, mode: str,
) -> None:
    shared_store.open().close()  # create the catalog once (concurrent first opens are tested in catalog/)
    procs = [_spawn(shared_store, tmp_path, "writer", f"w{w}", writer=w, commits=COMMITS, mode=mode)
             for w in range(WRITERS)]
    _wait([p for p, _ in procs])
    acked = {w: _acks(a) for w, (_, a) in enumerate(procs)}
    assert all(len(lines) == COMMITS for lines in acked.values())
    state = _check_against_model(shared_store, mode, acked)
    assert len(state) == (WRITERS * 30 if mode == "different" else 10)


def test_writers_with_consolidation_vacuum_and_a_reader_on_another_machine(
    shared_store: SharedStore, tmp_path: Path,
) -> None:
    shared_store.open().close()
    writers = [_spawn(shared_store, tmp_path, "writer", f"w{w}", writer=w, commits=COMMITS, mode="mixed")
               for w in range(WRITERS)]
    maintainer, m_acks = _spawn(shared_store, tmp_path, "maintainer", "maintainer")
    reader, r_acks = _spawn(shared_store, tmp_path, "reader", "reader")
    _wait([p for p, _ in writers])
    (tmp_path / "stop").touch()
    _wait([maintainer, reader])
    rounds = _acks(m_acks)
    reads = _acks(r_acks)
    assert len(rounds) >= 3, "the maintainer hardly ran alongside the writers"
    assert len(reads) >= 10, "the reader hardly read alongside the writers"
    assert [r["rows"] for r in reads] == sorted(r["rows"] for r in reads)  # keys are never deleted
    acked = {w: _acks(a) for w, (_, a) in enumerate(writers)}
    _check_against_model(shared_store, "mixed", acked)
    with shared_store.open(read_only=True) as store:
        tiers = store.stats().to_pylist()
        assert any(r["tier"] == "cold" and r["files"] > 0 for r in tiers), "consolidation never swapped in a cold file"


def test_writers_killed_at_random_moments_lose_no_acknowledged_commit(shared_store: SharedStore,
                                                                     tmp_path: Path) -> None:
    shared_store.open().close()
    rng = random.Random(15)
    procs = [_spawn(shared_store, tmp_path, "writer", f"w{w}", writer=w, commits=COMMITS, mode="same")
             for w in range(WRITERS)]
    killed = {0, 2}
    time.sleep(rng.uniform(1.5, 3.0))
    procs[0][0].send_signal(signal.SIGKILL)
    time.sleep(rng.uniform(0.5, 2.0))
    procs[2][0].send_signal(signal.SIGKILL)
    for w, (p, _) in enumerate(procs):
        p.communicate(timeout=600)  # waits, and closes its pipes
        assert (p.returncode == -signal.SIGKILL) if w in killed else (p.returncode == 0)
    acked = {w: _acks(a) for w, (_, a) in enumerate(procs)}
    assert all(len(acked[w]) < COMMITS for w in killed), "a writer finished before it was killed"
    assert all(len(acked[w]) == COMMITS for w in set(range(WRITERS)) - killed)
    store = shared_store.open(read_only=True)
    try:
        logged = [c for c in store.commits() if "writer" in c.metadata]
    finally:
        store.close()
    for w in killed:  # a killed writer's commits are a prefix: at most one landed unacknowledged
        seqs = sorted(int(c.metadata["seq"]) for c in logged if int(c.metadata["writer"]) == w)
        assert seqs == list(range(len(seqs))) and len(acked[w]) <= len(seqs) <= len(acked[w]) + 1
    _check_against_model(shared_store, "same", acked, whole=False)


def test_compare_and_set_increments_from_four_processes_are_never_lost(shared_store: SharedStore,
                                                                     tmp_path: Path) -> None:
    shared_store.open().close()
    per = 25
    procs = [_spawn(shared_store, tmp_path, "counter", f"c{w}", commits=per) for w in range(WRITERS)]
    _wait([p for p, _ in procs])
    acked = [line for _, a in procs for line in _acks(a)]
    assert sorted(line["value"] for line in acked) == list(range(1, WRITERS * per + 1))  # each value once
    assert sum(line["conflicts"] for line in acked) > 0, "four processes never raced (the test proves nothing)"
    with shared_store.open(read_only=True) as store:
        assert store.get("counter", "n") == WRITERS * per
        hist = store.history("counter", "n").to_pylist()
        assert [r["value"] for r in hist] == list(range(1, WRITERS * per + 1))
        by_value = {line["value"]: line["commit"] for line in acked}
        assert [r["_commit"] for r in hist] == [by_value[v] for v in range(1, WRITERS * per + 1)]
