"""The SQL koru puts on a DuckDB connection: one documented constant per macro or fragment.

Together with :mod:`koru_duckdb._rewrite`, this is the only SQL text in
``koru_duckdb``. Every read goes through koru_core's read planner
(:mod:`koru_core.read.plan`): a table macro calls a scalar Python function that
asks the store for the plan and returns it translated into SQL
(:mod:`koru_duckdb._plan_sql`), which DuckDB runs with ``query(…)``. So DuckDB
scans the plan's Parquet files itself (``read_parquet``), and the as-of rule and
its shortcuts are decided by the planner, never restated here. The functions'
arguments must be constants (DuckDB binds ``query`` before it runs anything);
:func:`koru_duckdb.connect`'s connection evaluates scalar subqueries first.

Times are ``TIMESTAMPTZ_NS`` (UTC, nanoseconds), as koru stores them. A ``valid`` or
``since``/``until`` bound may be any constant DuckDB casts to ``TIMESTAMPTZ_NS``: a
``TIMESTAMPTZ``, a ``TIMESTAMP`` or ``DATE`` (read in the session's ``TimeZone``;
:func:`koru_duckdb.connect` sets it to UTC) or a string. ``system`` is a system
time (what the store knew then), resolved to the last commit at or before it.
"""

from __future__ import annotations

__all__ = [
    "CREATE_VIEW",
    "DROP_VIEW",
    "KORU_AT",
    "KORU_CHANGES",
    "KORU_COMMITS",
    "KORU_HISTORY",
    "KORU_VERSIONS",
    "LATEST",
    "MACROS",
    "MERGE",
    "NOW",
    "SET_METADATA_CACHE",
    "SET_TIME_ZONE",
]

NOW = "'(now)'"
"""The default of a ``valid``/``version``/``system`` argument: "not given" (an explicit
NULL is refused, as the core refuses None-valued bounds it cannot mean)."""

SET_TIME_ZONE = "SET TimeZone = 'UTC'"
"""Run by :func:`koru_duckdb.connect`: koru's times are UTC, so a naive TIMESTAMP is read as UTC."""

SET_METADATA_CACHE = "SET parquet_metadata_cache = true"
"""Run by :func:`koru_duckdb.connect` on the DuckDB connection it opens: koru's data files
never change once written (a new file gets a new name), so DuckDB parses each footer once."""

CREATE_VIEW = "CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM koru_at({namespace})"
"""The view named after each namespace: its current state. ``name`` is a quoted
identifier and ``namespace`` a string literal rendered by DuckDB."""

DROP_VIEW = "DROP VIEW IF EXISTS temp.main.{name}"
"""Removes a namespace view koru created (on :meth:`KoruInstall.close`)."""

KORU_AT = """
CREATE OR REPLACE TEMP MACRO koru_at(ns, valid := '(now)', version := '(now)', system := '(now)') AS TABLE
    SELECT * FROM query(__koru_at_sql(
        ns,
        CASE WHEN typeof(valid) = 'VARCHAR' AND valid::VARCHAR = '(now)' THEN '(now)'
             ELSE CAST(epoch_ns(CAST(valid AS TIMESTAMPTZ_NS)) AS VARCHAR) END,
        typeof(valid),
        CAST(version AS VARCHAR), typeof(version),
        CASE WHEN typeof(system) = 'VARCHAR' AND system::VARCHAR = '(now)' THEN '(now)'
             ELSE CAST(epoch_ns(CAST(system AS TIMESTAMPTZ_NS)) AS VARCHAR) END,
        typeof(system)))
"""
"""``koru_at(ns, valid := …, version := …, system := …)``: the as-of state of namespace ``ns``.

Args:
    ns: Namespace name (VARCHAR constant).
    valid: Valid time; default now.
    version: Commit number bounding system time; default the latest commit.
    system: System time (what the store knew at that instant): the last commit at or
        before it; not together with ``version``.

Returns:
    One row per live key, in no particular order: the value columns, then ``_key``
    VARCHAR, ``_valid_from`` and ``_system_from`` TIMESTAMPTZ_NS, ``_commit`` BIGINT,
    ``_write_id`` VARCHAR (16 hex), as ``Store.as_of``. ``FROM ns AT (TIMESTAMP => t)``,
    ``FOR VALID_TIME AS OF t``, ``AT (VERSION => n)`` and ``FOR SYSTEM_TIME AS OF t``
    are rewritten into this call by :func:`koru_duckdb.connect`'s connection.

Example:
    ``SELECT name FROM koru_at('users', valid := DATE '2024-01-01', version := 3)``
"""

KORU_VERSIONS = """
CREATE OR REPLACE TEMP MACRO koru_versions(ns, version := '(now)') AS TABLE
    SELECT * FROM query(__koru_versions_sql(ns, NULL, 'none', CAST(version AS VARCHAR), typeof(version)))
"""
"""``koru_versions(ns, version := …)``: every version of every key of ``ns``, as ``Store.versions``.

Returns:
    The value columns, then every system column (``_key``, ``_valid_from``,
    ``_valid_to``, ``_system_from``, ``_commit``, ``_write_id``, ``_prev_write_id``,
    ``_content_id``, ``_deleted``, ``_actor``, ``_run_id``, ``_parents``), ordered by
    ``_key``, ``_valid_from``, ``_commit``. Tombstones are included.
"""

KORU_HISTORY = """
CREATE OR REPLACE TEMP MACRO koru_history(ns, key) AS TABLE
    SELECT * FROM query(__koru_versions_sql(ns, to_json(key), typeof(key), '(now)', 'VARCHAR'))
"""
"""``koru_history(ns, key)``: every version of one key, oldest first, as ``Store.history``
(columns as :data:`KORU_VERSIONS`; no rows for an unknown key).

``key`` is the key as it was written: a VARCHAR (the ``_key``), an integer, or for a
composite key a STRUCT naming the key columns (``{'loc': 4, 'sex': 'F'}``) or a LIST
of the parts in key-column order (``[4, 'F']``). It reaches the core as JSON."""

KORU_CHANGES = """
CREATE OR REPLACE TEMP MACRO koru_changes(ns, since := NULL, until := NULL) AS TABLE
    SELECT * FROM query(__koru_changes_sql(
        ns,
        CASE WHEN typeof(since) IN ('TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'DATE', 'TIMESTAMP_NS',
                                    'TIMESTAMPTZ_NS', 'TIMESTAMP_S', 'TIMESTAMP_MS')
             THEN CAST(epoch_ns(CAST(since AS TIMESTAMPTZ_NS)) AS VARCHAR) ELSE CAST(since AS VARCHAR) END,
        typeof(since),
        CASE WHEN typeof(until) IN ('TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'DATE', 'TIMESTAMP_NS',
                                    'TIMESTAMPTZ_NS', 'TIMESTAMP_S', 'TIMESTAMP_MS')
             THEN CAST(epoch_ns(CAST(until AS TIMESTAMPTZ_NS)) AS VARCHAR) ELSE CAST(until AS VARCHAR) END,
        typeof(until)))
"""
"""``koru_changes(ns, since := NULL, until := NULL)``: the change feed of ``ns``, as ``Store.changes``.

Integer bounds are commit numbers, time bounds valid times; anything else (a string
that is not a time, a float) is refused, as the core refuses it. One row per version
in the window ``(since, until]``: ``_key``, ``op`` (``insert``/``update``/``delete``),
``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``, ``before_write_id``,
``before_content_id``, ``after_content_id``, then the value columns after the change,
ordered by ``_commit``, ``_key``, ``_valid_from``.
"""

KORU_COMMITS = """
CREATE OR REPLACE TEMP MACRO koru_commits() AS TABLE SELECT * FROM query(__koru_commits_sql())
"""
"""``koru_commits()``: the commit log, oldest first, as ``Store.commits``: ``commit`` BIGINT,
``system_time`` TIMESTAMPTZ (UTC), ``actor``, ``run_id`` VARCHAR, ``namespaces``
VARCHAR[], ``written``, ``unchanged``, ``deleted`` BIGINT, ``metadata`` MAP(VARCHAR, VARCHAR),
``hash`` VARCHAR."""

MACROS = (KORU_AT, KORU_VERSIONS, KORU_HISTORY, KORU_CHANGES, KORU_COMMITS)
"""Every macro, in the order :func:`koru_duckdb.install` creates them."""

# -- fragments of the SQL a plan translates into (koru_duckdb._plan_sql) --------------

LATEST = "SELECT arg_max_null(COLUMNS(*), {{'v': _valid_from, 'c': _commit}}) FROM ({source}) GROUP BY _key"
"""The rule's choice per key among candidate rows: the last by (``_valid_from``,
``_commit``) (:data:`koru_core.read.plan.ORDER_COLUMNS`, compared in turn).
``arg_max_null``, not ``arg_max``, which skips NULLs and would take an older version's value."""

MERGE = (
    "WITH e AS ({exact}), l AS ({latest}) "
    "SELECT * FROM e ANTI JOIN l USING (_key) "
    "UNION ALL BY NAME "
    "SELECT arg_max_null(COLUMNS(*), {{'v': _valid_from, 'c': _commit}}) FROM "
    "(SELECT * FROM l UNION ALL BY NAME SELECT * FROM e SEMI JOIN l USING (_key)) GROUP BY _key"
)
"""Strategy ``merge``: the exact rows of keys without candidates, and per key with
candidates the later of its exact row and its candidates' choice (``{exact}`` and
``{latest}`` are the plan's two parts)."""
