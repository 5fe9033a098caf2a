"""``koru sql``: queries through ``koru_duckdb`` (loaded only when used), or an interactive prompt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from koru_core.store import Store

from koru_core.cli._common import open_store, settings
from koru_core.cli.table import DEFAULT_MAX_ROWS, print_batches
from koru_core.errors import KoruError

DUCKDB_HINT = "koru sql needs DuckDB: pip install 'koru-lake[duckdb]'"
FORMATS = ("table", "csv", "json", "jsonl", "parquet")
"""``--format`` choices: a terminal table, or a file format of :func:`koru_duckdb.export`."""


def _connect(store: Store) -> Any:
    try:
        import koru_duckdb
    except ImportError as e:
        raise click.ClickException(DUCKDB_HINT) from e
    return koru_duckdb.connect(store)


def _run_sql(con: Any, query: str, fmt: str, output: Path | None, max_rows: int) -> None:
    """Run one statement and write its rows (nothing for a statement without rows).

    The table streams the result and keeps only its first and last rows; the
    file formats are written by DuckDB (:func:`koru_duckdb.export`), never
    through Python rows.
    """
    import duckdb

    import koru_duckdb

    if fmt == "table" and settings().as_json:
        fmt = "json"
    if fmt == "parquet" and output is None:
        msg = "--format parquet needs --output FILE"
        raise click.UsageError(msg)
    if fmt == "table" and output is not None:
        msg = "--output needs --format csv, json, jsonl or parquet"
        raise click.UsageError(msg)
    try:
        relation = con.sql(query)
        if relation is None:
            return
        if fmt == "table":
            types = [str(t).lower() for t in relation.types]
            print_batches(relation.to_arrow_reader(100_000), relation.columns, types=types, max_rows=max_rows)
        else:
            koru_duckdb.export(relation, format=fmt, output=output)  # type: ignore[arg-type]  # a Choice of FORMATS
    except (duckdb.Error, OSError) as e:  # a failure while streaming reaches Arrow's reader as OSError
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        raise click.ClickException(lines[0] if lines else type(e).__name__) from e


def _line_reader() -> Any:
    """Return ``read(prompt)``, giving the next line (EOFError at the end): prompt_toolkit
    with history on a terminal, else ``input()`` with readline; plain lines from a pipe."""
    if not sys.stdin.isatty():

        def piped(prompt: str = "") -> str:  # no prompt: the input is a script
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line

        return piped
    history = Path.home() / ".koru_sql_history"
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        return PromptSession(history=FileHistory(str(history))).prompt
    except ImportError:
        import atexit
        import readline

        if history.exists():
            readline.read_history_file(history)
        atexit.register(readline.write_history_file, history)
        return input


def _repl(con: Any, fmt: str, max_rows: int) -> None:
    """Run one statement per line until EOF or ``.quit``; an error is printed, not fatal."""
    read = _line_reader()
    if sys.stdin.isatty():
        click.echo("koru SQL (DuckDB): one statement per line; .quit or Ctrl-D to leave", err=True)
    while True:
        try:
            line = read("koru> ")
        except (EOFError, KeyboardInterrupt):
            break
        line = line.strip()
        if line in {".quit", ".exit", "exit", "quit"}:
            break
        if not line:
            continue
        try:
            _run_sql(con, line, fmt, None, max_rows)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
        except KoruError as e:  # an unknown namespace in an AT clause, …
            click.echo(f"error: {' '.join(str(e).split())}", err=True)


@click.command()
@click.argument("query", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table: fits the terminal; csv, json (one array), jsonl (a line per row) or parquet: "
    "written by DuckDB. --json means json.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout."
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ROWS,
    show_default=True,
    help="Table rows shown: the first and last halves, with the total count; 0 shows every row.",
)
def sql(query: str | None, fmt: str, output: Path | None, max_rows: int) -> None:
    """Run QUERY in DuckDB, where every namespace is a table (time travel:
    ``FROM ns AT (TIMESTAMP => TIMESTAMP '2013-06-01 12:00:00+00')``).

    A table fits the terminal: wide cells end in …, middle columns are left out,
    and a long result shows its first and last rows with the row count. Without
    QUERY, opens an interactive prompt with history. Needs
    pip install 'koru-lake[duckdb]'.
    """
    con = _connect(open_store(create=False))
    if query is None:
        _repl(con, fmt, max_rows)
        return
    _run_sql(con, query, fmt, output, max_rows)

