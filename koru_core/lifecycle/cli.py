"""The lifecycle commands of ``koru``: consolidate, distill, vacuum, verify, snapshot, restore, tag.

They are plain click commands listed in :data:`COMMANDS`; ``koru_core.cli``
registers them on its ``main`` group (``main.add_command``) and supplies the
shared plumbing (``--store``, ``--json``, one-line errors). Maintenance over
several namespaces shows a progress bar on a terminal (one step per namespace).

Durations are ``<n><unit>`` with unit ``s``, ``m``, ``h``, ``d`` or ``w``: ``30d``, ``12h``.

Example:
    $ koru --store data.koru consolidate
    $ koru --store data.koru distill --keep-last 10 --keep-for 30d
    $ koru --store data.koru vacuum --retain 0s
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from koru_core.model import MaintenanceResult
    from koru_core.store import Store

__all__ = ["COMMANDS", "Duration"]

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Duration(click.ParamType):
    """A duration such as ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or ``0``) → timedelta."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        if text == "0":
            return timedelta(0)
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
        if m is None:
            self.fail(f"{value!r} is not a duration like 30d, 12h, 90m, 45s or 2w", param, ctx)
        return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


DURATION = Duration()


def _cli() -> Any:
    from koru_core.cli import _common

    return _common


def _store() -> Store:
    return _cli().open_store(create=False)  # type: ignore[no-any-return]


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr (hidden when not a terminal); yields ``step(label)``."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

    err = _cli()._console(stderr=True)
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def step(label: str) -> None:
            bar.update(task, advance=1, description=f"{description}: {label}")

        yield step


def _each_namespace(store: Store, namespace: str | None, action: str, run: Callable[[str], MaintenanceResult]) -> dict[str, Any]:
    names = [namespace] if namespace else store.namespaces()
    before = after = None
    acted: list[str] = []
    with _progress(action, len(names)) as step:
        for ns in names:
            result = run(ns)
            before = before or result
            after = result
            acted += result.namespaces
            step(ns)
    if before is None or after is None:
        return {"action": action, "namespaces": []}
    return {**asdict(after), "files_before": before.files_before, "bytes_before": before.bytes_before,
            "versions_before": before.versions_before, "namespaces": acted}


def _report(summary: dict[str, Any]) -> None:
    if _cli().settings().as_json:
        _cli()._emit_json(summary)
        return
    if "files_before" not in summary:
        click.echo(f"{summary['action']}: nothing to do")
        return
    names = ", ".join(summary["namespaces"]) or "nothing changed"
    click.echo(
        f"{summary['action']}: {names}; files {summary['files_before']:,} → {summary['files_after']:,}, "
        f"bytes {summary['bytes_before']:,} → {summary['bytes_after']:,}, "
        f"versions {summary['versions_before']:,} → {summary['versions_after']:,}"
    )


@click.command()
@click.argument("namespace", required=False)
def consolidate(namespace: str | None) -> None:
    """Merge warm files and pending versions into cold files (NAMESPACE, or all)."""
    store = _store()
    _report(_each_namespace(store, namespace, "consolidate", store.consolidate))


@click.command()
@click.option("--namespace", help="Distill only this namespace (default: all).")
@click.option("--keep-last", type=click.IntRange(min=1), help="Keep the last N versions of each key.")
@click.option("--keep-for", type=DURATION, help="Keep versions written or valid within this duration, e.g. 30d.")
@click.option("--thin", is_flag=True, help="Thinning: all for 7d, one a day for 90d, one a month beyond.")
@click.option("--pin", "pins", type=click.IntRange(min=1), multiple=True, help="Keep commit N whole (repeatable).")
@click.option("--pin-tag", "pin_tags", multiple=True, help="Keep the tagged commit whole (repeatable).")
def distill(namespace: str | None, keep_last: int | None, keep_for: timedelta | None, thin: bool,
            pins: tuple[int, ...], pin_tags: tuple[str, ...]) -> None:
    """Drop versions no policy keeps (a version is kept if ANY given policy keeps it).

    Without a policy option nothing is dropped. A key's current version and
    tagged commits are always kept; dropped versions stay in history as pruned.
    """
    import koru_core as koru

    policies: list[Any] = []
    if keep_last:
        policies.append(koru.KeepLast(keep_last))
    if keep_for is not None:
        policies.append(koru.KeepFor(keep_for))
    if thin:
        policies.append(koru.Thinning())
    policies += [koru.Pin(commit=c) for c in pins] + [koru.Pin(tag=t) for t in pin_tags]
    store = _store()
    chosen = policies or [koru.KeepAll()]
    _report(_each_namespace(store, namespace, "distill", lambda ns: store.distill(chosen, namespace=ns)))


@click.command()
@click.option("--retain", type=DURATION, default="7d", show_default=True,
              help="Delete only files replaced (or orphaned) at least this long ago.")
def vacuum(retain: timedelta) -> None:
    """Delete data files the catalog no longer lists, unless a live reader may need them."""
    store = _store()
    with _progress("vacuum", None):
        result = store.vacuum(retain=retain)
    _report(asdict(result) | {"namespaces": list(result.namespaces)})


@click.command()
@click.option("--head", "expected_head", metavar="HASH",
              help="A commit hash kept elsewhere (Commit.hash, 64 hex; Dagster records one per "
                   "materialization): the chain must hold it, so a rewrite of the whole store is caught too.")
def verify(expected_head: str | None) -> None:
    """Recompute content ids, checksums and the commit hash chain; exit 1 on any problem."""
    store = _store()
    if expected_head is not None:
        expected_head = expected_head.strip().lower()
        if len(expected_head) != 64 or any(c not in "0123456789abcdef" for c in expected_head):
            raise click.BadParameter(f"{expected_head!r} is not a commit hash (64 hex characters)",
                                     param_hint="--head")
    with _progress("verify", None):
        report = store.verify(expected_head=expected_head)
    if _cli().settings().as_json:
        _cli()._emit_json(asdict(report))
    else:
        click.echo(f"checked {report.commits_checked:,} commits, {report.files_checked:,} files, "
                   f"{report.versions_checked:,} versions: {'ok' if report.is_ok else 'PROBLEMS'}")
        for line in report.problems:
            click.echo(f"  {line}")
    if not report.is_ok:
        raise SystemExit(1)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
def snapshot(path: Path) -> None:
    """Write a self-verifying bundle of the store (retained versions, skeletons, manifest) to PATH."""
    store = _store()
    with _progress("snapshot", None):
        bundle = store.snapshot(path)
    if _cli().settings().as_json:
        _cli()._emit_json({"snapshot": str(bundle), "head_commit": store.commits()[-1].commit if store.commits() else 0})
    else:
        click.echo(f"snapshot written to {bundle}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
def restore(bundle: Path) -> None:
    """Rebuild a store at --store (a new or empty folder) from the snapshot BUNDLE."""
    import koru_core as koru

    target = Path(_cli().settings().store)
    with _progress("restore", None):
        store = click.get_current_context().with_resource(koru.restore(bundle, target))
    commits = len(store.commits())
    if _cli().settings().as_json:
        _cli()._emit_json({"store": str(store.path), "commits": commits})
    else:
        click.echo(f"restored {commits:,} commits into {store.path}")


@click.command()
@click.argument("name")
@click.option("--commit", type=click.IntRange(min=1), help="Commit to tag (default: the last).")
def tag(name: str, commit: int | None) -> None:
    """Name a commit; distillation keeps a tagged commit whole."""
    number = _store().tag(name, commit=commit)
    click.echo(f"{name} → commit {number}")


COMMANDS: list[click.Command] = [consolidate, distill, vacuum, verify, snapshot, restore, tag]
"""The lifecycle commands, for ``koru_core.cli.main.add_command``."""
