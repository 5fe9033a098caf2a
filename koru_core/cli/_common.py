"""Shared plumbing of the ``koru`` command line: settings, store opening, errors, output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from koru_core.errors import KoruError, StoreLockedError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from koru_core.store import Store

DEFAULT_LOCK_TIMEOUT = 10.0
"""Seconds a write waits for another process's write lock (``--lock-timeout``)."""

TRACEBACK_ENV = "KORU_TRACEBACK"
"""Set this environment variable to 1 to see the traceback of an unexpected error."""


@dataclass(slots=True)
class Settings:
    """The global options, carried in ``ctx.obj``; a subcommand's own ``--store``,
    ``--lock-timeout`` or ``--json`` (given after its name) overrides them."""

    store: str
    as_json: bool
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    catalog: str | None = None


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
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:  # `koru sql … | head`: the reader left; say nothing
            _quiet_exit(141)
        except StoreLockedError as e:
            _fail(f"{e} (on the command line: --lock-timeout SECONDS)", 1)
        except KoruError as e:
            _fail(str(e), 1)
        except UnicodeDecodeError as e:
            _fail(f"not UTF-8 text: {e}", 1)
        except OSError as e:
            _fail(_first_line(e), 1)
        except Exception as e:  # an engine's error (ArrowInvalid, duckdb.Error, …) or a bug
            if os.environ.get(TRACEBACK_ENV) == "1":
                raise
            _fail(_describe(e), 1)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _describe(error: Exception) -> str:
    """One line for an error koru did not type: the engine's first line, or the bug's name."""
    engine = type(error).__module__.split(".")[0].lstrip("_")
    first = _first_line(error)
    if engine in {"pyarrow", "duckdb", "polars"}:
        return f"{engine}: {first or type(error).__name__}"
    return (
        f"unexpected {type(error).__name__}: {first} "
        f"(a bug in koru; run with {TRACEBACK_ENV}=1 for the traceback)"
    )


def _fail(message: str, code: int) -> None:
    first = " ".join(message.split()) or "failed"
    click.echo(f"error: {first}", err=True)
    sys.exit(code)


def _quiet_exit(code: int) -> None:
    try:  # stdout is a closed pipe: flushing it at exit would raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
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


def _override(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            found = ctx.find_object(Settings)
            if found is not None:
                setattr(found, field, value)

    return callback


def common_options() -> list[click.Option]:
    """``--store``, ``--lock-timeout`` and ``--json`` for a subcommand, so that
    ``koru get users alice --store data.koru`` works as ``koru --store data.koru get …``."""
    return [
        click.Option(
            ["--store"], metavar="PATH", expose_value=False, callback=_override("store"),
            help="The store folder or s3:// URL (as 'koru --store'; default: $KORU_STORE, else ./koru-data).",
        ),
        click.Option(
            ["--catalog"], metavar="URL", expose_value=False, callback=_override("catalog"),
            help="The postgresql:// catalog of a shared store (as 'koru --catalog'; default: $KORU_CATALOG).",
        ),
        click.Option(
            ["--lock-timeout"], type=click.FloatRange(min=0), metavar="SECONDS", expose_value=False,
            callback=_override("lock_timeout"),
            help="Seconds a write waits for another writer's lock (as 'koru --lock-timeout').",
        ),
        click.Option(
            ["--json", "as_json"], is_flag=True, default=False, expose_value=False,
            callback=_override("as_json"), help="Print JSON (as 'koru --json').",
        ),
    ]


def add_common_options(command: click.Command) -> click.Command:
    """Append :func:`common_options` to ``command`` (those it does not define itself)."""
    taken = {opt for p in command.params for opt in p.opts}
    command.params.extend(o for o in common_options() if not set(o.opts) & taken)
    return command


def is_shared() -> bool:
    """True when ``--store``/``--catalog`` name a shared store (an ``s3://`` URL, or any store with a catalog URL)."""
    from koru_core.storage.objects import is_object_url

    return settings().catalog is not None or is_object_url(settings().store)


def open_store(*, create: bool | None) -> Store:
    """Open the store of ``--store`` for this command; it is closed when the command ends.

    Args:
        create: ``False`` for commands that only read: a missing store is an
            error, and nothing is created. ``None`` for commands that write: a
            missing or empty folder becomes a store, a folder of other files is
            refused. ``True`` (``koru init --force``): make a store even there.

    Raises:
        click.ClickException: no store (``create=False``), or a non-empty folder
            that holds no store (``create=None``).
    """
    import koru_core

    if is_shared():
        # a shared store: object storage options come from the environment (AWS_ENDPOINT_URL …)
        store = koru_core.open(settings().store, catalog=settings().catalog, create=create,
                               lock_timeout=settings().lock_timeout)
        return click.get_current_context().with_resource(store)
    path = Path(settings().store)
    has_store = (path / "catalog.sqlite").is_file()
    if create is False and not has_store:
        msg = f"no koru store at {str(path)!r}: run 'koru init', or give --store or KORU_STORE"
        raise click.ClickException(msg)
    if create is None and not has_store and path.is_dir() and any(path.iterdir()):
        msg = (
            f"{str(path)!r} is a folder of other files, not a koru store: give another --store, "
            "or run 'koru init --force' to make a store in it"
        )
        raise click.ClickException(msg)
    store = koru_core.open(path, create=create, lock_timeout=settings().lock_timeout)
    return click.get_current_context().with_resource(store)


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


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(_finite(data), default=_json_default, ensure_ascii=False, allow_nan=False))


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
        return json.dumps(_finite(value), default=_json_default, ensure_ascii=False)
    return str(value)


def _print_table(
    rows: list[dict[str, Any]], columns: Sequence[str], *, title: str | None = None
) -> None:
    """Print ``rows`` as a table that fits the terminal (see :mod:`koru_core.cli.table`)."""
    from koru_core.cli.table import print_rows

    print_rows(rows, columns, title=title)


def key_argument(store: Store, namespace: str, text: str) -> Any:
    """The key a command's KEY argument names (DESIGN.md, "Keys").

    ``COL=VALUE,COL=VALUE`` in a namespace with key columns, every COL one of them,
    is the mapping of those columns, each VALUE read as its column's stored type (an
    integer column takes an int; :func:`koru_core.keys.encode_key` checks the columns);
    anything else is the ``_key`` string itself.

    Raises:
        click.BadParameter: a VALUE that is not an int for an integer key column.
    """
    import pyarrow as pa

    if "=" not in text or namespace not in store.namespaces():
        return text
    columns = store.key_columns(namespace)
    pairs = [part.partition("=") for part in text.split(",")]
    if not columns or not all(sep and name in columns for name, sep, _ in pairs):
        return text
    schema = store.schema(namespace)
    key: dict[str, Any] = {}
    for name, _, value in pairs:
        if name in schema.names and pa.types.is_integer(schema.field(name).type):
            try:
                key[name] = int(value)
            except ValueError:
                msg = f"key column {name!r} of namespace {namespace!r} holds integers, got {value!r}"
                raise click.BadParameter(msg, param_hint="KEY") from None
        else:
            key[name] = value
    return key
