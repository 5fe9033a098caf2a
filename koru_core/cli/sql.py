"""``koru sql``: queries through ``koru_duckdb`` (loaded only when used), or an interactive prompt."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:

    import pyarrow as pa

    from koru_core.store import Store

from koru_core.cli._common import _json_default, _print_table, open_store, settings

DUCKDB_HINT = "koru sql needs DuckDB: pip install 'koru[duckdb]'"

def _connect(store: Store) -> Any:
    try:
        import koru_duckdb
    except ImportError as e:
        raise click.ClickException(DUCKDB_HINT) from e
    return koru_duckdb.connect(store)


def _run_sql(con: Any, query: str) -> pa.Table | None:
    """Run one statement; return its result as Arrow (None for a statement without rows)."""
    import pyarrow as pa

    try:
        import duckdb
    except ImportError as e:
        raise click.ClickException(DUCKDB_HINT) from e
    try:
        relation = con.sql(query)
        if relation is None:
            return None
        result = relation.arrow() if hasattr(relation, "arrow") else relation.to_arrow_table()
    except duckdb.Error as e:
        raise click.ClickException(str(e).strip().splitlines()[0]) from e
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def _write_result(table: pa.Table, fmt: str, output: Path | None) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        if output is None:
            msg = "--format parquet needs --output FILE"
            raise click.UsageError(msg)
        pq.write_table(table, output)
    elif fmt == "csv":
        pcsv.write_csv(table, output if output is not None else sys.stdout.buffer)
    elif fmt == "json" or (fmt == "table" and settings().as_json):
        text = json.dumps(table.to_pylist(), default=_json_default, ensure_ascii=False) + "\n"
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
    elif output is not None:
        msg = "--output needs --format csv, json or parquet"
        raise click.UsageError(msg)
    else:
        _print_table(
            table.to_pylist(),
            table.column_names,
            title=f"{table.num_rows:,} row{'' if table.num_rows == 1 else 's'}",
        )


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


def _repl(con: Any, fmt: str) -> None:
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
            table = _run_sql(con, line)
            if table is not None:
                _write_result(table, fmt, None)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)


@click.command()
@click.argument("query", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="Output format (--json at the top also means json).",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout."
)
def sql(query: str | None, fmt: str, output: Path | None) -> None:
    """Run QUERY in DuckDB, where every namespace is a table (time travel:
    ``FROM ns AT (TIMESTAMP => TIMESTAMP '2013-06-01 12:00:00+00')``).

    Without QUERY, opens an interactive prompt with history. Needs
    pip install 'koru[duckdb]'.
    """
    con = _connect(open_store(create=False))
    if query is None:
        _repl(con, fmt)
        return
    table = _run_sql(con, query)
    if table is None:
        return
    _write_result(table, fmt, output)

