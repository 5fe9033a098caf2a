"""The lifecycle CLI commands (issue 5), run through a group like ``koru``'s main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import koru_core as koru
from koru_core import cli
from koru_core.lifecycle.cli import COMMANDS


@pytest.fixture
def koru_cli() -> cli._KoruGroup:
    """``koru`` with the lifecycle commands, without touching the global ``main``."""
    return cli._KoruGroup(name="koru", params=cli.main.params, callback=cli.main.callback,
                          commands={c.name: c for c in COMMANDS})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "s.koru"
    with koru.open(p) as s:
        for r in range(4):
            s.upsert("users", [{"id": f"k{j}", "v": r * 10 + j} for j in range(1200)], key="id")
        s.put("other", "a", 1)
    return p


def _run(koru_cli: cli._KoruGroup, path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(koru_cli, ["--store", str(path), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_consolidate_distill_vacuum_verify(koru_cli: cli._KoruGroup, path: Path) -> None:
    code, out = _run(koru_cli, path, "consolidate")
    assert code == 0 and out.startswith("consolidate: other, users; files 4 → 3")  # users: state + history
    code, out = _run(koru_cli, path, "--json", "distill", "--keep-last", "1", "--keep-for", "0s")
    data = json.loads(out)
    assert code == 0 and data["action"] == "distill" and data["namespaces"] == ["users"]
    assert data["versions_before"] - data["versions_after"] == 3 * 1200
    code, out = _run(koru_cli, path, "vacuum", "--retain", "0")
    assert code == 0 and out.startswith("vacuum: users")
    code, out = _run(koru_cli, path, "verify")
    assert code == 0 and "ok" in out
    with koru.open(path) as s:
        assert s.history("users", "k5")["_pruned"].to_pylist() == [True, True, True, False]


def test_verify_fails_with_the_problems(koru_cli: cli._KoruGroup, path: Path) -> None:
    with koru.open(path) as s:
        s.consolidate()
        victim = s.plan("users", shape="versions").files[0]
    Path(victim).unlink()
    code, out = _run(koru_cli, path, "verify")
    assert code == 1 and "PROBLEMS" in out and "missing" in out


def test_snapshot_restore_and_tag(koru_cli: cli._KoruGroup, path: Path, tmp_path: Path) -> None:
    code, out = _run(koru_cli, path, "tag", "v1", "--commit", "1")
    assert code == 0 and "commit 1" in out
    code, out = _run(koru_cli, path, "snapshot", str(tmp_path / "bundle"))
    assert code == 0 and "bundle" in out
    code, out = _run(koru_cli, tmp_path / "copy", "restore", str(tmp_path / "bundle"))
    assert code == 0 and "restored 5 commits" in out
    with koru.open(tmp_path / "copy") as s, koru.open(path) as src:
        assert s.as_of("users").equals(src.as_of("users"))


def test_bad_duration_is_a_usage_error(koru_cli: cli._KoruGroup, path: Path) -> None:
    result = CliRunner().invoke(koru_cli, ["--store", str(path), "vacuum", "--retain", "soon"])
    assert result.exit_code == 2 and "duration" in result.output


def test_every_command_has_help() -> None:
    assert [c.name for c in COMMANDS] == ["consolidate", "distill", "vacuum", "verify", "snapshot", "restore", "tag"]
    assert all(c.help for c in COMMANDS)
