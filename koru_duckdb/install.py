"""``koru_duckdb.install(con, store)``: koru on a DuckDB connection the user already has.

It registers on ``con``:

- scalar functions ``__koru_at_sql``, ``__koru_versions_sql``, ``__koru_changes_sql``
  and ``__koru_commits_sql``: each asks the store's read planner for a plan and
  returns it as SQL (:mod:`koru_duckdb._plan_sql`);
- the table macros of :mod:`koru_duckdb.macros` (``koru_at``, ``koru_versions``,
  ``koru_history``, ``koru_changes``, ``koru_commits``), which run that SQL;
- a view per namespace, ``SELECT * FROM koru_at('<ns>')`` (unless ``views=False``).

Everything is TEMP: nothing koru registers is written into the user's database file,
so the file opens fine without koru (a view the user saves that *uses* a koru macro
needs koru installed again, as any view over a temp object does). Each statement
plans anew, so it sees the store's latest commit. The plans of recent statements keep
their reader leases until :meth:`KoruInstall.close` (so a relation made before a
vacuum still finds its files), the oldest released past :data:`LEASES_KEPT`.
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

import koru_core
from koru_core._time import exact
from koru_core.errors import InvalidInputError, KoruError
from koru_core.read.plan import plan_window
from koru_duckdb import macros
from koru_duckdb._plan_sql import PlanSQL, literal
from koru_duckdb._sql import quote_identifier

__all__ = ["AT_SQL_REUSE_S", "LEASES_KEPT", "KoruInstall", "install"]

_INSTALLS = itertools.count(1)

AT_SQL_REUSE_S = 1.0
"""Seconds for which :meth:`KoruInstall.at_sql` reuses the SQL of its last call (the plan
behind it keeps its lease: it is among the last :data:`LEASES_KEPT`)."""

LEASES_KEPT = 64
"""Plans (and their reader leases) an installation keeps alive; older ones are released."""

_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_TIMES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATE", "TIMESTAMP_NS", "TIMESTAMPTZ_NS", "TIMESTAMP_S",
          "TIMESTAMP_MS", "TIMESTAMP WITH TIME ZONE_NS"}
_COMMITS = pa.schema([
    ("commit", pa.int64()), ("system_time", pa.timestamp("us", tz="UTC")), ("actor", pa.string()),
    ("run_id", pa.string()), ("namespaces", pa.list_(pa.string())), ("written", pa.int64()),
    ("unchanged", pa.int64()), ("deleted", pa.int64()), ("metadata", pa.map_(pa.string(), pa.string())),
    ("hash", pa.string()),
])


def _is_now(text: str | None, kind: str) -> bool:
    """True for a macro argument left out: the ``'(now)'`` default (:data:`macros.NOW`)."""
    return kind == "VARCHAR" and text == macros.NOW.strip("'")


def _version(namespace: str, text: str | None, kind: str, what: str = "version") -> int | None:
    if _is_now(text, kind):
        return None
    if kind == '"NULL"' or text is None:
        msg = f"koru: namespace {namespace!r}: {what} is NULL; give a commit number or leave it out"
        raise InvalidInputError(msg)
    if kind not in _INTEGERS:
        msg = f"koru: namespace {namespace!r}: {what} must be a commit number (an integer), got {text!r} ({kind})"
        raise InvalidInputError(msg)
    return int(text)


def _time(namespace: str, text: str | None, kind: str, what: str) -> int | None:
    if _is_now(text, kind):
        return None
    if kind == '"NULL"' or text is None:
        msg = f"koru: namespace {namespace!r}: {what} is NULL; give a time or leave it out"
        raise InvalidInputError(msg)
    return int(text)


class KoruInstall:
    """koru's functions, macros and views on one DuckDB connection (see the module docstring).

    Made by :func:`install`; :meth:`refresh_views` adds views for new namespaces and
    :meth:`close` removes the views and releases the leases.

    Example:
        >>> con = duckdb.connect()
        >>> installed = install(con, store)
        >>> con.sql("SELECT count(*) FROM koru_commits()").fetchall()[0][0] >= 1
        True
        >>> installed.close()
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, store: koru_core.Store, *, views: bool) -> None:
        self.con = con
        self.store = store
        self._folder = Path(tempfile.mkdtemp(prefix="koru-duckdb-"))
        weakref.finalize(self, shutil.rmtree, self._folder, True)
        self.sql = PlanSQL(self._folder)
        self._plans: OrderedDict[int, Any] = OrderedDict()
        self._last_at: tuple[tuple[Any, ...], int, float, str] | None = None
        self._lock = threading.Lock()
        self._views: set[str] = set()
        self._with_views = views
        self._register()
        if views:
            self.refresh_views()

    def _keep(self, plan: Any) -> None:
        with self._lock:
            self._plans[id(plan)] = plan
            while len(self._plans) > LEASES_KEPT:
                self._plans.popitem(last=False)

    # -- the functions the macros call ------------------------------------------------

    def at_sql(self, ns: str, valid: str | None, valid_kind: str, version: str | None, version_kind: str,
               system: str | None, system_kind: str) -> str:
        """SQL of ``koru_at``'s arguments (see :data:`koru_duckdb.macros.KORU_AT`).

        DuckDB binds a relation's ``query(…)`` again when it runs it: the SQL of the last
        call is reused for the same arguments within :data:`AT_SQL_REUSE_S` seconds while
        the store's last commit is unchanged and no other statement was prepared since
        (:meth:`new_statement`), unless the valid time is "now" (which moves).
        """
        args = (ns, valid, valid_kind, version, version_kind, system, system_kind)
        head = self.store.version()
        last = self._last_at
        if last is not None and last[0] == args and last[1] == head and time.monotonic() - last[2] < AT_SQL_REUSE_S:
            return last[3]
        sql = self._at_sql(*args)
        self._last_at = None if _is_now(valid, valid_kind) else (args, head, time.monotonic(), sql)
        return sql

    def new_statement(self) -> None:
        """Forget the last ``koru_at`` SQL: a new statement plans (and checks its files) afresh."""
        self._last_at = None

    def _at_sql(self, ns: str, valid: str | None, valid_kind: str, version: str | None, version_kind: str,
                system: str | None, system_kind: str) -> str:
        t = _time(ns, valid, valid_kind, "valid")
        v = _version(ns, version, version_kind)
        s = _time(ns, system, system_kind, "system")
        if s is not None:
            if v is not None:
                msg = f"koru: namespace {ns!r}: give version or system, not both"
                raise InvalidInputError(msg)
            v = self.store.commit_at(exact(s))
            if v == 0:  # before the first commit: the state is empty
                return self._empty(ns)
        plan = self.store.plan(ns, at=_datetime(t), version=v)
        self._keep(plan)
        return self.sql.as_of(plan)

    def _empty(self, ns: str) -> str:
        plan = self.store.plan(ns)
        self._keep(plan)
        return f"SELECT * FROM ({self.sql.as_of(plan)}) WHERE false"

    def versions_sql(self, ns: str, key_json: str | None, key_kind: str, version: str | None,
                     version_kind: str) -> str:
        """SQL of ``koru_versions`` (``key_kind`` ``'none'``) or ``koru_history`` (``key_json``
        the key as DuckDB's ``to_json`` renders it)."""
        v = _version(ns, version, version_kind)
        key = None
        if key_kind != "none":
            if key_json is None or key_kind == '"NULL"':
                msg = f"koru: namespace {ns!r}: koru_history needs a key, got NULL"
                raise InvalidInputError(msg)
            parsed = json.loads(key_json)
            key = tuple(parsed) if isinstance(parsed, list) else parsed
        plan = self.store.plan(ns, shape="versions" if key is None else "history", key=key, version=v)
        self._keep(plan)
        return self.sql.versions(plan)

    def changes_sql(self, ns: str, since: str | None, since_kind: str, until: str | None, until_kind: str) -> str:
        """SQL of ``koru_changes`` (integer bounds: commits; time bounds: valid times)."""
        bounds = []
        for text, kind, what in ((since, since_kind, "since"), (until, until_kind, "until")):
            if kind == '"NULL"' or text is None:
                bounds.append(None)
            elif kind in _INTEGERS:
                bounds.append(int(text))
            elif kind in _TIMES:
                bounds.append(_datetime(int(text)))
            else:
                msg = f"koru: namespace {ns!r}: {what} must be a commit number or a time, got {text!r} ({kind})"
                raise InvalidInputError(msg)
        kind, low, high = plan_window(ns, bounds[0], bounds[1], self.store.version())
        plan = self.store.plan(ns, shape="versions", version=high if kind == "commit" and high else None)
        self._keep(plan)
        return self.sql.changes(plan, kind, low, high)

    def commits_sql(self) -> str:
        """SQL of ``koru_commits``."""
        commits = self.store.commits()
        rows = [{
            "commit": c.commit, "system_time": c.system_time, "actor": c.actor, "run_id": c.run_id,
            "namespaces": list(c.namespaces), "written": c.written, "unchanged": c.unchanged,
            "deleted": c.deleted, "metadata": list(c.metadata.items()), "hash": c.hash,
        } for c in commits]
        head = commits[-1].commit if commits else 0
        return self.sql.commits(head, pa.Table.from_pylist(rows, schema=_COMMITS))

    def _register(self) -> None:
        varchar = duckdb.sqltype("VARCHAR")

        def wrap(fn: Any) -> Any:
            @functools.wraps(fn)  # DuckDB reads the arity from the signature
            def call(*args: Any) -> str:
                try:
                    return fn(*args)  # type: ignore[no-any-return]
                except KoruError as e:
                    msg = str(e) if str(e).startswith("koru:") else f"koru: {e}"
                    raise type(e)(msg) from e
            return call

        functions = {
            "__koru_at_sql": (self.at_sql, 7),
            "__koru_versions_sql": (self.versions_sql, 5),
            "__koru_changes_sql": (self.changes_sql, 5),
            "__koru_commits_sql": (self.commits_sql, 0),
        }
        suffix = f"_{next(_INSTALLS)}"  # Python functions belong to the database, macros to the connection
        for name, (fn, arity) in functions.items():
            self.con.create_function(name + suffix, wrap(fn), [varchar] * arity, varchar, null_handling="special",
                                     side_effects=True)
        for text in macros.MACROS:
            for name in functions:
                text = text.replace(f"{name}(", f"{name}{suffix}(")
            self.con.execute(text)

    # -- views ----------------------------------------------------------------------------

    def refresh_views(self) -> None:
        """Create the view of every namespace that has none yet."""
        if not self._with_views:
            return
        for ns in self.store.namespaces():
            if ns not in self._views:
                self.con.execute(macros.CREATE_VIEW.format(name=quote_identifier(ns), namespace=literal(ns)))
                self._views.add(ns)

    def close(self) -> None:
        """Remove koru's views from the connection and release every lease."""
        for ns in list(self._views):
            try:
                self.con.execute(macros.DROP_VIEW.format(name=quote_identifier(ns)))
            except duckdb.Error:
                pass
        self._views.clear()
        with self._lock:
            self._plans.clear()
        shutil.rmtree(self._folder, ignore_errors=True)


def _datetime(ns: int | None) -> Any:
    return None if ns is None else exact(ns)


def install(con: duckdb.DuckDBPyConnection, store: koru_core.Store, *, views: bool = True) -> KoruInstall:
    """Register koru on an existing DuckDB connection: the ``koru_*`` table macros and one view per namespace.

    Works on any ``duckdb.connect(...)`` connection (a database file, a notebook's, dbt-duckdb's).
    Everything registered is TEMP (see the module docstring).

    Args:
        con: The DuckDB connection.
        store: An open koru store.
        views: Also create a view per namespace (``SELECT * FROM users``).

    Returns:
        A :class:`KoruInstall`: ``refresh_views()`` after new namespaces appear, ``close()`` to undo.

    Raises:
        InvalidInputError: ``con`` is not a DuckDB connection or ``store`` not a koru Store.

    Example:
        >>> import duckdb, tempfile, koru_core, koru_duckdb
        >>> store = koru_core.open(tempfile.mkdtemp())
        >>> _ = store.put("users", "alice", {"age": 31})
        >>> con = duckdb.connect()
        >>> _ = koru_duckdb.install(con, store)
        >>> con.sql("SELECT _key, age FROM koru_at('users')").fetchall()
        [('alice', 31)]
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        msg = f"install needs a duckdb connection (duckdb.connect()), got {type(con).__name__}"
        raise InvalidInputError(msg)
    if not isinstance(store, koru_core.Store):
        msg = f"install needs an open koru Store (koru_core.open(path)), got {type(store).__name__}"
        raise InvalidInputError(msg)
    if store.storage_options is not None:  # a store on object storage: DuckDB reads s3:// through s3fs
        _register_object_store(con, store.storage_options)
    return KoruInstall(con, store, views=views)


def _register_object_store(con: duckdb.DuckDBPyConnection, storage_options: dict[str, str]) -> None:
    """Let ``con`` read the plan's ``s3://`` files: an ``s3fs`` file system registered with
    ``register_filesystem`` (DuckDB 2.0 has no httpfs extension offline here). A file system
    already registered for ``s3`` on this connection is replaced by the store's."""
    from koru_core.storage.objects import fsspec_filesystem

    fs = fsspec_filesystem(storage_options)
    if any(p in ("s3", "s3a") for p in _protocols(fs)):
        for name in con.list_filesystems():
            if name in ("S3FileSystem", "s3", "s3a"):
                con.unregister_filesystem(name)
    con.register_filesystem(fs)


def _protocols(fs: object) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
