"""SQL quoting: :func:`quote_identifier` is the only place koru_duckdb escapes an identifier.

Values never go into SQL text: they are bound parameters, or DuckDB renders
them itself (``duckdb.ConstantExpression``).
"""

from __future__ import annotations

__all__ = ["quote_identifier"]


def quote_identifier(name: str) -> str:
    """Return ``name`` as a double-quoted DuckDB identifier, inner quotes doubled.

    As sqlite-utils' ``quote_identifier`` and duckdb's ``_escape_sql_identifier``.

    Args:
        name: Any identifier (a namespace, view or column name).

    Returns:
        The quoted identifier, e.g. ``"users"``.

    Raises:
        ValueError: ``name`` is empty or contains a NUL character.

    Example:
        >>> quote_identifier('say "hi"!')
        '"say ""hi""!"'
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        msg = f"an identifier must be a non-empty str without NUL, got {name!r}"
        raise ValueError(msg)
    return '"' + name.replace('"', '""') + '"'
