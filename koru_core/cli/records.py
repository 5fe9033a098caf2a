"""The record commands: ``init``, ``put``, ``get``, ``delete``, ``diff``, ``stats``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from koru_core.cli._common import (
    TIME, _emit_json, _print_table, _show, is_shared, key_argument, open_store, settings,
)
from koru_core.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from koru_core.model import Version
    from koru_core.store import Store


class Metadata(click.ParamType):
    """One ``KEY=VALUE`` item of a commit's metadata (``--metadata``, repeatable)."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, item = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key, item


METADATA = Metadata()


def metadata_option() -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The ``--metadata KEY=VALUE`` option (repeatable) of the commands that write."""
    return click.option(
        "--metadata", "metadata", type=METADATA, multiple=True,
        help="KEY=VALUE recorded with the commit (repeat for more); 'koru log --metadata' finds it.",
    )


@click.command()
@click.option(
    "--force", is_flag=True,
    help="Make the store even in a folder that already holds other files.",
)
def init(force: bool) -> None:
    """Create the store (--store) if it does not exist yet.

    A missing or empty folder becomes a store; a folder of other files is
    refused unless --force is given.
    """
    path = Path(settings().store)
    shared = is_shared()
    existed = (path / "catalog.sqlite").is_file() if not shared else None
    store = open_store(create=True if force else None)
    commits = len(store.commits())
    if shared:
        existed = commits > 0
    if settings().as_json:
        _emit_json({"store": str(store.path), "created": not existed, "commits": commits})
    elif existed:
        click.echo(f"store {store.path} already exists ({commits} commits)")
    else:
        click.echo(f"created store {store.path}")


def _refuse_bare_value(store: Store, namespace: str, value: Any) -> None:
    """A value that is not a JSON object goes in field ``value``: refuse it where the records are fields."""
    if isinstance(value, dict) or namespace not in store.namespaces():
        return
    fields = [f.name for f in store.schema(namespace) if not f.name.startswith("_")]
    if fields and fields != ["value"]:
        msg = (
            f"namespace {namespace!r} holds records with fields {fields}; give a JSON object of "
            f"them, e.g. {json.dumps({fields[0]: value})!r}, not a bare {type(value).__name__} "
            "(nothing was written)"
        )
        raise InvalidInputError(msg)


def _print_version(namespace: str, key: str, version: Version) -> None:
    if settings().as_json:
        _emit_json(asdict(version))
    elif version.is_unchanged:
        click.echo(
            f"{namespace}/{key}: unchanged (equals version {version.write_id}, "
            f"commit {version.commit})"
        )
    else:
        what = "deleted" if version.is_deleted else "commit"
        click.echo(
            f"{namespace}/{key}: {what}{'' if what == 'commit' else ' in commit'} {version.commit}, "
            f"write id {version.write_id}, valid from {version.valid_from.isoformat()}"
        )


@click.command()
@click.argument("namespace")
@click.argument("key")
@click.argument("value", metavar="JSON")
@click.option(
    "--valid-from",
    type=TIME,
    help="When the value became true (ISO 8601 with a zone). Default: now.",
)
@click.option("--actor", help="Provenance: who writes.")
@click.option("--run-id", help="Provenance: the run that writes.")
@metadata_option()
def put(
    namespace: str, key: str, value: str, valid_from: datetime | None, actor: str | None,
    run_id: str | None, metadata: tuple[tuple[str, str], ...],
) -> None:
    """Write one version of KEY in NAMESPACE; JSON is its value (an object's fields are columns).

    A value that is not an object (a number, string or list) is stored in a
    field named value; it is refused in a namespace whose records have fields.
    """
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        msg = f"not valid JSON ({e})"
        raise click.BadParameter(msg, param_hint="JSON") from e
    store = open_store(create=None)
    _refuse_bare_value(store, namespace, parsed)
    version = store.put(
        namespace, key_argument(store, namespace, key), parsed, valid_from=valid_from, actor=actor, run_id=run_id, metadata=dict(metadata) or None
    )
    _print_version(namespace, key, version)


@click.command()
@click.argument("namespace")
@click.argument("key")
@click.option(
    "--valid-from",
    type=TIME,
    help="When the record stopped being true (ISO 8601 with a zone). Default: now.",
)
@click.option("--actor", help="Provenance: who deletes.")
@click.option("--run-id", help="Provenance: the run that deletes.")
@metadata_option()
def delete(
    namespace: str, key: str, valid_from: datetime | None, actor: str | None, run_id: str | None,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """Delete KEY in NAMESPACE: write a tombstone (its history keeps every version).

    Fails, writing nothing, when the key has no live version at --valid-from.
    """
    store = open_store(create=False)
    version = store.delete(
        namespace, key_argument(store, namespace, key), valid_from=valid_from, actor=actor, run_id=run_id, metadata=dict(metadata) or None
    )
    _print_version(namespace, key, version)


@click.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--at", type=TIME, help="Valid time to read at (ISO 8601 with a zone). Default: now.")
@click.option("--version", type=click.IntRange(min=1), help="Commit number bounding system time.")
@click.option(
    "--show-version", is_flag=True,
    help="Also show the version that holds there: valid from/to, commit, write id, actor, run id.",
)
def get(namespace: str, key: str, at: datetime | None, version: int | None, show_version: bool) -> None:
    """Print the value of KEY in NAMESPACE, as of --at and --version.

    KEY is the key as written: the _key string, or for a namespace with key
    columns COL=VALUE pairs joined by commas ('loc=4,sex=F,age=0-4').
    """
    store = open_store(create=False)
    found = store.version_at(namespace, key_argument(store, namespace, key), at=at, version=version)
    value = found.value
    about = {
        "write_id": found.write_id, "commit": found.commit, "valid_from": found.valid_from,
        "valid_to": found.valid_to, "system_from": found.system_from, "actor": found.actor, "run_id": found.run_id,
    }
    if settings().as_json:
        _emit_json({"value": value, "version": about} if show_version else value)
        return
    if isinstance(value, dict):
        _print_table(
            [{"field": k, "value": v} for k, v in value.items()],
            ["field", "value"],
            title=f"{namespace}/{found.key}",
        )
    else:
        click.echo(_show(value))
    if show_version:
        until = _show(found.valid_to) if found.valid_to is not None else "now"
        who = "".join(f" · {name} {v}" for name, v in (("actor", found.actor), ("run", found.run_id)) if v)
        click.echo(f"version {found.write_id} · commit {found.commit} · valid {_show(found.valid_from)} → {until}{who}")


def _ref(text: str | None, option: str) -> int | datetime | str | None:
    """A version reference: a commit number, a write id (16 hex) or an ISO time with a zone."""
    if text is None:
        return None
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    if text.isdigit():
        return int(text)
    try:
        return TIME.convert(text, None, None)
    except click.BadParameter as e:
        e.param_hint = f"{option} (a commit number, write id or time)"
        raise


@click.command()
@click.argument("namespace")
@click.argument("key")
@click.option(
    "--from",
    "from_",
    metavar="REF",
    help="Older version: commit number, write id or ISO time. Default: the version before --to.",
)
@click.option("--to", metavar="REF", help="Newer version (same forms). Default: the latest.")
def diff(namespace: str, key: str, from_: str | None, to: str | None) -> None:
    """Print the fields that differ between two versions of KEY in NAMESPACE."""
    store = open_store(create=False)
    changes = store.diff(namespace, key_argument(store, namespace, key), _ref(from_, "--from"), _ref(to, "--to"))
    if settings().as_json:
        _emit_json([asdict(c) for c in changes])
    elif not changes:
        click.echo("no differences")
    else:
        _print_table(
            [asdict(c) for c in changes], ["field", "before", "after"], title=f"{namespace}/{key}"
        )


@click.command()
def stats() -> None:
    """Print, per namespace and tier, the files, versions and bytes stored, and this
    process's hot tier: memory used and the share of reads its cache answered."""
    store = open_store(create=False)
    rows = store.stats().to_pylist()
    commits = len(store.commits())
    if settings().as_json:
        _emit_json({"store": str(store.path), "commits": commits, "tiers": rows})
        return
    _print_table(
        rows,
        ["namespace", "tier", "files", "versions", "bytes", "memory_bytes", "hit_rate"],
        title=f"{store.path} · {commits} commits",
    )
