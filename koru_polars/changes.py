"""``scan_koru_changes``: the change feed of a namespace as a native Polars plan.

The rules are those of :func:`koru_core.read.change_feed`, restated in Polars
operators: versions are ordered by (``_key``, ``_valid_from``, ``_commit``);
the *before* of a version is the previous version of the same key in that
order; ``op`` is ``delete`` for a tombstone, ``insert`` when there was no live
before, ``update`` otherwise; a tombstone with no live before is no change. For a
window of commits, the versions are those up to its ``until`` commit (a later
correction inserted between two versions is not yet their before).
Only keys with a version in the window are sorted (a semi-join on ``_key``,
whose window filter Polars pushes into the Parquet scan).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from koru_core.read.plan import plan_window
from koru_polars._store import StoreLike, hold, plan_scan
from koru_polars.scan import POLARS, versions_frame

if TYPE_CHECKING:
    from koru_core import Store

__all__ = ["CHANGE_COLUMNS", "scan_koru_changes"]

CHANGE_COLUMNS = (
    "_key", "op", "_valid_from", "_system_from", "_commit", "_write_id",
    "before_write_id", "before_content_id", "after_content_id",
)
"""Leading columns of a change feed (as ``koru_core.read.CHANGE_COLUMNS``); value columns follow."""


def scan_koru_changes(
    source: StoreLike,
    namespace: str,
    *,
    since: int | datetime | None = None,
    until: int | datetime | None = None,
) -> pl.LazyFrame:
    """Lazily read the change feed: one row per version written in a window, with its before.

    Args:
        source: A store folder (must exist) or an open :class:`koru_core.Store`.
        namespace: Namespace name.
        since, until: The window ``(since, until]``. ints are commit numbers
            (what was written between two commits); tz-aware datetimes are
            valid times (what became true between two instants). Both bounds
            must be of one kind; None is open. The store's files are resolved now.

    Returns:
        Columns ``_key``, ``op`` (String: ``insert``/``update``/``delete``),
        ``_valid_from``, ``_system_from`` (Datetime[ns, UTC]), ``_commit``
        (Int64), ``_write_id``, ``before_write_id``, ``before_content_id``,
        ``after_content_id`` (String), then the value columns after the change
        (null for a delete); sorted by ``_commit``, ``_key``, ``_valid_from``.
        The rows of :meth:`koru_core.Store.changes`.

    Raises:
        NamespaceNotFoundError: unknown namespace.
        InvalidInputError: bounds of mixed kinds, bools, or naive datetimes.

    Example:
        >>> import tempfile, koru_core as koru
        >>> from koru_polars import scan_koru_changes
        >>> store = koru.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "a", {"age": 31})
        >>> _ = store.put("users", "a", {"age": 32})
        >>> _ = store.delete("users", "a")
        >>> scan_koru_changes(store, "users", since=1).collect()["op"].to_list()
        ['update', 'delete']
    """
    def window_end(store: Store) -> int | None:  # the versions as they stood at the window's end
        kind, _, high = plan_window(namespace, since, until, store.version())
        return high if kind == "commit" and high else None

    lease = plan_scan(source, namespace, version=window_end, shape="versions")
    plan = lease.plan
    kind, low, high = plan_window(namespace, since, until, plan.head)
    column = "_commit" if kind == "commit" else "_valid_from"
    lo = low if kind == "commit" or low is None else POLARS.timestamp(low)
    hi = high if kind == "commit" or high is None else POLARS.timestamp(high)
    values = list(plan.columns)
    versions = versions_frame(plan)
    in_window = pl.lit(True)
    if lo is not None:
        in_window = in_window & (pl.col(column) > lo)
    if hi is not None:
        in_window = in_window & (pl.col(column) <= hi)
    touched = versions.filter(in_window).select("_key").unique()
    ordered = versions.join(touched, on="_key", how="semi").sort("_key", "_valid_from", "_commit")
    same_prev = (pl.col("_key") == pl.col("_key").shift(1)).fill_null(False)

    def before(name: str) -> pl.Expr:
        return pl.when(same_prev).then(pl.col(name).shift(1)).otherwise(None)

    before_deleted = before("_deleted").fill_null(True)
    op = (
        pl.when(pl.col("_deleted")).then(pl.lit("delete"))
        .when(before_deleted).then(pl.lit("insert"))
        .otherwise(pl.lit("update"))
    )
    feed = (
        ordered.with_columns(
            op.alias("op"),
            before("_write_id").alias("before_write_id"),
            before("_content_id").alias("before_content_id"),
            pl.col("_content_id").alias("after_content_id"),
            (pl.col("_deleted") & before_deleted).alias("__no_change"),
        )
        .filter(in_window & ~pl.col("__no_change"))
        .select(*CHANGE_COLUMNS, *values)
        .sort("_commit", "_key", "_valid_from")
        .with_columns([pl.col(c).bin.encode("hex") for c in CHANGE_COLUMNS if "write_id" in c or "content_id" in c])
    )
    return hold(feed, lease)
