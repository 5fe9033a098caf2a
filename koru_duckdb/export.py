"""Writing a query result out as a text table, CSV, JSON lines or Parquet (for ``koru sql``)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import duckdb

__all__ = ["FORMATS", "Format", "export"]

Format = Literal["table", "csv", "json", "parquet"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json", "parquet")
"""The formats :func:`export` writes."""


def export(
    relation: duckdb.DuckDBPyRelation | None,
    *,
    format: Format = "table",  # noqa: A002 - the CLI's --format
    output: str | os.PathLike[str] | None = None,
    max_rows: int | None = None,
) -> None:
    """Write a query result to ``output`` (a file path) or standard output.

    Args:
        relation: A result of ``KoruConnection.sql(…)``; ``None`` (what ``sql``
            returns for a statement without a result, such as ``SET``) writes nothing.
        format: ``"table"``: DuckDB's box rendering (text); ``"csv"``: a header
            then one line per row; ``"json"``: JSON lines, one object per row,
            encoded by DuckDB's ``to_json``; ``"parquet"``: a zstd Parquet file.
        output: File to write; default standard output (binary for Parquet).
        max_rows: For ``"table"``, the rows to show (DuckDB's default when None).

    Raises:
        ValueError: ``format`` is not one of :data:`FORMATS`.

    Example:
        >>> import duckdb
        >>> export(duckdb.sql("SELECT 1 AS a, 'x' AS b"), format="json")
        {"a":1,"b":"x"}
    """
    if format not in FORMATS:
        msg = f"format must be one of {list(FORMATS)}, got {format!r}"
        raise ValueError(msg)
    if relation is None:
        return
    if format == "table":
        with _text(output) as out, contextlib.redirect_stdout(out):
            relation.show(max_rows=max_rows)
    elif format == "json":
        lines = relation.query("__koru_result", "SELECT CAST(to_json(r) AS VARCHAR) FROM __koru_result AS r")
        with _text(output) as out:
            for batch in _reader(lines):
                for line in batch.column(0).to_pylist():
                    out.write(line + "\n")
    else:
        reader = _reader(relation)
        with _binary(output) as out:
            if format == "csv":
                with pacsv.CSVWriter(out, reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
            else:
                with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
                    for batch in reader:
                        writer.write_batch(batch)


def _reader(relation: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    """The relation's rows as a stream of Arrow batches (``to_arrow_reader`` since DuckDB 1.4)."""
    if hasattr(relation, "to_arrow_reader"):
        return relation.to_arrow_reader()
    return relation.fetch_record_batch()


@contextlib.contextmanager
def _text(output: str | os.PathLike[str] | None):  # type: ignore[no-untyped-def]
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
    else:
        with open(output, "w", encoding="utf-8", newline="") as f:
            yield f


@contextlib.contextmanager
def _binary(output: str | os.PathLike[str] | None):  # type: ignore[no-untyped-def]
    if output is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        with open(output, "wb") as f:
            yield f
