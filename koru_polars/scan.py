"""``scan_koru`` / ``read_koru``: a koru namespace as a native Polars plan.

As ``polars.io.delta`` does for Delta tables, koru_core resolves the commit and its
files when ``scan_koru`` is called (:meth:`koru_core.Store.plan`: the read planner
decides the files, the strategy and the bounds); this module only translates that
plan into Polars' own operators, run at ``collect``:

1. each source becomes a ``pl.scan_parquet`` (older files lacking a column read it
   as null; narrower types are cast; warm files get their commit and system time as
   constants) or, for versions not yet in files, a small in-memory frame;
2. the planner's filters (:func:`koru_core.read.plan.exact_filter`,
   :func:`~koru_core.read.plan.candidate_filter`), built as Polars expressions by
   :class:`PolarsPredicates`, which Polars pushes into the Parquet scans;
3. for candidate rows, the latest version per ``_key`` by
   :data:`koru_core.read.plan.ORDER_COLUMNS`; for strategy ``merge``, exact rows of
   keys without candidates plus the later of both per contested key;
4. tombstones dropped, ids shown as hex.

Because the per-key choice is a ``group_by("_key")``, Polars pushes a later filter
on ``_key`` below it, but never a filter on a value column:
``scan_koru(...).filter(x > 3)`` is the as-of state filtered, not the as-of state of
the versions with ``x > 3``.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa

from koru_core import ReadPlan, Source
from koru_core.layout import COLD_SCHEMA, COMMIT_SCHEMA
from koru_core.model import TIMESTAMP
from koru_core.read.plan import ORDER_COLUMNS, OUTPUT_SYSTEM_COLUMNS, candidate_filter, exact_filter
from koru_polars._store import StoreLike, hold, plan_scan

__all__ = ["AS_OF_SYSTEM_COLUMNS", "PolarsPredicates", "read_koru", "scan_koru", "versions_frame"]

AS_OF_SYSTEM_COLUMNS = OUTPUT_SYSTEM_COLUMNS
"""System columns an as-of frame carries after the value columns (as ``Store.as_of``)."""

_HEX = ("_write_id", "_prev_write_id", "_content_id")
_VERSION_COLUMNS = ("_key", "_valid_from", "_valid_to", "_system_from", "_commit", "_write_id", "_prev_write_id",
                    "_content_id", "_deleted", "_actor", "_run_id", "_parents")
_UTC_NS = pl.Datetime("ns", "UTC")

_CAST = pl.ScanCastOptions(
    integer_cast=["upcast", "allow-float"],
    float_cast="upcast",
    datetime_cast="upcast",
    missing_struct_fields="insert",
)
"""Casts an older file may need to reach the namespace's schema: exactly the lossless
widenings of :mod:`koru_core.schema` (wider ints, small ints to float64, float32 to
float64, finer timestamp units, struct fields added later)."""


class PolarsPredicates:
    """The planner's predicates as Polars expressions (:class:`koru_core.read.plan.Predicates`)."""

    def col(self, name: str) -> pl.Expr:
        return pl.col(name)

    def timestamp(self, ns: int) -> pl.Expr:
        return pl.lit(ns, dtype=pl.Int64).cast(_UTC_NS)

    def integer(self, value: int) -> pl.Expr:
        return pl.lit(value, dtype=pl.Int64)

    def le(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a <= b

    def gt(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a > b

    def is_null(self, a: pl.Expr) -> pl.Expr:
        return a.is_null()

    def and_(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a & b

    def or_(self, a: pl.Expr, b: pl.Expr) -> pl.Expr:
        return a | b

    def not_(self, a: pl.Expr) -> pl.Expr:
        return ~a


POLARS = PolarsPredicates()


def scan_koru(
    source: StoreLike,
    namespace: str,
    *,
    at: datetime | None = None,
    version: int | None = None,
    history: bool = False,
    catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> pl.LazyFrame:
    """Lazily read a namespace as it stood at valid time ``at`` and commit ``version``.

    The commit and its files are resolved now (like ``pl.scan_delta``); no data
    is read until ``collect``. The plan is native Polars, so projection,
    predicate (on system columns and ``_key``), slice and statistics pushdown
    are Polars' own. While the frame, or any frame derived from it, is alive
    it holds the plan's reader lease, so vacuum keeps the files it will read even
    after consolidation replaced them (for a path source, the store opened for it
    stays open until then).

    Args:
        source: A store folder (it must exist; a read never creates a store) or
            an open :class:`koru_core.Store`.
        namespace: Namespace name.
        at: Valid time, tz-aware (ns precision kept for a pandas ``Timestamp``).
            Defaults to now, taken when ``scan_koru`` is called.
        version: Commit number bounding system time. Defaults to the store's
            latest commit when ``scan_koru`` is called.
        history: Return every version up to ``version`` instead of the as-of
            state, with ``_valid_to``; with ``at``, only versions whose
            ``_valid_from <= at`` (their ``_valid_to`` still counts later ones).
        catalog: A ``postgresql://`` catalog URL, for a shared store (``source`` is
            then its ``s3://bucket/prefix`` or folder), as :func:`koru_core.open`.
        storage_options: For ``s3://``: the keys of ``pl.scan_delta``
            (``aws_endpoint_url``, ``aws_access_key_id`` …); Polars reads the
            objects itself with them.

    Returns:
        As-of (default): one row per live key, the value columns then ``_key``
        (String), ``_valid_from``, ``_system_from`` (Datetime[ns, UTC]),
        ``_commit`` (Int64), ``_write_id`` (String, 16 hex); the same rows as
        :meth:`koru_core.Store.as_of`, in no particular order.

        ``history=True``: the value columns then every system column
        (:data:`koru_core.model.SYSTEM_SCHEMA`, ``_valid_to`` computed: the next
        ``_valid_from`` of the key, null while current), tombstones included,
        sorted by ``_key``, ``_valid_from``, ``_commit``; the rows of
        :meth:`koru_core.Store.versions`.

    Raises:
        NamespaceNotFoundError: ``namespace`` was never written.
        InvalidInputError: bad ``source``, naive ``at``, or ``version`` is not
            a commit number.
        PrunedError: distillation dropped versions valid at ``at``.
        CorruptionError: a data file of the plan is missing or damaged.

    Example:
        >>> import tempfile, polars as pl, koru_core as koru
        >>> from koru_polars import scan_koru
        >>> store = koru.open(tempfile.mkdtemp())
        >>> _ = store.upsert("users", [{"id": "a", "age": 31}, {"id": "b", "age": 7}], key="id")
        >>> _ = store.put("users", "a", {"id": "a", "age": 32})
        >>> scan_koru(store, "users").filter(pl.col("age") > 30).select("_key", "age").collect()
        shape: (1, 2)
        ┌──────┬─────┐
        │ _key ┆ age │
        │ ---  ┆ --- │
        │ str  ┆ i64 │
        ╞══════╪═════╡
        │ a    ┆ 32  │
        └──────┴─────┘
        >>> scan_koru(store, "users", version=1).filter(pl.col("_key") == "a").collect()["age"].item()
        31
    """
    lease = plan_scan(source, namespace, version=version, at=None if history else at,
                      shape="versions" if history else "as_of", catalog=catalog, storage_options=storage_options)
    plan = lease.plan
    if history:
        frame = _hex(_with_valid_to(versions_frame(plan)))
        if at is not None:
            from koru_core._time import to_ns

            frame = frame.filter(pl.col("_valid_from") <= POLARS.timestamp(to_ns(at, what="at")))
        return hold(frame.select(*plan.columns, *_VERSION_COLUMNS), lease)
    return hold(as_of_frame(plan), lease)


def read_koru(
    source: StoreLike,
    namespace: str,
    *,
    at: datetime | None = None,
    version: int | None = None,
    history: bool = False,
    catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Read a namespace into a DataFrame: ``scan_koru(...).collect()``.

    Args:
        source, namespace, at, version, history, catalog, storage_options: As :func:`scan_koru`.

    Returns:
        The collected frame of :func:`scan_koru` (as-of state, or every
        version with ``_valid_to`` for ``history=True``).

    Raises:
        NamespaceNotFoundError, InvalidInputError, CorruptionError, PrunedError: as :func:`scan_koru`.

    Example:
        >>> import tempfile, koru_core as koru
        >>> from koru_polars import read_koru
        >>> store = koru.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "a", {"age": 31})
        >>> read_koru(store, "users")["age"].to_list()
        [31]
    """
    return scan_koru(source, namespace, at=at, version=version, history=history, catalog=catalog,
                     storage_options=storage_options).collect()


# -- translation ------------------------------------------------------------------------


def _schema(plan: ReadPlan, system: pa.Schema) -> pl.Schema:
    return pl.from_arrow(pa.schema([*system, *plan.schema]).empty_table()).schema  # type: ignore[union-attr]


class _Schemas:
    """The Polars schemas of one plan's sources, converted from Arrow once per plan."""

    def __init__(self, plan: ReadPlan) -> None:
        self._plan = plan
        self.cold = _schema(plan, COLD_SCHEMA)
        self._commit: pl.Schema | None = None

    def of(self, src: Source) -> pl.Schema:
        """What a file of ``src``'s kind stores: every cold column, or a warm file's columns."""
        if src.is_cold:
            return self.cold
        if self._commit is None:
            self._commit = _schema(self._plan, COMMIT_SCHEMA)
        return self._commit


def _source_frame(plan: ReadPlan, src: Source, schemas: _Schemas) -> pl.LazyFrame:
    """One source with every cold column (virtual ones added), the namespace's value schema."""
    cold = schemas.cold
    if src.table is not None:
        frame = pl.from_arrow(src.table)
        assert isinstance(frame, pl.DataFrame)
        lazy = frame.lazy()
        have = set(frame.columns)
    else:
        assert src.uri is not None
        stored = schemas.of(src)
        lazy = pl.scan_parquet(src.uri, schema=stored, missing_columns="insert", cast_options=_CAST,
                               hive_partitioning=False, glob=False, extra_columns="ignore",
                               storage_options=plan.storage_options)
        if src.full_schema:  # it stores every column with its type: nothing to add or cast
            return lazy
        have = set(stored.names())
    extra = []
    for name, dtype in cold.items():
        if name in have:
            continue
        if name == "_commit" and src.commit is not None:
            extra.append(pl.lit(src.commit, dtype=pl.Int64).alias(name))
        elif name == "_system_from" and src.system_time is not None:
            extra.append(pl.lit(src.system_time, dtype=pl.Int64).cast(_UTC_NS).alias(name))
        else:
            extra.append(pl.lit(None, dtype=dtype).alias(name))
    if extra:
        lazy = lazy.with_columns(extra)
    return lazy.select([pl.col(n).cast(t) for n, t in cold.items()])


def versions_frame(plan: ReadPlan) -> pl.LazyFrame:
    """Every candidate row of ``plan`` (``_commit <= plan.commit``), ids as bytes, no ``_valid_to``.

    Raises:
        CorruptionError: never at plan time (files were validated by the planner).
    """
    schemas = _Schemas(plan)
    parts = [
        _source_frame(plan, s, schemas).filter(candidate_filter(POLARS, None, plan.commit, is_cold=s.is_cold))
        for s in plan.candidates
    ]
    if not parts:
        return pl.LazyFrame(schema=_schema(plan, COLD_SCHEMA))
    frame = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
    if plan.key is not None:
        frame = frame.filter(pl.col("_key") == plan.key)
    return frame


def _latest(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The rule's choice per ``_key``: the last row by :data:`ORDER_COLUMNS`."""
    return frame.sort(*ORDER_COLUMNS).group_by("_key").agg(pl.all().last())


def as_of_frame(plan: ReadPlan) -> pl.LazyFrame:
    """The as-of state of an as-of plan (see the module docstring)."""
    assert plan.valid_at is not None
    schemas = _Schemas(plan)
    exact = [_source_frame(plan, s, schemas).filter(exact_filter(POLARS, plan.valid_at)) for s in plan.exact]
    cands = [
        _source_frame(plan, s, schemas).filter(candidate_filter(POLARS, plan.valid_at, plan.commit, is_cold=s.is_cold))
        for s in plan.candidates
    ]
    exact_rows = pl.concat(exact, how="vertical") if exact else None
    if exact_rows is not None and plan.key is not None:
        exact_rows = exact_rows.filter(pl.col("_key") == plan.key)
    if plan.strategy == "intervals" and exact_rows is not None:
        state = exact_rows
    elif not cands:
        state = exact_rows if exact_rows is not None else pl.LazyFrame(schema=_schema(plan, COLD_SCHEMA))
    else:
        latest = _latest(pl.concat(cands, how="vertical"))
        if plan.strategy == "latest" or exact_rows is None:
            state = latest
        else:
            keys = latest.select("_key")
            rest = exact_rows.join(keys, on="_key", how="anti")
            contested = exact_rows.join(keys, on="_key", how="semi")
            both = _latest(pl.concat([latest.select(exact_rows.collect_schema().names()), contested], how="vertical"))
            state = pl.concat([rest, both.select(rest.collect_schema().names())], how="vertical")
    out = state.filter(~pl.col("_deleted")).select(*plan.columns, *OUTPUT_SYSTEM_COLUMNS)
    return out.with_columns(pl.col("_write_id").bin.encode("hex"))


def _with_valid_to(versions: pl.LazyFrame) -> pl.LazyFrame:
    """Sort by (``_key``, ``_valid_from``, ``_commit``) and set ``_valid_to``: the next
    version's ``_valid_from`` for the same key, null for the last."""
    ordered = versions.sort("_key", *ORDER_COLUMNS)
    same_next = pl.col("_key") == pl.col("_key").shift(-1)
    valid_to = pl.when(same_next).then(pl.col("_valid_from").shift(-1)).otherwise(None)
    return ordered.with_columns(valid_to.cast(_UTC_NS).alias("_valid_to"))


def _hex(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns([pl.col(c).bin.encode("hex") for c in _HEX])


def timestamp_of(ns: int) -> pa.Scalar:
    """A timestamp[ns, UTC] scalar (for callers building frames by hand)."""
    return pa.scalar(ns, TIMESTAMP)
