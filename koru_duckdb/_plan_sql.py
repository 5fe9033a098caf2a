"""Translating a koru :class:`~koru_core.ReadPlan` into one DuckDB SQL query.

Like ``polars.io.delta`` turns delta-rs's file list into ``scan_parquet``, this module
decides nothing: the core planned the files, the strategy and the bounds; here each
source becomes a ``read_parquet`` and each planner predicate
(:func:`koru_core.read.plan.exact_filter`, :func:`~koru_core.read.plan.candidate_filter`)
becomes a SQL ``WHERE`` built by :class:`SqlPredicates`. DuckDB pushes those into its
Parquet scan and prunes row groups by their statistics.

Two kinds of input are not plain files, and get one here (in a private temporary
folder, reused while unchanged):

- pending versions (small commits still in the catalog): written to a Parquet file;
- the namespace's full schema: an empty Parquet file added to every ``read_parquet``
  with ``union_by_name``, so columns an older file lacks read as NULL with their type.

Warm files carry no ``_commit``/``_system_from`` (their commit had no number when they
were written): each is read on its own with both added as constants.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from koru_core.layout import COLD_SCHEMA
from koru_core.read.plan import OUTPUT_SYSTEM_COLUMNS, candidate_filter, exact_filter
from koru_duckdb import macros
from koru_duckdb._sql import quote_identifier

if TYPE_CHECKING:
    from koru_core import ReadPlan, Source

__all__ = ["PlanSQL", "SqlPredicates", "literal", "timestamp_literal"]

_HEX = ("_write_id", "_prev_write_id", "_content_id")
_VERSION_COLUMNS = ("_key", "_valid_from", "_valid_to", "_system_from", "_commit", "_write_id", "_prev_write_id",
                    "_content_id", "_deleted", "_actor", "_run_id", "_parents")


def literal(value: object) -> str:
    """A SQL literal rendered by DuckDB itself (never an f-string of user data)."""
    return str(duckdb.ConstantExpression(value))


def timestamp_literal(ns: int) -> str:
    """A ``TIMESTAMPTZ_NS`` literal for ``ns`` nanoseconds since the epoch (UTC), exact."""
    seconds, rest = divmod(ns, 1_000_000_000)
    from datetime import datetime, timezone

    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{rest:09d}+00"
    return f"CAST({literal(text)} AS TIMESTAMPTZ_NS)"


class SqlPredicates:
    """The planner's predicates as SQL text (:class:`koru_core.read.plan.Predicates`)."""

    def col(self, name: str) -> str:
        return quote_identifier(name)

    def timestamp(self, ns: int) -> str:
        return timestamp_literal(ns)

    def integer(self, value: int) -> str:
        return str(int(value))

    def le(self, a: str, b: str) -> str:
        return f"({a} <= {b})"

    def gt(self, a: str, b: str) -> str:
        return f"({a} > {b})"

    def is_null(self, a: str) -> str:
        return f"({a} IS NULL)"

    def and_(self, a: str, b: str) -> str:
        return f"({a} AND {b})"

    def or_(self, a: str, b: str) -> str:
        return f"({a} OR {b})"

    def not_(self, a: str) -> str:
        return f"(NOT {a})"


SQL = SqlPredicates()


class PlanSQL:
    """Turns plans of one store into SQL; owns the temporary files that needs.

    Args:
        folder: A private temporary folder (removed by the owner).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()

    # -- temporary inputs ------------------------------------------------------------

    def _write(self, name: str, table: pa.Table) -> str:
        with self._lock:
            path = self._files.get(name)
            if path is None:
                path = self.folder / f"{name}.parquet"
                tmp = path.with_suffix(".tmp")
                pq.write_table(table, tmp)
                tmp.replace(path)
                self._files[name] = path
        return str(path)

    def _schema_file(self, plan: ReadPlan) -> str:
        schema = pa.schema([*COLD_SCHEMA, *plan.schema])
        digest = hashlib.blake2b(schema.serialize().to_pybytes(), digest_size=8).hexdigest()
        return self._write(f"schema-{plan.namespace}-{digest}", schema.empty_table())

    def _pending_file(self, plan: ReadPlan, sources: list[Source]) -> str | None:
        if not sources:
            return None
        schema = pa.schema([*COLD_SCHEMA, *plan.schema])
        tables = [s.table for s in sources if s.table is not None]
        commits = b"".join(pc.unique(t["_commit"]).to_numpy().tobytes() for t in tables)
        digest = hashlib.blake2b(commits + schema.serialize().to_pybytes(), digest_size=8).hexdigest()
        name = f"pending-{plan.namespace}-{digest}"
        if name in self._files:
            return str(self._files[name])
        table = pa.concat_tables([
            pa.table([t[f.name].cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
                      for f in schema], schema=schema) for t in tables])
        return self._write(name, table)

    # -- sources ---------------------------------------------------------------------

    def _scan(self, plan: ReadPlan, sources: Sequence[Source], written: Sequence[str] = ()) -> str:
        """``read_parquet`` of the files of ``sources`` and of ``written`` (files this module
        wrote with exactly the plan's columns).

        DuckDB takes the first file's columns and finds them by name in the others. When
        every source stores the plan's columns first (:attr:`Source.full_schema`; only a
        state file stores more, its chain tips), a file with exactly those columns goes
        first and nothing more is needed; otherwise the files are read by name beside an
        empty file of the plan's schema (``union_by_name``)."""
        plain = [*written, *(s.uri for s in sources if s.kind != "state" and s.uri)]
        state = [s.uri for s in sources if s.kind == "state" and s.uri]
        if plain and all(s.full_schema for s in sources):
            return f"read_parquet([{', '.join(literal(p) for p in [*plain, *state])}])"
        paths = [*(s.uri for s in sources if s.uri), *written, self._schema_file(plan)]
        return f"read_parquet([{', '.join(literal(p) for p in paths)}], union_by_name = true)"

    def _warm(self, plan: ReadPlan, src: Source) -> str:
        assert src.uri is not None
        commit = str(int(src.commit or 0))
        system = timestamp_literal(int(src.system_time or 0))
        return (f"SELECT * REPLACE (coalesce(_commit, {commit}) AS _commit, "
                f"coalesce(_system_from, {system}) AS _system_from) FROM {self._scan(plan, [src])}")

    def _candidates(self, plan: ReadPlan, key: str | None = None) -> str:
        """Every candidate row of the plan (with the plan's candidate filter)."""
        files = [s for s in plan.candidates if s.kind != "pending" and s.commit is None]
        warm = [s for s in plan.candidates if s.kind != "pending" and s.commit is not None]
        pending = self._pending_file(plan, [s for s in plan.candidates if s.kind == "pending"])
        parts = []
        cold_where = candidate_filter(SQL, plan.valid_at, plan.commit, is_cold=True)
        scan = self._scan(plan, files, [pending] if pending else [])
        parts.append(f"SELECT * FROM {scan} WHERE {cold_where}")
        warm_where = candidate_filter(SQL, plan.valid_at, plan.commit, is_cold=False)
        parts += [f"SELECT * FROM ({self._warm(plan, s)}) WHERE {warm_where}" for s in warm]
        query = " UNION ALL BY NAME ".join(parts)
        if key is not None:
            query = f"SELECT * FROM ({query}) WHERE _key = {literal(key)}"
        return query

    def _exact(self, plan: ReadPlan) -> str:
        assert plan.valid_at is not None
        where = exact_filter(SQL, plan.valid_at)
        if plan.key is not None:
            where = f"{where} AND _key = {literal(plan.key)}"
        return f"SELECT * EXCLUDE (_valid_to, _valid_to_commit) FROM {self._scan(plan, plan.exact)} WHERE {where}"

    # -- shapes ------------------------------------------------------------------------

    def as_of(self, plan: ReadPlan) -> str:
        """SQL of an as-of plan: the columns of ``Store.as_of`` (ids as hex)."""
        latest = None
        if plan.strategy != "intervals":
            cands = f"SELECT * EXCLUDE (_valid_to, _valid_to_commit) FROM ({self._candidates(plan, plan.key)})"
            latest = macros.LATEST.format(source=cands)
        if plan.strategy == "intervals":
            state = self._exact(plan)
        elif plan.strategy == "latest":
            state = latest
        else:
            state = macros.MERGE.format(exact=self._exact(plan), latest=latest)
        values = [quote_identifier(c) for c in plan.columns]
        system = [c if c not in _HEX else f"lower(hex({c})) AS {c}" for c in OUTPUT_SYSTEM_COLUMNS]
        return f"SELECT {', '.join([*values, *system])} FROM ({state}) WHERE NOT _deleted"

    def versions(self, plan: ReadPlan) -> str:
        """SQL of a history or versions plan: the columns of ``Store.versions`` (``_valid_to`` computed)."""
        cols = self._version_columns(plan)
        base = f"SELECT * EXCLUDE (_valid_to, _valid_to_commit) FROM ({self._candidates(plan, plan.key)})"
        return (f"SELECT {cols} FROM ({base}) "
                "WINDOW w AS (PARTITION BY _key ORDER BY _valid_from, _commit) "
                "ORDER BY _key, _valid_from, _commit")

    def _version_columns(self, plan: ReadPlan) -> str:
        out = [quote_identifier(c) for c in plan.columns]
        for c in _VERSION_COLUMNS:
            if c == "_valid_to":
                out.append("lead(_valid_from) OVER w AS _valid_to")
            elif c in _HEX:
                out.append(f"lower(hex({c})) AS {c}")
            else:
                out.append(c)
        return ", ".join(out)

    def changes(self, plan: ReadPlan, kind: str, low: int | None, high: int | None) -> str:
        """SQL of the change feed over a versions plan, window ``(low, high]`` of ``kind``."""
        base = f"SELECT * EXCLUDE (_valid_to, _valid_to_commit) FROM ({self._candidates(plan)})"
        point = "_commit" if kind == "commit" else "_valid_from"
        conds = []
        if low is not None:
            conds.append(f"{point} > {low if kind == 'commit' else timestamp_literal(low)}")
        if high is not None:
            conds.append(f"{point} <= {high if kind == 'commit' else timestamp_literal(high)}")
        window = " AND ".join(conds) or "TRUE"
        values = ", ".join(quote_identifier(c) for c in plan.columns)
        return (
            "SELECT _key, CASE WHEN _deleted THEN 'delete' WHEN __before_deleted THEN 'insert' ELSE 'update' END AS op, "
            "_valid_from, _system_from, _commit, lower(hex(_write_id)) AS _write_id, "
            "lower(hex(__before_write_id)) AS before_write_id, lower(hex(__before_content_id)) AS before_content_id, "
            "lower(hex(_content_id)) AS after_content_id"
            + (f", {values}" if values else "")
            + f" FROM (SELECT *, coalesce(lag(_deleted) OVER w, true) AS __before_deleted, "
            "lag(_write_id) OVER w AS __before_write_id, lag(_content_id) OVER w AS __before_content_id "
            f"FROM ({base}) WINDOW w AS (PARTITION BY _key ORDER BY _valid_from, _commit)) "
            f"WHERE {window} AND NOT (_deleted AND __before_deleted) ORDER BY _commit, _key, _valid_from"
        )

    def commits(self, head: int, table: pa.Table) -> str:
        """SQL reading the commit log (written once per head)."""
        path = self._write(f"commits-{head}", table)
        return f"SELECT * FROM read_parquet({literal(path)}) ORDER BY \"commit\""
