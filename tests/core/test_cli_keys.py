"""The CLI takes keys as written (issue 11): ``COL=VALUE,…`` for a namespace with key
columns, the ``_key`` otherwise; ``koru get --show-version`` shows the version."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner, Result

import koru_core as koru
from koru_core.cli import main

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2021, 1, 1, tzinfo=timezone.utc)


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--store", str(path), *args])


def _seed(path: Path) -> None:
    with koru.open(path) as s:
        s.upsert("people", [{"loc": 4, "sex": "F", "age": "0-4", "pop": 10}], key=["loc", "sex", "age"],
                 valid_from=T0, actor="census")
        s.upsert("people", [{"loc": 4, "sex": "F", "age": "0-4", "pop": 11}], key=["loc", "sex", "age"],
                 valid_from=T1, actor="revision")
        s.put("notes", "a=b", {"t": "a put-only key that holds '='"})


def test_get_log_diff_delete_and_put_take_col_value_pairs(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _seed(path)
    got = run(path, "--json", "get", "people", "age=0-4,loc=4,sex=F")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout) == {"loc": 4, "sex": "F", "age": "0-4", "pop": 11}
    assert json.loads(run(path, "--json", "get", "people", "4|F|0-4", "--at", "2020-06-01T00:00:00Z").stdout)["pop"] == 10
    log = run(path, "--json", "log", "people", "loc=4,sex=F,age=0-4")
    assert [r["pop"] for r in json.loads(log.stdout)] == [10, 11]
    diff = run(path, "--json", "diff", "people", "loc=4,sex=F,age=0-4", "--from", "1", "--to", "2")
    assert json.loads(diff.stdout) == [{"field": "pop", "before": 10, "after": 11}]
    put = run(path, "put", "people", "loc=5,sex=M,age=5-9", '{"pop": 3}')
    assert put.exit_code == 0, put.output
    # the record gets its key columns, each of its column's type (loc is an integer column)
    assert json.loads(run(path, "--json", "get", "people", "loc=5,sex=M,age=5-9").stdout) == {
        "loc": 5, "sex": "M", "age": "5-9", "pop": 3}
    assert run(path, "get", "people", "loc=x,sex=M,age=5-9").exit_code == 2  # loc holds integers
    deleted = run(path, "delete", "people", "loc=5,sex=M,age=5-9")
    assert deleted.exit_code == 0, deleted.output
    # a put-only namespace: '=' is part of the key
    assert json.loads(run(path, "--json", "get", "notes", "a=b").stdout) == {"t": "a put-only key that holds '='"}


def test_a_key_of_the_wrong_columns_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _seed(path)
    bad = run(path, "get", "people", "loc=4,sex=F")
    assert bad.exit_code == 1
    assert "['loc', 'sex', 'age']" in bad.output and "Traceback" not in bad.output
    bad_put = run(path, "put", "people", "loc=4,sex=F", '{"pop": 1}')
    assert bad_put.exit_code == 1
    with koru.open(path) as s:
        assert s.version() == 3


def test_get_show_version_tells_which_version_holds(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _seed(path)
    out = run(path, "--json", "get", "people", "loc=4,sex=F,age=0-4", "--at", "2020-06-01T00:00:00Z",
              "--show-version")
    doc = json.loads(out.stdout)
    assert doc["value"]["pop"] == 10
    assert doc["version"]["commit"] == 1 and doc["version"]["actor"] == "census"
    assert doc["version"]["valid_from"].startswith("2020-01-01T00:00:00")
    assert doc["version"]["valid_to"].startswith("2021-01-01T00:00:00")
    text = run(path, "get", "people", "loc=4,sex=F,age=0-4", "--show-version").output
    assert "commit 2" in text and "actor revision" in text and "→ now" in text
