"""Keeping a DuckDB connection's koru objects in step with the store, before every statement.

A :class:`Mirror` installs the macros of :mod:`koru_duckdb.macros` once, then on
each :meth:`Mirror.refresh` (one cheap catalog read when nothing changed):

- sets ``__koru_head`` (the last commit) and ``__koru_namespaces``;
- for each namespace whose files or pending versions changed, asks
  ``koru_core`` for a :class:`koru_core.ScanPlan` and replaces the temp view
  ``__koru_versions_<ns>``: ``read_parquet([files], union_by_name = true)``,
  cast to the namespace's schema, UNION ALL the pending versions, registered
  as an Arrow table ``__koru_pending_<ns>``;
- creates the temp view ``<ns>`` (``SELECT * FROM koru_at('<ns>')``, the current
  state) the first time a namespace is seen;
- registers the commit log as the Arrow table ``__koru_commits`` when the head moved.

Every object is TEMP, so a database file opened read-only is never written.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from koru_duckdb import macros
from koru_duckdb._sql import quote_identifier

if TYPE_CHECKING:
    import koru_core

__all__ = ["Mirror"]

_PENDING_PREFIX = "__koru_pending_"
_COMMITS_SCHEMA = pa.schema(
    [
        ("commit", pa.int64()),
        ("system_time", pa.timestamp("us", tz="UTC")),
        ("actor", pa.string()),
        ("run_id", pa.string()),
        ("namespaces", pa.list_(pa.string())),
        ("written", pa.int64()),
        ("unchanged", pa.int64()),
        ("deleted", pa.int64()),
    ]
)


class Mirror:
    """The koru objects of one DuckDB connection, refreshed from one store.

    Args:
        store: The open store to mirror.
        con: The DuckDB connection to install the objects in.
    """

    def __init__(self, store: koru_core.Store, con: duckdb.DuckDBPyConnection) -> None:
        self._store = store
        self._con = con
        self._head = -1
        self._namespaces: list[str] = []
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        con.execute(macros.SET_TIME_ZONE)
        self._set_head(0, [])
        self._set_commits([])  # DuckDB binds a table macro's FROM when it is created
        for text in macros.MACROS:
            con.execute(text)

    @property
    def namespaces(self) -> list[str]:
        """The namespace names as of the last :meth:`refresh`."""
        return self._namespaces

    def refresh(self) -> None:
        """Bring the variables and views up to the store's current state.

        The head is read first and bounds every view (``_commit <= head``), so
        one statement sees one commit across namespaces even while a writer
        commits.
        """
        head = self._store._catalog.head()[0]
        fingerprints: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in self._store.stats().select(["namespace", "tier", "files", "versions", "bytes"]).to_pylist():
            fingerprints[row["namespace"]].append(tuple(row.values()))  # what is stored, not memory use
        if head != self._head:  # first: creating a view binds it against the variables
            self._set_head(head, self._store.namespaces())
            self._set_commits(self._store.commits())
        for namespace in self._namespaces:
            fingerprint = tuple(fingerprints.get(namespace, ()))
            if self._fingerprints.get(namespace) != fingerprint:
                self._mirror_namespace(namespace, is_new=namespace not in self._fingerprints)
                self._fingerprints[namespace] = fingerprint

    def _set_head(self, head: int, namespaces: list[str]) -> None:
        self._con.execute(macros.SET_HEAD, [head])
        self._con.execute(macros.SET_NAMESPACES, [namespaces])
        self._head, self._namespaces = head, list(namespaces)

    def _set_commits(self, commits: list[koru_core.Commit]) -> None:
        rows = [
            {name: getattr(c, name) for name in _COMMITS_SCHEMA.names} for c in commits
        ]
        self._con.register(macros.COMMITS_VIEW, pa.Table.from_pylist(rows, schema=_COMMITS_SCHEMA))

    def _mirror_namespace(self, namespace: str, *, is_new: bool) -> None:
        plan = self._store.scan_plan(namespace)
        pending_name = _PENDING_PREFIX + namespace
        self._con.register(pending_name, plan.pending)
        pending = self._con.table(pending_name)
        hint_type = duckdb.sqltype("TIMESTAMPTZ_NS")
        no_hint = duckdb.ConstantExpression(None).cast(hint_type).alias(macros.HINT_COLUMN)
        exact = duckdb.ConstantExpression(plan.has_exact_valid_to).alias(macros.EXACT_COLUMN)
        versions = pending.select(duckdb.StarExpression(), no_hint, exact)
        if plan.files:
            files = self._con.read_parquet(list(plan.files), union_by_name=True)
            # cold files store _valid_to, never earlier than the true one: koru_at may
            # drop rows it ends before the asked time (koru_core.scan.read_versions)
            use_hint = "_valid_to" in files.columns and not plan.is_distilled
            hint = duckdb.ColumnExpression("_valid_to").cast(hint_type).alias(macros.HINT_COLUMN)
            conformed = _conform(files, pending, extra=[hint if use_hint else no_hint, exact])
            versions = conformed.union(versions) if plan.pending.num_rows else conformed
        self._create_view(macros.VERSIONS_VIEW_PREFIX + namespace, versions.sql_query())
        if is_new:
            literal = str(duckdb.ConstantExpression(namespace))
            self._create_view(namespace, macros.CURRENT_STATE.format(namespace=literal))

    def _create_view(self, name: str, query: str) -> None:
        self._con.execute(macros.CREATE_VIEW.format(name=quote_identifier(name), query=query))


def _conform(
    files: duckdb.DuckDBPyRelation, like: duckdb.DuckDBPyRelation, *, extra: list[duckdb.Expression]
) -> duckdb.DuckDBPyRelation:
    """Project ``files`` onto ``like``'s columns and types (older files lack columns or
    hold narrower types), then the ``extra`` columns."""
    have = dict(zip(files.columns, files.types))
    exprs = []
    for name, type_ in zip(like.columns, like.types):
        if name not in have:
            exprs.append(duckdb.ConstantExpression(None).cast(type_).alias(name))
        elif have[name] != type_:
            exprs.append(duckdb.ColumnExpression(name).cast(type_).alias(name))
        else:
            exprs.append(duckdb.ColumnExpression(name))
    return files.select(*exprs, *extra)
