"""``koru_search(ns, query, k, …)`` in SQL: vector search through koru's HNSW index.

A DuckDB table macro could only scan every vector; ``Store.search`` walks an
HNSW index with the as-of filter. So the connection answers each call itself,
before DuckDB sees the statement:

1. the calls are found with sqlglot's tokenizer (never inside a string or a
   comment), their arguments split at the top-level commas;
2. the arguments are evaluated by DuckDB in one ``SELECT`` on the same
   connection, so any constant expression works: a list literal, a
   ``?`` parameter, ``now() - INTERVAL 7 DAY``, a scalar subquery such as
   ``(SELECT embedding FROM docs WHERE _key = 'a')``;
3. ``Store.search`` runs, its Arrow result is registered on the connection
   under a fresh name, and the call in the SQL text is replaced by that name.

Arguments, positional or named (``name := value``): ``ns``, ``query``,
``k`` (default 10), ``column``, ``metric`` (``'cosine'``, ``'l2'``, ``'ip'``),
``valid`` (valid time; ``at`` is accepted too), ``version`` (commit),
``"where"`` (a STRUCT of column → value, all equal, e.g. ``{'lang': 'en'}``)
and ``ef``. The result has the columns of ``Store.search``: ``_key``,
``_distance``, the value columns, ``_valid_from``, ``_system_from``,
``_commit``, ``_write_id``, nearest first.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

import koru_core
from koru_duckdb._sql import quote_identifier

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import duckdb

__all__ = ["FUNCTION", "SearchCalls"]

FUNCTION = "koru_search"
_POSITIONAL = ("ns", "query", "k", "column", "metric")
_NAMES = {"ns", "query", "k", "column", "metric", "valid", "at", "version", "where", "ef"}
_KEEP = 64
"""Search results kept registered per connection (a relation may be fetched after the next statement)."""
_names = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Call:
    """One ``koru_search( … )`` in the text: character offsets, and its arguments as SQL text."""

    start: int
    end: int  # exclusive
    arguments: tuple[tuple[str | None, str], ...]  # (name or None, SQL expression)
    parameters_before: int  # positional ``?`` before the call
    parameters_inside: int


def find_calls(sql: str) -> list[_Call]:
    """Return the ``koru_search(…)`` calls of ``sql`` in text order (none if it does not tokenize)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
    except TokenError:
        return []
    calls: list[_Call] = []
    parameters = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.token_type == TokenType.PLACEHOLDER:
            parameters += 1
        if (
            t.text.lower() == FUNCTION and t.token_type == TokenType.VAR
            and i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN
        ):
            close, arguments, inside = _arguments(sql, tokens, i + 1)
            if close is None:
                return calls
            calls.append(_Call(t.start, tokens[close].end + 1, arguments, parameters, inside))
            parameters += inside
            i = close + 1
            continue
        i += 1
    return calls


def _arguments(sql: str, tokens: list[Token], open_at: int) -> tuple[int | None, tuple[tuple[str | None, str], ...], int]:
    """Split the arguments of the call whose ``(`` is ``tokens[open_at]``."""
    depth, start, found, inside = 0, open_at + 1, [], 0
    for j in range(open_at, len(tokens)):
        kind = tokens[j].token_type
        if kind == TokenType.PLACEHOLDER:
            inside += 1
        elif kind == TokenType.PARAMETER:
            msg = f"{FUNCTION}: only positional ? parameters can be bound in its arguments, not ${tokens[j + 1].text}"
            raise koru_core.InvalidInputError(msg)
        depth += (kind in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE)) - (
            kind in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE)
        )
        if (depth == 1 and kind == TokenType.COMMA) or depth == 0:
            if j > start:
                found.append(_argument(sql, tokens[start:j]))
            start = j + 1
        if depth == 0:
            return j, tuple(found), inside
    return None, (), inside


def _argument(sql: str, tokens: list[Token]) -> tuple[str | None, str]:
    name = None
    if len(tokens) > 2 and tokens[1].token_type in (TokenType.COLON_EQ, TokenType.FARROW):
        name = tokens[0].text.lower()
        tokens = tokens[2:]
    return name, sql[tokens[0].start : tokens[-1].end + 1]


class SearchCalls:
    """Answers the ``koru_search`` calls of statements run on one connection.

    Args:
        store: The store to search.
        con: The DuckDB connection that evaluates the arguments and holds the results.
        rewrite_at: Rewrites ``AT (…)`` clauses in an argument's SQL.
    """

    def __init__(self, store: koru_core.Store, con: duckdb.DuckDBPyConnection, rewrite_at: Callable[[str], str]) -> None:
        self._store = store
        self._con = con
        self._rewrite_at = rewrite_at
        self._registered: deque[str] = deque()

    def replace(self, sql: str, parameters: Sequence[Any] | None) -> tuple[str, Sequence[Any] | None]:
        """Run every ``koru_search`` call of ``sql`` and put its result's name in its place.

        Args:
            sql: The statement(s).
            parameters: The statement's positional parameters, or None.

        Returns:
            The SQL text and the parameters left for it (those inside the calls are used up).

        Raises:
            InvalidInputError: an unknown or repeated argument, a missing ``ns`` or
                ``query``, named (``$name``) parameters in a call, or what
                ``Store.search`` raises for its arguments.
            NamespaceNotFoundError: ``ns`` is not a namespace.
        """
        calls = find_calls(sql) if FUNCTION in sql.lower() else []
        if not calls:
            return sql, parameters
        if any(c.parameters_inside for c in calls) and not isinstance(parameters, list | tuple):
            msg = f"{FUNCTION}: only positional ? parameters can be bound in its arguments"
            raise koru_core.InvalidInputError(msg)
        parts, pos, used = [], 0, set()
        for call in calls:
            mine = range(call.parameters_before, call.parameters_before + call.parameters_inside)
            used.update(mine)
            name = self._run(call, [parameters[i] for i in mine] if mine else None)
            parts += [sql[pos : call.start], quote_identifier(name)]
            pos = call.end
        parts.append(sql[pos:])
        rest = None if parameters is None else [p for i, p in enumerate(parameters) if i not in used]
        return "".join(parts), rest

    def _run(self, call: _Call, parameters: list[Any] | None) -> str:
        names, exprs = _bind(call.arguments)
        rows = self._con.execute(
            self._rewrite_at("SELECT " + ", ".join(f"({e})" for e in exprs)), parameters
        ).fetchall()
        args = dict(zip(names, rows[0], strict=True))
        if args.get("ns") is None or args.get("query") is None:
            msg = f"{FUNCTION}(ns, query, k, …): ns and query must be given and not NULL"
            raise koru_core.InvalidInputError(msg)
        where = args.get("where")
        if where is not None and not isinstance(where, dict):
            msg = f"{FUNCTION}: where must be a STRUCT of column → value, e.g. {{'lang': 'en'}}, got {where!r}"
            raise koru_core.InvalidInputError(msg)
        at = _utc(args.get("valid", args.get("at")))
        result = self._store.search(
            args["ns"], args["query"], k=10 if args.get("k") is None else args["k"], column=args.get("column"),
            metric=args.get("metric") or "cosine", at=at, version=args.get("version"), where=where,
            ef=args.get("ef"),
        )
        name = f"__koru_search_{next(_names)}"
        self._con.register(name, result)
        self._registered.append(name)
        while len(self._registered) > _KEEP:
            self._con.unregister(self._registered.popleft())
        return name


def _utc(value: Any) -> Any:
    """A DuckDB TIMESTAMP or DATE (naive) read as UTC, as the connection's TimeZone setting says."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value


def _bind(arguments: Sequence[tuple[str | None, str]]) -> tuple[list[str], list[str]]:
    """Name every argument (positional ones by :data:`_POSITIONAL`); refuse unknown and repeated names."""
    names: list[str] = []
    for i, (name, _) in enumerate(arguments):
        if name is None:
            if any(n is not None for n, _ in arguments[:i]) or i >= len(_POSITIONAL):
                msg = f"{FUNCTION}: positional argument {i + 1} after named ones, or more than {len(_POSITIONAL)}"
                raise koru_core.InvalidInputError(msg)
            name = _POSITIONAL[i]
        name = name.strip('"')
        if name not in _NAMES or name in names:
            msg = f"{FUNCTION}: unknown or repeated argument {name!r} (arguments: {sorted(_NAMES)})"
            raise koru_core.InvalidInputError(msg)
        names.append(name)
    return names, [expr for _, expr in arguments]
