"""The SQL koru installs in a DuckDB connection: one documented constant per macro.

Together with :mod:`koru_duckdb._rewrite`, this is the only SQL text in
``koru_duckdb``. The macros read objects the connection keeps in step with the
store before every statement (:mod:`koru_duckdb._mirror`):

- the variable ``__koru_head`` (BIGINT): the store's last commit;
- the variable ``__koru_namespaces`` (VARCHAR[]): its namespace names;
- a temp view ``__koru_versions_<namespace>`` per namespace: every stored
  version (system columns, then value columns, with the namespace's full
  schema): ``read_parquet([files], union_by_name = true)`` UNION ALL the
  versions not yet flushed to files, registered as an Arrow table;
- ``__koru_commits``: the commit log, registered as an Arrow table.

The as-of rule is DESIGN.md's ("As-of, precisely"), restated from
``koru_core.read.as_of_rule``: for each key, among the versions with
``_valid_from <= valid`` and ``_commit <= version``, keep the one with the
largest (``_valid_from``, ``_commit``) and drop the key if it is a tombstone.
The bounds are plain comparisons on the scanned columns, so DuckDB pushes them
into the Parquet scan and skips row groups by their min/max statistics; the
latest version per key is chosen by a hash aggregate (see :data:`KORU_AT`),
below which DuckDB pushes no filter on value columns.

Times are ``TIMESTAMPTZ_NS`` (UTC, nanoseconds), as koru stores them. A
``valid`` or ``since``/``until`` bound may be any constant DuckDB casts to
``TIMESTAMPTZ_NS``: a ``TIMESTAMPTZ``, a ``TIMESTAMP`` or ``DATE`` (read in the
session's ``TimeZone``, which ``koru_duckdb.connect`` sets to UTC) or a string.
"""

from __future__ import annotations

__all__ = [
    "BOUND_KIND",
    "COMMITS_VIEW",
    "CREATE_VIEW",
    "CURRENT_STATE",
    "HEAD_VARIABLE",
    "KORU_AT",
    "KORU_CHANGES",
    "KORU_COMMITS",
    "KORU_HISTORY",
    "KORU_VERSIONS",
    "MACROS",
    "NAMESPACES_VARIABLE",
    "SET_HEAD",
    "SET_NAMESPACES",
    "SET_TIME_ZONE",
    "SOURCE",
    "VERSIONS",
    "VERSIONS_VIEW_PREFIX",
    "WINDOW",
]

HEAD_VARIABLE = "__koru_head"
"""DuckDB variable holding the store's last commit number (BIGINT) as of the current statement."""

NAMESPACES_VARIABLE = "__koru_namespaces"
"""DuckDB variable holding the store's namespace names (VARCHAR[])."""

HINT_COLUMN = "__valid_to_hint"
"""Column of each versions view holding the ``_valid_to`` that cold files store (null
for warm files, pending versions and distilled namespaces). It is never earlier than
the true ``_valid_to``, so :data:`KORU_AT` at the latest commit drops the rows whose
hint is at or before the asked time before it aggregates."""

EXACT_COLUMN = "__exact"
"""Constant column of each versions view: TRUE when the namespace's stored
``_valid_to`` is exact (:attr:`koru_core.ScanPlan.has_exact_valid_to`: one
consolidation run holds every version). :data:`KORU_AT` at the latest commit then
returns the rows whose interval holds the asked time, with no per-key aggregate,
as a plain SCD2 table would."""

VERSIONS_VIEW_PREFIX = "__koru_versions_"
"""Prefix of the per-namespace temp view of every stored version (``SOURCE`` spells it too)."""

COMMITS_VIEW = "__koru_commits"
"""Name of the registered Arrow table of the commit log read by ``koru_commits()``."""

SET_TIME_ZONE = "SET TimeZone = 'UTC'"
"""Run at connect: koru's times are UTC, so a naive TIMESTAMP bound is read as UTC."""

CREATE_VIEW = "CREATE OR REPLACE TEMP VIEW {name} AS {query}"
"""Template of every temp view koru creates; ``name`` is a quoted identifier and ``query``
SQL rendered by DuckDB's relation API (file lists and names are literals DuckDB wrote)."""

CURRENT_STATE = "SELECT * FROM koru_at({namespace})"
"""Body of the view named after each namespace: its current state. ``namespace`` is
the name as a string literal rendered by ``duckdb.ConstantExpression``."""

SET_HEAD = "SET VARIABLE __koru_head = CAST(? AS BIGINT)"
"""Statement setting :data:`HEAD_VARIABLE`; the commit number is a bound parameter."""

SET_NAMESPACES = "SET VARIABLE __koru_namespaces = CAST(? AS VARCHAR[])"
"""Statement setting :data:`NAMESPACES_VARIABLE`; the list is a bound parameter."""

SOURCE = """
CREATE OR REPLACE TEMP MACRO __koru_source(ns, version) AS
    CASE
        WHEN NOT list_contains(getvariable('__koru_namespaces'), ns) THEN error(format(
            'koru: namespace ''{}'' does not exist (namespaces: {})',
            ns, getvariable('__koru_namespaces')))
        WHEN version IS NOT NULL AND NOT (version BETWEEN 1 AND getvariable('__koru_head'))
            THEN error(format(
                'koru: namespace ''{}'': version must be a commit number in 1..{}, got {}',
                ns, getvariable('__koru_head'), version))
        ELSE '__koru_versions_' || ns
    END
"""
"""``__koru_source(ns, version)`` → the name of ``ns``'s versions view, for ``query_table``.

Both checks run when DuckDB binds the statement (``query_table`` needs a
constant), so an unknown namespace or a commit number outside ``1..head`` is an
``InvalidInputException`` naming it, even on an empty result, and also for a
prepared parameter.
"""

VERSIONS = """
CREATE OR REPLACE TEMP MACRO __koru_versions(ns, version, key) AS TABLE
    SELECT COLUMNS(lambda c: NOT starts_with(c, '_')),
           _key, _valid_from,
           lead(_valid_from) OVER (PARTITION BY _key ORDER BY _valid_from, _commit) AS _valid_to,
           _system_from, _commit, _write_id, _prev_write_id, _content_id, _deleted,
           _actor, _run_id, _parents
    FROM query_table(__koru_source(ns, version))
    WHERE _commit <= coalesce(version, getvariable('__koru_head'))
      AND (key IS NULL OR _key = key)
"""
"""``__koru_versions(ns, version, key)``: the versions of ``ns`` up to commit ``version``
(of one ``key``, or all when NULL) with ``_valid_to`` = the next ``_valid_from`` of the
key in (``_valid_from``, ``_commit``) order, as ``koru_core.read.with_valid_to``."""

KORU_AT = """
CREATE OR REPLACE TEMP MACRO koru_at(ns, valid := NULL, version := NULL) AS TABLE
    SELECT COLUMNS(lambda c: NOT starts_with(c, '_')),
           _key, _valid_from, _system_from, _commit, _write_id
    FROM (
        SELECT * EXCLUDE (__valid_to_hint, __exact)
        FROM query_table(__koru_source(ns, version))
        WHERE __exact
          AND coalesce(version, getvariable('__koru_head')) = getvariable('__koru_head')
          AND _valid_from <= coalesce(CAST(valid AS TIMESTAMPTZ_NS), CAST(now() AS TIMESTAMPTZ_NS))
          AND (__valid_to_hint IS NULL
               OR __valid_to_hint > coalesce(CAST(valid AS TIMESTAMPTZ_NS), CAST(now() AS TIMESTAMPTZ_NS)))
        UNION ALL BY NAME
        SELECT _key, arg_max_null(COLUMNS(* EXCLUDE (_key, __order, __valid_to_hint, __exact)), __order)
        FROM (
            SELECT *, epoch_ns(_valid_from)::HUGEINT * 4294967296 + _commit AS __order
            FROM query_table(__koru_source(ns, version))
            WHERE NOT (__exact AND coalesce(version, getvariable('__koru_head')) = getvariable('__koru_head'))
              AND _valid_from <= coalesce(CAST(valid AS TIMESTAMPTZ_NS), CAST(now() AS TIMESTAMPTZ_NS))
              AND _commit <= coalesce(version, getvariable('__koru_head'))
              AND (coalesce(version, getvariable('__koru_head')) < getvariable('__koru_head')
                   OR __valid_to_hint IS NULL
                   OR __valid_to_hint > coalesce(CAST(valid AS TIMESTAMPTZ_NS), CAST(now() AS TIMESTAMPTZ_NS)))
        )
        GROUP BY _key
    )
    WHERE NOT _deleted
"""
"""``koru_at(ns, valid := NULL, version := NULL)``: the as-of state of namespace ``ns``.

Args:
    ns: Namespace name (VARCHAR constant).
    valid: Valid time; default ``now()``.
    version: Commit number bounding system time; default the latest commit.

The latest version per key is one ``arg_max_null`` per column over the
order key ``epoch_ns(_valid_from) * 2**32 + _commit`` (HUGEINT, unique per key
since a commit writes one version per key and valid time): a hash aggregate,
which on 1M keys × 10 versions ran 1.5-4.7× faster than
``QUALIFY row_number() OVER (PARTITION BY _key ORDER BY _valid_from DESC, _commit DESC) = 1``
(``benchmarks/duckdb_at_vs_scd2.py``). ``arg_max_null``, not ``arg_max``, which
skips NULLs and would return an older version's value. Only the columns a query
uses are read, and a filter on ``_key`` is pushed below the aggregate; filters on
value columns are not (they apply to the chosen version).

Returns:
    One row per live key, in no particular order: the value columns, then
    ``_key`` VARCHAR, ``_valid_from`` and ``_system_from`` TIMESTAMPTZ_NS,
    ``_commit`` BIGINT, ``_write_id`` VARCHAR, as ``Store.as_of``.
    ``FROM ns AT (TIMESTAMP => t)`` and ``FROM ns AT (VERSION => n)`` are
    rewritten into this call; the plain name ``ns`` is a view of ``koru_at('ns')``.

Example:
    ``SELECT name FROM koru_at('users', valid := DATE '2024-01-01', version := 3)``
"""

KORU_VERSIONS = """
CREATE OR REPLACE TEMP MACRO koru_versions(ns, version := NULL) AS TABLE
    SELECT * FROM __koru_versions(ns, version, NULL)
    ORDER BY _key, _valid_from, _commit
"""
"""``koru_versions(ns, version := NULL)``: every version of every key of ``ns``, as ``Store.versions``.

Returns:
    The value columns, then every system column (``_key``, ``_valid_from``,
    ``_valid_to``, ``_system_from``, ``_commit``, ``_write_id``,
    ``_prev_write_id``, ``_content_id``, ``_deleted``, ``_actor``, ``_run_id``,
    ``_parents``), ordered by ``_key``, ``_valid_from``, ``_commit``.
    Tombstones are included (``_deleted``, value columns NULL).
"""

KORU_HISTORY = """
CREATE OR REPLACE TEMP MACRO koru_history(ns, key) AS TABLE
    SELECT * FROM __koru_versions(ns, NULL, key)
    ORDER BY _valid_from, _commit
"""
"""``koru_history(ns, key)``: every version of one key, oldest first, as ``Store.history``
(columns as :data:`KORU_VERSIONS`; no rows for an unknown key)."""

BOUND_KIND = """
CREATE OR REPLACE TEMP MACRO __koru_bound_kind(bound) AS
    CASE
        WHEN typeof(bound) = '"NULL"' THEN NULL
        WHEN typeof(bound) IN ('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT',
                               'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT') THEN 'commit'
        ELSE 'valid'
    END
"""
"""``__koru_bound_kind(bound)``: ``'commit'`` for an integer change-feed bound, ``'valid'``
for a time (TIMESTAMPTZ, TIMESTAMP, DATE or a string), NULL for NULL. ``typeof`` is
constant, so DuckDB folds this when it binds."""

WINDOW = """
CREATE OR REPLACE TEMP MACRO __koru_window(since, until, _commit, _valid_from) AS
    CASE
        WHEN coalesce(__koru_bound_kind(since), __koru_bound_kind(until)) = 'commit'
        THEN (since IS NULL OR _commit > try_cast(CAST(since AS VARCHAR) AS BIGINT))
         AND (until IS NULL OR _commit <= try_cast(CAST(until AS VARCHAR) AS BIGINT))
        ELSE (since IS NULL OR _valid_from > try_cast(CAST(since AS VARCHAR) AS TIMESTAMPTZ_NS))
         AND (until IS NULL OR _valid_from <= try_cast(CAST(until AS VARCHAR) AS TIMESTAMPTZ_NS))
    END
"""
"""``__koru_window(since, until, _commit, _valid_from)``: is a version in the window ``(since, until]``?

Integer bounds are commit numbers (system time); time bounds are valid times,
as ``Store.changes``. A bound goes through VARCHAR so that the branch for the
other kind still binds; DuckDB folds the CASE away when it binds.
"""

KORU_CHANGES = """
CREATE OR REPLACE TEMP MACRO koru_changes(ns, since := NULL, until := NULL) AS TABLE
    SELECT _key,
           CASE WHEN _deleted THEN 'delete' WHEN __before_deleted THEN 'insert' ELSE 'update' END AS op,
           _valid_from, _system_from, _commit, _write_id,
           __before_write_id AS before_write_id,
           __before_content_id AS before_content_id,
           _content_id AS after_content_id,
           COLUMNS(lambda c: NOT starts_with(c, '_'))
    FROM (
        SELECT *,
               coalesce(lag(_deleted) OVER w, true) AS __before_deleted,
               lag(_write_id) OVER w AS __before_write_id,
               lag(_content_id) OVER w AS __before_content_id
        FROM query_table(CASE
            WHEN __koru_bound_kind(since) <> __koru_bound_kind(until) THEN error(format(
                'koru: namespace ''{}'': since and until must both be commit numbers or both '
                || 'times, got {} and {}', ns, typeof(since), typeof(until)))
            ELSE __koru_source(ns, NULL)
        END)
        WHERE _commit <= getvariable('__koru_head')
        WINDOW w AS (PARTITION BY _key ORDER BY _valid_from, _commit)
    )
    WHERE __koru_window(since, until, _commit, _valid_from)
      AND NOT (_deleted AND __before_deleted)
    ORDER BY _commit, _key, _valid_from
"""
"""``koru_changes(ns, since := NULL, until := NULL)``: the change feed of ``ns``, as ``Store.changes``.

One row per version in the window ``(since, until]`` (commit numbers, or valid
times; see :data:`WINDOW`): ``_key``, ``op`` (``insert``/``update``/``delete``),
``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``,
``before_write_id``, ``before_content_id``, ``after_content_id``, then the value
columns after the change, ordered by ``_commit``, ``_key``, ``_valid_from``.
The *before* of a version is the key's previous version in (``_valid_from``,
``_commit``) order; a tombstone with no live before is not a change.
"""

KORU_COMMITS = """
CREATE OR REPLACE TEMP MACRO koru_commits() AS TABLE
    SELECT * FROM __koru_commits
    WHERE "commit" <= getvariable('__koru_head')
    ORDER BY "commit"
"""
"""``koru_commits()``: the commit log, oldest first, as ``Store.commits``: ``commit`` BIGINT,
``system_time`` TIMESTAMPTZ (UTC, µs), ``actor``, ``run_id`` VARCHAR, ``namespaces``
VARCHAR[], ``written``, ``unchanged``, ``deleted`` BIGINT."""

MACROS = (SOURCE, VERSIONS, BOUND_KIND, WINDOW, KORU_AT, KORU_VERSIONS, KORU_HISTORY, KORU_CHANGES, KORU_COMMITS)
"""Every macro, in the order the connection creates them."""
