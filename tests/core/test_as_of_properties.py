"""Model-based test (issue 11): random writes to a real store; every read equals tests/model.py.

The model keeps every row written except DESIGN.md's two no-op kinds, and answers
with the as-of rule alone, so a row koru skipped as unchanged but that a later
correction makes decisive shows up as a wrong answer here (the bug the first wave's
model could not see: it restated koru's own unchanged rule).

Writes: puts and deletes with and without valid times, upserts of backfills (several
valid times of a key in one batch), long runs of equal values at successive valid
times, corrections and deletes at earlier valid times (between and before skipped
rows), transactions, consolidations and reopens. Valid times come from a small set
(so ties, late arrivals and corrections happen) in several time zones. Reads: the
as-of state at many (valid time, commit) points through the core (``as_of``, ``get``),
DuckDB (``AT``/``koru_at``) and Polars (``scan_koru``), each compared with the model:
the live keys and their values. (A record's ``_valid_from`` names the stored version
holding the value, which for a run of equal rows is the run's first.)

The default run is quick; ``pytest -m slow`` runs it much deeper.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from model import TOMBSTONE, Model, content_of

import koru_core as koru
from koru_core.write import prepare

NAMESPACES = ("acct", "other")
KEYS = ("a", "b", "c|d")
BASE = datetime(2020, 1, 1, tzinfo=timezone.utc)
VALID_TIMES = [BASE + timedelta(hours=h) for h in range(8)] + [datetime(2099, 1, 1, tzinfo=timezone.utc)]
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
READ_TIMES = [BASE - timedelta(days=1), *VALID_TIMES[:-1], *(t + timedelta(minutes=30) for t in VALID_TIMES[:-1]),
              VALID_TIMES[-1]]

values = st.fixed_dictionaries({"n": st.integers(0, 1)}, optional={"s": st.sampled_from(["x", None])})
valid_times = st.one_of(st.none(), st.sampled_from(VALID_TIMES))
zones = st.sampled_from(ZONES)
keys = st.sampled_from(KEYS)
namespaces = st.sampled_from(NAMESPACES)


def ns_of(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def values_of(row: dict[str, Any]) -> Any:
    return content_of({k: v for k, v in row.items() if not k.startswith("_")})


class StoreVsModel(RuleBasedStateMachine):
    engines = False  # also read through DuckDB and Polars

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="koru-prop-"))
        # "process" durability: same semantics as "full", without an fsync per step
        self.store = koru.open(self.dir / "s", durability="process", auto_consolidate=False)
        self.model = Model()
        self.keyed: set[str] = set()  # namespaces an upsert gave the key column "id"

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------

    @staticmethod
    def _now() -> int:
        # any time between now and 2099 as-of's the same: the model's stand-in for the commit's time
        return time.time_ns() + 10**15

    def _merged(self, rows: list[tuple[str, str, int | None, Any]]) -> list[tuple[str, str, int | None, Any]]:
        merged: dict[tuple[str, str, int | None], Any] = {}
        for ns, key, valid, value in rows:
            merged[(ns, key, valid)] = value
        return [(ns, key, valid, value) for (ns, key, valid), value in merged.items()]

    def _apply(self, rows: list[tuple[str, str, int | None, Any]], commit: int | None | bool = True) -> None:
        """Check the write against the model and record it. ``commit``: what the call returned
        (None: no commit), or True to read it off the store."""
        if commit is True:
            commit = self.store.version() if self.store.version() > self.model.last_commit else None
        rows = self._merged(rows)
        versions, _ = self.model.plan(rows, now=self._now())
        if not versions:
            assert commit is None, f"a write that records nothing made commit {commit}"
            assert self.store.version() == self.model.last_commit
            return
        assert commit == self.model.last_commit + 1, (commit, self.model.last_commit)
        system = ns_of(self.store.commits(since=commit - 1)[0].system_time)
        placeholder = self._now()
        final, _ = self.model.plan(rows, now=placeholder)
        self.model.commit([(ns, k, system if v == placeholder else v, c) for ns, k, v, c in final], system_time=system)

    def _as_written(self, ns: str, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """The record a put by key stores (``Store.put``: "a dict value gets the key columns it lacks"): with
        key columns, the key's fields beside the value."""
        return {"id": key, **value} if ns in self.keyed else value

    def _upserted(self, ns: str, result: Any) -> None:
        if result.commit is not None:
            self.keyed.add(ns)

    # -- writes -----------------------------------------------------------------

    @rule(ns=namespaces, key=keys, valid=valid_times, zone=zones, value=values)
    def put(self, ns: str, key: str, valid: datetime | None, zone: timezone, value: dict[str, Any]) -> None:
        v = self.store.put(ns, key, value, valid_from=None if valid is None else valid.astimezone(zone))
        assert v.key == key and v.namespace == ns and not v.is_deleted
        self._apply([(ns, key, None if valid is None else ns_of(valid), self._as_written(ns, key, value))])

    @rule(ns=namespaces, key=keys, valid=valid_times, zone=zones)
    def delete(self, ns: str, key: str, valid: datetime | None, zone: timezone) -> None:
        at = self._now() if valid is None else ns_of(valid)
        when = None if valid is None else valid.astimezone(zone)
        before = self.store.version()
        if ns not in self.model.namespaces():
            with pytest.raises((koru.NamespaceNotFoundError, koru.KeyNotFoundError)):
                self.store.delete(ns, key, valid_from=when)
            assert self.store.version() == before
            return
        if not self.model.is_live(ns, key, valid_at=at):
            with pytest.raises(koru.KeyNotFoundError, match=repr(key).replace("|", r"\|")):
                self.store.delete(ns, key, valid_from=when)
            assert self.store.version() == before
            return
        v = self.store.delete(ns, key, valid_from=when)
        assert v.is_deleted and v.value is None and v.content_id is None and not v.is_unchanged
        self._apply([(ns, key, None if valid is None else at, TOMBSTONE)], v.commit)

    @rule(
        ns=namespaces,
        rows=st.lists(st.tuples(keys, st.sampled_from(VALID_TIMES), values), min_size=1, max_size=8,
                      unique_by=lambda r: (r[0], r[1])),
        zone=zones,
        as_list=st.booleans(),
    )
    def upsert_backfill(self, ns: str, rows: list[Any], zone: timezone, as_list: bool) -> None:
        records = [{"id": k, "vt": t.astimezone(zone), "n": v["n"], "s": v.get("s")} for k, t, v in rows]
        data: Any = records if as_list else pa.Table.from_pylist(records)
        result = self.store.upsert(ns, data, key="id", valid_from="vt")
        self._apply([(ns, k, ns_of(t), {"id": k, **v}) for k, t, v in rows], result.commit)
        self._upserted(ns, result)

    @rule(ns=namespaces, key=keys, value=values, start=st.integers(0, 4), length=st.integers(2, 5))
    def upsert_run_of_equal_values(self, ns: str, key: str, value: dict[str, Any], start: int, length: int) -> None:
        """One value at successive valid times: all but the first are skipped rows (issue 11)."""
        times = VALID_TIMES[start : start + length]
        records = [{"id": key, "vt": t, "n": value["n"], "s": value.get("s")} for t in times]
        result = self.store.upsert(ns, records, key="id", valid_from="vt")
        self._apply([(ns, key, ns_of(t), {"id": key, **value}) for t in times], result.commit)
        self._upserted(ns, result)

    @rule(ns=namespaces, rows=st.lists(st.tuples(keys, values), min_size=1, max_size=4, unique_by=lambda r: r[0]))
    def upsert_now(self, ns: str, rows: list[Any]) -> None:
        table = pa.table({"id": [k for k, _ in rows], "n": [v["n"] for _, v in rows],
                          "s": pa.array([v.get("s") for _, v in rows], pa.string())})
        result = self.store.upsert(ns, table, key="id")
        self._apply([(ns, k, None, {"id": k, **v}) for k, v in rows], result.commit)
        self._upserted(ns, result)

    @rule(ops=st.lists(st.tuples(st.booleans(), namespaces, keys, valid_times, values), min_size=1, max_size=5))
    def transaction(self, ops: list[Any]) -> None:
        with self.store.transaction(actor="prop") as tx:
            for is_delete, ns, k, t, v in ops:
                if is_delete:
                    tx.delete(ns, k, valid_from=t)
                else:
                    tx.put(ns, k, v, valid_from=t)
        assert tx.result is not None
        rows = [(ns, k, None if t is None else ns_of(t), TOMBSTONE if is_delete else self._as_written(ns, k, v))
                for is_delete, ns, k, t, v in ops]
        self._apply(rows, tx.result.commit)

    @rule()
    def consolidate(self) -> None:
        self.store.consolidate()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = koru.open(self.dir / "s", durability="process", auto_consolidate=False)

    # -- reads ------------------------------------------------------------------

    def _expected(self, ns: str, at: datetime | None, version: int | None) -> dict[str, Any]:
        valid_at = time.time_ns() if at is None else ns_of(at)
        return self.model.as_of(ns, valid_at=valid_at, max_commit=version)

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(data=st.data())
    def check_as_of_at_many_points(self, data: st.DataObject) -> None:
        points = data.draw(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(READ_TIMES)),
                                              st.one_of(st.none(), st.integers(1, self.model.last_commit))),
                                    min_size=1, max_size=6), label="points")
        for at, version in points:
            for ns in sorted(self.model.namespaces()):
                table = self.store.as_of(ns, at=at, version=version)
                got = {r["_key"]: values_of(r) for r in table.to_pylist()}
                assert got == self._expected(ns, at, version), ("core", ns, at, version)
                if self.engines:
                    self._check_engines(ns, at, version)

    def _check_engines(self, ns: str, at: datetime | None, version: int | None) -> None:
        import koru_duckdb
        from koru_polars import read_koru

        want = self._expected(ns, at, version)
        frame = read_koru(self.store, ns, at=at, version=version)
        assert {r["_key"]: values_of(r) for r in frame.to_dicts()} == want, ("polars", ns, at, version)
        with koru_duckdb.connect(self.store) as con:
            sql = "SELECT * FROM koru_at(?" + (", valid := ?" if at else "") + (", version := ?" if version else "") + ")"
            params = [ns, *([at] if at else []), *([version] if version else [])]
            rows = con.sql(sql, params=params).to_arrow_table().to_pylist()
        assert {r["_key"]: values_of(r) for r in rows} == want, ("duckdb", ns, at, version)

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(data=st.data(), ns=namespaces, key=keys)
    def check_get(self, data: st.DataObject, ns: str, key: str) -> None:
        at = data.draw(st.one_of(st.none(), st.sampled_from(READ_TIMES)), label="at")
        version = data.draw(st.one_of(st.none(), st.integers(1, self.model.last_commit)), label="version")
        if ns not in self.model.namespaces():
            with pytest.raises(koru.NamespaceNotFoundError):
                self.store.get(ns, key, at=at, version=version)
            return
        try:
            got: Any = content_of(self.store.get(ns, key, at=at, version=version))
        except koru.KeyNotFoundError:
            got = None
        assert got == self._expected(ns, at, version).get(key), (ns, key, at, version)

    @invariant()
    def stored_versions_are_rows_written(self) -> None:
        """Every stored version is a row the model holds (same key, valid time and content),
        and ``_prev_write_id`` chains each key's versions in write order."""
        if self.model.last_commit == 0 or not hasattr(self, "store"):
            return
        def canon(content: Any) -> Any:  # field order is not content
            return content if content is TOMBSTONE else tuple(sorted(content.items()))

        written = {(r.namespace, r.key, r.valid, canon(r.content)) for r in self.model.rows}
        for ns in sorted(self.model.namespaces()):
            versions = self.store.versions(ns).to_pylist()
            by_key: dict[str, list[dict[str, Any]]] = {}
            for r in versions:
                content = TOMBSTONE if r["_deleted"] else values_of(r)
                assert (ns, r["_key"], ns_of(r["_valid_from"]), canon(content)) in written, r
                by_key.setdefault(r["_key"], []).append(r)
            for rows in by_key.values():
                order = sorted(rows, key=lambda r: r["_write_id"])
                assert [r["_prev_write_id"] for r in order] == [None, *(r["_write_id"] for r in order[:-1])]


fast = settings(max_examples=60, stateful_step_count=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestStoreVsModel = StoreVsModel.TestCase
TestStoreVsModel.settings = fast


class StoreVsModelThreeWays(StoreVsModel):
    """The same machine, every as-of read also through DuckDB and Polars (issue 11)."""

    engines = True


TestThreeWaysVsModel = StoreVsModelThreeWays.TestCase
TestThreeWaysVsModel.settings = settings(fast, max_examples=25, stateful_step_count=20)


class StoreVsModelInSlices(StoreVsModel):
    """The same machine with a large batch's steps made small: the unchanged rule decided
    two rows (whole keys) at a time and freed memory given back after every step, so a
    backfill's keys fall across slice boundaries (the path a 1M-row upsert takes)."""

    def __init__(self) -> None:
        super().__init__()
        self._sizes = (prepare.DECIDE_ROWS, prepare.LARGE_ROWS)
        prepare.DECIDE_ROWS, prepare.LARGE_ROWS = 2, 0

    def teardown(self) -> None:
        prepare.DECIDE_ROWS, prepare.LARGE_ROWS = self._sizes
        super().teardown()


TestStoreVsModelInSlices = StoreVsModelInSlices.TestCase
TestStoreVsModelInSlices.settings = fast


class SlowStoreVsModel(StoreVsModel):
    """Much deeper (``pytest -m slow``)."""


class SlowThreeWays(StoreVsModelThreeWays):
    """Much deeper, with the engines (``pytest -m slow``)."""


TestStoreVsModelSlow = pytest.mark.slow(SlowStoreVsModel.TestCase)
TestStoreVsModelSlow.settings = settings(fast, max_examples=500, stateful_step_count=60)
TestThreeWaysSlow = pytest.mark.slow(SlowThreeWays.TestCase)
TestThreeWaysSlow.settings = settings(fast, max_examples=150, stateful_step_count=40)
