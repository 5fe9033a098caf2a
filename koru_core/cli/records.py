"""The record commands: ``init``, ``put``, ``get``, ``log``, ``diff``, ``stats``."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from koru_core.errors import KeyNotFoundError

if TYPE_CHECKING:


    pass

from koru_core.cli._common import TIME, _emit_json, _print_table, _show, open_store, settings


@click.command()
def init() -> None:
    """Create the store (--store) if it does not exist yet."""
    path = Path(settings().store)
    existed = (path / "catalog.sqlite").exists()
    store = open_store(create=True)
    commits = len(store.commits())
    if settings().as_json:
        _emit_json({"store": str(store.path), "created": not existed, "commits": commits})
    elif existed:
        click.echo(f"store {store.path} already exists ({commits} commits)")
    else:
        click.echo(f"created store {store.path}")


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
def put(
    namespace: str, key: str, value: str, valid_from: datetime | None, actor: str | None
) -> None:
    """Write one version of KEY in NAMESPACE; JSON is its value (an object's fields are columns)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        msg = f"not valid JSON ({e})"
        raise click.BadParameter(msg, param_hint="JSON") from e
    version = open_store(create=True).put(namespace, key, parsed, valid_from=valid_from, actor=actor)
    if settings().as_json:
        _emit_json(asdict(version))
    elif version.is_unchanged:
        click.echo(
            f"{namespace}/{key}: unchanged (equals version {version.write_id}, "
            f"commit {version.commit})"
        )
    else:
        click.echo(
            f"{namespace}/{key}: commit {version.commit}, write id {version.write_id}, "
            f"valid from {version.valid_from.isoformat()}"
        )


@click.command()
@click.argument("namespace")
@click.argument("key")
@click.option("--at", type=TIME, help="Valid time to read at (ISO 8601 with a zone). Default: now.")
@click.option("--version", type=click.IntRange(min=1), help="Commit number bounding system time.")
def get(namespace: str, key: str, at: datetime | None, version: int | None) -> None:
    """Print the value of KEY in NAMESPACE, as of --at and --version."""
    value = open_store(create=False).get(namespace, key, at=at, version=version)
    if settings().as_json:
        _emit_json(value)
    elif isinstance(value, dict):
        _print_table(
            [{"field": k, "value": v} for k, v in value.items()],
            ["field", "value"],
            title=f"{namespace}/{key}",
        )
    else:
        click.echo(_show(value))


@click.command(name="log")
@click.argument("namespace")
@click.argument("key")
def log_(namespace: str, key: str) -> None:
    """Print every version of KEY in NAMESPACE, oldest first (by valid time, then commit)."""
    history = open_store(create=False).history(namespace, key)
    if history.num_rows == 0:
        msg = f"namespace {namespace!r}: no key {key!r}"
        raise KeyNotFoundError(msg)
    rows = history.to_pylist()
    if settings().as_json:
        _emit_json(rows)
        return
    values = [n for n in history.column_names if not n.startswith("_")]
    for row in rows:  # like `git log`: a header line per version, then its value
        until = _show(row["_valid_to"]) or "now"
        actor = f" · actor {row['_actor']}" if row["_actor"] else ""
        click.echo(
            f"commit {row['_commit']} · valid {_show(row['_valid_from'])} → {until} · "
            f"write id {row['_write_id']}{actor}"
        )
        value = {n: row[n] for n in values if row[n] is not None}
        click.echo("    (deleted)" if row["_deleted"] else "    " + _show(value))


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
    changes = open_store(create=False).diff(namespace, key, _ref(from_, "--from"), _ref(to, "--to"))
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

