"""``koru upgrade OLD NEW``: a format-2 copy of a store of on-disk format 1.

A thin layer over :func:`koru_core.lifecycle.upgrade.upgrade`, which says what is
carried over and how. ``--lock-timeout`` bounds the wait for a format-1 writer that
holds the old store.

Example:
    $ koru upgrade old.koru new.koru
    upgraded old.koru (on-disk format 1) into new.koru (format 2): 24 commits, 5 namespaces,
    1,126 versions, 3 pruned; verified
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from koru_core.cli._common import _emit_json, settings


@click.command()
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
def upgrade(old: Path, new: Path) -> None:
    """Copy the on-disk format-1 store OLD into a new format-2 store NEW.

    NEW must be a missing or empty folder. OLD is only read. Every version,
    commit (with its hash), tag and cursor is carried over, with the same write
    ids and content ids; NEW is verified before the command returns, and on any
    failure nothing is left there. Then use NEW (--store NEW).
    """
    from koru_core.lifecycle.cli import _progress
    from koru_core.lifecycle.upgrade import upgrade as run

    with _progress("upgrade", None):
        result = run(old, new, lock_timeout=settings().lock_timeout)
    if settings().as_json:
        _emit_json({k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()})
        return
    click.echo(
        f"upgraded {old} (on-disk format {result.from_format}) into {new} (format {result.to_format}): "
        f"{result.commits:,} commits, {len(result.namespaces):,} namespaces, {result.versions:,} versions, "
        f"{result.pruned:,} pruned; verified"
    )
