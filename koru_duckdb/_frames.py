"""DuckDB's replacement scans through koru's connection: Python variables of the caller's frame.

DuckDB answers ``SELECT * FROM df`` with the variable ``df`` of the frame that called
``con.sql``. Through :class:`~koru_duckdb.KoruConnection` that frame is koru's, so
before each statement the tables the query names are looked up in the caller's frame
(locals, then globals), and a DataFrame, Arrow table or relation found there is
registered under its name, unless the name is a namespace or a table or view the
connection already has.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from types import FrameType
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

__all__ = ["register_frame_variables"]

_SCANNABLE = ("pyarrow.lib", "pandas.core.frame", "polars.dataframe.frame", "polars.lazyframe.frame", "duckdb")


def _is_scannable(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith(_SCANNABLE) or type(value).__name__ in ("Table", "RecordBatchReader", "DataFrame",
                                                                      "LazyFrame", "DuckDBPyRelation")


@functools.lru_cache(maxsize=256)
def _names(sql: str) -> frozenset[str]:
    """The unqualified, non-CTE table names of ``sql`` (parsed once per text: a pure function)."""
    from koru_duckdb._rewrite import _explain_prefix

    try:
        sql = sql[_explain_prefix(sql, sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)):]
        statements = sqlglot.parse(sql, dialect="duckdb")
    except (ParseError, TokenError):
        return frozenset()
    out: set[str] = set()
    for statement in statements:
        if statement is None:
            continue
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not table.args.get("db") and isinstance(table.this, exp.Identifier) and table.name not in ctes:
                out.add(table.name)
    return frozenset(out)


def register_frame_variables(con: duckdb.DuckDBPyConnection, sql: str, frame: FrameType | None,
                             namespaces: Collection[str]) -> None:
    """Register the scannable variables of ``frame`` that ``sql`` names as tables (module docstring)."""
    if frame is None or "from" not in sql.lower():
        return
    for name in _names(sql) - set(namespaces):
        value = frame.f_locals.get(name, frame.f_globals.get(name))
        if value is None or not _is_scannable(value):
            continue
        exists = con.sql(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name AND NOT temporary", params={"name": name}
        ).fetchall()
        if exists and exists[0][0]:
            continue
        con.register(name, value)
