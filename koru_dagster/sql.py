"""Versioned materialized views: an asset defined by a SQL query over koru namespaces.

:func:`koru_sql_asset` runs its query through :func:`koru_duckdb.connect` (DuckDB
scans the Parquet files), with each upstream namespace **pinned** to the commit its
last Dagster materialization wrote (as :class:`~koru_dagster.KoruIOManager`
inputs are: :mod:`koru_dagster._pins`), and writes the result as a koru
namespace, replacing the previous result in one commit (rows no longer returned
become tombstones; unchanged rows are skipped, so a refresh with unchanged
inputs makes no commit). Every refresh is a commit, so the view's history is
time-travelable like any namespace: ``SELECT … FROM route_stats AT (VERSION => 7)``.

This module is the one place koru_dagster loads koru_duckdb (lazily, when the
asset runs; ``pip install 'koru[duckdb]'``).
"""

# no `from __future__ import annotations`: Dagster reads the asset's annotations at runtime

import re
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from koru_core import InvalidInputError
from koru_dagster import _context, _pins, _storage
from koru_dagster import metadata as md
from koru_dagster._assets import asset_keys
from koru_dagster.resource import KoruResource

__all__ = ["SQL", "koru_sql_asset"]

SQL = "koru/sql"
"""Definition metadata of a SQL asset: its query (shown in the UI)."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def koru_sql_asset(
    name: str,
    sql: str,
    *,
    key: str | Sequence[str],
    deps: Sequence[Any] | None = None,
    automation_condition: AutomationCondition | None = None,
    group_name: str | None = None,
    description: str | None = None,
) -> AssetsDefinition:
    """Build an asset whose records are the result of ``sql`` over koru namespaces.

    In the query, each dependency is a table named by its namespace
    (:func:`~koru_dagster.namespace_for` its key: ``nyc/flights`` is
    ``nyc__flights``). It is read as of its pinned commit: the commit the
    dependency's latest Dagster materialization wrote (found in the Dagster
    instance, else in the store), or its latest commit if Dagster never
    materialized it (a namespace loaded by ``koru import``, an observable
    source). The result is written to namespace ``name`` keyed by ``key``,
    replacing the previous result. With ``automation_condition=
    AutomationCondition.eager()`` it refreshes whenever a dependency is
    materialized or observed with a new data version (see
    :func:`~koru_dagster.build_change_sensor`).

    Lineage: **namespace-level** by default: the commit metadata of each
    refresh (and the materialization's ``koru/inputs``) records the upstream
    commits read, so ``store.as_of(ns, version=c)`` rebuilds the exact inputs;
    per-row parents of an aggregate over millions of rows would cost more than
    the result. Where it is cheap, select a ``_parents`` column (a list of
    upstream ``_write_id``, e.g. ``list(_write_id) AS _parents``) or a
    ``_write_id`` column, and each row records those versions as its parents
    (``store.lineage``).

    Args:
        name: The asset's name and the namespace it writes.
        sql: One DuckDB ``SELECT`` (it may start with ``WITH``); no trailing statements.
        key: The result's key column(s).
        deps: The upstream assets (definitions, specs or keys). Default: the
            tables the query reads (each taken as a one-part asset key; needs sqlglot).
        automation_condition: e.g. ``AutomationCondition.eager()``.
        group_name, description: As for ``@asset``.

    Returns:
        An asset using the :class:`KoruResource` under resource key ``"koru"``;
        its materializations report ``koru/commit``, ``koru/inputs``,
        ``koru/input_ranges``, rows written / unchanged / deleted and a
        content-derived data version.

    Raises:
        InvalidInputError: a bad name, an empty query, no key, or no dependency found.

    Example:
        >>> route_stats = koru_sql_asset(
        ...     "route_stats",
        ...     "SELECT origin, dest, count(*) AS n FROM flights GROUP BY ALL",
        ...     key=["origin", "dest"],
        ... )
        >>> [k.to_user_string() for k in route_stats.dependency_keys]
        ['flights']
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        msg = f"SQL asset name must match [A-Za-z_][A-Za-z0-9_]* (it names a namespace), got {name!r}"
        raise InvalidInputError(msg)
    query = sql.strip().rstrip(";").strip() if isinstance(sql, str) else ""
    if not query:
        msg = f"SQL asset {name!r}: the query is empty"
        raise InvalidInputError(msg)
    upstream = asset_keys(deps) if deps is not None else _tables(name, query)
    if not upstream:
        msg = f"SQL asset {name!r}: the query reads no table; give `deps`"
        raise InvalidInputError(msg)
    options = {md.KEY: [key] if isinstance(key, str) else list(key), md.MODE: "replace"}
    md.parse_options(options, where="asset")  # a bad key fails here, at definition time

    @asset(
        name=name,
        deps=upstream,
        automation_condition=automation_condition,
        group_name=group_name,
        description=description or f"koru SQL view: {query}",
        metadata={SQL: MetadataValue.md(f"```sql\n{query}\n```"), md.KEY: options[md.KEY]},
        kinds={"duckdb"},
    )
    def sql_asset(context: AssetExecutionContext, koru: KoruResource) -> MaterializeResult:
        requests = _context.dependencies_of(context)
        with koru.open() as store:
            pins = {r.asset: _pins.resolve(store, r) for r in requests}
            table = _run(store, query, requests, pins)
            request = _context.write_request(
                context, default_key=None, parents=(),
                inputs={a: p.summary for a, p in pins.items()}, metadata=options,
            )
            outcome = _storage.write(store, request, table)
        return MaterializeResult(
            metadata=_context.output_metadata(outcome), data_version=DataVersion(outcome.data_version)
        )

    return sql_asset


def _run(store: Any, query: str, requests: Sequence[Any], pins: dict[str, "_pins.Pin"]) -> Any:
    """Run ``query`` with each dependency's namespace bound, by a CTE, to its pinned state."""
    import koru_duckdb

    con = koru_duckdb.connect(store)
    try:
        bound = []
        for i, request in enumerate(requests):
            name = request.namespace
            if not _IDENTIFIER.fullmatch(name):  # namespace_for guarantees it; never quote user text
                msg = f"namespace {name!r} is not a SQL identifier"
                raise InvalidInputError(msg)
            groups = pins[request.asset].groups
            if len(groups) == 1 and groups[0][1] is None:  # the whole namespace at one commit
                source = f"koru_at('{name}', version := {int(groups[0][0])})"
            else:  # partitions pinned to different commits: read them through koru, hand DuckDB Arrow
                con.register(f"_koru_pinned_{i}", _storage.read(store, request).table)
                source = f"_koru_pinned_{i}"
            bound.append(f'"{name}" AS (SELECT * FROM {source})')
        return con.sql(f"WITH {', '.join(bound)} SELECT * FROM (\n{query}\n)").to_arrow_table()
    finally:
        con.close()


def _tables(name: str, query: str) -> list[AssetKey]:
    """The tables ``query`` reads (not its CTEs, not table functions), as one-part asset keys."""
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError as e:  # pragma: no cover - sqlglot comes with koru[duckdb]
        msg = "koru_sql_asset needs sqlglot to find the query's tables: pip install 'koru[duckdb]', or give deps"
        raise ImportError(msg) from e
    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except sqlglot.errors.ParseError as e:
        msg = f"SQL asset {name!r}: cannot find the tables of the query ({e}); give `deps`"
        raise InvalidInputError(msg) from e
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    names = dict.fromkeys(t.name for t in tree.find_all(exp.Table) if t.name and not t.db and t.name not in ctes)
    return [AssetKey([n]) for n in names]
