"""Time-travel clauses on koru namespaces → ``koru_at(…)`` calls.

DuckDB parses ``AT (…)`` but answers "Catalog type does not support time travel"
for anything that is not a DuckLake, Iceberg or Delta table, and it has no
``FOR SYSTEM_TIME`` at all. This module turns the clauses that follow a koru
namespace into one call of the ``koru_at`` table macro (:mod:`koru_duckdb.macros`):

========================================  ===================  ==========================
clause after a namespace                  ``koru_at`` argument  meaning
========================================  ===================  ==========================
``AT (TIMESTAMP => e)``, ``AT TIMESTAMP e`` ``valid := (e)``     valid time
``FOR VALID_TIME AS OF e``                 ``valid := (e)``     valid time
``AT (VERSION => n)``, ``AT VERSION n``     ``version := (n)``   commit number
``FOR SYSTEM_TIME AS OF e``                ``system := (e)``    system time
========================================  ===================  ==========================

Several clauses may follow one namespace (one per argument), after its alias if
it has one before them::

    FROM users AS u FOR SYSTEM_TIME AS OF TIMESTAMP '2024-06-01 09:00' FOR VALID_TIME AS OF DATE '2024-01-01'
    FROM koru_at('users', system := (TIMESTAMP '2024-06-01 09:00'), valid := (DATE '2024-01-01')) AS u

It is pure (SQL text and namespace names in, SQL text out). The clauses are found
in sqlglot's DuckDB tokens, never with regular expressions, so comments, string
literals and quoted identifiers are read as DuckDB reads them; the statement is
then parsed by sqlglot with the clauses blanked out, to learn which table each
clause follows (an unqualified name that is a namespace and not a CTE). Only the
clauses and the namespace's name are edited, by the tokens' source positions: the
rest of the statement reaches DuckDB byte for byte, and each clause's expression
is kept verbatim (so ``?`` parameters keep their order). The expression of a
shorthand or ``FOR`` clause ends at the first ``,``, ``)``, ``;``, clause keyword
(``WHERE``, ``JOIN``, ``ON``, ``AS`` …) or further time-travel clause outside
parentheses. SQL without such a clause, or that sqlglot cannot parse, is returned
unchanged and DuckDB reports on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from koru_core.errors import InvalidInputError
from koru_duckdb._sql import quote_identifier

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

__all__ = ["rewrite"]

_DIALECT = "duckdb"
_AT_KINDS = {"TIMESTAMP": "valid", "VERSION": "version"}
"""``AT (<kind> => …)`` / ``AT <kind> …`` → the ``koru_at`` argument it sets."""
_FOR_KINDS = {"VALID_TIME": "valid", "SYSTEM_TIME": "system"}
"""``FOR <kind> AS OF …`` → the ``koru_at`` argument it sets."""
_CLAUSE_NAMES = {"valid": "a valid-time clause", "version": "a VERSION clause", "system": "a SYSTEM_TIME clause"}
_STOP_WORDS = frozenset({
    "WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "HAVING", "QUALIFY", "WINDOW", "UNION", "EXCEPT", "INTERSECT",
    "JOIN", "ON", "USING", "LEFT", "RIGHT", "INNER", "FULL", "OUTER", "CROSS", "NATURAL", "POSITIONAL", "ASOF",
    "ANTI", "SEMI", "LATERAL", "AS", "SAMPLE", "TABLESAMPLE", "RETURNING", "FETCH", "SELECT", "FROM", "PIVOT",
    "UNPIVOT",
})
"""Words that end a shorthand or ``FOR`` clause's expression (outside parentheses)."""
_NOT_WORDS = frozenset({
    TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING, TokenType.RAW_STRING,
    TokenType.BYTE_STRING, TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.HEREDOC_STRING,
})


@dataclass(frozen=True, slots=True)
class _Setting:
    """One clause: the ``koru_at`` argument it sets and its expression's character offsets."""

    parameter: str
    expr_start: int
    expr_end: int  # exclusive


@dataclass(frozen=True, slots=True)
class _Clauses:
    """The time-travel clauses following one table reference (character offsets, token index)."""

    start: int
    end: int  # exclusive
    before: int  # index of the token just before the first clause (the name, or its alias)
    settings: tuple[_Setting, ...]


@dataclass(frozen=True, slots=True)
class _Edit:
    """A run of clauses to rewrite: its namespace, the name's offsets, the alias to add (if none was given)."""

    clauses: _Clauses
    namespace: str
    name_start: int
    name_end: int  # exclusive
    alias: str | None


def rewrite(
    sql: str, namespaces: Collection[str], *, evaluate: Callable[[str], Any] | None = None
) -> tuple[str, tuple[str, ...]]:
    """Replace the time-travel clauses on koru namespaces in ``sql`` by ``koru_at(…)`` calls.

    Args:
        sql: One or more DuckDB SQL statements.
        namespaces: The store's namespace names. A table reference is rewritten
            when it is unqualified, names a namespace (exactly, or else
            case-insensitively as DuckDB resolves names), is not a CTE of the
            statement, and carries one or more clauses of the module docstring.
        evaluate: Returns the value of a constant SQL expression; when given, an
            expression holding a subquery is replaced by its value (DuckDB refuses
            subqueries in a table function's arguments).

    Returns:
        ``(rewritten, others)``: the rewritten SQL (``sql`` itself when nothing
        is to be rewritten), and the names of the unqualified, non-CTE tables
        that carry a time-travel clause but name no namespace (DuckDB will be asked
        about them: they may be DuckLake tables, or mistyped namespaces).

    Raises:
        InvalidInputError: one namespace carries two clauses that set the same
            argument (two valid times, two versions or two system times), or
            both a VERSION and a SYSTEM_TIME clause.

    Example:
        >>> sql, others = rewrite("SELECT * FROM users AT (VERSION => 3) WHERE note = 'AT ('", ["users"])
        >>> print(sql)
        SELECT * FROM koru_at('users', version := (3)) AS "users"  WHERE note = 'AT ('
        >>> sql = "FROM users u FOR SYSTEM_TIME AS OF now() AT TIMESTAMP DATE '2024-01-01' WHERE x"
        >>> print(rewrite(sql, ["users"])[0])
        FROM koru_at('users', system := (now()), valid := (DATE '2024-01-01')) u  WHERE x
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
    found = _scan(tokens)
    if not found:
        return sql, ()
    blanked = list(sql)
    for c in found:
        blanked[c.start : c.end] = " " * (c.end - c.start)
    try:
        statements = sqlglot.parse("".join(blanked), dialect=_DIALECT)
    except ParseError:
        return sql, ()
    tables = _tables(statements)
    others: list[str] = []
    edits: list[_Edit] = []
    for c in found:
        hit = tables.get(tokens[c.before].end)
        if hit is None:
            continue
        table, is_cte = hit
        name = table.this
        if is_cte:
            continue
        namespace = _match(name.name, namespaces)
        if namespace is None:
            others.append(name.name)
            continue
        alias = None if table.alias else name.name
        edits.append(_Edit(c, namespace, name.meta["start"], name.meta["end"] + 1, alias))
    return _apply(sql, edits, namespaces, evaluate), tuple(others)


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


# -- finding the clauses in the tokens ---------------------------------------------------


def _word(tokens: list[Token], i: int) -> str | None:
    """The upper-cased text of token ``i`` if it is a bare word (not a string or quoted name)."""
    if i >= len(tokens) or tokens[i].token_type in _NOT_WORDS:
        return None
    return tokens[i].text.upper()


def _is(tokens: list[Token], i: int, kind: TokenType) -> bool:
    return i < len(tokens) and tokens[i].token_type == kind


def _clause_at(tokens: list[Token], i: int) -> tuple[str, int, int, int] | None:
    """The clause starting at token ``i``: ``(parameter, first expr token, end expr token, next token)``
    (expression tokens ``[first, end)``), or None."""
    word = _word(tokens, i)
    if word == "AT" and _is(tokens, i + 1, TokenType.L_PAREN):
        kind = _AT_KINDS.get(_word(tokens, i + 2) or "")
        if kind is None or not _is(tokens, i + 3, TokenType.FARROW):
            return None
        depth = 1
        for j in range(i + 4, len(tokens)):
            depth += _is(tokens, j, TokenType.L_PAREN) - _is(tokens, j, TokenType.R_PAREN)
            if depth == 0:
                return (kind, i + 4, j, j + 1) if j > i + 4 else None
        return None
    if word == "AT":
        kind = _AT_KINDS.get(_word(tokens, i + 1) or "")
        first = i + 2
    elif word == "FOR" and _word(tokens, i + 2) == "AS" and _word(tokens, i + 3) == "OF":
        kind = _FOR_KINDS.get(_word(tokens, i + 1) or "")
        first = i + 4
    else:
        return None
    if kind is None or _is(tokens, first, TokenType.FARROW):
        return None
    end = _expression_end(tokens, first)
    return (kind, first, end, end) if end > first else None


def _expression_end(tokens: list[Token], first: int) -> int:
    """Index of the token that ends a shorthand or ``FOR`` clause's expression begun at ``first``."""
    depth = 0
    for j in range(first, len(tokens)):
        kind = tokens[j].token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            if depth == 0:
                return j
            depth -= 1
        elif depth == 0 and (kind in (TokenType.COMMA, TokenType.SEMICOLON) or _word(tokens, j) in _STOP_WORDS
                             or (j > first and _clause_at(tokens, j) is not None)):
            return j
    return len(tokens)


def _scan(tokens: list[Token]) -> list[_Clauses]:
    """Every run of time-travel clauses in ``tokens`` (runs inside a clause's expression are
    left to the recursive rewrite of that expression)."""
    found = []
    i = 1
    while i < len(tokens):
        if _clause_at(tokens, i) is None:
            i += 1
            continue
        settings = []
        start = i
        while (clause := _clause_at(tokens, i)) is not None:
            parameter, first, end, i = clause
            expr_end = tokens[end - 1].end + 1
            settings.append(_Setting(parameter, tokens[first].start, expr_end))
        found.append(_Clauses(start=tokens[start].start, end=tokens[i - 1].end + 1, before=start - 1,
                              settings=tuple(settings)))
    return found


# -- which table each run follows -------------------------------------------------------


def _tables(statements: list[exp.Expression | None]) -> dict[int, tuple[exp.Table, bool]]:
    """Unqualified table references by the end offset of their name and of their alias:
    ``(table, names a CTE of its statement)``."""
    out: dict[int, tuple[exp.Table, bool]] = {}
    for statement in statements:
        if statement is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            name = table.this
            if not isinstance(name, exp.Identifier) or table.args.get("db") or "end" not in name.meta:
                continue
            entry = (table, name.name.lower() in ctes)
            out[name.meta["end"]] = entry
            alias = table.args.get("alias")
            if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
                if "end" in alias.this.meta:
                    out[alias.this.meta["end"]] = entry
    return out


def _match(name: str, namespaces: Collection[str]) -> str | None:
    if name in namespaces:
        return name
    folded = [n for n in namespaces if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


# -- the edit ---------------------------------------------------------------------------


def _has_subquery(expr: str) -> bool:
    try:
        return any(t.token_type == TokenType.SELECT for t in sqlglot.Dialect.get_or_raise(_DIALECT).tokenize(expr))
    except TokenError:
        return False


def _apply(sql: str, edits: list[_Edit], namespaces: Collection[str], evaluate: Callable[[str], Any] | None) -> str:
    parts: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: e.name_start):
        arguments = []
        given: set[str] = set()
        for s in e.clauses.settings:
            if s.parameter in given or {s.parameter, *given} >= {"version", "system"}:
                msg = (f"koru: namespace {e.namespace!r}: {_CLAUSE_NAMES[s.parameter]} after "
                       f"{' and '.join(_CLAUSE_NAMES[g] for g in sorted(given))}; give at most one valid time "
                       "and one of VERSION or SYSTEM_TIME")
                raise InvalidInputError(msg)
            given.add(s.parameter)
            expr = rewrite(sql[s.expr_start : s.expr_end], namespaces, evaluate=evaluate)[0].strip()
            if evaluate is not None and _has_subquery(expr):
                expr = str(duckdb.ConstantExpression(evaluate(expr)))
            arguments.append(f"{s.parameter} := ({expr})")
        call = f"koru_at({duckdb.ConstantExpression(e.namespace)}, {', '.join(arguments)})"
        if e.alias is not None:
            call += f" AS {quote_identifier(e.alias)}"
        parts += [sql[pos : e.name_start], call, sql[e.name_end : e.clauses.start]]
        pos = e.clauses.end
    parts.append(sql[pos:])
    return "".join(parts)
