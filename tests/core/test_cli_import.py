"""``koru import`` through DuckDB's readers (issue 13): inference over many rows, ``--schema``,
``--infer-rows``, and errors that name the line (or row) and the column; run as a real subprocess."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import koru_core as koru

pytest.importorskip("duckdb")

from _cli_run import koru_cli, ok, one_line_error  # noqa: E402  (tests/core/_cli_run.py)

if TYPE_CHECKING:
    from pathlib import Path


def _late_text_csv(path: Path, *, ints: int = 30_000) -> Path:
    """``ints`` rows whose ``n`` looks like an int, then one where it is text, then more ints."""
    lines = ["id,n,t"] + [f"k{i},{i},2024-01-01T00:00:00Z" for i in range(ints)]
    lines += ["kx,abc,2024-02-01T00:00:00Z"] + [f"m{i},{i},2024-01-01T00:00:00Z" for i in range(100)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_late_text_value_is_inferred_over_enough_rows(tmp_path: Path) -> None:
    """Issue 13: types were guessed from the first block, so a text value after 10k int rows failed."""
    store = tmp_path / "s.koru"
    csv = _late_text_csv(tmp_path / "late.csv")
    out = json.loads(ok(koru_cli("import", "late", str(csv), "--key", "id", "--valid-from", "t", "--json",
                                 store=store)))
    assert (out["rows"], out["written"], out["commit"]) == (30_101, 30_101, 1)
    with koru.open(store) as s:
        assert s.get("late", "kx")["n"] == "abc" and s.get("late", "k5")["n"] == "5"


def test_too_few_inference_rows_fail_naming_line_and_column(tmp_path: Path) -> None:
    """Issue 13: the error said "column #0"; it names the column, the line and the way out."""
    store = tmp_path / "s.koru"
    csv = _late_text_csv(tmp_path / "late.csv")
    proc = koru_cli("import", "late", str(csv), "--key", "id", "--infer-rows", "1000", store=store)
    one_line_error(proc, "line 30,002", "column 'n'", '"abc"', "--schema n=string", "--infer-rows 0")
    assert "#0" not in proc.stderr
    with koru.open(store) as s:
        assert s.commits() == []  # one atomic commit: nothing was written
    ok(koru_cli("import", "late", str(csv), "--key", "id", "--infer-rows", "0", store=store))


def test_schema_overrides_and_its_errors(tmp_path: Path) -> None:
    store = tmp_path / "s.koru"
    csv = tmp_path / "ids.csv"
    csv.write_text("id,zip,amount,day,at\n007,01234,1.50,2024-01-02,2024-01-02T03:04:05Z\n"
                   "008,98765,2,2024-01-03,2024-01-03T00:00:00+02:00\n")
    ok(koru_cli("import", "ids", str(csv), "--key", "id",
                "--schema", "id=string,zip=string", "--schema", "amount=DECIMAL(10,2),day=date,at=timestamptz",
                store=store))
    with koru.open(store) as s:
        row = s.get("ids", "007")
        table = s.as_of("ids")
    assert row["zip"] == "01234"  # not the int 1234 inference would give
    assert str(row["amount"]) == "1.50" and str(row["day"]) == "2024-01-02"
    assert pa.types.is_timestamp(table.schema.field("at").type) and table.schema.field("at").type.tz is not None
    one_line_error(koru_cli("import", "ids", str(csv), "--key", "id", "--schema", "zip=int64,id=uint8",
                            "--schema", "day=int64", store=store), "line 2", "column 'day'", "--schema day=BIGINT")
    one_line_error(koru_cli("import", "ids", str(csv), "--key", "id", "--schema", "zip=nonsense", store=store),
                   "--schema", "'zip'", "unknown type 'nonsense'")
    one_line_error(koru_cli("import", "ids", str(csv), "--key", "id", "--schema", "nope=int64", store=store),
                   "no column 'nope'", "id, zip, amount")
    one_line_error(koru_cli("import", "ids", str(csv), "--key", "id", "--schema", "zip", store=store),
                   "is not column=type")


def test_parquet_and_json_lines_errors_name_row_and_column(tmp_path: Path) -> None:
    store = tmp_path / "s.koru"
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": [f"k{i}" for i in range(500)],
                             "n": [str(i) if i != 321 else "bad" for i in range(500)]}), parquet)
    one_line_error(koru_cli("import", "p", str(parquet), "--key", "id", "--schema", "n=int64", store=store),
                   "row 322", "column 'n'", "'bad'")
    jsonl = tmp_path / "j.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"k{i}", "n": i}) + "\n" for i in range(3000))
                     + json.dumps({"id": "kx", "n": "abc"}) + "\n")
    one_line_error(koru_cli("import", "j", str(jsonl), "--key", "id", "--infer-rows", "100", store=store),
                   "line 3,001", "column 'n'", "abc")
    ok(koru_cli("import", "j", str(jsonl), "--key", "id", store=store))  # 100,000 rows of inference see it
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n{"id": "b"\n')
    one_line_error(koru_cli("import", "b", str(bad), "--key", "id", store=store), "line 3", "Malformed JSON")


def test_valid_time_errors_name_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("id,t\na,2024-01-01T00:00:00Z\nb,2024-01-02T00:00:00Z\nc,2024-01-03T00:00:00\n")
    one_line_error(koru_cli("import", "t", str(csv), "--key", "id", "--valid-from", "t", store=tmp_path / "s"),
                   "--valid-from column 't'", "line 4", "'2024-01-03T00:00:00'", "zone")


def test_import_without_a_header_match_or_with_ragged_rows_fails_in_one_line(tmp_path: Path) -> None:
    ragged = tmp_path / "r.csv"
    ragged.write_text("id,n\n" + "".join(f"k{i},{i}\n" for i in range(200)) + "kz,1,2\n")
    one_line_error(koru_cli("import", "r", str(ragged), "--key", "id", "--infer-rows", "50", store=tmp_path / "s"),
                   "line 202")
    one_line_error(koru_cli("import", "r", str(ragged), "--key", "nope", "--infer-rows", "0", store=tmp_path / "s"))
