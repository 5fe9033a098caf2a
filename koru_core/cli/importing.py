"""``koru import``: CSV, Parquet and JSON lines into a namespace, in batches, with a progress bar.

The file is read by DuckDB (see :mod:`koru_core.cli._readers`): CSV and JSON
types are inferred over ``--infer-rows`` rows, ``--schema`` sets any column's
type, and an error names the line (or Parquet row) and the column.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from koru_core.cli._common import _console, _emit_json, open_store, settings
from koru_core.cli._readers import (
    DEFAULT_INFER_ROWS,
    Source,
    bisect_bad,
    count_rows,
    describe,
    open_source,
    parse_schema,
    where,
)
from koru_core.cli.records import metadata_option
from koru_core.errors import KoruError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

    from koru_core.model import CommitResult
    from koru_core.store import Store

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
"""File format by extension, for ``koru import`` without ``--format``."""

DUCKDB_HINT = "koru import reads files with DuckDB: pip install 'koru-lake[duckdb]'"


def _batches(source: Source, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in Arrow batches, in file order; a read error names its line and column."""
    import duckdb
    import pyarrow as pa

    assert source.relation is not None
    try:
        reader = source.relation.to_arrow_reader(batch_rows)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except (duckdb.Error, pa.ArrowException, OSError) as e:  # DuckDB's error reaches Arrow's reader as OSError
        raise click.ClickException(describe(e, source)) from e


def _valid_times(batch: pa.RecordBatch, column: str | None, *, first_row: int, fmt: str) -> pa.RecordBatch:
    """Parse a string valid-time column (ISO 8601 with a zone) into timestamp[ns, UTC].

    Raises:
        click.ClickException: a time without a zone, or not a time; names its line (or row).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from koru_core.model import TIMESTAMP

    index = -1 if column is None else batch.schema.get_field_index(column)
    if index < 0 or not (
        pa.types.is_string(batch.schema[index].type)
        or pa.types.is_large_string(batch.schema[index].type)
    ):
        return batch
    values = batch.column(index)
    try:
        parsed = pc.cast(values, TIMESTAMP)
    except pa.ArrowInvalid as e:
        bad = bisect_bad(values, lambda part: pc.cast(part, TIMESTAMP))
        msg = (
            f"--valid-from column {column!r}, {where(fmt, first_row + bad)}: {values[bad].as_py()!r} "
            "is not an ISO 8601 time with a zone (e.g. 2024-01-01T00:00:00Z; koru does not guess a zone)"
        )
        raise click.ClickException(msg) from e
    return batch.set_column(index, pa.field(column, TIMESTAMP), parsed)


@click.command(name="import")
@click.argument("namespace")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key", "keys", multiple=True, required=True, metavar="COL",
    help="Key column; repeat for a composite key.",
)
@click.option(
    "--valid-from", metavar="COL",
    help="Column holding each row's valid time (a timestamp with "
    "a zone, or ISO 8601 strings with a zone). Default: the commit's time.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]),
    help="File format. Default: from the extension (.csv .tsv .parquet .pq .jsonl .ndjson .json).",
)
@click.option(
    "--schema", "schema_items", multiple=True, metavar="COL=TYPE,…",
    help="Column types, overriding inference: int64/BIGINT, float64/DOUBLE, string/VARCHAR, bool, "
    "date, timestamp, timestamptz, DECIMAL(p,s), or any DuckDB type. Repeatable.",
)
@click.option(
    "--infer-rows", type=click.IntRange(min=0), default=DEFAULT_INFER_ROWS, show_default=True,
    help="Rows of a CSV or JSON lines file that column types are inferred from; 0: every row "
    "(the file is read twice).",
)
@click.option(
    "--batch-rows", type=click.IntRange(min=1), default=65_536, show_default=True,
    help="Rows read and checked per batch.",
)
@click.option("--actor", default="koru import", show_default=True, help="Provenance: who writes.")
@click.option("--run-id", help="Provenance: the run that writes.")
@metadata_option()
def import_(
    namespace: str, file: Path, keys: tuple[str, ...], valid_from: str | None, fmt: str | None,
    schema_items: tuple[str, ...], infer_rows: int, batch_rows: int, actor: str, run_id: str | None,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """Import FILE (CSV, Parquet or JSON lines) into NAMESPACE as versions, in ONE commit.

    The file is read in batches (with a progress bar on a terminal); every
    batch is checked as it is read, and all of them are committed atomically
    at the end, so a bad row anywhere means nothing is written. Rows equal to
    a key's current version are counted as unchanged and not written. Needs
    pip install 'koru-lake[duckdb]'.
    """
    try:
        import duckdb
    except ImportError as e:
        raise click.ClickException(DUCKDB_HINT) from e
    fmt = fmt or FORMATS.get(file.suffix.lower())
    if fmt is None:
        msg = f"cannot tell the format of {file.name!r}; give --format"
        raise click.BadParameter(msg, param_hint="FILE")
    schema = parse_schema(schema_items)
    store = open_store(create=None)
    con = click.get_current_context().with_resource(duckdb.connect())
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ reaches Arrow as UTC
    text = [valid_from] if valid_from is not None and valid_from not in schema else []
    source = open_source(con, file, fmt, schema=schema, text=text, infer_rows=infer_rows)
    rows, result = _commit(store, source, namespace, keys=list(keys), valid_from=valid_from,
                           batch_rows=batch_rows, actor=actor, run_id=run_id, metadata=dict(metadata) or None)
    if settings().as_json:
        _emit_json({"namespace": namespace, "rows": rows, **asdict(result)})
    else:
        commit = "no commit (nothing changed)" if result.commit is None else f"commit {result.commit}"
        click.echo(
            f"{namespace}: {rows:,} rows read, {result.written:,} versions written, "
            f"{result.unchanged:,} unchanged, {commit}"
        )


def _commit(store: Store, source: Source, namespace: str, *, keys: list[str], valid_from: str | None,
            batch_rows: int, actor: str, run_id: str | None, metadata: dict[str, str] | None,
            ) -> tuple[int, CommitResult]:
    """Upsert every batch in one transaction, under a progress bar; ``(rows read, CommitResult)``."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    err = _console(stderr=True)
    columns = [
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"), TimeRemainingColumn(),
    ]
    name = source.path.name
    rows = 0
    with (
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar,
        store.transaction(actor=actor, run_id=run_id, metadata=metadata) as tx,
    ):
        total = count_rows(source.path, source.fmt) if err.is_terminal else None
        task = bar.add_task(f"importing {name}", total=total, rows=0)
        for batch in _batches(source, batch_rows):
            batch = _valid_times(batch, valid_from, first_row=rows + 1, fmt=source.fmt)
            try:
                tx.upsert(namespace, batch, key=keys, valid_from=valid_from)
            except KoruError as e:
                first, last = where(source.fmt, rows + 1), where(source.fmt, rows + batch.num_rows)
                span = first if first == last else f"{first.split()[0]}s {first.split()[1]}–{last.split()[1]}"
                msg = f"cannot import {name!r} ({span}): {e}"
                raise click.ClickException(msg) from e
            rows += batch.num_rows
            bar.update(task, completed=rows, rows=rows)
        bar.update(task, description=f"committing {rows:,} rows")
    assert tx.result is not None  # set on a clean exit
    return rows, tx.result
