"""Shared plumbing of the ``koru`` command line: settings, store opening, errors, output."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from koru_core.errors import KoruError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from koru_core.store import Store

# -- shared plumbing ------------------------------------------------------------


@dataclass(slots=True)
class Settings:
    """The global options, carried in ``ctx.obj``."""

    store: str
    as_json: bool


class _KoruGroup(click.Group):
    """A group whose errors are one ``error: …`` line on stderr, never a traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,  # type: ignore[override]
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
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

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time, e.g. 2013-06-01T12:00:00Z", param, ctx)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(
                f"{value!r} has no zone; add Z or an offset like +00:00 (koru does not guess one)",
                param,
                ctx,
            )
        return parsed


TIME = IsoTime()


def settings() -> Settings:
    return click.get_current_context().find_object(Settings)  # type: ignore[return-value]


def open_store(*, create: bool) -> Store:
    """Open the store of ``--store`` for this command; it is closed when the command ends."""
    import koru_core

    path = Path(settings().store)
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


def _print_table(
    rows: list[dict[str, Any]], columns: Sequence[str], *, title: str | None = None
) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in _NO_WRAP)
    for row in rows:
        table.add_row(*(escape(_show(row.get(name))) for name in columns))
    _console().print(table)


# -- commands ---------------------------------------------------------------------
