"""Model-based test: random writes to a real store, every read compared with tests/model.py.

Writes are puts, deletes, upserts (backfills with several versions of a key,
"now" snapshots) and transactions over two namespaces, with valid times drawn
from a small set (so late arrivals, ties, corrections and tombstones happen),
given in several time zones. Reads (``get``, ``as_of``, ``history``,
``versions``, ``changes``) are checked against the model at random (valid time,
commit) points, after flushes and reopens too (issue 2, item 7).

The default run is quick; ``pytest -m slow`` runs a deeper variant.
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
from model import TOMBSTONE, Model, ModelVersion, content_of

import koru_core as koru

NAMESPACES = ("acct", "other")
KEYS = ("a", "b", "c", "d|x")
BASE = datetime(2020, 1, 1, tzinfo=timezone.utc)
VALID_TIMES = [BASE + timedelta(hours=h) for h in range(5)] + [datetime(2099, 1, 1, tzinfo=timezone.utc)]
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]

values = st.fixed_dictionaries({"n": st.integers(0, 2)}, optional={"s": st.sampled_from(["x", "y", None])})
valid_times = st.one_of(st.none(), st.sampled_from(VALID_TIMES))
zones = st.sampled_from(ZONES)
keys = st.sampled_from(KEYS)
namespaces = st.sampled_from(NAMESPACES)


def ns_of(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def ints(column: pa.ChunkedArray) -> list[Any]:
    return column.cast(pa.int64()).to_pylist()


FEED_COLUMNS = {"op", "before_write_id", "before_content_id", "after_content_id"}


def row_content(row: dict[str, Any], deleted: bool = False) -> Any:
    if deleted:
        return TOMBSTONE
    return content_of({k: v for k, v in row.items() if not k.startswith("_") and k not in FEED_COLUMNS})


class StoreVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="koru-prop-"))
        # "process" durability: same semantics as "full", without an fsync per step
        self.store = koru.open(self.dir / "s", durability="process")
        self.model = Model()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------

    def _planned_rows(self, rows: list[tuple[str, str, int | None, Any]]) -> list[tuple[str, str, int, Any]]:
        """Resolve "now" valid times to a placeholder later than every explicit one
        but 2099, then merge (namespace, key, valid) duplicates, last wins."""
        placeholder = time.time_ns() + 10**15  # any time between now and 2099 as-of's the same
        merged: dict[tuple[str, str, int], Any] = {}
        for ns, key, valid, value in rows:
            merged[(ns, key, placeholder if valid is None else valid)] = value
        self._placeholder = placeholder
        return [(ns, key, valid, value) for (ns, key, valid), value in merged.items()]

    def _record(self, written: list[tuple[str, str, int, Any]], commit: int | None) -> None:
        if not written:
            assert commit is None, f"a write with no changed row made commit {commit}"
            assert len(self.store.commits()) == self.model.last_commit
            return
        assert commit == self.model.last_commit + 1, (commit, self.model.last_commit)
        last = self.store.commits()[-1]
        assert last.commit == commit
        system = ns_of(last.system_time)
        rows = [(ns, k, system if v == self._placeholder else v, c) for ns, k, v, c in written]
        self.model.commit(rows, system_time=system)

    def _expect(self, rows: list[tuple[str, str, int | None, Any]]) -> tuple[list[tuple[str, str, int, Any]], int]:
        return self.model.plan(self._planned_rows(rows))

    # -- writes -----------------------------------------------------------------

    @rule(ns=namespaces, key=keys, valid=valid_times, zone=zones, value=values)
    def put(self, ns: str, key: str, valid: datetime | None, zone: timezone, value: dict[str, Any]) -> None:
        written, unchanged = self._expect([(ns, key, None if valid is None else ns_of(valid), value)])
        v = self.store.put(ns, key, value, valid_from=None if valid is None else valid.astimezone(zone))
        assert v.is_unchanged == (not written), (v, written)
        assert v.key == key and v.namespace == ns and not v.is_deleted
        assert content_of(v.value if not v.is_unchanged else value) == content_of(value)
        self._record(written, None if v.is_unchanged else v.commit)
        if not v.is_unchanged:
            assert v.commit == self.model.last_commit
            assert v.write_id == f"{v.commit:08x}{0:08x}"
            if valid is not None:
                assert v.valid_from == valid
        else:  # the version it equals: the key's as-of version at that valid time
            at = self._placeholder if valid is None else ns_of(valid)
            cur = self.model.current(ns, key, valid_at=at)
            assert cur is not None and v.commit == cur.commit and ns_of(v.valid_from) == cur.valid

    @rule(ns=namespaces, key=keys, valid=valid_times, zone=zones)
    def delete(self, ns: str, key: str, valid: datetime | None, zone: timezone) -> None:
        written, _ = self._expect([(ns, key, None if valid is None else ns_of(valid), TOMBSTONE)])
        before = len(self.store.commits())
        if not written:
            with pytest.raises(koru.KeyNotFoundError, match=repr(key).replace("|", r"\|")):
                self.store.delete(ns, key, valid_from=None if valid is None else valid.astimezone(zone))
            assert len(self.store.commits()) == before
            return
        v = self.store.delete(ns, key, valid_from=None if valid is None else valid.astimezone(zone))
        assert v.is_deleted and v.value is None and v.content_id is None and not v.is_unchanged
        self._record(written, v.commit)

    @rule(
        ns=namespaces,
        rows=st.lists(st.tuples(keys, st.sampled_from(VALID_TIMES), values), min_size=1, max_size=8,
                      unique_by=lambda r: (r[0], r[1])),
        zone=zones,
        as_list=st.booleans(),
    )
    def upsert_backfill(self, ns: str, rows: list[Any], zone: timezone, as_list: bool) -> None:
        # the key column is data (kept as a field); the valid-time column becomes _valid_from
        written, unchanged = self._expect([(ns, k, ns_of(t), {"id": k, **v}) for k, t, v in rows])
        records = [{"id": k, "vt": t.astimezone(zone), "n": v["n"], "s": v.get("s")} for k, t, v in rows]
        data: Any = records if as_list else pa.Table.from_pylist(records)
        result = self.store.upsert(ns, data, key="id", valid_from="vt")
        self._check_result(result, written, unchanged)

    @rule(
        ns=namespaces,
        rows=st.lists(st.tuples(keys, values), min_size=1, max_size=4, unique_by=lambda r: r[0]),
    )
    def upsert_now(self, ns: str, rows: list[Any]) -> None:
        written, unchanged = self._expect([(ns, k, None, {"id": k, **v}) for k, v in rows])
        table = pa.table({"id": [k for k, _ in rows], "n": [v["n"] for _, v in rows],
                          "s": pa.array([v.get("s") for _, v in rows], pa.string())})
        self._check_result(self.store.upsert(ns, table, key="id"), written, unchanged)

    @rule(
        ops=st.lists(
            st.tuples(st.booleans(), namespaces, keys, valid_times, values), min_size=1, max_size=5
        )
    )
    def transaction(self, ops: list[Any]) -> None:
        rows = [(ns, k, None if t is None else ns_of(t), TOMBSTONE if is_delete else v)
                for is_delete, ns, k, t, v in ops]
        written, unchanged = self._expect(rows)
        with self.store.transaction(actor="prop") as tx:
            for is_delete, ns, k, t, v in ops:
                if is_delete:
                    tx.delete(ns, k, valid_from=t)
                else:
                    tx.put(ns, k, v, valid_from=t)
        assert tx.result is not None
        self._check_result(tx.result, written, unchanged)

    def _check_result(self, result: koru.CommitResult, written: list[Any], unchanged: int) -> None:
        n_deleted = sum(1 for r in written if r[3] is TOMBSTONE)
        assert (result.written, result.deleted, result.unchanged) == (len(written) - n_deleted, n_deleted, unchanged), (
            result, written, unchanged)
        self._record(written, result.commit)

    @rule()
    def flush(self) -> None:
        self.store.flush()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = koru.open(self.dir / "s", durability="process")

    # -- reads ------------------------------------------------------------------

    def _point(self, data: st.DataObject) -> tuple[datetime | None, int | None, int, int | None]:
        at = data.draw(st.one_of(st.none(), st.sampled_from(VALID_TIMES)), label="at")
        if at is not None:
            at = at + data.draw(st.sampled_from([timedelta(0), timedelta(microseconds=-1), timedelta(minutes=30)]))
            at = at.astimezone(data.draw(zones))
        version = data.draw(st.one_of(st.none(), st.integers(1, self.model.last_commit)), label="version")
        return at, version, (time.time_ns() if at is None else ns_of(at)), version

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(data=st.data())
    def check_as_of(self, data: st.DataObject) -> None:
        at, version, valid_at, max_commit = self._point(data)
        for ns in sorted(self.model.namespaces()):
            table = self.store.as_of(ns, at=at, version=version)
            expected = self.model.as_of(ns, valid_at=valid_at if at is not None else time.time_ns(), max_commit=max_commit)
            got = {
                r["_key"]: (ns_of(r["_valid_from"]), r["_commit"], row_content(r))
                for r in table.to_pylist()
            }
            want = {k: (v.valid, v.commit, v.content) for k, v in expected.items()}
            assert got == want, (ns, at, version)
            assert table["_key"].to_pylist() == sorted(want)

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(data=st.data(), ns=namespaces, key=keys)
    def check_get(self, data: st.DataObject, ns: str, key: str) -> None:
        at, version, valid_at, max_commit = self._point(data)
        if ns not in self.model.namespaces():
            with pytest.raises(koru.NamespaceNotFoundError):
                self.store.get(ns, key, at=at, version=version)
            return
        try:
            got: Any = content_of(self.store.get(ns, key, at=at, version=version))
        except koru.KeyNotFoundError:
            got = None
        now = time.time_ns()
        v = self.model.current(ns, key, valid_at=now if at is None else valid_at, max_commit=max_commit)
        want = None if v is None or v.is_deleted else v.content
        assert got == want, (ns, key, at, version)

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(ns=namespaces, key=keys)
    def check_history(self, ns: str, key: str) -> None:
        if ns not in self.model.namespaces():
            return
        table = self.store.history(ns, key)
        rows = table.to_pylist()
        got = [(ns_of(r["_valid_from"]), r["_commit"], row_content(r, r["_deleted"]),
                None if r["_valid_to"] is None else ns_of(r["_valid_to"])) for r in rows]
        want = [(v.valid, v.commit, v.content, to) for v, to in self.model.history(ns, key)]
        assert got == want, (ns, key)
        assert all(r["_key"] == key for r in rows)

    @precondition(lambda self: self.model.last_commit > 0)
    @rule(data=st.data())
    def check_changes(self, data: st.DataObject) -> None:
        if data.draw(st.booleans(), label="by commit"):
            bounds = st.one_of(st.none(), st.integers(0, self.model.last_commit))
            since, until = data.draw(bounds, label="since"), data.draw(bounds, label="until")
            kw, by, lo, hi = {"since": since, "until": until}, "commit", since, until
        else:
            points = st.one_of(st.none(), st.sampled_from(VALID_TIMES + [BASE + timedelta(minutes=90)]))
            since, until = data.draw(points, label="since"), data.draw(points, label="until")
            if since is None and until is None:
                since = BASE - timedelta(days=1)
            kw, by = {"since": since, "until": until}, "valid"
            lo, hi = (None if since is None else ns_of(since)), (None if until is None else ns_of(until))
        for ns in sorted(self.model.namespaces()):
            feed = self.store.changes(ns, **kw)
            by_id = {r["_write_id"]: r for r in self.store.versions(ns).to_pylist()}
            got = []
            for r in feed.to_pylist():
                before = by_id.get(r["before_write_id"]) if r["before_write_id"] else None
                got.append((r["_key"], r["op"], ns_of(r["_valid_from"]), r["_commit"],
                            None if before is None else (ns_of(before["_valid_from"]), before["_commit"]),
                            row_content(r, r["op"] == "delete")))
                if before is not None:
                    assert r["before_content_id"] == before["_content_id"]
            want = [(c.key, c.op, c.version.valid, c.version.commit,
                     None if c.before is None else (c.before.valid, c.before.commit), c.version.content)
                    for c in self.model.changes(ns, since=lo, until=hi, by=by)]
            assert got == want, (ns, kw)

    @invariant()
    def write_ids_chain(self) -> None:
        """Every version is in the model; write ids are commit(8 hex) + ordinal(8 hex),
        dense per commit; ``_prev_write_id`` is the key's previously written version."""
        if self.model.last_commit == 0 or not hasattr(self, "store"):
            return
        ids: dict[tuple[str, str, int, int], str] = {}
        ordinals: dict[int, list[int]] = {}
        stored: list[tuple[str, dict[str, Any]]] = []
        for ns in sorted(self.model.namespaces()):
            for r in self.store.versions(ns).to_pylist():
                stored.append((ns, r))
                wid = r["_write_id"]
                assert len(wid) == 16 and int(wid[:8], 16) == r["_commit"], wid
                ordinals.setdefault(r["_commit"], []).append(int(wid[8:], 16))
                ids[(ns, r["_key"], ns_of(r["_valid_from"]), r["_commit"])] = wid
        assert len(ids) == len(stored) == len(self.model.versions)
        for commit, ords in ordinals.items():
            assert sorted(ords) == list(range(len(ords))), (commit, ords)
        by_seq: dict[int, ModelVersion] = {v.seq: v for v in self.model.versions}
        for ns, r in stored:
            mv = next(v for v in by_seq.values() if (v.namespace, v.key, v.valid, v.commit)
                      == (ns, r["_key"], ns_of(r["_valid_from"]), r["_commit"]))
            assert row_content(r, r["_deleted"]) == mv.content
            prev = self.model.previous_written(mv)
            want = None if prev is None else ids[(prev.namespace, prev.key, prev.valid, prev.commit)]
            assert r["_prev_write_id"] == want, (ns, r["_key"], r["_write_id"])


fast = settings(max_examples=50, stateful_step_count=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestStoreVsModel = StoreVsModel.TestCase
TestStoreVsModel.settings = fast


class SlowStoreVsModel(StoreVsModel):
    """The same machine, run much deeper (``pytest -m slow``)."""


TestStoreVsModelSlow = pytest.mark.slow(SlowStoreVsModel.TestCase)
TestStoreVsModelSlow.settings = settings(fast, max_examples=400, stateful_step_count=60)
