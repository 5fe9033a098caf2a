"""``koru search``: the nearest records to a query vector, as of any time (issue 7)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from koru_core.cli._common import TIME, _emit_json, _print_table, open_store, settings

__all__ = ["search"]


def _json_option(value: str | None, hint: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        msg = f"not valid JSON ({e})"
        raise click.BadParameter(msg, param_hint=hint) from e


@click.command()
@click.argument("namespace")
@click.argument("query", metavar="VECTOR_JSON")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="How many records.")
@click.option("--column", help="The vector column. Default: the namespace's only one.")
@click.option("--metric", type=click.Choice(["cosine", "l2", "ip"]), default="cosine", show_default=True,
              help="cosine (1 - cos), l2 (squared Euclidean) or ip (1 - dot).")
@click.option("--at", type=TIME, help="Valid time to search at (ISO 8601 with a zone). Default: now.")
@click.option("--version", type=click.IntRange(min=1), help="Commit number bounding system time.")
@click.option("--where", metavar="JSON", help='Equality filter on value columns, e.g. \'{"tag": "x"}\'.')
@click.option("--ef", type=click.IntRange(min=1), help="HNSW query beam width (default 800).")
def search(namespace: str, query: str, k: int, column: str | None, metric: str, at: datetime | None,
           version: int | None, where: str | None, ef: int | None) -> None:
    """Print the K records of NAMESPACE nearest to VECTOR_JSON (a JSON list of numbers), nearest first.

    Needs the vector extra: pip install 'koru-lake[vector]'.
    """
    vector = _json_option(query, "VECTOR_JSON")
    try:
        table = open_store(create=False).search(
            namespace, vector, k=k, column=column, metric=metric, at=at, version=version,
            where=_json_option(where, "--where"), ef=ef,
        )
    except ImportError as e:  # hnswlib missing: the message says how to install it
        raise click.ClickException(str(e)) from e
    rows = table.to_pylist()
    if settings().as_json:
        _emit_json(rows)
        return
    vectors = {f.name for f in table.schema if str(f.type).startswith(("fixed_size_list", "list"))}
    columns = [n for n in table.column_names if n not in vectors and n not in ("_system_from", "_write_id")]
    _print_table(rows, columns, title=f"{namespace} · {len(rows)} nearest ({metric})")
