"""The ``koru`` command line: a thin click layer that parses, calls the store and prints.

Every command prints a human-readable table by default and JSON with
``koru --json …``. Errors (any :class:`~koru_core.errors.KoruError`, bad
arguments, unreadable files) print one line, ``error: …``, to stderr and exit
non-zero (1 for a failed operation, 2 for bad usage) without a traceback.

Times on the command line are ISO 8601 with a zone: ``2013-06-01T12:00:00Z``
or ``2013-06-01 12:00+02:00``. A time without a zone is refused; koru does not
guess one.

Example:
    $ koru --store data.koru put users alice '{"name": "Alice", "age": 31}'
    $ koru --store data.koru get users alice --at 2026-01-01T00:00:00Z
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from koru_core import __version__
from koru_core.errors import KeyNotFoundError, KoruError
from koru_core.store import DEFAULT_STORE

if TYPE_CHECKING:
    import pyarrow as pa

    from koru_core.store import Store

__all__ = ["main"]

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}
DUCKDB_HINT = "koru sql needs DuckDB: pip install 'koru[duckdb]'"


# -- shared plumbing ------------------------------------------------------------


@dataclass(slots=True)
class Settings:
    """The global options, carried in ``ctx.obj``."""

    store: str
    as_json: bool


class _KoruGroup(click.Group):
    """A group whose errors are one ``error: …`` line on stderr, never a traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            _fail(e.format_message() + hint, e.exit_code)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except KoruError as e:
            _fail(str(e), 1)
        except (OSError, UnicodeDecodeError) as e:
            _fail(str(e), 1)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def _fail(message: str, code: int) -> None:
    first = " ".join(message.split()) or "failed"
    click.echo(f"error: {first}", err=True)
    sys.exit(code)


class IsoTime(click.ParamType):
    """An ISO 8601 time with a zone (``Z`` or ``±HH:MM``), as a tz-aware datetime."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time, e.g. 2013-06-01T12:00:00Z", param, ctx)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(f"{value!r} has no zone; add Z or an offset like +00:00 (koru does not guess one)",
                      param, ctx)
        return parsed


TIME = IsoTime()


def _settings() -> Settings:
    return click.get_current_context().find_object(Settings)  # type: ignore[return-value]


def _open(*, create: bool) -> Store:
    """Open the store of ``--store`` for this command; it is closed when the command ends."""
    import koru_core

    path = Path(_settings().store)
    if not create and not (path / "catalog.sqlite").exists():
        msg = f"no koru store at {str(path)!r}: run 'koru init', or give --store or KORU_STORE"
        raise click.ClickException(msg)
    return click.get_current_context().with_resource(koru_core.open(path))


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (Decimal, timedelta)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    msg = f"cannot write {type(value).__name__} as JSON"
    raise TypeError(msg)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_json_default, ensure_ascii=False))


def _console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if utc.microsecond else "") + "Z")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


_NO_WRAP = {"commit", "valid from", "valid to", "write id", "field", "namespace", "tier"}


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in _NO_WRAP)
    for row in rows:
        table.add_row(*(escape(_show(row.get(name))) for name in columns))
    _console().print(table)


def _version_dict(version: Any) -> dict[str, Any]:
    return asdict(version)


# -- commands ---------------------------------------------------------------------


@click.group(cls=_KoruGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", envvar="KORU_STORE", default=DEFAULT_STORE, show_default=True, show_envvar=True,
              metavar="PATH", help="The store folder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one document) instead of tables.")
@click.version_option(__version__, message="koru %(version)s")
@click.pass_context
def main(ctx: click.Context, store: str, as_json: bool) -> None:
    """koru: a bitemporal, versioned record store.

    Every write of a key becomes an immutable version with a valid time and a
    system time (its commit). Read any key as of any time, see its history
    and what changed, and query namespaces with SQL.
    """
    ctx.obj = Settings(store=store, as_json=as_json)


@main.command()
def init() -> None:
    """Create the store (--store) if it does not exist yet."""
    path = Path(_settings().store)
    existed = (path / "catalog.sqlite").exists()
    store = _open(create=True)
    commits = len(store.commits())
    if _settings().as_json:
        _emit_json({"store": str(store.path), "created": not existed, "commits": commits})
    elif existed:
        click.echo(f"store {store.path} already exists ({commits} commits)")
    else:
        click.echo(f"created store {store.path}")


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.argument("value", metavar="JSON")
@click.option("--valid-from", type=TIME, help="When the value became true (ISO 8601 with a zone). "
              "Default: now.")
@click.option("--actor", help="Provenance: who writes.")
def put(namespace: str, key: str, value: str, valid_from: datetime | None, actor: str | None) -> None:
    """Write one version of KEY in NAMESPACE; JSON is the value (an object's fields become columns)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON ({e})", param_hint="JSON") from e
    version = _open(create=True).put(namespace, key, parsed, valid_from=valid_from, actor=actor)
    if _settings().as_json:
        _emit_json(_version_dict(version))
    elif version.is_unchanged:
        click.echo(f"{namespace}/{key}: unchanged (equals version {version.write_id} of commit {version.commit})")
    else:
        click.echo(f"{namespace}/{key}: commit {version.commit}, write id {version.write_id}, "
                   f"valid from {version.valid_from.isoformat()}")


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--at", type=TIME, help="Valid time to read at (ISO 8601 with a zone). Default: now.")
@click.option("--version", type=click.IntRange(min=1), help="Commit number bounding system time.")
def get(namespace: str, key: str, at: datetime | None, version: int | None) -> None:
    """Print the value of KEY in NAMESPACE, as of --at and --version."""
    value = _open(create=False).get(namespace, key, at=at, version=version)
    if _settings().as_json:
        _emit_json(value)
    elif isinstance(value, dict):
        _print_table([{"field": k, "value": v} for k, v in value.items()], ["field", "value"],
                     title=f"{namespace}/{key}")
    else:
        click.echo(_show(value))


@main.command(name="log")
@click.argument("namespace")
@click.argument("key")
def log_(namespace: str, key: str) -> None:
    """Print every version of KEY in NAMESPACE, oldest first (by valid time, then commit)."""
    history = _open(create=False).history(namespace, key)
    if history.num_rows == 0:
        raise KeyNotFoundError(f"namespace {namespace!r}: no key {key!r}")
    rows = history.to_pylist()
    if _settings().as_json:
        _emit_json(rows)
        return
    values = [n for n in history.column_names if not n.startswith("_")]
    shown = []
    for row in rows:
        value = None if row["_deleted"] else {n: row[n] for n in values if row[n] is not None}
        shown.append({"commit": row["_commit"], "valid from": row["_valid_from"], "valid to": row["_valid_to"],
                      "write id": row["_write_id"], "actor": row["_actor"],
                      "value": "(deleted)" if row["_deleted"] else value})
    _print_table(shown, ["commit", "valid from", "valid to", "write id", "actor", "value"],
                 title=f"{namespace}/{key}: {len(rows)} versions")


def _ref(text: str | None) -> int | datetime | str | None:
    """A version reference: a commit number, a write id (16 hex) or an ISO time with a zone."""
    if text is None:
        return None
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    if text.isdigit():
        return int(text)
    return TIME.convert(text, None, None)


@main.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--from", "from_", metavar="REF", help="Older version: commit number, write id or ISO time. "
              "Default: the version before --to.")
@click.option("--to", metavar="REF", help="Newer version (same forms). Default: the latest.")
def diff(namespace: str, key: str, from_: str | None, to: str | None) -> None:
    """Print the fields that differ between two versions of KEY in NAMESPACE."""
    changes = _open(create=False).diff(namespace, key, _ref(from_), _ref(to))
    if _settings().as_json:
        _emit_json([asdict(c) for c in changes])
    elif not changes:
        click.echo("no differences")
    else:
        _print_table([asdict(c) for c in changes], ["field", "before", "after"], title=f"{namespace}/{key}")


def _batches(path: Path, fmt: str, batch_rows: int) -> tuple[Iterator[pa.RecordBatch], int, Any]:
    """Return (batches, total, progress) where progress() is how much of total has been read."""
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
        reader = pcsv.open_csv(raw, read_options=pcsv.ReadOptions(block_size=block), parse_options=options)
    else:
        reader = pjson.open_json(raw, read_options=pjson.ReadOptions(block_size=block))
    return iter(reader), path.stat().st_size, raw.tell


def _valid_times(batch: pa.RecordBatch, column: str | None) -> pa.RecordBatch:
    """Parse a string valid-time column (ISO 8601 with a zone) into timestamp[ns, UTC]."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from koru_core.model import TIMESTAMP

    if column is None or column not in batch.schema.names:
        return batch
    index = batch.schema.get_field_index(column)
    if not pa.types.is_string(batch.schema.field(index).type) and not pa.types.is_large_string(
            batch.schema.field(index).type):
        return batch
    try:
        parsed = pc.cast(batch.column(index), TIMESTAMP)
    except pa.ArrowInvalid as e:
        msg = f"--valid-from column {column!r}: {str(e).splitlines()[0]} (times need a zone, e.g. Z)"
        raise click.ClickException(msg) from e
    return batch.set_column(index, pa.field(column, TIMESTAMP), parsed)


@main.command(name="import")
@click.argument("namespace")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "keys", multiple=True, required=True, metavar="COL",
              help="Key column; repeat for a composite key.")
@click.option("--valid-from", metavar="COL", help="Column holding each row's valid time (a timestamp with "
              "a zone, or ISO 8601 strings with a zone). Default: the commit's time.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]),
              help="File format. Default: from the extension (.csv .tsv .parquet .pq .jsonl .ndjson .json).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=65_536, show_default=True,
              help="Rows per Parquet batch read.")
@click.option("--actor", default="koru import", show_default=True, help="Provenance: who writes.")
def import_(namespace: str, file: Path, keys: tuple[str, ...], valid_from: str | None, fmt: str | None,
            batch_rows: int, actor: str) -> None:
    """Import FILE (CSV, Parquet or JSON lines) into NAMESPACE as versions, in ONE commit.

    The file is read in batches (with a progress bar on a terminal); every
    batch is checked as it is read, and all of them are committed atomically
    at the end, so a bad row anywhere means nothing is written. Rows equal to
    a key's current version are counted as unchanged and not written.
    """
    import pyarrow as pa
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    fmt = fmt or FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"cannot tell the format of {file.name!r}; give --format",
                                 param_hint="FILE")
    store = _open(create=True)
    err = _console(stderr=True)
    columns = [TextColumn("importing {task.fields[name]}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rows]:,} rows"), TimeRemainingColumn()]
    rows = 0
    try:
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar, \
                store.transaction(actor=actor) as tx:
            batches, total, done = _batches(file, fmt, batch_rows)
            task = bar.add_task("import", total=total, name=file.name, rows=0)
            for batch in batches:
                batch = _valid_times(batch, valid_from)
                tx.upsert(namespace, batch, key=list(keys), valid_from=valid_from)
                rows += batch.num_rows
                bar.update(task, completed=done(), rows=rows)
            bar.update(task, description="committing")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        msg = f"cannot read {file.name!r} as {fmt}: {str(e).splitlines()[0]}"
        raise click.ClickException(msg) from e
    result = tx.result
    assert result is not None  # set on a clean exit
    if _settings().as_json:
        _emit_json({"namespace": namespace, "rows": rows, **asdict(result)})
    else:
        commit = "no commit (nothing changed)" if result.commit is None else f"commit {result.commit}"
        click.echo(f"{namespace}: {rows:,} rows read, {result.written:,} versions written, "
                   f"{result.unchanged:,} unchanged, {commit}")


@main.command()
def stats() -> None:
    """Print, per namespace and tier, the files, versions and bytes stored."""
    store = _open(create=False)
    rows = store.stats().to_pylist()
    commits = len(store.commits())
    if _settings().as_json:
        _emit_json({"store": str(store.path), "commits": commits, "tiers": rows})
        return
    _print_table(rows, ["namespace", "tier", "files", "versions", "bytes"],
                 title=f"{store.path} · {commits} commits")


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
            raise click.UsageError("--format parquet needs --output FILE")
        pq.write_table(table, output)
    elif fmt == "csv":
        pcsv.write_csv(table, output if output is not None else sys.stdout.buffer)
    elif fmt == "json" or (fmt == "table" and _settings().as_json):
        text = json.dumps(table.to_pylist(), default=_json_default, ensure_ascii=False) + "\n"
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
    elif output is not None:
        raise click.UsageError("--output needs --format csv, json or parquet")
    else:
        _print_table(table.to_pylist(), table.column_names, title=f"{table.num_rows:,} rows")


def _repl(con: Any, fmt: str) -> None:
    """Read statements until EOF, ``.quit`` or ``exit``; print each result or its error."""
    history = Path.home() / ".koru_sql_history"
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        session: Any = PromptSession(history=FileHistory(str(history)))
        read = lambda: session.prompt("koru> ")  # noqa: E731
    except ImportError:
        import readline

        if history.exists():
            readline.read_history_file(history)
        read = lambda: input("koru> ")  # noqa: E731
    click.echo("koru SQL on DuckDB: one statement per line; .quit or Ctrl-D to leave", err=True)
    while True:
        try:
            line = read().strip()
        except (EOFError, KeyboardInterrupt):
            break
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
    if "readline" in sys.modules and "prompt_toolkit" not in sys.modules:
        sys.modules["readline"].write_history_file(history)


@main.command()
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="Output format (--json at the top also means json).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
def sql(query: str | None, fmt: str, output: Path | None) -> None:
    """Run QUERY in DuckDB, where every namespace is a table (time travel:
    ``FROM ns AT (TIMESTAMP => TIMESTAMP '2013-06-01 12:00:00+00')``).

    Without QUERY, opens an interactive prompt with history. Needs
    pip install 'koru[duckdb]'.
    """
    con = _connect(_open(create=False))
    if query is None:
        _repl(con, fmt)
        return
    table = _run_sql(con, query)
    if table is None:
        return
    _write_result(table, fmt, output)


@main.command()
@click.option("--commits", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many commits to load the flights in (by valid time).")
def demo(commits: int) -> None:
    """Load the real NYC flights 2013 data as versions and answer time-travel questions.

    Needs the data package: pip install 'koru[demo]'.
    """
    from koru_core.demo import run_demo

    code = run_demo(_settings().store, commits=commits, console=_console())
    if code:
        raise click.exceptions.Exit(code)


if __name__ == "__main__":
    main(prog_name="koru")
