"""``koru_duckdb.connect``: a DuckDB connection in which koru namespaces are tables with time travel.

A thin layer over :func:`koru_duckdb.install`: it opens a DuckDB connection, installs
koru on it, and before each statement adds views for new namespaces, answers
``koru_search`` calls and rewrites the time-travel clauses (:mod:`koru_duckdb._rewrite`).
Everything else is DuckDB's own: relations, ``EXPLAIN``, ``LATERAL``, and the
replacement scans of Python variables in the caller's frame (``SELECT * FROM df``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import duckdb

import koru_core
from koru_duckdb import macros
from koru_duckdb._frames import register_frame_variables
from koru_duckdb._rewrite import rewrite
from koru_duckdb._search import SearchCalls
from koru_duckdb.install import KoruInstall, install

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["REWRITES_KEPT", "KoruConnection", "connect"]

REWRITES_KEPT = 256
"""Statements whose rewrite a connection keeps (a rewrite is a pure function of the
statement's text and the namespace names, unless a clause held a subquery, which is
evaluated each time): repeating a statement parses it once."""


def connect(
    store: koru_core.Store | str | os.PathLike[str],
    *,
    database: str = ":memory:",
    read_only: bool = True,
    catalog: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> KoruConnection:
    """Open a DuckDB connection in which the namespaces of ``store`` are queryable by name.

    In it:

    - ``FROM users`` is the current state of namespace ``users`` (one row per
      live key: the value columns, then ``_key``, ``_valid_from``,
      ``_system_from`` (TIMESTAMPTZ_NS, UTC), ``_commit`` (BIGINT), ``_write_id``);
    - ``FROM users AT (TIMESTAMP => <expr>)``, ``AT TIMESTAMP <expr>`` and
      ``FOR VALID_TIME AS OF <expr>`` are the as-of state at *valid* time ``<expr>``
      (when the facts were true in the world);
    - ``FROM users AT (VERSION => n)`` and ``AT VERSION n`` the state as of commit ``n``;
      ``FOR SYSTEM_TIME AS OF <expr>`` the state as the store knew it at system time
      ``<expr>`` (the last commit at or before it; before the first commit, the empty
      state). A valid time and a VERSION or SYSTEM_TIME clause may follow one namespace,
      after its alias if it has one there (or with ``AS alias`` after them)
      (:mod:`koru_duckdb._rewrite`);
    - the table macros ``koru_at``, ``koru_versions``, ``koru_history``,
      ``koru_changes`` and ``koru_commits`` (:mod:`koru_duckdb.macros`), and
      ``koru_search`` (:mod:`koru_duckdb._search`; needs ``koru-lake[vector]``).

    Each statement sees the store's latest commit. DuckDB scans the plan's Parquet
    files itself, and keeps their parsed footers (``parquet_metadata_cache``: koru never
    rewrites a file in place). The session ``TimeZone`` is set to UTC, so a naive
    ``TIMESTAMP`` is read as UTC. A scalar subquery in a time-travel clause is evaluated first.

    Args:
        store: An open :class:`koru_core.Store`, or the path of a store folder
            (opened here and closed with the connection).
        database: The DuckDB database to open alongside (``":memory:"`` by
            default); koru's views and macros are TEMP objects, never written to it.
        read_only: Open ``database`` read-only (ignored for ``":memory:"``).
        catalog, storage_options: For a shared store given by its URL (``s3://bucket/prefix``
            with a ``postgresql://`` catalog), as :func:`koru_core.open`. DuckDB then
            reads the ``s3://`` files through ``s3fs`` (``register_filesystem``).

    Returns:
        A :class:`KoruConnection`, which behaves as a ``duckdb.DuckDBPyConnection``.

    Raises:
        InvalidInputError: ``store`` is a path that holds no store.
        duckdb.Error: ``database`` cannot be opened.

    Example:
        >>> import tempfile, koru_core, koru_duckdb
        >>> store = koru_core.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "alice", {"age": 31})
        >>> _ = store.put("users", "alice", {"age": 32})
        >>> con = koru_duckdb.connect(store)
        >>> con.sql("SELECT age FROM users").fetchall()
        [(32,)]
        >>> con.sql("SELECT age FROM users AT (VERSION => 1)").fetchall()
        [(31,)]
    """
    owns_store = not isinstance(store, koru_core.Store)
    if not owns_store and (catalog is not None or storage_options is not None):
        msg = "catalog and storage_options are for a store given by its URL, not an open Store"
        raise koru_core.InvalidInputError(msg)
    opened = (koru_core.open(store, create=False, catalog=catalog, storage_options=storage_options)
              if owns_store else store)
    try:
        con = duckdb.connect(database) if database == ":memory:" else duckdb.connect(database, read_only=read_only)
        con.execute(macros.SET_TIME_ZONE)
        con.execute(macros.SET_METADATA_CACHE)
    except BaseException:
        if owns_store:
            opened.close()
        raise
    return KoruConnection(opened, con, owns_store=owns_store)


class KoruConnection:
    """A ``duckdb.DuckDBPyConnection`` over a koru store (make one with :func:`connect`).

    The methods that take SQL (``sql``, ``query``, ``execute``, ``executemany``,
    ``from_query``) and ``table``/``view`` first add views for new namespaces and
    rewrite time-travel clauses; every other attribute (``fetchall``, ``register``,
    ``read_parquet``, ``from_arrow`` …) is the wrapped connection's. Results are
    DuckDB's own relations (``.pl()``, ``.arrow()``, ``.df()``, ``.query()``).

    Like a DuckDB connection, one instance is not meant for concurrent use from
    several threads: use :meth:`cursor` per thread.

    Example:
        >>> import tempfile, koru_core, koru_duckdb
        >>> store = koru_core.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "alice", {"age": 31})
        >>> with koru_duckdb.connect(store) as con:
        ...     con.execute("SELECT age FROM users AT (VERSION => ?)", [1]).fetchall()
        [(31,)]
    """

    def __init__(self, store: koru_core.Store, con: duckdb.DuckDBPyConnection, *, owns_store: bool,
                 installed: KoruInstall | None = None) -> None:
        self._store = store
        self._con = con
        self._owns_store = owns_store
        self._lock = threading.Lock()
        self._install = installed or install(con, store)
        self._search = SearchCalls(store, con, self._rewrite)
        self._rewrites: OrderedDict[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = OrderedDict()

    def __repr__(self) -> str:
        return f"koru_duckdb.KoruConnection({self._store!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_con", "_store", "_install"):
            raise AttributeError(name)
        return getattr(self._con, name)

    def __enter__(self) -> KoruConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> koru_core.Store:
        """The koru store this connection reads."""
        return self._store

    @property
    def duckdb_connection(self) -> duckdb.DuckDBPyConnection:
        """The wrapped DuckDB connection (koru's macros and views are installed in it)."""
        return self._con

    def rewrite(self, query: str) -> str:
        """Return ``query`` as it is sent to DuckDB: time-travel clauses → ``koru_at(…)``.

        Raises:
            NamespaceNotFoundError: an unqualified table with a time-travel clause
                is neither a namespace, a CTE, nor a DuckDB table or view.

        Example:
            >>> import tempfile, koru_core, koru_duckdb
            >>> store = koru_core.open(tempfile.mkdtemp())
            >>> _ = store.put("users", "alice", {"age": 31})
            >>> koru_duckdb.connect(store).rewrite("FROM users u AT (VERSION => 1) WHERE age > 3")
            "FROM koru_at('users', version := (1)) u  WHERE age > 3"
        """
        with self._lock:
            self._install.refresh_views()
            return self._rewrite(query)

    def _rewrite(self, query: str) -> str:
        namespaces = self._store.namespaces()
        cache_key = (query, tuple(namespaces))
        hit = self._rewrites.get(cache_key)
        if hit is not None:
            rewritten, others = hit
        else:
            evaluated = []

            def evaluate(expression: str) -> Any:
                evaluated.append(expression)
                return self._evaluate(expression)

            rewritten, others = rewrite(query, namespaces, evaluate=evaluate)
            if not evaluated:  # a pure function of the text and the namespaces: kept
                self._rewrites[cache_key] = (rewritten, others)
                while len(self._rewrites) > REWRITES_KEPT:
                    self._rewrites.popitem(last=False)
        for name in others:
            try:
                self._con.table(name)
            except duckdb.CatalogException as e:
                msg = f"namespace {name!r} does not exist (namespaces: {namespaces})"
                raise koru_core.NamespaceNotFoundError(msg) from e
        return rewritten

    def _evaluate(self, expression: str) -> Any:
        """The value of a constant SQL expression (a scalar subquery in a time-travel clause)."""
        rows = self._con.sql(f"SELECT {self._rewrite(expression)}").fetchall()
        return rows[0][0] if rows else None

    def _prepare(self, query: Any, parameters: Any = None, *, depth: int = 2) -> tuple[Any, Any]:
        """Refresh views, register the caller's frame variables, answer ``koru_search``,
        rewrite time travel: ``(sql, parameters left)``."""
        with self._lock:
            self._install.refresh_views()
            self._install.new_statement()
            if not isinstance(query, str):
                return query, parameters
            query, parameters = self._search.replace(query, parameters)
            query = self._rewrite(query)  # after it, DuckDB (and sqlglot) can parse every clause
            register_frame_variables(self._con, query, sys._getframe(depth), self._store.namespaces())
            return query, parameters

    def sql(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        """Run or prepare ``query`` as ``DuckDBPyConnection.sql`` does (``alias=``, ``params=``)."""
        query, params = self._prepare(query, kwargs.get("params"))
        if params is not None:
            kwargs["params"] = params
        return self._con.sql(query, *args, **kwargs)

    def query(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        """As :meth:`sql`."""
        query, params = self._prepare(query, kwargs.get("params"))
        if params is not None:
            kwargs["params"] = params
        return self._con.sql(query, *args, **kwargs)

    def from_query(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        """As ``DuckDBPyConnection.from_query``."""
        return self._con.from_query(self._prepare(query)[0], *args, **kwargs)

    def execute(self, query: Any, parameters: Sequence[Any] | dict[str, Any] | None = None) -> KoruConnection:
        """Execute ``query`` with bound ``parameters``; fetch with ``fetchall()`` & co.

        Returns:
            This connection, as ``DuckDBPyConnection.execute`` returns itself.
        """
        self._con.execute(*self._prepare(query, parameters))
        return self

    def executemany(self, query: Any, parameters: Sequence[Any] | None = None) -> KoruConnection:
        """Execute ``query`` once per parameter set; returns this connection."""
        self._con.executemany(self._prepare(query)[0], parameters)
        return self

    def table(self, table_name: str) -> duckdb.DuckDBPyRelation:
        """Return the relation of a table or view, e.g. a namespace's current state."""
        self._prepare(None)
        return self._con.table(table_name)

    def view(self, view_name: str) -> duckdb.DuckDBPyRelation:
        """As :meth:`table`."""
        self._prepare(None)
        return self._con.view(view_name)

    def cursor(self) -> KoruConnection:
        """Return a new connection to the same DuckDB database and store (for another thread)."""
        cur = self._con.cursor()
        cur.execute(macros.SET_TIME_ZONE)
        return KoruConnection(self._store, cur, owns_store=False)

    def close(self) -> None:
        """Close the DuckDB connection, and the store if :func:`connect` opened it."""
        self._install.close()
        self._con.close()
        if self._owns_store:
            self._store.close()
