"""Change notifications: ``Store.watch`` and ``koru watch`` (issue 14: nothing let a
pipeline react to commits made outside it, by a loader script or ``koru import``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import koru_core as koru
from koru_core.cli import main
from koru_core.watch import head

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(store_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real ``koru`` command line in a subprocess (another process, another store handle)."""
    return subprocess.run(
        [sys.executable, "-m", "koru_core.cli", "--store", str(store_path), *args],
        capture_output=True, text=True, env=ENV, timeout=timeout, check=False,
    )


def test_watch_yields_the_commits_after_since_with_counts_and_metadata(store: koru.Store) -> None:
    store.put("users", "alice", {"age": 31}, actor="etl", metadata={"job": "load"})
    store.put("orders", "o1", {"total": 5})
    store.upsert("users", [{"id": "alice", "age": 32}, {"id": "bob", "age": 40}], key="id")
    store.delete("users", "bob", run_id="r-9")
    events = list(store.watch("users", since=0, timeout=0))
    assert [e.commit for e in events] == [1, 3, 4]
    first, upsert, delete = events
    assert (first.namespaces, first.written, first.actor, first.metadata) == (("users",), 1, "etl", {"job": "load"})
    assert (upsert.written, upsert.unchanged, upsert.deleted) == (2, 0, 0)
    assert (delete.deleted, delete.run_id) == (1, "r-9")
    assert first.changes is None
    assert [e.commit for e in store.watch(since=1, timeout=0)] == [2, 3, 4]
    assert [e.commit for e in store.watch(["orders", "users"], since=2, timeout=0)] == [3, 4]
    assert list(store.watch(timeout=0)) == []  # default since: only commits from now on
    assert head(store) == 4 and head(store, "orders") == 2


def test_with_changes_attaches_each_commits_change_feed(store: koru.Store) -> None:
    store.put("users", "alice", {"age": 31})
    with store.transaction() as tx:
        tx.put("users", "alice", {"age": 32})
        tx.put("orders", "o1", {"total": 5})
    [event] = store.watch("users", since=1, timeout=0, with_changes=True)
    assert list(event.changes) == ["users"]  # only the watched namespace
    feed = event.changes["users"].to_pylist()
    assert [(r["_key"], r["op"], r["age"]) for r in feed] == [("alice", "update", 32)]
    [both] = store.watch(since=1, timeout=0, with_changes=True)
    assert sorted(both.changes) == ["orders", "users"]
    assert json.loads(json.dumps(both.to_dict()))["changes"]["orders"][0]["_key"] == "o1"


def test_a_named_position_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.koru"
    with koru.open(path) as store:
        for age in (1, 2, 3):
            store.put("users", "alice", {"age": age})
        assert [e.commit for e in store.watch(since=0, name="report", timeout=0)] == [1, 2, 3]
        store.put("users", "alice", {"age": 4})
    with koru.open(path) as store:  # a restarted consumer goes on from its position
        assert [e.commit for e in store.watch(name="report", timeout=0)] == [4]
        assert list(store.watch(name="report", timeout=0)) == []
        assert [e.commit for e in store.watch(name="other", since=0, timeout=0)] == [1, 2, 3, 4]


def test_a_named_position_moves_only_after_the_event_was_handled(store: koru.Store) -> None:
    """At-least-once: an event whose handling did not finish is delivered again."""
    for age in (1, 2):
        store.put("users", "alice", {"age": age})
    for event in store.watch(since=0, name="job", timeout=0):
        if event.commit == 2:
            break  # commit 1 handled; commit 2 not (the loop body never finished)
    assert [e.commit for e in store.watch(name="job", timeout=0)] == [2]


def test_skipped_commits_move_a_named_position(store: koru.Store) -> None:
    store.put("orders", "o1", {"total": 5})
    store.put("orders", "o2", {"total": 6})
    assert list(store.watch("users", since=0, name="users-only", timeout=0)) == []
    store.put("users", "alice", {"age": 1})
    assert [e.commit for e in store.watch("users", name="users-only", timeout=0)] == [3]


def test_watch_sees_commits_another_process_makes(tmp_path: Path) -> None:
    """A `koru import` in a subprocess lands while this process waits in watch()."""
    path = tmp_path / "s.koru"
    data = tmp_path / "orders.csv"
    data.write_text("id,total\no1,5\no2,7\n")
    with koru.open(path) as store:
        store.put("other", "x", {"v": 1})
        writer = subprocess.Popen(
            [sys.executable, "-m", "koru_core.cli", "--store", str(path), "import", "orders", str(data),
             "--key", "id"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            started = time.monotonic()
            events = store.watch("orders", since=1, poll_interval=0.05, timeout=60)
            event = next(events)
            assert time.monotonic() - started < 60
            events.close()
        finally:
            writer.communicate(timeout=60)
        assert writer.returncode == 0
        assert (event.commit, event.namespaces, event.written, event.actor) == (2, ("orders",), 2, "koru import")


def test_timeout_ends_a_watch_with_nothing_to_yield(store: koru.Store) -> None:
    started = time.monotonic()
    assert list(store.watch(timeout=0.3, poll_interval=0.05)) == []
    assert 0.3 <= time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "bad name"}, "namespace must match"),
        ({"namespace": []}, "non-empty list"),
        ({"since": -1}, "since must be a commit number"),
        ({"poll_interval": 0}, "poll_interval must be"),
        ({"timeout": -1}, "timeout must be"),
        ({"name": ""}, "name must be a non-empty str"),
    ],
)
def test_bad_arguments_raise_before_any_wait(store: koru.Store, kwargs: dict, message: str) -> None:
    with pytest.raises(koru.InvalidInputError, match=message):
        store.watch(**kwargs)  # raised by the call itself, not by the first next()


def test_cli_watch_prints_one_line_or_json_document_per_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.koru"
    with koru.open(path) as store:
        store.put("users", "alice", {"age": 31}, actor="etl")
        store.put("orders", "o1", {"total": 5})
        store.delete("users", "alice")
    lines = CliRunner().invoke(main, ["--store", str(path), "watch", "users", "--since", "0", "--once"])
    assert lines.exit_code == 0, lines.output
    out = lines.stdout.splitlines()
    assert len(out) == 2
    assert out[0].startswith("commit 1  ") and "users" in out[0] and "written 1" in out[0] and "actor etl" in out[0]
    assert out[1].startswith("commit 3  ") and "deleted 1" in out[1]
    changes = CliRunner().invoke(main, ["--store", str(path), "watch", "--since", "2", "--once", "--changes"])
    assert changes.stdout.strip().endswith("users: 1 delete")
    docs = CliRunner().invoke(main, ["--store", str(path), "--json", "watch", "--since", "1", "--once"])
    rows = [json.loads(line) for line in docs.stdout.splitlines()]
    assert [(r["commit"], r["namespaces"]) for r in rows] == [(2, ["orders"]), (3, ["users"])]


def test_cli_watch_with_a_name_goes_on_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.koru"
    assert cli(path, "put", "users", "alice", '{"age": 1}').returncode == 0
    first = cli(path, "--json", "watch", "--since", "0", "--name", "nightly", "--once")
    assert [json.loads(x)["commit"] for x in first.stdout.splitlines()] == [1], first.stderr
    assert cli(path, "put", "users", "alice", '{"age": 2}').returncode == 0
    second = cli(path, "--json", "watch", "--name", "nightly", "--once")
    assert [json.loads(x)["commit"] for x in second.stdout.splitlines()] == [2], second.stderr


def test_cli_watch_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    """`koru watch` (a subprocess) prints the commits this process makes, as they land."""
    path = tmp_path / "s.koru"
    with koru.open(path) as store:
        store.put("users", "alice", {"age": 1})
        watcher = subprocess.Popen(
            [sys.executable, "-m", "koru_core.cli", "--store", str(path), "--json", "watch", "users",
             "--since", "1", "--interval", "0.05", "--timeout", "60"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            store.put("orders", "o1", {"total": 5})  # not watched
            store.put("users", "alice", {"age": 2})
            line = watcher.stdout.readline()  # blocks until the watcher prints commit 3
        finally:
            watcher.kill()
            watcher.communicate(timeout=30)
    assert json.loads(line)["commit"] == 3


def test_cli_watch_needs_an_existing_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "none"), "watch", "--once"])
    assert result.exit_code == 1 and "no koru store" in result.stderr
