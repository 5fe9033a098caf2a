"""Concurrent committers, allocators and swaps on one catalog, on both backends (issue 15).

Races are forced, not slept on: a barrier releases every contender at once against the
same base, so exactly one outcome is right whatever the scheduling.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _backends import Backend, run_threads
from _drafts import cold, draft, warm

from koru_core.catalog import Catalog
from koru_core.chain import chain_hash
from koru_core.errors import HeadMovedError

ROOT = Path(__file__).parents[3]
HERE = Path(__file__).parent


def assert_linear_chain(catalog: Catalog, count: int) -> None:
    commits = catalog.commits()
    assert [c.commit for c in commits] == list(range(1, count + 1))
    prev = None
    for c in commits:
        assert c.prev_hash == prev
        assert all(a.system_time < b.system_time for a, b in zip(commits, commits[1:]))
        prev = c.hash
    assert catalog.head()[0] == count and catalog.head()[2] == prev


@pytest.mark.parametrize("writers", [4])
def test_concurrent_record_commit_has_exactly_one_winner_per_base(backend: Backend, writers: int) -> None:
    rounds = 8
    handles = [backend.open() for _ in range(writers)]
    barrier = threading.Barrier(writers, timeout=60)

    def work(i: int) -> list[tuple[int, str, int]]:
        cat, seen = handles[i], []
        for r in range(rounds):
            base = cat.head()[0]
            barrier.wait()  # everyone has read the same head
            try:
                rec = cat.record_commit(draft(base, tag=f"w{i}-r{r}", actor=f"w{i}"))
                seen.append((base, "won", rec.commit))
            except HeadMovedError as e:
                seen.append((base, "moved", e.head))
            barrier.wait()  # every attempt of this round is over
        return seen

    outcomes = run_threads(writers, work)
    for r in range(rounds):
        this_round = [seen[r] for seen in outcomes]
        assert {base for base, _, _ in this_round} == {r}
        assert sorted(kind for _, kind, _ in this_round) == ["moved"] * (writers - 1) + ["won"]
        assert {n for _, _, n in this_round} == {r + 1}  # the winner's number, and the head the losers were told
    assert_linear_chain(handles[0], rounds)


def test_committer_processes_retrying_on_head_moved_stay_gap_free(backend: Backend) -> None:
    backend.open()  # create the catalog
    writers, each = 4, 25
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(HERE / "_committer.py"), backend.target, f"p{k}", str(each)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k in range(writers)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    acked: dict[int, tuple[str, int]] = {}
    retries = 0
    for k, (out, err) in enumerate(outs):
        assert procs[k].returncode == 0, err
        for line in out.splitlines():  # "ready" was read above
            if line.startswith("retries"):
                retries += int(line.split()[1])
            elif line:
                commit, i = map(int, line.split())
                assert commit not in acked, f"commit {commit} acknowledged twice"
                acked[commit] = (f"p{k}", i)
    total = writers * each
    assert sorted(acked) == list(range(1, total + 1))
    catalog = backend.open()
    assert_linear_chain(catalog, total)
    prev = None
    for c in catalog.commits():
        actor, i = acked[c.commit]
        assert (c.actor, c.metadata) == (actor, {"i": str(i)})
        assert c.hash == chain_hash(prev, commit=c.commit, system_time=c.system_time,
                                    body=draft(0, tag=f"{actor}-{i}").body, actor=actor, metadata=c.metadata)
        prev = c.hash
    for k in range(writers):  # each process's own commits are in its order
        mine = [n for n, (a, _) in sorted(acked.items()) if a == f"p{k}"]
        assert [acked[n][1] for n in mine] == list(range(each))
    assert retries > 0, "the committers never raced; the test proved nothing"


def test_concurrent_swaps_of_one_file_have_one_winner(backend: Backend) -> None:
    setup = backend.open()
    setup.record_commit(draft(0, files=(warm("warm/1.parquet"),)))
    (source,) = setup.files()
    handles = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(4, timeout=60)

    def work(i: int) -> bool:
        barrier.wait()
        return handles[i].swap_files("users", remove=[source], add=[cold(f"cold/from-{i}.parquet")], retired_at=i)

    won = run_threads(4, work)
    assert sorted(won) == [False, False, False, True]
    winner = won.index(True)
    assert [f.path for f in setup.files()] == [f"cold/from-{winner}.parquet"]
    assert setup.retired() == {"warm/1.parquet": ("users", "warm", 103, winner)}


def test_commits_and_swaps_interleave_without_losing_a_file(backend: Backend) -> None:
    """A committer and a consolidator run at once: every recorded warm file ends up listed or retired."""
    committer, swapper = backend.open(), backend.open()
    n = 30
    stop = threading.Event()

    def commit(_: int) -> None:
        try:
            for k in range(n):
                head = committer.head()[0]
                committer.record_commit(draft(head, tag=f"c{k}", files=(warm(f"warm/{k}.parquet"),)))
        finally:
            stop.set()

    def swap(_: int) -> int:
        swaps = 0
        while not stop.is_set() or any(f.tier == "warm" for f in swapper.files()):
            listed = [f for f in swapper.files() if f.tier == "warm"]
            if listed and swapper.swap_files("users", remove=listed, add=[cold(f"cold/s{swaps}.parquet")],
                                             retired_at=swaps):
                swaps += 1
        return swaps

    results = run_threads(2, lambda i: commit(i) if i == 0 else swap(i))
    assert results[1] >= 1
    retired = set(committer.retired())
    assert retired == {f"warm/{k}.parquet" for k in range(n)}
    assert {f.path for f in committer.files()} == {f"cold/s{s}.parquet" for s in range(results[1])}
    assert_linear_chain(committer, n)


def test_concurrent_write_id_allocators_never_overlap(pg_url: str) -> None:
    """PostgreSQL only: there, writers on many hosts allocate at once. (On SQLite the store's
    write lock serialises allocation, and the next id moves when a commit is recorded:
    ``test_write_ids_of_a_recorded_commit_are_never_handed_out_again`` covers both.)"""
    pg = Backend("postgres", pg_url)
    try:
        handles = [pg.open() for _ in range(4)]
        barrier = threading.Barrier(4, timeout=60)

        def work(i: int) -> list[tuple[int, int]]:
            barrier.wait()
            out = []
            for k in range(60):
                count = 1 + (i * 31 + k * 7) % 50
                out.append((handles[i].allocate_write_ids(count), count))
            return out

        ranges = sorted((start, start + count - 1) for got in run_threads(4, work) for start, count in got)
    finally:
        pg.close()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])), "two allocators got overlapping write ids"
    assert ranges[0][0] == 1 and ranges[-1][1] == sum(e - s + 1 for s, e in ranges)  # and no gaps, here
