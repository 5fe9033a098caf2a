"""``FROM ns AT (TIMESTAMP => …)`` / ``AT (VERSION => …)`` on koru namespaces → ``koru_at(…)``.

DuckDB parses the ``AT`` clause but answers "Catalog type does not support time
travel" for anything that is not a DuckLake, Iceberg or Delta table. This module
turns each such clause on a koru namespace into a call of the ``koru_at`` table
macro (see :mod:`koru_duckdb.macros`)::

    FROM users AS u AT (TIMESTAMP => now() - INTERVAL 7 DAY)
    FROM koru_at('users', valid := (now() - INTERVAL 7 DAY)) AS u

It is pure (SQL text and namespace names in, SQL text out) and finds the
clauses with sqlglot's DuckDB parser, never with regular expressions, so
comments, string literals containing ``AT (``, quoted identifiers, CTEs and
subqueries are handled as DuckDB reads them. Only the clause is edited, by
the source positions of sqlglot's tokens: the rest of the statement reaches
DuckDB byte for byte, and the ``AT`` expression is kept verbatim (so ``?``
parameters keep their order). SQL without such a clause, or that sqlglot cannot
parse, is returned unchanged and DuckDB reports on it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from koru_duckdb._sql import quote_identifier

__all__ = ["rewrite"]

_DIALECT = "duckdb"
_PARAMETER = {"TIMESTAMP": "valid", "VERSION": "version"}
"""``AT (<kind> => …)`` → the ``koru_at`` parameter it sets."""


@dataclass(frozen=True, slots=True)
class _Clause:
    """One ``<namespace> [alias] AT (<kind> => <expr>)`` found in the text (character offsets)."""

    namespace: str
    parameter: str
    name_start: int
    name_end: int  # exclusive
    at_start: int
    at_end: int  # exclusive
    expr_start: int
    expr_end: int  # exclusive
    alias: str | None  # the name to alias the call with when the statement gave none


def rewrite(sql: str, namespaces: Collection[str], *, evaluate: Callable[[str], Any] | None = None) -> tuple[str, tuple[str, ...]]:
    """Replace every ``AT (…)`` clause on a koru namespace in ``sql`` by a ``koru_at(…)`` call.

    Args:
        sql: One or more DuckDB SQL statements.
        namespaces: The store's namespace names. A table reference is rewritten
            when it is unqualified, names a namespace (exactly, or else
            case-insensitively as DuckDB resolves names), is not a CTE of the
            statement, and carries ``AT (TIMESTAMP => e)`` or ``AT (VERSION => e)``.
        evaluate: Returns the value of a constant SQL expression; when given, an
            expression holding a subquery is replaced by its value (DuckDB refuses
            subqueries in a table function's arguments).

    Returns:
        ``(rewritten, others)``: the rewritten SQL (``sql`` itself when nothing
        is to be rewritten), and the names of the unqualified, non-CTE tables
        that carry an ``AT`` clause but name no namespace (DuckDB will be asked
        about them: they may be DuckLake tables, or mistyped namespaces).

    Example:
        >>> sql, others = rewrite("SELECT * FROM users AT (VERSION => 3) WHERE note = 'AT ('", ["users"])
        >>> print(sql)
        SELECT * FROM koru_at('users', version := (3)) AS "users"  WHERE note = 'AT ('
        >>> rewrite("SELECT * FROM usres AT (VERSION => 3)", ["users"])[1]
        ('usres',)
    """
    try:
        tokens = sqlglot.Dialect.get_or_raise(_DIALECT).tokenize(sql)
    except TokenError:
        return sql, ()
    explain = _explain_prefix(sql, tokens)
    if explain:  # sqlglot reads EXPLAIN as an opaque command: rewrite what it explains
        inner, others = rewrite(sql[explain:], namespaces, evaluate=evaluate)
        return sql[:explain] + inner, others
    if not any(_is_at(tokens, i) for i in range(len(tokens))):
        return sql, ()
    try:
        statements = sqlglot.parse(sql, dialect=_DIALECT)
    except ParseError:
        return sql, ()
    others: list[str] = []
    clauses = sorted(_clauses(statements, tokens, namespaces, others), key=lambda c: c.name_start)
    return _apply(sql, clauses, namespaces, evaluate), tuple(others)


def _explain_prefix(sql: str, tokens: list[Token]) -> int:
    """Length of a leading ``EXPLAIN [ANALYZE]`` (0 when the statement has none)."""
    if not tokens or tokens[0].text.upper() != "EXPLAIN":
        return 0
    end = tokens[0].end + 1
    rest = sql[end:]
    word = rest.lstrip()
    if word[:7].upper() == "ANALYZE" and (len(word) == 7 or not word[7].isalnum()):
        end += len(rest) - len(word) + 7
    return end


def _has_subquery(expr: str) -> bool:
    try:
        return any(t.token_type == TokenType.SELECT for t in sqlglot.Dialect.get_or_raise(_DIALECT).tokenize(expr))
    except TokenError:
        return False


def _apply(sql: str, clauses: list[_Clause], namespaces: Collection[str], evaluate: Callable[[str], Any] | None) -> str:
    parts: list[str] = []
    pos = 0
    for c in clauses:
        if c.name_start < pos:  # inside an enclosing clause's expression: rewritten with it
            continue
        expr = rewrite(sql[c.expr_start : c.expr_end], namespaces, evaluate=evaluate)[0].strip()
        if evaluate is not None and _has_subquery(expr):
            expr = str(duckdb.ConstantExpression(evaluate(expr)))
        call = f"koru_at({duckdb.ConstantExpression(c.namespace)}, {c.parameter} := ({expr}))"
        if c.alias is not None:
            call += f" AS {quote_identifier(c.alias)}"
        parts += [sql[pos : c.name_start], call, sql[c.name_end : c.at_start]]
        pos = c.at_end
    parts.append(sql[pos:])
    return "".join(parts)


def _is_at(tokens: list[Token], i: int) -> bool:
    return (
        tokens[i].text.upper() == "AT"
        and i + 1 < len(tokens)
        and tokens[i + 1].token_type == TokenType.L_PAREN
    )


def _match(name: str, namespaces: Collection[str]) -> str | None:
    if name in namespaces:
        return name
    folded = [n for n in namespaces if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _clauses(
    statements: list[exp.Expression | None], tokens: list[Token], namespaces: Collection[str],
    others: list[str],
) -> list[_Clause]:
    by_start = {t.start: i for i, t in enumerate(tokens)}
    found: list[_Clause] = []
    for statement in statements:
        if statement is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            when = table.args.get("when")
            if not isinstance(when, exp.HistoricalData) or str(when.this).upper() != "AT":
                continue
            parameter = _PARAMETER.get(str(when.args.get("kind", "")).upper())
            name = table.this
            if parameter is None or not isinstance(name, exp.Identifier) or table.args.get("db"):
                continue
            if name.name.lower() in ctes:
                continue
            namespace = _match(name.name, namespaces)
            start = name.meta.get("start")
            if namespace is None:
                others.append(name.name)
                continue
            if start not in by_start:
                continue
            clause = _locate(tokens, by_start[start], namespace, parameter, table)
            if clause is not None:
                found.append(clause)
    return found


def _locate(
    tokens: list[Token], name_index: int, namespace: str, parameter: str, table: exp.Table
) -> _Clause | None:
    """Find the ``AT ( … => … )`` tokens following the table name at ``name_index``."""
    depth = 0
    at = None
    for i in range(name_index + 1, len(tokens)):
        kind = tokens[i].token_type
        if depth == 0 and _is_at(tokens, i):
            at = i
            break
        depth += (kind == TokenType.L_PAREN) - (kind == TokenType.R_PAREN)
        if depth < 0:
            return None
    if at is None:
        return None
    arrow = close = None
    depth = 0
    for i in range(at + 1, len(tokens)):
        kind = tokens[i].token_type
        depth += (kind == TokenType.L_PAREN) - (kind == TokenType.R_PAREN)
        if depth == 1 and kind == TokenType.FARROW and arrow is None:
            arrow = i
        if depth == 0:
            close = i
            break
    if arrow is None or close is None:
        return None
    name = tokens[name_index]
    return _Clause(
        namespace=namespace,
        parameter=parameter,
        name_start=name.start,
        name_end=name.end + 1,
        at_start=tokens[at].start,
        at_end=tokens[close].end + 1,
        expr_start=tokens[arrow].end + 1,
        expr_end=tokens[close].start,
        alias=None if table.alias else table.name,
    )
