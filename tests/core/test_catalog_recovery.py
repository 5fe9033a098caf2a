"""A damaged catalog log, ``koru recover`` and anchored verification (issue 12 items 11 and 16).

Before: a failed open deleted the SQLite write-ahead log that held 35 of 80 commits (the
open was refused, but the evidence was gone), a damaged ``head`` file made a healthy
store unopenable with a message that blamed the catalog, and the only fix was deleting
files by hand. Now an open that fails changes nothing and names the file at fault, and
``koru recover`` reports what can be kept before it changes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import koru_core as koru
from koru_core.catalog.sqlite_files import read_wal
from koru_core.cli import main
from koru_core.lifecycle.recover import recover

ROOT = Path(__file__).parents[2]
PROCS = Path(__file__).parent / "_procs"


def crashed_store(path: Path, n: int = 40) -> list[int]:
    """A writer killed by SIGKILL after ``n`` acknowledged puts, all still in the log."""
    proc = subprocess.run([sys.executable, str(PROCS / "wal_writer.py"), str(path), str(n)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return [int(x) for x in proc.stdout.split()]


def damage_log(path: Path, fraction: float = 0.5) -> int:
    """Flip a byte of a page in the middle of the log; returns the commits SQLite would keep."""
    wal = path / "catalog.sqlite-wal"
    data = bytearray(wal.read_bytes())
    page_size = int.from_bytes(data[8:12], "big")
    frame = int((len(data) - 32) // (24 + page_size) * fraction)
    data[32 + frame * (24 + page_size) + 24 + page_size // 2] ^= 0x40
    wal.write_bytes(bytes(data))
    report = read_wal(wal)
    assert report is not None and report.lost_commits > 0
    return report.valid_frames


def fingerprint(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.glob("catalog.sqlite*"))}


def cli(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--store", str(path), *args])
    return result.exit_code, result.output


def test_an_open_refused_for_a_damaged_log_changes_nothing(tmp_path: Path) -> None:
    """Issue 12 item 11: never delete or checkpoint on an open that fails; name the file at fault."""
    path = tmp_path / "s"
    assert crashed_store(path) == list(range(1, 41))
    damage_log(path)
    before = fingerprint(path)
    assert "catalog.sqlite-wal" in before
    for read_only in (False, True, False):
        with pytest.raises(koru.CorruptionError, match=r"catalog\.sqlite-wal.*koru recover"):
            koru.open(path, read_only=read_only)
    assert fingerprint(path) == before, "a refused open changed the catalog's files"


def test_recover_reports_then_keeps_the_commits_before_the_damage(tmp_path: Path) -> None:
    """Issue 12 item 11: ``koru recover`` says what can be kept and changes nothing;
    ``--apply`` copies the files aside, keeps the commits before the damaged frame, and
    the store opens and verifies."""
    path = tmp_path / "s"
    crashed_store(path)
    damage_log(path, 0.6)
    before = fingerprint(path)
    code, out = cli(path, "recover")
    assert code == 1, out
    assert "catalog.sqlite-wal" in out and "frame" in out and "can keep: commits 1.." in out
    assert fingerprint(path) == before, "recover without --apply changed something"
    report = recover(path)
    kept = report.commits_kept
    assert report.needs_recovery and kept is not None and 0 < kept < 40 and report.transactions_lost > 0

    code, out = cli(path, "--json", "recover", "--apply")
    assert code == 0, out
    data = json.loads(out)
    assert data["applied"] and data["commits_kept"] == kept
    backup = Path(data["backup"])
    assert fingerprint(backup) == before, "the damaged files were not kept as they were"
    with koru.open(path) as store:
        assert [c.commit for c in store.commits()] == list(range(1, kept + 1))
        assert store.as_of("w", sort=True)["i"].to_pylist() == list(range(kept))
        assert store.verify().is_ok
        store.put("w", "after", {"i": -1})
    code, out = cli(path, "recover")
    assert code == 0 and "nothing to recover" in out


def test_recover_moves_aside_what_koru_refuses(tmp_path: Path) -> None:
    """Issue 12 items 11 and 13: ``readers`` replaced by a file, ``write.lock`` by a folder,
    SQLite's ``-shm`` by a symlink: opening refuses or works around them with a typed error
    (never an IsADirectoryError or FileExistsError); ``recover --apply`` moves them aside."""
    path = tmp_path / "s"
    with koru.open(path) as store:
        store.put("t", "k", {"v": 1})
    (path / "readers").mkdir(exist_ok=True)
    (path / "readers").rmdir()
    (path / "readers").write_text("not a folder")
    (path / "write.lock").unlink()
    (path / "write.lock").mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious" * 1000)
    (path / "catalog.sqlite-shm").symlink_to(victim)
    with pytest.raises(koru.CorruptionError, match="catalog.sqlite-shm"):
        koru.open(path)
    report = recover(path)
    assert len(report.findings) == 3, report.findings
    recover(path, apply=True)
    assert victim.read_bytes() == b"precious" * 1000
    with koru.open(path) as store:
        assert store.get("t", "k") == {"v": 1}
        store.put("t", "k", {"v": 2})
        assert store.as_of("t")["v"].to_pylist() == [2]


def test_a_healthy_store_needs_no_recovery(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with koru.open(path) as store:
        store.put("t", "k", {"v": 1})
    before = fingerprint(path)
    report = recover(path, apply=True)
    assert not report.needs_recovery and not report.applied and report.commits_kept == 1
    assert fingerprint(path) == before
    assert not list(path.glob("recovery-*"))
    with pytest.raises(koru.InvalidInputError, match="no koru store"):
        recover(tmp_path / "nothing")


def test_commit_hash_anchors_verify_and_the_cli_head_option(tmp_path: Path) -> None:
    """Issue 12 item 16: ``Commit.hash`` is public; ``verify(expected_head=)`` and
    ``koru verify --head HASH`` catch a store rewritten (here: a catalog rolled back), and
    refuse a malformed hash."""
    path = tmp_path / "s"
    with koru.open(path) as store:
        store.put("t", "a", {"v": 1})
    old = (path / "catalog.sqlite").read_bytes()  # closed: checkpointed into the file
    with koru.open(path) as store:
        store.put("t", "b", {"v": 2})
        commits = store.commits()
        assert all(len(c.hash) == 64 and int(c.hash, 16) >= 0 for c in commits)
        anchor = commits[-1].hash
        assert store.verify(expected_head=anchor).is_ok
        assert store.verify(expected_head=commits[0].hash.upper()).is_ok, "an earlier anchor holds too"
        with pytest.raises(koru.InvalidInputError, match="64 hex"):
            store.verify(expected_head="abc")
    code, out = cli(path, "verify", "--head", anchor)
    assert code == 0, out
    code, out = cli(path, "verify", "--head", "xyz")
    assert code == 2 and "64 hex" in out
    (path / "catalog.sqlite").write_bytes(old)  # the catalog as it was before the last commit
    for suffix in ("-wal", "-shm"):
        (path / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    with koru.open(path) as store:
        assert store.verify().is_ok, "without an anchor an older, consistent catalog passes"
    code, out = cli(path, "verify", "--head", anchor)
    assert code == 1 and anchor in out and "no commit has that hash" in out


@pytest.mark.parametrize("where", ["log header", "salt of a commit frame", "page of the last commit", "torn tail"])
def test_every_kind_of_log_damage_is_refused_or_harmless(tmp_path: Path, where: str) -> None:
    """Issue 12 item 11: SQLite drops the whole log when its header fails, and every frame
    from one whose salts or checksum fail; each such open is refused. A transaction cut
    short before its commit frame (a writer killed mid-write) was never committed: the
    store opens with every acknowledged commit."""
    path = tmp_path / "s"
    acknowledged = crashed_store(path, 12)
    wal = path / "catalog.sqlite-wal"
    data = bytearray(wal.read_bytes())
    page_size = int.from_bytes(data[8:12], "big")
    frame = 24 + page_size
    n = (len(data) - 32) // frame
    commits = [i for i in range(n) if int.from_bytes(data[32 + i * frame + 4:32 + i * frame + 8], "big")]
    if where == "log header":
        data[12] ^= 0x01  # the checkpoint sequence: the header's checksum fails
    elif where == "salt of a commit frame":
        data[32 + commits[len(commits) // 2] * frame + 9] ^= 0x01
    elif where == "page of the last commit":
        data[32 + commits[-1] * frame + 24 + page_size // 3] ^= 0x01
    else:  # frames of a transaction that never reached its commit frame
        extra = bytearray(data[32 + (commits[-1] - 1) * frame:32 + commits[-1] * frame])
        extra[4:8] = bytes(4)  # not a commit frame
        extra[24:] = bytes(page_size)  # its checksum no longer holds: written half-way
        data += extra
    wal.write_bytes(bytes(data))
    if where == "torn tail":
        with koru.open(path) as store:
            assert [c.commit for c in store.commits()] == acknowledged
        return
    with pytest.raises(koru.CorruptionError, match=r"catalog\.sqlite-wal"):
        koru.open(path)
    report = recover(path)
    assert report.needs_recovery and report.transactions_lost >= 1
