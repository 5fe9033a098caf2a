"""The read planner: every read compiles into one :class:`ReadPlan` with every decision made.

DESIGN.md, "Reads: one plan, three engines": the core (pyarrow,
:mod:`koru_core.read.execute`), ``koru_duckdb`` and ``koru_polars`` only translate a
plan. The planner owns the bounds (validated here, once, for every engine), the
commit, the files (pruned by namespace, commit, valid time and key), the pending
versions, the strategy and the reader lease. No other module restates the as-of
rule's shortcuts.

**The as-of state at (valid time t, commit s).** DESIGN.md's rule: per key, among
the versions with ``_valid_from ≤ t`` and ``_commit ≤ s``, the one with the largest
(``_valid_from``, ``_commit``), dropped if a tombstone (:func:`koru_core.read.rules.as_of_rule`).
A plan splits a namespace's versions into two groups:

- ``exact`` sources: cold files when ``s`` is at or after the namespace's
  ``cold_commit``. Their ``_valid_to`` is exact over every commit up to
  ``cold_commit`` (consolidation computed it over all of them), so among them each
  key has at most one row with ``_valid_from ≤ t < _valid_to`` (null = open), and
  that row is the rule's choice among the cold versions. No per-key choice is needed:
  a filter, as on an SCD2 table (:data:`EXACT_FILTER`).
- ``candidates``: warm files and pending versions (commits after ``cold_commit``),
  and the cold files too when ``s`` is before ``cold_commit``. Rows pass
  :data:`CANDIDATE_FILTER` and go through the per-key rule. For a cold row the
  filter also drops the rows whose stored successor is visible at ``s`` and starts
  at or before ``t`` (``_valid_to_commit ≤ s`` and ``_valid_to ≤ t``): such a row is
  never the rule's choice, so dropping it is safe.

Strategy ``"intervals"`` has only exact sources; ``"latest"`` only candidates;
``"merge"`` both: the answer is the exact rows of keys with no candidate, plus, per
key with candidates, the later (by ``_valid_from``, then ``_commit``) of its exact row
and its candidates' choice. Candidates always have larger commits than exact rows.

Points that distillation pruned: a deep-tier file records the span of the versions
a retention run dropped (valid times from ``min_valid`` to ``max_valid_to``, commits
from ``min_commit`` until every successor is visible, ``max_valid_to_commit``); an
as-of inside that span raises :class:`PrunedError` naming the retention, so no
engine ever answers with a silently incomplete state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from koru_core._time import now_ns, to_ns
from koru_core.catalog.entries import FileEntry, NamespaceInfo
from koru_core.errors import InvalidInputError, NamespaceNotFoundError, PrunedError
from koru_core.layout import cold_schema

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = [
    "CANDIDATE_FILTER",
    "EXACT_FILTER",
    "ORDER_COLUMNS",
    "OUTPUT_SYSTEM_COLUMNS",
    "Predicates",
    "ReadPlan",
    "Source",
    "candidate_filter",
    "check_version",
    "exact_filter",
    "plan_as_of",
    "plan_history",
    "plan_versions",
    "plan_window",
]

Strategy = Literal["intervals", "latest", "merge"]
Shape = Literal["as_of", "history", "versions"]

EXACT_FILTER = "_valid_from <= t AND (_valid_to IS NULL OR _valid_to > t)"
"""Rows of an exact source that hold at valid time t (at most one per key); built by :func:`exact_filter`."""

CANDIDATE_FILTER = (
    "_valid_from <= t AND _commit <= s "
    "AND NOT (_valid_to_commit <= s AND _valid_to <= t)"
)
"""Rows of a candidate source that may be the rule's choice at (t, s); the last clause
only applies to cold rows (warm rows and pending versions have no ``_valid_to``). Built
by :func:`candidate_filter`."""

ORDER_COLUMNS = ("_valid_from", "_commit")
"""The order of a key's versions: the rule's choice is the last by these columns, compared
in turn (system time never decreases, so commit order breaks valid-time ties)."""

OUTPUT_SYSTEM_COLUMNS = ("_key", "_valid_from", "_system_from", "_commit", "_write_id")
"""System columns an as-of result carries after the value columns (ids as hex strings)."""

E = TypeVar("E")


class Predicates(Protocol[E]):
    """How an engine spells the plan's filters: columns, literals and connectives.

    Each translator (pyarrow, DuckDB SQL, Polars expressions) implements these few
    constructors; :func:`exact_filter` and :func:`candidate_filter` build the filters
    from them, so the filters are written once, here.
    """

    def col(self, name: str) -> E: ...
    def timestamp(self, ns: int) -> E: ...
    def integer(self, value: int) -> E: ...
    def le(self, a: E, b: E) -> E: ...
    def gt(self, a: E, b: E) -> E: ...
    def is_null(self, a: E) -> E: ...
    def and_(self, a: E, b: E) -> E: ...
    def or_(self, a: E, b: E) -> E: ...
    def not_(self, a: E) -> E: ...


def exact_filter(p: Predicates[E], t: int) -> E:
    """:data:`EXACT_FILTER` at valid time ``t`` (ns)."""
    vt = p.col("_valid_to")
    return p.and_(p.le(p.col("_valid_from"), p.timestamp(t)), p.or_(p.is_null(vt), p.gt(vt, p.timestamp(t))))


def candidate_filter(p: Predicates[E], t: int | None, s: int, *, is_cold: bool) -> E:
    """:data:`CANDIDATE_FILTER` at valid time ``t`` (ns; None: every valid time) and commit ``s``.

    For a cold source the rows whose stored successor is visible at ``s`` and starts by
    ``t`` are dropped (never the rule's choice); a null ``_valid_to_commit`` keeps the row.
    """
    out = p.le(p.col("_commit"), p.integer(s))
    if t is None:
        return out
    out = p.and_(out, p.le(p.col("_valid_from"), p.timestamp(t)))
    if is_cold:
        vtc = p.col("_valid_to_commit")
        ended = p.and_(p.le(vtc, p.integer(s)), p.le(p.col("_valid_to"), p.timestamp(t)))
        out = p.and_(out, p.or_(p.is_null(vtc), p.not_(ended)))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One thing a plan reads: a data file, or a pending (in-catalog) table.

    Attributes:
        kind: ``"state"``, ``"history"`` (cold files, every system column stored),
            ``"versions"`` (a warm file) or ``"pending"`` (the decoded versions of the
            small commits in the catalog, with ``_commit`` and ``_system_from`` as
            columns); ``"skeleton"`` (deep) in history plans.
        entry: The file's catalog entry (None for pending).
        uri: Where an engine reads the file (None for pending).
        table: The pending versions (None for files).
        commit, system_time: For ``versions`` sources, the one commit and its system
            time (ns): their rows carry no ``_commit`` or ``_system_from`` column; a
            reader adds both as constants.
        keep_all: The planner proved, from the file's catalog entry (or the pending
            versions' bounds), that every row passes the plan's filter
            (:data:`EXACT_FILTER` or :data:`CANDIDATE_FILTER`): an engine may skip it.
        full_schema: A cold file that stores exactly the plan's columns, in order, with
            their types (:func:`~koru_core.layout.cold_schema` of ``ReadPlan.schema``), a
            state file its chain tips after them: an engine can scan it beside others like
            it with no schema to reconcile (files written before a field was added or
            widened have False).
    """

    kind: Literal["state", "history", "versions", "pending", "skeleton"]
    entry: FileEntry | None = None
    uri: str | None = None
    table: pa.Table | None = None
    commit: int | None = None
    system_time: int | None = None
    keep_all: bool = False
    full_schema: bool = False

    @property
    def is_cold(self) -> bool:
        """True for files that store ``_valid_to`` and every system column."""
        return self.kind in ("state", "history", "skeleton")

    @property
    def is_key_sorted(self) -> bool:
        """True when rows are sorted by ``_key`` (history files are sorted by valid time, then
        key; pending versions by key, valid time and commit)."""
        return self.kind != "history"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadPlan:
    """A read with every decision made (see the module docstring).

    Attributes:
        namespace: The namespace.
        shape: ``"as_of"``, ``"history"`` (one key, every version) or ``"versions"``
            (every key, every version).
        commit: The commit bound ``s`` (system time): no row of a later commit counts.
        head: The store's last commit when the plan was made.
        valid_at: The valid time ``t`` (ns, UTC) of an as-of plan; None otherwise.
        key: The ``_key`` of a one-key read, or None.
        columns: Value columns to return, in order.
        schema: The namespace's whole value schema (older files may lack fields:
            read them as null; narrower types are cast).
        strategy: How an as-of plan combines its sources (module docstring).
        exact, candidates: The sources of an as-of plan; for other shapes every
            source is in ``candidates``.
        pruned: Deep-tier skeleton files (history plans: versions pruned by distillation).
        cold_commit: The namespace's consolidation head.
        key_columns: The namespace's key columns (for output that shows them).
        lease: Keeps every listed file on disk while the plan is alive.
        storage_options: What an engine needs to read the files' URIs on object storage
            (``pl.scan_parquet``'s ``storage_options``: ``aws_endpoint_url`` …); None for
            local files.
    """

    namespace: str
    shape: Shape
    commit: int
    head: int
    valid_at: int | None
    key: str | None
    columns: tuple[str, ...]
    schema: pa.Schema
    strategy: Strategy = "latest"
    exact: tuple[Source, ...] = ()
    candidates: tuple[Source, ...] = ()
    pruned: tuple[Source, ...] = ()
    cold_commit: int = 0
    key_columns: tuple[str, ...] = ()
    lease: Any = field(default=None, repr=False, compare=False)
    storage_options: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every source, exact first."""
        return self.exact + self.candidates

    @property
    def files(self) -> tuple[str, ...]:
        """The URIs of every data file the plan reads."""
        return tuple(s.uri for s in self.sources if s.uri is not None)


# -- bounds --------------------------------------------------------------------------


def check_version(namespace: str, version: object, head: int) -> int:
    """Return the commit bound for ``version`` (None → ``head``).

    Raises:
        InvalidInputError: not an int (bools and floats are refused) or outside ``1..head``.
    """
    if version is None:
        return head
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= head:
        msg = f"namespace {namespace!r}: version must be a commit number in 1..{head}, got {version!r}"
        raise InvalidInputError(msg)
    return version


def _valid_at(at: object) -> int:
    if at is None:
        return now_ns()
    return to_ns(at, what="at")  # type: ignore[arg-type]


# -- planning ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Catalogued:
    info: NamespaceInfo
    head: int
    files: list[FileEntry]
    pending: list[Source]


def _resolve(ctx: StoreContext, namespace: str, *, bound: object, need_pending: bool = True) -> tuple[_Catalogued, int, Any]:
    lease = ctx.leases.lease()  # taken before the catalog snapshot (see lifecycle/leases.py)
    with ctx.catalog.snapshot():
        head = ctx.catalog.head()[0]
        info = ctx.catalog.namespace(namespace)
        if info is None:
            lease.release()
            msg = f"namespace {namespace!r} does not exist (namespaces: {ctx.catalog.namespaces()})"
            raise NamespaceNotFoundError(msg)
        commit = check_version(namespace, bound, head)
        files = ctx.catalog.files(namespace)
        pending = ctx.pending.load(namespace, upto=commit) if need_pending else []
    return _Catalogued(info, head, files, pending), commit, lease


def _columns(namespace: str, info: NamespaceInfo, columns: Sequence[str] | None) -> tuple[str, ...]:
    names = list(info.schema.names)
    if columns is None:
        return tuple(names)
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        msg = f"namespace {namespace!r}: columns must be a list of column names, got {columns!r}"
        raise InvalidInputError(msg)
    for c in columns:
        if c not in names:
            msg = f"namespace {namespace!r}: no column {c!r} (columns: {names})"
            raise InvalidInputError(msg)
    return tuple(dict.fromkeys(columns))  # a column named twice is returned once


def _file_source(ctx: StoreContext, e: FileEntry, *, keep_all: bool = False) -> Source:
    kind = "versions" if e.tier == "warm" else e.kind
    return Source(kind=kind, entry=e, uri=ctx.storage.uri(e.path), commit=e.commit, system_time=e.system_time,
                  keep_all=keep_all)


def _schema_marked(ctx: StoreContext, values: pa.Schema, sources: list[Source]) -> list[Source]:
    """``sources`` with :attr:`Source.full_schema` set on the cold files that store
    ``cold_schema(values)`` (a state file: then its chain tips), read from their footers
    (validated already)."""
    want = [(f.name, f.type) for f in cold_schema(values)]
    out = []
    for src in sources:
        if src.is_cold and src.entry is not None:
            have = ctx.files.column_types(src.entry)
            if have == want or (src.kind == "state" and have[:len(want)] == want):
                src = dataclasses.replace(src, full_schema=True)
        out.append(src)
    return out


def _candidates_all_pass(e: FileEntry, t: int | None, s: int) -> bool:
    """Every row of the file passes :data:`CANDIDATE_FILTER` at (t, s) (t None: every
    valid time): its commits are by ``s``, its valid times start by ``t``, and no row has
    a stored successor (warm files store none; a state file's rows are open)."""
    if e.max_commit > s or (t is not None and e.max_valid > t):
        return False
    return t is None or e.tier == "warm" or e.kind == "state"


def _pending_all_pass(pending: list[Source], t: int | None) -> list[Source]:
    """The pending source, marked ``keep_all`` when its versions' valid times start by ``t``
    (their commits are by the bound already: :meth:`PendingCache.load` stops there)."""
    out = []
    for src in pending:
        table = src.table
        assert table is not None
        top = None if t is None or not table.num_rows else pc.max(table["_valid_from"]).cast(pa.int64()).as_py()
        out.append(dataclasses.replace(src, keep_all=t is None or top is None or top <= t))
    return out


def _has_key(e: FileEntry, key: str | None) -> bool:
    return key is None or e.min_key is None or (e.min_key <= key <= (e.max_key or key))


def _check_pruned(ctx: StoreContext, namespace: str, deep: list[FileEntry], t: int, s: int,
                  key: str | None = None) -> None:
    """Raise :class:`PrunedError` when a version a retention run dropped would be the rule's choice at (t, s)
    (of ``key`` alone, for a one-key read: another key's pruned versions do not make its answer incomplete).

    1. Per deep file, the catalog entry bounds its rows: a file none of whose rows can
       hold at (t, s), or whose key range leaves out ``key``, is passed over without reading it.
    2. A skeleton row ``d`` can hold only where ``_valid_from(d) <= t``, ``_commit(d) <= s``
       and not (``_valid_to_commit(d) <= s`` and ``_valid_to(d) <= t``): its stored
       successor is then visible and started.
    3. For the keys of the rows left, the rule runs over their retained versions and
       skeletons: the point is refused only if a skeleton is some key's choice there.
    """
    import pyarrow.compute as pc

    from koru_core.layout import COLD_SCHEMA
    from koru_core.read import rules

    ts = pa.scalar(t, COLD_SCHEMA.field("_valid_from").type)
    left = []
    for e in deep:
        if t < e.min_valid or s < e.min_commit:
            continue
        if key is not None and e.min_key is not None and not (e.min_key <= key <= (e.max_key or key)):
            continue
        if (e.max_valid_to is not None and t >= e.max_valid_to
                and e.max_valid_to_commit is not None and s >= e.max_valid_to_commit):
            continue
        rows = ctx.files.read(e, ["_key", "_valid_from", "_valid_to", "_commit", "_valid_to_commit"])
        ended = pc.fill_null(pc.and_(pc.less_equal(rows["_valid_to_commit"], s), pc.less_equal(rows["_valid_to"], ts)),
                             False)
        mask = pc.and_(pc.and_(pc.less_equal(rows["_valid_from"], ts), pc.less_equal(rows["_commit"], s)),
                       pc.invert(ended))
        if key is not None:
            mask = pc.and_(mask, pc.equal(rows["_key"], key))
        hit = rows.filter(mask)
        if hit.num_rows:
            left.append((e, hit))
    if not left:
        return
    keys = pa.concat_arrays([k for _, h in left for k in h["_key"].chunks])
    versions = plan_versions(ctx, namespace, version=s)
    from koru_core.read import execute

    table = execute.versions(ctx, versions, pruned=True)
    table = table.filter(pc.is_in(table["_key"], value_set=pc.unique(keys)))
    choice = rules.latest_per_key(rules.visible(table, valid_at=t, max_commit=s))
    if pc.any(choice["_pruned"]).as_py():
        policy = ctx.retention_of(left[0][0])
        msg = (
            f"namespace {namespace!r}: the as-of state at that point is incomplete: distillation "
            f"dropped versions that hold there ({policy}); ask for a later valid time or commit, or "
            "read history() to see the pruned versions' skeletons"
        )
        raise PrunedError(msg)


def plan_as_of(
    ctx: StoreContext, namespace: str, *, at: datetime | None = None, version: int | None = None,
    key: str | None = None, columns: Sequence[str] | None = None,
) -> ReadPlan:
    """Plan the as-of state of ``namespace`` at valid time ``at`` (default now) and commit ``version``.

    Args:
        ctx: The store's context.
        namespace: Existing namespace.
        at: Valid time, tz-aware; None is now (taken here).
        version: Commit number bounding system time; None is the latest commit.
        key: The ``_key`` of a one-key read.
        columns: Value columns to return (default all).

    Raises:
        NamespaceNotFoundError, InvalidInputError: unknown namespace, bad bounds or columns.
        PrunedError: distillation dropped versions valid at that point.
    """
    t = _valid_at(at)
    cat, s, lease = _resolve(ctx, namespace, bound=version)
    info = cat.info
    wanted = _columns(namespace, info, columns)
    deep = [e for e in cat.files if e.tier == "deep"]
    if deep:
        _check_pruned(ctx, namespace, deep, t, s, key)
    exact: list[Source] = []
    candidates: list[Source] = []
    use_exact = s >= info.cold_commit
    for e in cat.files:
        if e.tier == "deep" or e.kind == "skips" or e.min_valid > t or e.min_commit > s or not _has_key(e, key):
            continue
        if e.tier == "warm":
            candidates.append(_file_source(ctx, e, keep_all=_candidates_all_pass(e, t, s)))
        elif use_exact:
            if e.kind == "history" and e.max_valid_to is not None and e.max_valid_to <= t:
                continue  # every row closed at or before t
            # a state file's rows are open (no _valid_to): they all hold once they start by t
            exact.append(_file_source(ctx, e, keep_all=e.kind == "state" and e.max_valid <= t))
        else:
            if (e.kind == "history" and e.max_valid_to is not None and e.max_valid_to <= t
                    and e.max_valid_to_commit is not None and e.max_valid_to_commit <= s):
                continue  # every row's successor is visible at s and starts by t
            candidates.append(_file_source(ctx, e, keep_all=_candidates_all_pass(e, t, s)))
    candidates += _pending_all_pass(cat.pending, t)
    strategy: Strategy = "merge" if exact and candidates else ("intervals" if exact else "latest")
    ctx.files.validate([x.entry for x in (*exact, *candidates) if x.entry is not None])
    exact, candidates = _schema_marked(ctx, info.schema, exact), _schema_marked(ctx, info.schema, candidates)
    return ReadPlan(
        namespace=namespace, shape="as_of", commit=s, head=cat.head, valid_at=t, key=key, columns=wanted,
        schema=info.schema, strategy=strategy, exact=tuple(exact), candidates=tuple(candidates),
        cold_commit=info.cold_commit, key_columns=info.key_columns, lease=lease,
        storage_options=ctx.storage.storage_options(),
    )


def plan_history(ctx: StoreContext, namespace: str, *, key: str, version: int | None = None) -> ReadPlan:
    """Plan every version of one key (``_key``) up to commit ``version``, pruned skeletons included.

    Raises:
        NamespaceNotFoundError, InvalidInputError: unknown namespace or bad bound.
    """
    return _plan_all(ctx, namespace, version=version, key=key, shape="history")


def plan_versions(ctx: StoreContext, namespace: str, *, version: int | None = None) -> ReadPlan:
    """Plan every version of every key up to commit ``version``.

    Raises:
        NamespaceNotFoundError, InvalidInputError: unknown namespace or bad bound.
    """
    return _plan_all(ctx, namespace, version=version, key=None, shape="versions")


def _plan_all(ctx: StoreContext, namespace: str, *, version: int | None, key: str | None, shape: Shape) -> ReadPlan:
    cat, s, lease = _resolve(ctx, namespace, bound=version)
    sources = [
        _file_source(ctx, e, keep_all=e.max_commit <= s) for e in cat.files
        if e.tier != "deep" and e.kind != "skips" and e.min_commit <= s and _has_key(e, key)
    ]
    pruned = [_file_source(ctx, e) for e in cat.files if e.tier == "deep" and _has_key(e, key)]
    ctx.files.validate([x.entry for x in (*sources, *pruned) if x.entry is not None])
    sources = _schema_marked(ctx, cat.info.schema, sources)
    return ReadPlan(
        namespace=namespace, shape=shape, commit=s, head=cat.head, valid_at=None, key=key,
        columns=tuple(cat.info.schema.names), schema=cat.info.schema, strategy="latest",
        candidates=tuple(sources) + tuple(_pending_all_pass(cat.pending, None)), pruned=tuple(pruned),
        cold_commit=cat.info.cold_commit,
        key_columns=cat.info.key_columns, lease=lease, storage_options=ctx.storage.storage_options(),
    )


def plan_window(namespace: str, since: object, until: object, head: int) -> tuple[Literal["commit", "valid"], int | None, int | None]:
    """Validate a change-feed window ``(since, until]``.

    ints are commit numbers (system time), datetimes valid times (ns); both bounds
    are of one kind; None is open.

    Returns:
        (kind, low, high) with ints (commit numbers, or ns for valid times).

    Raises:
        InvalidInputError: mixed or unsupported kinds, a commit outside ``0..head``,
            or ``since`` after ``until``.
    """
    bounds = [b for b in (since, until) if b is not None]
    for b in bounds:
        if isinstance(b, bool) or not isinstance(b, (int, datetime)):
            msg = f"namespace {namespace!r}: since/until must be commit numbers (int) or datetimes, got {b!r}"
            raise InvalidInputError(msg)
    kinds = {datetime if isinstance(b, datetime) else int for b in bounds}
    if len(kinds) > 1:
        msg = (f"namespace {namespace!r}: since and until must both be commit numbers or both times "
               f"(datetimes), got {since!r}, {until!r}")
        raise InvalidInputError(msg)
    if datetime in kinds:
        lo = None if since is None else to_ns(since, what="since")  # type: ignore[arg-type]
        hi = None if until is None else to_ns(until, what="until")  # type: ignore[arg-type]
        kind: Literal["commit", "valid"] = "valid"
    else:
        lo, hi = since, until  # type: ignore[assignment]
        for name, b in (("since", lo), ("until", hi)):
            if b is not None and not 0 <= b <= head:  # type: ignore[operator]
                msg = f"namespace {namespace!r}: {name} must be a commit number in 0..{head}, got {b!r}"
                raise InvalidInputError(msg)
        kind = "commit"
    if lo is not None and hi is not None and lo > hi:
        msg = f"namespace {namespace!r}: since ({since!r}) is after until ({until!r})"
        raise InvalidInputError(msg)
    return kind, lo, hi  # type: ignore[return-value]


def with_lease(plan: ReadPlan, lease: Any) -> ReadPlan:
    """A copy of ``plan`` holding ``lease`` too (engines that open their own)."""
    return dataclasses.replace(plan, lease=(plan.lease, lease))
