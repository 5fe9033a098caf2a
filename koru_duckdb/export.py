"""Writing a query result out as CSV, JSON, JSON lines or Parquet, by DuckDB's own writers.

This is the one writer of ``koru sql --format csv|json|jsonl|parquet``. CSV and
Parquet are DuckDB's ``COPY … TO`` (``relation.to_csv`` / ``to_parquet``), so
every DuckDB type works, nested ones included: CSV writes a list or struct as
DuckDB's text for it (``[1, 2]``, ``{'x': 1}``); Parquet keeps the types.
JSON is DuckDB's ``to_json`` of each row, so lists are arrays and structs
objects, with every NaN or infinite float (which JSON cannot hold) written as
``null``. Output goes to a file, or to standard output through a temporary file.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from koru_duckdb._sql import quote_identifier

if TYPE_CHECKING:
    import os

    import duckdb
    from duckdb.sqltypes import DuckDBPyType

__all__ = ["FORMATS", "Format", "export"]

Format = Literal["csv", "json", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "json", "jsonl", "parquet")
"""The formats :func:`export` writes."""

_ROW = "__koru_row"


def export(
    relation: duckdb.DuckDBPyRelation | None,
    *,
    format: Format = "csv",  # noqa: A002 - the CLI's --format
    output: str | os.PathLike[str] | None = None,
) -> None:
    """Write a query result to ``output`` (a file path) or standard output.

    Args:
        relation: A result of ``con.sql(…)``; ``None`` (what ``sql`` returns for
            a statement without a result, such as ``SET``) writes nothing.
        format: ``"csv"``: a header line, then one line per row (DuckDB's
            ``COPY … (FORMAT csv)``); ``"json"``: one JSON array of objects, one
            per row; ``"jsonl"``: JSON lines, one object per row; ``"parquet"``:
            a zstd-compressed Parquet file (``COPY … (FORMAT parquet)``).
        output: File to write (replaced if it exists); default standard output
            (binary for Parquet).

    Raises:
        ValueError: ``format`` is not one of :data:`FORMATS`.
        duckdb.Error: the query fails, or ``output`` cannot be written.

    Example:
        >>> import duckdb
        >>> export(duckdb.sql("SELECT 1 AS a, [1.5, 'nan'::DOUBLE] AS b"), format="jsonl")
        {"a":1,"b":[1.5,null]}
        >>> export(duckdb.sql("SELECT 1 AS a, [1, 2] AS b"), format="csv")
        a,b
        1,"[1, 2]"
    """
    if format not in FORMATS:
        msg = f"format must be one of {list(FORMATS)}, got {format!r}"
        raise ValueError(msg)
    if relation is None:
        return
    if output is not None:
        _write(relation, format, Path(output))
        return
    with tempfile.TemporaryDirectory(prefix="koru-export-") as tmp:
        path = Path(tmp) / f"result.{format}"
        _write(relation, format, path)
        _copy_to_stdout(path, binary=format == "parquet")


def _copy_to_stdout(path: Path, *, binary: bool) -> None:
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None and not binary:  # a text-only stdout (doctest, a notebook's redirect)
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return
    if buffer is None:
        msg = "standard output takes no bytes here; give output= for Parquet"
        raise ValueError(msg)
    with path.open("rb") as f:
        shutil.copyfileobj(f, buffer)
    buffer.flush()


def _write(relation: duckdb.DuckDBPyRelation, format: Format, path: Path) -> None:  # noqa: A002
    if format == "csv":
        relation.to_csv(str(path))
    elif format == "parquet":
        relation.to_parquet(str(path), compression="zstd")
    else:
        _write_json(relation, path, lines=format == "jsonl")


def _write_json(relation: duckdb.DuckDBPyRelation, path: Path, *, lines: bool) -> None:
    """Each row through DuckDB's ``to_json``, NaN and ±inf made null first."""
    rows = relation.query(
        _ROW, f"SELECT CAST(to_json({_ROW}) AS VARCHAR) FROM (SELECT {_finite_columns(relation)} FROM {_ROW}) AS {_ROW}"
    )
    assert rows is not None  # a SELECT always has a result
    first = True
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("" if lines else "[")
        for batch in rows.to_arrow_reader(65_536):
            for line in batch.column(0).to_pylist():
                if lines:
                    out.write(line + "\n")
                else:
                    out.write(("\n" if first else ",\n") + line)
                first = False
        out.write("" if lines else "\n]\n" if not first else "]\n")


def _finite_columns(relation: duckdb.DuckDBPyRelation) -> str:
    """The select list of ``relation``'s columns with NaN/±inf → NULL, at any depth."""
    parts = []
    for name, type_ in zip(relation.columns, relation.types, strict=True):
        column = quote_identifier(name)
        parts.append(f"{_finite(column, type_, 0) or column} AS {column}")
    return ", ".join(parts) or "*"


def _finite(expr: str, type_: DuckDBPyType, depth: int) -> str | None:
    """``expr`` of DuckDB type ``type_`` with non-finite floats nulled, or None if it holds no float."""
    kind = type_.id
    if kind in ("float", "double"):
        return f"CASE WHEN isfinite({expr}) THEN {expr} END"
    children = cast("dict[str, DuckDBPyType]", dict(type_.children) if kind in ("list", "array", "map") else {})
    var = f"__koru_x{depth}"
    if kind in ("list", "array"):
        inner = _finite(var, children["child"], depth + 1)
        return None if inner is None else f"list_transform({expr}, lambda {var}: {inner})"
    if kind == "map":
        inner = _finite(f"{var}.value", children["value"], depth + 1)
        if inner is None:
            return None
        entry = f"struct_pack(key := {var}.key, value := {inner})"
        return f"map_from_entries(list_transform(map_entries({expr}), lambda {var}: {entry}))"
    if kind == "struct":
        fields = [(name, f"({expr}).{quote_identifier(name)}", cast("DuckDBPyType", child))
                  for name, child in type_.children]
        made = [(name, _finite(access, child, depth + 1), access) for name, access, child in fields]
        if all(finite is None for _, finite, _ in made):
            return None
        packed = ", ".join(f"{quote_identifier(name)} := {finite or access}" for name, finite, access in made)
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    return None
