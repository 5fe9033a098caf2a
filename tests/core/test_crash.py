"""Durability and atomicity under SIGKILL (issue 2, item 3).

A writer subprocess (``_procs/writer.py``) commits in a loop and acknowledges each
commit on stdout once the write call has returned. The test kills it at random
moments, again and again on the same growing store, and after every kill reopens
the store and checks:

* every acknowledged commit is there, with exactly the rows it wrote (a digest);
* no partial commit is visible: each commit's rows all carry one tag and their
  count equals the count the writer put in them (a transaction's keys, across two
  namespaces, are all present or all absent; an upsert's 2000 rows too);
* commit numbers run 1..N without gaps, and the log's counts match the rows.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import koru_core as koru

sys.path.insert(0, str(Path(__file__).parent / "_procs"))
from writer import digest  # noqa: E402

pytestmark = pytest.mark.crash

WRITER = Path(__file__).parent / "_procs" / "writer.py"
ROOT = Path(__file__).parents[2]
KILLS = 22
BUDGET_S = 55.0


def run_and_kill(store: Path, seed: int, rng: random.Random) -> tuple[list[tuple[int, str, int, str]], str]:
    """Start a writer, SIGKILL it at a random moment; return its acknowledged commits."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(store), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        if rng.random() < 0.2:  # sometimes while it starts or opens the store
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line == "ready\n", (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
            time.sleep(rng.uniform(0.0, 0.4))
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the writer stopped by itself ({proc.returncode}): {out[-500:]} {err[-2000:]}"
    acks = []
    for line in out.splitlines(keepends=True):
        if line == "ready\n":
            continue
        assert not line.startswith("error"), line
        if line.endswith("\n"):  # a line cut by the kill was not acknowledged
            commit, tag, n, dig = line.split()
            acks.append((int(commit), tag, int(n), dig))
    return acks, err


def rows_of(store: koru.Store, commits: set[int]) -> dict[int, list[tuple[str, str, dict[str, Any]]]]:
    out: dict[int, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for ns in store.namespaces():
        versions = store.versions(ns)
        mask = pa.compute.is_in(versions["_commit"], value_set=pa.array(sorted(commits), pa.int64()))
        for r in versions.filter(mask).to_pylist():
            value = {k: v for k, v in r.items() if not k.startswith("_") and v is not None}
            out[r["_commit"]].append((ns, r["_key"], value))
    return out


def check_store(path: Path, acked: dict[int, tuple[str, int, str]], verify: set[int]) -> int:
    """Check the invariants; digests only for the commits in ``verify``. Returns the head."""
    with koru.open(path) as store:
        log = store.commits()
        numbers = [c.commit for c in log]
        assert numbers == list(range(1, len(numbers) + 1)), "commit numbers have a gap"
        parts = [
            store.versions(ns).select(["_commit", "tag", "n"]) for ns in store.namespaces()
        ]
        per_commit: dict[int, dict[str, Any]] = {}
        if parts:
            all_rows = pa.concat_tables(parts)
            grouped = all_rows.group_by("_commit").aggregate(
                [("tag", "count_distinct"), ("tag", "min"), ("n", "min"), ("n", "max"), ("_commit", "count")]
            )
            per_commit = {r["_commit"]: r for r in grouped.to_pylist()}
        for c in log:
            g = per_commit.get(c.commit)
            assert g is not None, f"commit {c.commit} is in the log but has no rows"
            assert g["tag_count_distinct"] == 1, f"commit {c.commit} mixes rows of several writes"
            assert g["n_min"] == g["n_max"] == g["_commit_count"], f"commit {c.commit} is partial: {g}"
            assert c.written == g["_commit_count"], f"commit {c.commit}: log says {c.written} rows, {g}"
        assert set(per_commit) == set(numbers), "rows of a commit that is not in the log"
        for commit, (tag, n, _) in acked.items():
            assert commit in per_commit, f"acknowledged commit {commit} is lost"
            g = per_commit[commit]
            assert (g["tag_min"], g["_commit_count"]) == (tag, n), f"acknowledged commit {commit}: {g} != {tag}, {n}"
        for commit, rows in rows_of(store, verify).items():
            assert digest(rows) == acked[commit][2], f"acknowledged commit {commit} has other rows"
        return len(numbers)


def test_sigkill_at_random_moments_loses_no_acknowledged_commit(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rng = random.Random(20260101)
    acked: dict[int, tuple[str, int, str]] = {}
    started = time.monotonic()
    kills = with_acks = 0
    while kills < KILLS:
        assert time.monotonic() - started < BUDGET_S, f"only {kills} kills in {BUDGET_S} s"
        acks, _ = run_and_kill(path, seed=kills + 1, rng=rng)
        kills += 1
        with_acks += bool(acks)
        new = set()
        for commit, tag, n, dig in acks:
            assert commit not in acked, f"commit {commit} acknowledged twice"
            acked[commit] = (tag, n, dig)
            new.add(commit)
        head = check_store(path, acked, verify=new)
        assert head >= max(acked, default=0)
    assert with_acks >= KILLS // 2, "the writer was mostly killed before it wrote"
    sizes = {n for _, n, _ in acked.values()}
    assert {1, 2000, 300} <= sizes, f"the mix did not happen: {sizes}"
    assert any(n in (3, 4, 5, 6) for n in sizes), "no transaction was acknowledged"
    check_store(path, acked, verify=set(acked))  # every digest, once more, at the end
    with koru.open(path) as store:
        warm = [r for r in store.stats().to_pylist() if r["tier"] == "warm"]
        assert warm, "no Parquet file was written"
