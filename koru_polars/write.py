"""``write_koru``: upsert a Polars DataFrame or LazyFrame into a namespace.

A DataFrame is one :meth:`koru_core.Store.upsert`: one commit, atomic.

A LazyFrame is run by Polars' streaming engine and written ``batch_rows`` rows
at a time, each batch its own upsert and commit, so memory stays bounded by a
batch (plus the store's per-namespace index of live keys). Why not one
``store.transaction()`` around the batches: a transaction buffers every
operation's Arrow data until it commits, so it would hold the whole frame in
memory, which is what batching is meant to avoid. The trade-offs of batching:

* readers may see a prefix of the batches (each commit is atomic, the whole
  write is not); a failure leaves the batches already committed;
* with ``valid_from=None`` each batch gets its own commit time;
* two rows of one key with the same valid time in *different* batches are not
  refused (as they are within one upsert): the later batch's row wins.

``batch_rows=None`` collects the LazyFrame (streaming engine) and writes it in
one commit. ``delete_missing=True`` needs the whole snapshot in one commit, so
it implies ``batch_rows=None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from koru_core import CommitResult, InvalidInputError, Store
from koru_polars._store import StoreLike, writing

__all__ = ["DEFAULT_BATCH_ROWS", "write_koru"]

DEFAULT_BATCH_ROWS = 500_000
"""Rows per commit when a LazyFrame is written in batches."""


def write_koru(
    df: pl.DataFrame | pl.LazyFrame,
    target: StoreLike,
    namespace: str,
    *,
    key: str | Sequence[str],
    valid_from: datetime | str | None = None,
    delete_missing: bool = False,
    actor: str | None = None,
    run_id: str | None = None,
    batch_rows: int | None = DEFAULT_BATCH_ROWS,
    catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> CommitResult:
    """Write the rows of a frame as versions of ``namespace``; unchanged rows are skipped.

    Args:
        df: A DataFrame (one commit) or a LazyFrame (streamed in batches of
            ``batch_rows`` rows, one commit each; see the module docstring).
        target: A store folder (created if missing) or an open
            :class:`koru_core.Store`.
        namespace: Namespace name, ``[A-Za-z_][A-Za-z0-9_]*``.
        key: The key column (String, or cast to it), or several for a
            composite key (joined with ``|``).
        valid_from: A tz-aware datetime for every row, the name of a
            Datetime column with each row's valid time, or None (commit time).
        delete_missing: Tombstone every live key absent from ``df`` (a full
            snapshot); always one commit.
        actor, run_id: Provenance recorded on every version.
        batch_rows: Rows per commit for a LazyFrame; None for one commit.
            Ignored for a DataFrame.
        catalog, storage_options: For a shared store given by its URL (``s3://…``
            with a ``postgresql://`` catalog), as :func:`koru_core.open`.

    Returns:
        :class:`koru_core.CommitResult`: ``commit`` (the last commit made, or
        None if every row was unchanged), and ``written``, ``unchanged``,
        ``deleted`` summed over the batches; ``namespaces`` is
        ``(namespace,)`` when something was written.

    Raises:
        InvalidInputError: ``df`` is not a Polars frame, ``batch_rows`` < 1,
            or as :meth:`koru_core.Store.upsert` (missing or null key, two rows
            of a key at one valid time in one batch, naive times, NaN).
        SchemaError: a column's type cannot widen the stored type.
        StoreLockedError: another process holds the write lock.

    Example:
        >>> import tempfile, polars as pl
        >>> from koru_polars import write_koru
        >>> path = tempfile.mkdtemp()
        >>> df = pl.DataFrame({"id": ["a", "b"], "age": [31, 7]})
        >>> write_koru(df, path, "users", key="id")
        CommitResult(commit=1, written=2, unchanged=0, deleted=0, namespaces=('users',))
        >>> write_koru(df.lazy(), path, "users", key="id").unchanged
        2
    """
    if batch_rows is not None and (isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1):
        msg = f"namespace {namespace!r}: batch_rows must be a positive int or None, got {batch_rows!r}"
        raise InvalidInputError(msg)
    options = {"key": key, "valid_from": valid_from, "actor": actor, "run_id": run_id}
    with writing(target, catalog=catalog, storage_options=storage_options) as store:
        if isinstance(df, pl.DataFrame):
            return store.upsert(namespace, df, delete_missing=delete_missing, **options)  # type: ignore[arg-type]
        if not isinstance(df, pl.LazyFrame):
            msg = f"namespace {namespace!r}: write_koru takes a Polars DataFrame or LazyFrame, got {type(df).__name__}"
            raise InvalidInputError(msg)
        if delete_missing or batch_rows is None:
            whole = df.collect(engine="streaming")
            return store.upsert(namespace, whole, delete_missing=delete_missing, **options)  # type: ignore[arg-type]
        return _write_batches(store, df, namespace, batch_rows=batch_rows, options=options)


def _write_batches(
    store: Store, lf: pl.LazyFrame, namespace: str, *, batch_rows: int, options: dict[str, object],
) -> CommitResult:
    """Upsert each batch of ``lf`` as its own commit and sum the results."""
    last: int | None = None
    written = unchanged = deleted = 0
    for batch in lf.collect_batches(chunk_size=batch_rows, maintain_order=True):
        if batch.height == 0:
            continue
        result = store.upsert(namespace, batch, **options)  # type: ignore[arg-type]
        last = result.commit if result.commit is not None else last
        written += result.written
        unchanged += result.unchanged
        deleted += result.deleted
    return CommitResult(
        commit=last, written=written, unchanged=unchanged, deleted=deleted,
        namespaces=(namespace,) if last is not None else (),
    )
