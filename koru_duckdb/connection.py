"""``koru_duckdb.connect``: a DuckDB connection in which koru namespaces are tables with time travel."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import duckdb

import koru_core
from koru_duckdb._mirror import Mirror
from koru_duckdb._rewrite import rewrite
from koru_duckdb._search import SearchCalls

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["KoruConnection", "connect"]


def connect(
    store: koru_core.Store | str | os.PathLike[str],
    *,
    database: str = ":memory:",
    read_only: bool = True,
) -> KoruConnection:
    """Open a DuckDB connection in which the namespaces of ``store`` are queryable by name.

    In it:

    - ``FROM users`` is the current state of namespace ``users`` (one row per
      live key: the value columns, then ``_key``, ``_valid_from``,
      ``_system_from`` (TIMESTAMPTZ_NS, UTC), ``_commit`` (BIGINT), ``_write_id``);
    - ``FROM users AT (TIMESTAMP => <expr>)`` is the as-of state at valid time
      ``<expr>`` (any constant: a literal, ``now() - INTERVAL 7 DAY``, a ``?``
      parameter); ``FROM users AT (VERSION => n)`` the state as of commit ``n``;
    - the table macros ``koru_at(ns, valid := …, version := …)``,
      ``koru_versions(ns)``, ``koru_history(ns, key)``,
      ``koru_changes(ns, since, until)`` and ``koru_commits()`` (see
      :mod:`koru_duckdb.macros`) read the store as ``Store.as_of``,
      ``versions``, ``history``, ``changes`` and ``commits`` do;
    - ``FROM koru_search(ns, query, k, metric := …, valid := …, version := …)``
      is ``Store.search``: the ``k`` nearest records through the HNSW index
      (see :mod:`koru_duckdb._search`; needs ``koru-lake[vector]``).

    Each statement sees the store's latest commit, so commits made by a writer
    after ``connect`` show in the next query. DuckDB scans the Parquet files
    itself (``read_parquet``), pruning row groups by the ``_valid_from`` and
    ``_commit`` bounds. The session ``TimeZone`` is set to UTC, so a naive
    ``TIMESTAMP`` is read as UTC.

    Args:
        store: An open :class:`koru_core.Store`, or the path of a store folder
            (opened here and closed with the connection).
        database: The DuckDB database to open alongside (``":memory:"`` by
            default); koru's views and macros are TEMP objects, never written to it.
        read_only: Open ``database`` read-only (ignored for ``":memory:"``).
            Nothing is ever written to the koru store through this connection.

    Returns:
        A :class:`KoruConnection`, which behaves as a ``duckdb.DuckDBPyConnection``.

    Raises:
        InvalidInputError: ``store`` is a path that exists and is not a folder.
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
    opened = koru_core.open(store) if owns_store else store
    try:
        if database == ":memory:":
            con = duckdb.connect(database)
        else:
            con = duckdb.connect(database, read_only=read_only)
    except BaseException:
        if owns_store:
            opened.close()
        raise
    return KoruConnection(opened, con, owns_store=owns_store)


class KoruConnection:
    """A ``duckdb.DuckDBPyConnection`` over a koru store (make one with :func:`connect`).

    The methods that take SQL (``sql``, ``query``, ``execute``,
    ``executemany``, ``from_query``) and ``table``/``view`` first bring the
    connection up to the store's latest commit and rewrite ``AT (…)`` clauses
    on koru namespaces; every other attribute (``fetchall``, ``register``,
    ``read_parquet``, ``from_arrow`` …) is the wrapped connection's.
    Results are DuckDB's own relations (``.pl()``, ``.arrow()``, ``.df()``).

    Like a DuckDB connection, one instance is not meant for concurrent use
    from several threads: use :meth:`cursor` per thread.

    Example:
        >>> import tempfile, koru_core, koru_duckdb
        >>> store = koru_core.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "alice", {"age": 31})
        >>> with koru_duckdb.connect(store) as con:
        ...     con.execute("SELECT age FROM users AT (VERSION => ?)", [1]).fetchall()
        [(31,)]
    """

    def __init__(self, store: koru_core.Store, con: duckdb.DuckDBPyConnection, *, owns_store: bool) -> None:
        self._store = store
        self._con = con
        self._owns_store = owns_store
        self._lock = threading.Lock()
        self._mirror = Mirror(store, con)
        self._search = SearchCalls(store, con, self._rewrite)

    def __repr__(self) -> str:
        return f"koru_duckdb.KoruConnection({self._store!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_con", "_store", "_mirror"):
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
        """The wrapped DuckDB connection (koru's views and macros are installed in it)."""
        return self._con

    def rewrite(self, query: str) -> str:
        """Return ``query`` as it is sent to DuckDB: ``AT (…)`` on namespaces → ``koru_at(…)``.

        Raises:
            NamespaceNotFoundError: an unqualified table with an ``AT`` clause
                is neither a namespace, a CTE, nor a DuckDB table or view.

        Example:
            >>> import tempfile, koru_core, koru_duckdb
            >>> store = koru_core.open(tempfile.mkdtemp())
            >>> _ = store.put("users", "alice", {"age": 31})
            >>> koru_duckdb.connect(store).rewrite("FROM users u AT (VERSION => 1) WHERE age > 3")
            "FROM koru_at('users', version := (1)) u  WHERE age > 3"
        """
        with self._lock:
            self._mirror.refresh()
            return self._rewrite(query)

    def _rewrite(self, query: str) -> str:
        rewritten, others = rewrite(query, self._mirror.namespaces)
        for name in others:
            try:
                self._con.table(name)
            except duckdb.CatalogException as e:
                msg = f"namespace {name!r} does not exist (namespaces: {self._mirror.namespaces})"
                raise koru_core.NamespaceNotFoundError(msg) from e
        return rewritten

    def _prepare(self, query: Any, parameters: Any = None) -> tuple[Any, Any]:
        """Refresh, answer ``koru_search`` calls, rewrite ``AT`` clauses: ``(sql, parameters left)``."""
        with self._lock:
            self._mirror.refresh()
            if not isinstance(query, str):
                return query, parameters
            query, parameters = self._search.replace(query, parameters)
            return self._rewrite(query), parameters

    def sql(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        """Run or prepare ``query`` as ``DuckDBPyConnection.sql`` does (``alias=``, ``params=``)."""
        query, params = self._prepare(query, kwargs.get("params"))
        if params is not None:
            kwargs["params"] = params
        return self._con.sql(query, *args, **kwargs)

    def query(self, query: Any, *args: Any, **kwargs: Any) -> duckdb.DuckDBPyRelation:
        """As :meth:`sql`."""
        return self.sql(query, *args, **kwargs)

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
        return KoruConnection(self._store, self._con.cursor(), owns_store=False)

    def close(self) -> None:
        """Close the DuckDB connection, and the store if :func:`connect` opened it."""
        self._con.close()
        if self._owns_store:
            self._store.close()
