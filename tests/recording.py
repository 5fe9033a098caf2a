"""A store and the reference model (:mod:`tests.model`) fed the same writes.

Every write goes to the store, then to the model with the commit the store
reports; reads then compare the store's answers with the model's, which knows
nothing of koru's code. Only writes with explicit valid times are recorded (the
model would otherwise need each commit's system time before the commit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import koru_core as koru
from model import TOMBSTONE, Model


def ns_of(t: datetime) -> int:
    """Nanoseconds since the epoch (UTC) of a tz-aware datetime."""
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


class Recorded:
    """``store`` and ``model``: write through :meth:`put`, :meth:`delete`, :meth:`upsert`."""

    def __init__(self, store: koru.Store) -> None:
        self.store = store
        self.model = Model()

    def _record(self, rows: list[tuple[str, str, int, Any]], commit: int | None) -> None:
        versions, _ = self.model.plan(rows, now=0)
        if not versions:
            assert commit is None, f"the model records nothing, the store made commit {commit}"
            return
        assert commit == self.model.last_commit + 1, (commit, self.model.last_commit)
        self.model.commit(versions, system_time=0)

    def put(self, ns: str, key: str, value: dict[str, Any], *, valid_from: datetime) -> None:
        v = self.store.put(ns, key, value, valid_from=valid_from)
        self._record([(ns, key, ns_of(valid_from), value)], None if v.is_unchanged else v.commit)

    def delete(self, ns: str, key: str, *, valid_from: datetime) -> bool:
        """Delete when the model says the key is live (and check the store refuses otherwise)."""
        if not self.model.is_live(ns, key, valid_at=ns_of(valid_from)):
            before = self.store.version()
            try:
                self.store.delete(ns, key, valid_from=valid_from)
            except koru.KeyNotFoundError:
                assert self.store.version() == before
                return False
            raise AssertionError(f"deleted {key!r}, which the model says is not live")
        v = self.store.delete(ns, key, valid_from=valid_from)
        self._record([(ns, key, ns_of(valid_from), TOMBSTONE)], v.commit)
        return True

    def upsert(self, ns: str, records: list[dict[str, Any]], *, key: str, valid_from: datetime | str) -> None:
        """Upsert ``records`` (``valid_from``: one time, or the name of a time column)."""
        result = self.store.upsert(ns, records, key=key, valid_from=valid_from)
        rows = []
        for r in records:
            if isinstance(valid_from, str):
                t, value = r[valid_from], {k: v for k, v in r.items() if k != valid_from}
            else:
                t, value = valid_from, r
            rows.append((ns, str(r[key]), ns_of(t), value))
        self._record(rows, result.commit)

    def as_of(self, ns: str, at: datetime, version: int | None = None) -> dict[str, Any]:
        """The model's live key → content at (``at``, ``version``)."""
        return self.model.as_of(ns, valid_at=ns_of(at), max_commit=version)
