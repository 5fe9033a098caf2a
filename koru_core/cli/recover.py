"""``koru recover``: say what of a store that does not open can be kept, then (with --apply) keep it."""

from __future__ import annotations

from dataclasses import asdict

import click

from koru_core.cli._common import _emit_json, is_shared, settings

__all__ = ["recover"]


@click.command()
@click.option("--apply", "apply_", is_flag=True,
              help="Carry out the actions (the damaged files are first copied to <store>/recovery-<time>/).")
def recover(apply_: bool) -> None:
    """Check the store's catalog files without changing anything and report what can be kept.

    Lists what koru refuses to open through (a damaged write-ahead log, a catalog cut
    short, symlinks or wrong kinds of file among its own files) and the last commit the
    recovered catalog would hold. With --apply, copies the damaged files aside, then keeps
    what can be kept. Exits 1 when something needs recovery and --apply was not given,
    or when the catalog cannot be recovered here (then restore a snapshot or a backup).

    Example: koru --store data.koru recover, then koru --store data.koru recover --apply
    """
    from koru_core.lifecycle.recover import recover as run

    if is_shared():
        msg = ("koru recover repairs the SQLite catalog files of a store folder; a shared store's catalog is "
               "PostgreSQL, recovered with PostgreSQL's own tools (run `koru verify` to check the store)")
        raise click.ClickException(msg)
    report = run(settings().store, apply=apply_)
    if settings().as_json:
        data = {k: (str(v) if k in ("store", "backup") and v is not None else v) for k, v in asdict(report).items()}
        _emit_json({**data, "needs_recovery": report.needs_recovery})
    else:
        if not report.needs_recovery:
            click.echo(f"{report.store}: the catalog files are sound; nothing to recover "
                       "(`koru verify` checks the data files)")
        for line in report.findings:
            click.echo(f"problem: {line}")
        kept = "nothing (restore a snapshot or a backup)" if report.commits_kept is None else (
            f"commits 1..{report.commits_kept}" if report.commits_kept else "an empty store")
        if report.needs_recovery:
            click.echo(f"can keep: {kept}" + (f"; cannot keep {report.transactions_lost} damaged transaction(s)"
                                               if report.transactions_lost else ""))
        for line in report.actions:
            click.echo(("done: " if report.applied else "with --apply: ") + line)
        if report.applied:
            click.echo(f"the files as they were are in {report.backup}; now run `koru verify`")
    if report.needs_recovery and (not report.applied or not report.is_recoverable):
        raise SystemExit(1)
