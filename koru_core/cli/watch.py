"""``koru watch``: print each commit as it lands, from any process (issue 14)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from koru_core.cli._common import _emit_json, _show, open_store, settings
from koru_core.watch import DEFAULT_POLL_INTERVAL

if TYPE_CHECKING:
    from koru_core.watch import CommitEvent

__all__ = ["watch"]


@click.command()
@click.argument("namespaces", nargs=-1, metavar="[NAMESPACE]...")
@click.option("--since", type=click.IntRange(min=0), help="Print the commits after this one (0: all). "
              "Default: the --name position, else only commits made from now on.")
@click.option("--name", help="Keep the position under this name in the store; a restart goes on from it.")
@click.option("--once", is_flag=True, help="Print the commits that have landed, then exit (--timeout 0).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Exit after this many seconds without a new commit. Default: wait forever.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_POLL_INTERVAL,
              show_default=True, metavar="SECONDS", help="Seconds between two reads of the catalog.")
@click.option("--changes", is_flag=True, help="Add each commit's change feed (counts per op; rows with --json).")
def watch(namespaces: tuple[str, ...], since: int | None, name: str | None, once: bool,
          timeout: float | None, interval: float, changes: bool) -> None:
    """Print one line per new commit (of NAMESPACE, or of any), as commits land from any process.

    The store's catalog is polled every --interval seconds. With --json, each
    commit is one JSON document on its own line (JSON lines). Stop with Ctrl-C,
    --once or --timeout.

    Example: koru watch orders --name nightly-report --timeout 60
    """
    store = open_store(create=False)
    events = store.watch(
        list(namespaces) or None, since=since, poll_interval=interval,
        timeout=0 if once else timeout, name=name, with_changes=changes,
    )
    try:
        for event in events:
            if settings().as_json:
                _emit_json(event.to_dict())
            else:
                click.echo(_line(event))
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends: not an error
        return


def _line(event: CommitEvent) -> str:
    parts = [
        f"commit {event.commit}",
        _show(event.system_time),
        ",".join(event.namespaces),
        f"written {event.written}",
        f"unchanged {event.unchanged}",
        f"deleted {event.deleted}",
    ]
    if event.actor:
        parts.append(f"actor {event.actor}")
    for namespace, table in (event.changes or {}).items():
        ops = Counter(table["op"].to_pylist())
        parts.append(f"{namespace}: " + ", ".join(f"{n} {op}" for op, n in sorted(ops.items())))
    return "  ".join(parts)
