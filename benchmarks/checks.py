"""Brute-force answers from a workload's raw commits, and the checks of every system's answers.

Every read the benchmark times is checked here against a brute force over all the
rows written (DESIGN.md: the as-of rule reads over every row written):

* as-of tables (mid time, now, DuckDB `SELECT *`, Polars `collect()`): same row
  count, same keys and the same values in every value column (a checksum of the
  whole state, done as an exact table comparison);
* counts: equal to the brute-force number of live keys;
* filter + aggregate: the same (group, count, sum) rows;
* history of one key: the same sequence of distinct consecutive values (a system
  that skips unchanged rows, or Delta, which keeps one version per commit, must
  still show every change it can see);
* point reads (`get`, `get(at=)`): the same value in every value column.

Each check returns a dict with ``ok`` (bool) and what was compared.

Example:
    >>> from workloads import synthetic_workload
    >>> wl = synthetic_workload(keys=10, versions=3)
    >>> truth = brute_force(wl)
    >>> check_count(truth.as_of.num_rows, truth.as_of)["ok"]
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from workloads import VALID_TYPE, latest_per_key

if TYPE_CHECKING:
    from workloads import Workload


@dataclass(frozen=True, kw_only=True)
class Truth:
    """The brute-force answers of one workload.

    Attributes:
        as_of: Per key, the row with the latest valid time <= `as_of_at`, sorted by key.
        now: Per key, the latest row of all commits, sorted by key.
        agg: ``{group: (count, sum)}`` of `Workload.agg` over `as_of`.
        history: Distinct consecutive values (tuples of the value columns) of
            `history_key`, in valid-time order, over every raw row.
        history_per_commit: The same over the last row of the key in each commit
            (what a table that keeps one version per commit can show: Delta).
        history_raw_rows: Raw rows of `history_key` (the versions a full history has).
        get_at: Value (value columns) of `history_key` at `as_of_at`.
        get: Latest value (value columns) of `get_key`.
    """

    as_of: pa.Table
    now: pa.Table
    agg: dict
    history: list[tuple]
    history_per_commit: list[tuple]
    history_raw_rows: int
    get_at: dict
    get: dict


def _distinct_runs(rows: list[tuple]) -> list[tuple]:
    """Drop each row equal to the one before it."""
    return [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]


def _values(table: pa.Table, columns: list[str]) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in columns), strict=True)) if table.num_rows else []


def _agg(table: pa.Table, spec: tuple[str, float, str, str]) -> dict:
    num, threshold, group, total = spec
    hit = table.filter(pc.greater(table[num], threshold))
    out = hit.group_by(group, use_threads=False).aggregate([(total, "sum"), ([], "count_all")])
    cols = (out[group].to_pylist(), out["count_all"].to_pylist(), out[f"{total}_sum"].to_pylist())
    return {g: (int(n), int(s or 0)) for g, n, s in zip(*cols, strict=True)}


def brute_force(wl: Workload) -> Truth:
    """Compute every expected answer of `wl` from its raw commits (no system involved)."""
    raw = pa.concat_tables(wl.commits)
    at = pa.scalar(wl.as_of_at, type=VALID_TYPE)
    as_of = latest_per_key(raw.filter(pc.less_equal(raw[wl.valid], at)), wl.key, wl.valid)
    now = latest_per_key(raw, wl.key, wl.valid)
    cols = wl.value_columns
    hk = raw.filter(pc.equal(raw[wl.key], wl.history_key))
    hk = hk.take(pc.sort_indices(hk[wl.valid]))  # stable: ties keep the order written
    per_commit = [latest_per_key(t.filter(pc.equal(t[wl.key], wl.history_key)), wl.key, wl.valid)
                  for t in wl.commits]

    def row(table: pa.Table, key: str) -> dict:
        one = table.filter(pc.equal(table[wl.key], key))
        return {c: one[c][0].as_py() for c in cols} if one.num_rows else {}

    return Truth(
        as_of=as_of, now=now, agg=_agg(as_of, wl.agg),
        history=_distinct_runs(_values(hk, cols)),
        history_per_commit=_distinct_runs([v for t in per_commit for v in _values(t, cols)]),
        history_raw_rows=hk.num_rows, get_at=row(as_of, wl.history_key), get=row(now, wl.get_key))


def _arrow(result: Any) -> pa.Table:
    """A pyarrow Table from a pyarrow Table, a Polars DataFrame or a DuckDB relation."""
    if isinstance(result, pa.Table):
        return result
    if hasattr(result, "to_arrow"):
        return result.to_arrow()
    if hasattr(result, "arrow"):
        out = result.arrow()
        return out.read_all() if hasattr(out, "read_all") else out
    msg = f"cannot turn a {type(result).__name__} into an Arrow table"
    raise TypeError(msg)


def _column(table: pa.Table, names: list[str]) -> pa.ChunkedArray:
    for n in names:
        if n in table.column_names:
            return table[n]
    msg = f"none of the columns {names} in the result {table.column_names}"
    raise LookupError(msg)


def check_table(result: Any, wl: Workload, expected: pa.Table) -> dict:
    """Compare an as-of state with the brute force `expected` (one row per key).

    `count_ok`: same number of rows. `ok` (`values_ok`): same keys and, per key, the
    same values in every value column. `valid_from_same`: same valid time per key;
    informational, as a system that skips unchanged rows rightly keeps the valid time
    of the last change.
    """
    table = _arrow(result)
    out: dict[str, Any] = {"expected_rows": expected.num_rows, "rows": table.num_rows}
    out["count_ok"] = table.num_rows == expected.num_rows
    cols = [c for c in wl.value_columns if c in table.column_names]
    out["missing_columns"] = [c for c in wl.value_columns if c not in table.column_names]
    if not out["count_ok"]:
        out["ok"] = out["values_ok"] = out["valid_from_same"] = False
        return out
    got = pa.table({"key": _column(table, ["_key", wl.key]).cast(pa.string()),
                    **{c: table[c].cast(expected[c].type) for c in cols},
                    "valid": _column(table, ["_valid_from", "valid_from", wl.valid])
                    .cast(expected[wl.valid].type)})
    got = got.take(pc.sort_indices(got["key"]))
    want = pa.table({"key": expected[wl.key], **{c: expected[c] for c in cols},
                     "valid": expected[wl.valid]})
    out["values_ok"] = not out["missing_columns"] and got.drop(["valid"]).equals(want.drop(["valid"]))
    out["valid_from_same"] = got["valid"].equals(want["valid"])
    out["ok"] = out["values_ok"]
    return out


def check_count(n: int, expected: pa.Table) -> dict:
    """A `count(*)` of an as-of state against the brute-force number of live keys."""
    return {"ok": int(n) == expected.num_rows, "got": int(n), "expected": expected.num_rows}


def check_agg(result: Any, expected: dict) -> dict:
    """Filter + aggregate rows ``(group, count, sum)`` (any order) against the brute force."""
    if isinstance(result, list):
        rows = [tuple(r) for r in result]
    else:
        t = _arrow(result)
        rows = list(zip(*(t[c].to_pylist() for c in t.column_names), strict=True))
    got = {r[0]: (int(r[1]), int(r[2] or 0)) for r in rows}
    return {"ok": got == expected, "groups": len(got), "expected_groups": len(expected)}


def check_history(result: Any, wl: Workload, truth: Truth, *, per_commit: bool = False) -> dict:
    """The distinct consecutive values of one key's history against the brute force.

    `per_commit`: the system keeps at most one version per commit (Delta), so compare
    with `Truth.history_per_commit`.
    """
    table = _arrow(result)
    valid = _column(table, ["_valid_from", "valid_from", wl.valid])
    table = table.take(pc.sort_indices(valid))
    missing = [c for c in wl.value_columns if c not in table.column_names]
    got = [] if missing else _distinct_runs(_values(table, wl.value_columns))
    want = truth.history_per_commit if per_commit else truth.history
    return {"ok": not missing and got == want, "rows": table.num_rows, "changes": len(got),
            "expected_changes": len(want), "raw_rows": truth.history_raw_rows}


def check_value(value: Any, wl: Workload, expected: dict) -> dict:
    """A point read (a dict of the value's fields) against the brute-force value."""
    got = {c: value.get(c) for c in wl.value_columns} if isinstance(value, dict) else value
    return {"ok": got == expected, "got": repr(got)[:200]}
