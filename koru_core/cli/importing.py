"""``koru import``: CSV, Parquet and JSON lines into a namespace, in batches, with a progress bar."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa


from koru_core.cli._common import _console, _emit_json, open_store, settings

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

def _batches(
    path: Path, fmt: str, batch_rows: int, text: str | None
) -> tuple[Iterator[pa.RecordBatch], int, Any]:
    """Return (batches, total, progress) where progress() is how much of total has been read.

    Column ``text`` (the valid time) is read as strings, so :func:`_valid_times`
    parses it and refuses times without a zone (Arrow's JSON reader would drop it).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    if fmt == "parquet":
        file = pq.ParquetFile(path)
        done = [0]

        def rows() -> Iterator[pa.RecordBatch]:
            for batch in file.iter_batches(batch_size=batch_rows):
                done[0] += batch.num_rows
                yield batch

        return rows(), file.metadata.num_rows, lambda: done[0]
    raw = path.open("rb")
    click.get_current_context().call_on_close(raw.close)
    block = 8 << 20
    if fmt == "csv":
        options = pcsv.ParseOptions(delimiter="\t" if path.suffix == ".tsv" else ",")
        types = {} if text is None else {text: pa.string()}
        reader = pcsv.open_csv(
            raw,
            read_options=pcsv.ReadOptions(block_size=block),
            parse_options=options,
            convert_options=pcsv.ConvertOptions(column_types=types),
        )
    else:
        schema = None if text is None else pa.schema([(text, pa.string())])
        reader = pjson.open_json(
            raw,
            read_options=pjson.ReadOptions(block_size=block),
            parse_options=pjson.ParseOptions(explicit_schema=schema),
        )
    return iter(reader), path.stat().st_size, raw.tell


def _valid_times(batch: pa.RecordBatch, column: str | None) -> pa.RecordBatch:
    """Parse a string valid-time column (ISO 8601 with a zone) into timestamp[ns, UTC]."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from koru_core.model import TIMESTAMP

    index = -1 if column is None else batch.schema.get_field_index(column)
    if index < 0 or not (
        pa.types.is_string(batch.schema[index].type)
        or pa.types.is_large_string(batch.schema[index].type)
    ):
        return batch
    try:
        parsed = pc.cast(batch.column(index), TIMESTAMP)
    except pa.ArrowInvalid as e:
        reason = str(e).splitlines()[0].split(". If ")[0]
        msg = f"--valid-from column {column!r}: {reason} (times need a zone, e.g. Z)"
        raise click.ClickException(msg) from e
    return batch.set_column(index, pa.field(column, TIMESTAMP), parsed)


@click.command(name="import")
@click.argument("namespace")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="COL",
    help="Key column; repeat for a composite key.",
)
@click.option(
    "--valid-from",
    metavar="COL",
    help="Column holding each row's valid time (a timestamp with "
    "a zone, or ISO 8601 strings with a zone). Default: the commit's time.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "jsonl"]),
    help="File format. Default: from the extension (.csv .tsv .parquet .pq .jsonl .ndjson .json).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=65_536,
    show_default=True,
    help="Rows per Parquet batch read.",
)
@click.option("--actor", default="koru import", show_default=True, help="Provenance: who writes.")
def import_(
    namespace: str,
    file: Path,
    keys: tuple[str, ...],
    valid_from: str | None,
    fmt: str | None,
    batch_rows: int,
    actor: str,
) -> None:
    """Import FILE (CSV, Parquet or JSON lines) into NAMESPACE as versions, in ONE commit.

    The file is read in batches (with a progress bar on a terminal); every
    batch is checked as it is read, and all of them are committed atomically
    at the end, so a bad row anywhere means nothing is written. Rows equal to
    a key's current version are counted as unchanged and not written.
    """
    import pyarrow as pa
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    fmt = fmt or FORMATS.get(file.suffix.lower())
    if fmt is None:
        msg = f"cannot tell the format of {file.name!r}; give --format"
        raise click.BadParameter(msg, param_hint="FILE")
    store = open_store(create=True)
    err = _console(stderr=True)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
    ]
    rows = 0
    try:
        with (
            Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar,
            store.transaction(actor=actor) as tx,
        ):
            batches, total, done = _batches(file, fmt, batch_rows, valid_from)
            task = bar.add_task(f"importing {file.name}", total=total, rows=0)
            for batch in batches:
                batch = _valid_times(batch, valid_from)
                tx.upsert(namespace, batch, key=list(keys), valid_from=valid_from)
                rows += batch.num_rows
                bar.update(task, completed=done(), rows=rows)
            bar.update(task, description=f"committing {rows:,} rows")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        msg = f"cannot read {file.name!r} as {fmt}: {str(e).splitlines()[0]}"
        raise click.ClickException(msg) from e
    result = tx.result
    assert result is not None  # set on a clean exit
    if settings().as_json:
        _emit_json({"namespace": namespace, "rows": rows, **asdict(result)})
    else:
        commit = (
            "no commit (nothing changed)" if result.commit is None else f"commit {result.commit}"
        )
        click.echo(
            f"{namespace}: {rows:,} rows read, {result.written:,} versions written, "
            f"{result.unchanged:,} unchanged, {commit}"
        )

