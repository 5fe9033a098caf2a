"""``koru log``: the commit log of the store, or every version of one key."""

from __future__ import annotations

from dataclasses import asdict

import click

from koru_core.cli._common import _emit_json, _show, key_argument, open_store, settings
from koru_core.cli.records import METADATA
from koru_core.cli.table import DEFAULT_MAX_ROWS, print_rows
from koru_core.errors import KeyNotFoundError

COMMIT_COLUMNS = ["commit", "time", "actor", "run id", "namespaces", "written", "unchanged", "deleted", "metadata"]
"""The columns of ``koru log`` without a key, one row per commit."""


@click.command(name="log")
@click.argument("namespace", required=False)
@click.argument("key", required=False)
@click.option("--namespace", "only", metavar="NS", help="Only the commits that wrote namespace NS.")
@click.option(
    "--metadata", "metadata", type=METADATA, multiple=True,
    help="Only the commits whose metadata holds KEY=VALUE (repeat: all of them).",
)
@click.option(
    "--max-rows", type=click.IntRange(min=0), default=DEFAULT_MAX_ROWS, show_default=True,
    help="Commits shown: the first and last halves, with the count; 0 shows all.",
)
def log_(
    namespace: str | None, key: str | None, only: str | None, metadata: tuple[tuple[str, str], ...],
    max_rows: int,
) -> None:
    """Print the commit log, oldest first: number, system time, actor, run id,
    namespaces written, counts (written, unchanged, deleted) and metadata.

    With NAMESPACE, only the commits that wrote it (as --namespace). With
    NAMESPACE and KEY, every version of KEY, oldest first (by valid time, then commit).
    """
    if key is not None:
        if only is not None or metadata:
            msg = "--namespace and --metadata filter the commit log; give no KEY with them"
            raise click.UsageError(msg)
        _key_history(namespace or "", key)
        return
    if namespace is not None and only is not None and namespace != only:
        msg = f"NAMESPACE {namespace!r} and --namespace {only!r} differ; give one"
        raise click.UsageError(msg)
    commits = open_store(create=False).commits(namespace=only or namespace, metadata=dict(metadata) or None)
    if settings().as_json:
        _emit_json([asdict(c) for c in commits])
        return
    rows = [
        {
            "commit": c.commit, "time": c.system_time, "actor": c.actor, "run id": c.run_id,
            "namespaces": ", ".join(c.namespaces), "written": c.written, "unchanged": c.unchanged,
            "deleted": c.deleted, "metadata": " ".join(f"{k}={v}" for k, v in sorted(c.metadata.items())),
        }
        for c in commits
    ]
    if not rows:
        click.echo("no commits")
        return
    print_rows(rows, COMMIT_COLUMNS, max_rows=max_rows, count=True)


def _key_history(namespace: str, key: str) -> None:
    store = open_store(create=False)
    history = store.history(namespace, key_argument(store, namespace, key))
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
