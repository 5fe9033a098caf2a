"""What ``koru import`` reads files with: DuckDB's CSV, JSON and Parquet readers.

DuckDB infers CSV and JSON types over ``--infer-rows`` rows (its ``sample_size``)
rather than one block, takes ``--schema`` types as given, and reports a value
that does not convert with its line and column; :func:`describe` turns its
message into one line that names both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

DEFAULT_INFER_ROWS = 100_000
"""Rows of a CSV or JSON lines file that types are inferred from (``--infer-rows``)."""

TYPE_NAMES = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT", "int": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
    "float16": "FLOAT", "float32": "FLOAT", "float64": "DOUBLE", "float": "DOUBLE",
    "str": "VARCHAR", "string": "VARCHAR", "utf8": "VARCHAR", "large_string": "VARCHAR",
    "bool": "BOOLEAN", "boolean": "BOOLEAN", "date32": "DATE", "binary": "BLOB", "bytes": "BLOB",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
}
"""``--schema`` type names as Arrow and Python users write them, to DuckDB's; any
other name is DuckDB's own (``BIGINT``, ``DECIMAL(10,2)``, ``VARCHAR[]``, ``date``,
``timestamp``, ``timestamptz``, …). ``int8`` is Arrow's 8-bit integer here."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A file to import, as a DuckDB relation, and what is needed to explain its errors."""

    con: duckdb.DuckDBPyConnection
    path: Path
    fmt: str
    given: dict[str, str]  # the --schema overrides
    infer_rows: int
    relation: duckdb.DuckDBPyRelation | None = None  # None while the file is being opened
    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type read (inferred or --schema)


def parse_schema(items: tuple[str, ...]) -> dict[str, str]:
    """``("a=int64,b=DECIMAL(10,2)", "c=string")`` → ``{"a": "BIGINT", "b": "DECIMAL(10,2)", "c": "VARCHAR"}``.

    Raises:
        click.BadParameter: an item is not ``column=type``, or DuckDB knows no such type.
    """
    import duckdb

    schema: dict[str, str] = {}
    for item in items:
        for part in re.split(r",(?![^()]*\))", item):
            column, sep, name = part.partition("=")
            column, name = column.strip(), name.strip()
            if not part.strip():
                continue
            if not sep or not column or not name:
                msg = f"{part!r} is not column=type (e.g. id=string,n=int64,t=timestamptz)"
                raise click.BadParameter(msg, param_hint="--schema")
            try:
                schema[column] = str(duckdb.sqltype(TYPE_NAMES.get(name.lower(), name)))
            except duckdb.Error as e:
                msg = f"column {column!r}: unknown type {name!r} (e.g. int64, float64, string, bool, date, timestamptz)"
                raise click.BadParameter(msg, param_hint="--schema") from e
    return schema


def open_source(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, *, schema: dict[str, str], text: list[str],
    infer_rows: int,
) -> Source:
    """The file as a DuckDB relation: ``schema`` types as given, ``text`` columns as VARCHAR.

    Args:
        infer_rows: Rows to infer CSV and JSON types from; 0 reads every row first.
    """
    import duckdb

    opening = Source(con=con, path=path, fmt=fmt, given=schema, infer_rows=infer_rows)
    try:
        return _open(opening, text)
    except duckdb.Error as e:
        raise click.ClickException(describe(e, opening)) from e


def _open(source: Source, text: list[str]) -> Source:
    import duckdb

    con, path, fmt, schema = source.con, source.path, source.fmt, source.given
    sample = source.infer_rows or -1
    wanted = {**{c: "VARCHAR" for c in text}, **schema}
    if fmt == "csv":
        # a header line, then rows: DuckDB's sniffer would otherwise skip lines or drop the header
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        detected = con.read_csv(str(path), header=True, skiprows=0, delimiter=delimiter, sample_size=sample)
        _check_columns(wanted, detected.columns, path)
        relation = con.read_csv(str(path), header=True, skiprows=0, delimiter=delimiter, sample_size=sample,
                                dtype=wanted or None)
    elif fmt == "jsonl":
        detected = con.read_json(str(path), format="newline_delimited", sample_size=sample)
        _check_columns(wanted, detected.columns, path)
        columns = {**dict(zip(detected.columns, map(str, detected.types), strict=True)), **wanted}
        relation = con.read_json(str(path), format="newline_delimited", columns=columns)
    else:
        detected = con.read_parquet(str(path))
        _check_columns(schema, detected.columns, path)
        relation = detected.select(*(
            duckdb.ColumnExpression(c).cast(duckdb.sqltype(schema[c])).alias(c) if c in schema
            else duckdb.ColumnExpression(c)
            for c in detected.columns
        )) if schema else detected
    return replace(source, relation=relation, types=dict(zip(relation.columns, map(str, relation.types), strict=True)))


def _check_columns(wanted: dict[str, str], columns: list[str], path: Path) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        msg = f"{path.name!r} has no column {missing[0]!r} (its columns: {', '.join(columns)})"
        raise click.ClickException(msg)


def describe(error: Exception, source: Source) -> str:
    """One line for DuckDB's error reading ``source``: the line (or row), the column, the value.

    Example:
        >>> import duckdb, pathlib
        >>> source = Source(con=duckdb.connect(), path=pathlib.Path("a.csv"), fmt="csv", given={},
        ...                 infer_rows=10, types={"n": "BIGINT"})
        >>> message = chr(10).join(["Conversion Error: CSV Error on Line: 12", "Original Line: x,abc",
        ...     'Error when converting column "n". Could not convert string "abc" to BIGINT', "", "…"])
        >>> print(describe(duckdb.ConversionException(message), source))  # doctest: +ELLIPSIS
        cannot import 'a.csv': line 12, column 'n': Could not convert string "abc" to BIGINT (its type ... --schema n=string, ...)
    """
    text = str(error)
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    line = _search(r"CSV Error on Line: (\d+)", text) or _search(r"in line (\d+)", text)
    column = _search(r'converting column "([^"]+)"', text) or _search(r"source column (\S+)", text)
    head = re.sub(r"^[A-Za-z ]*Error:\s*", "", lines[0]) if lines else type(error).__name__
    body = [x for x in lines[1:] if not x.startswith("Original Line")]
    reason = body[0] if re.fullmatch(r"CSV Error on Line: \d+", head) and body else head
    if head.startswith("Error when sniffing") and body:
        reason = f"cannot tell the CSV dialect ({body[0].rstrip('.')})"
        if source.fmt == "csv":
            line, reason = _ragged_line(source.path) or (line, reason)
    reason = re.sub(r'^Error when converting column "[^"]+"\.\s*', "", reason)
    reason = re.sub(r'JSON transform error in file "[^"]*", in line \d+:\s*', "", reason)
    reason = re.sub(r'\s*in file "[^"]*",?', "", reason)
    reason = re.sub(r"\s*when casting from source column \S+", "", reason)
    if source.fmt == "jsonl" and line and column is None:
        line, column = _json_locate(source, int(line), reason)
    if source.fmt == "parquet" and column is not None and line is None:
        row = _first_bad_row(source, column)
        where = f"row {row:,}" if row is not None else None
    else:
        where = f"line {int(line):,}" if line else None
    place = ", ".join(p for p in (where, None if column is None else f"column {column!r}") if p)
    hint = ""
    if column is not None and column in source.given:
        hint = f" (--schema {column}={source.given[column]})"
    elif column is not None and source.fmt != "parquet":
        rows = "every row" if source.infer_rows == 0 else f"the first {source.infer_rows:,} rows"
        hint = (f" (its type {source.types.get(column, '?')} was inferred from {rows}: give "
                f"--schema {column}=string, or --infer-rows 0 to infer from every row)")
    return f"cannot import {source.path.name!r}: {place + ': ' if place else ''}{reason}{hint}"


def _search(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return None if found is None else found.group(1)


def _ragged_line(path: Path) -> tuple[str, str] | None:
    """The first line of a CSV file whose field count differs from its header's, and how."""
    import csv

    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            header = next(rows, [])
            for row in rows:
                if len(row) != len(header):
                    return str(rows.line_num), f"{len(row)} fields, the header has {len(header)}"
    except (OSError, ValueError, csv.Error):
        return None
    return None


def _json_locate(source: Source, line: int, reason: str) -> tuple[str, str | None]:
    """The line and key of the JSON value DuckDB could not convert: its message quotes the
    value but not the key, and its line number can be off for a large file, so the file is
    searched for the first record holding that value in a typed (non-string) column."""
    value = _search(r'(".*"|[-\w.]+)\s*$', reason)
    if value is None:
        return str(line), None
    try:
        with source.path.open(encoding="utf-8") as f:
            for number, text in enumerate(f, 1):
                if value not in text:
                    continue
                record = json.loads(text)
                found = [
                    k for k, v in record.items()
                    if json.dumps(v) == value and source.types.get(k) not in (None, "VARCHAR", "JSON")
                ] if isinstance(record, dict) else []
                if found:
                    return str(number), found[0]
    except (OSError, ValueError):
        pass
    return str(line), None


def _first_bad_row(source: Source, column: str) -> int | None:
    """The 1-based row of a Parquet file whose ``column`` does not convert to its --schema type."""
    import duckdb

    if column not in source.given:
        return None
    relation = source.con.read_parquet(str(source.path), file_row_number=True)
    value = duckdb.ColumnExpression(column)
    bad = relation.filter(value.isnotnull() & value.try_cast(duckdb.sqltype(source.given[column])).isnull())
    found = bad.select(duckdb.ColumnExpression("file_row_number")).limit(1).fetchall()
    return int(found[0][0]) + 1 if found else None


def count_rows(path: Path, fmt: str) -> int | None:
    """Rows in the file, for the progress bar: Parquet's footer count; lines for CSV (less the header) and JSON."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(16 << 20), b""):
            lines += chunk.count(b"\n")
    return max(lines - (1 if fmt == "csv" else 0), 0)


def where(fmt: str, row: int) -> str:
    """How a user finds data row ``row`` (1-based) of a file: its line, or its row in Parquet."""
    if fmt == "csv":
        return f"line {row + 1:,}"
    return f"line {row:,}" if fmt == "jsonl" else f"row {row:,}"


def bisect_bad(values: Any, convert: Any) -> int:
    """The index of the first value of ``values`` (an Arrow array) that ``convert`` refuses."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(values.slice(lo, mid - lo))
        except Exception:  # noqa: BLE001 - the failure is what we look for
            hi = mid
        else:
            lo = mid
    return lo
