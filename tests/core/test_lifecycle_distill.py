"""distill() and retention policies (issue 5): drop what no policy keeps, keep the skeleton."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

import koru_core as koru
from koru_core._time import now_ns
from koru_core.lifecycle.policies import PolicyContext
from koru_core.read import with_valid_to

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def _fill(store: koru.Store, *, keys: int = 500, rounds: int = 6) -> None:
    for r in range(rounds):
        store.upsert("users", [{"id": f"k{j:04d}", "v": r * 1000 + j} for j in range(keys)], key="id",
                     valid_from=T0 + r * DAY)
    store.delete("users", "k0005", valid_from=T0 + 10 * DAY)
    store.put("users", "k0006", {"id": "k0006", "v": -1}, valid_from=datetime(2200, 1, 1, tzinfo=timezone.utc))
    store.put("other", "a", 1)
    store.put("other", "a", 2)


def test_keep_last_drops_old_versions_and_history_shows_them_pruned(store: koru.Store) -> None:
    _fill(store)
    now_state = store.as_of("users", sort=True)
    at_day5 = store.as_of("users", at=T0 + 5 * DAY, sort=True)
    result = store.distill({"users": koru.KeepLast(2)})
    assert result.action == "distill" and result.namespaces == ("users",)
    assert result.versions_before - result.versions_after == 498 * 4 + 5 + 5  # k0005, k0006: 7 versions each
    assert store.as_of("users", sort=True).equals(now_state)
    assert store.as_of("users", at=T0 + 5 * DAY, sort=True).equals(at_day5)  # a retained point
    history = store.history("users", "k0001")
    assert history.column_names[-1] == "_pruned"
    assert history["_pruned"].to_pylist() == [True] * 4 + [False] * 2
    assert history["v"].to_pylist()[:4] == [None] * 4 and history["v"].to_pylist()[4:] == [4001, 5001]
    assert history["_valid_to"].to_pylist()[0] == T0 + DAY  # intervals of pruned versions are kept
    assert history["_prev_write_id"].to_pylist()[1:] == history["_write_id"].to_pylist()[:-1]
    assert store.history("other", "a").column_names[-1] != "_pruned"  # never distilled: no column
    assert store.diff("users", "k0001") == [koru.FieldChange(field="v", before=4001, after=5001)]
    tiers = {(r["namespace"], r["tier"]): r for r in store.stats().to_pylist()}
    assert tiers[("users", "deep")]["versions"] == 2002
    report = store.verify()
    assert report.is_ok, report.problems


def test_a_one_key_read_is_refused_only_for_its_own_pruned_versions(store: koru.Store) -> None:
    """Found by the Polars property test: a put that recorded nothing read its key back
    through a plan that refused the point for another key's pruned version."""
    for d in range(3):
        store.put("h", "a", {"x": d}, valid_from=T0 + d * DAY)
    store.put("h", "b", {"x": 7}, valid_from=T0)
    store.distill(koru.KeepLast(1))
    noon = T0 + DAY / 2
    with pytest.raises(koru.PrunedError):
        store.as_of("h", at=noon)  # key a's version at noon was dropped
    with pytest.raises(koru.PrunedError):
        store.get("h", "a", at=noon)
    assert store.get("h", "b", at=noon) == {"x": 7}
    again = store.put("h", "b", {"x": 7}, valid_from=T0)  # records nothing; returns b's version
    assert again.key == "b" and again.value == {"x": 7}


def test_current_tombstone_future_and_tagged_versions_are_never_dropped(store: koru.Store) -> None:
    _fill(store)
    pinned = store.as_of("users", version=2, at=T0 + 30 * DAY, sort=True)
    store.tag("v2", commit=2)
    store.distill(koru.KeepLast(1))
    assert "k0005" not in store.keys("users")  # its tombstone is still current
    h5 = store.history("users", "k0005")
    assert h5["_deleted"].to_pylist()[-1] is True and h5["_pruned"].to_pylist()[-1] is False
    h6 = store.history("users", "k0006")
    assert h6.filter(pa.compute.invert(h6["_pruned"]))["v"].to_pylist() == [1006, 5006, -1]  # tagged, current, future
    assert store.as_of("users", version=2, at=T0 + 30 * DAY, sort=True).equals(pinned)
    assert store.get("other", "a") == 2


def test_pin_by_commit_keeps_that_commit_whole(store: koru.Store) -> None:
    _fill(store)
    expected = store.as_of("users", version=3, at=T0 + 30 * DAY, sort=True)
    store.distill([koru.KeepLast(1), koru.Pin(commit=3)], namespace="users")
    assert store.as_of("users", version=3, at=T0 + 30 * DAY, sort=True).equals(expected)
    assert store.history("users", "k0001")["_pruned"].to_pylist() == [True, True, False, True, True, False]


def test_keep_all_and_no_policy_change_nothing(store: koru.Store) -> None:
    _fill(store)
    versions = store.versions("users")
    for policies in (None, koru.KeepAll(), {"users": koru.KeepAll()}):
        result = store.distill(policies)
        assert result.versions_before == result.versions_after
    assert store.versions("users").equals(versions)
    assert "_pruned" not in store.history("users", "k0001").column_names


def test_engines_agree_after_distillation(store: koru.Store) -> None:
    pytest.importorskip("polars")
    from koru_polars import read_koru

    _fill(store, keys=50)
    store.distill(koru.KeepLast(2))
    for at in (T0 + 5 * DAY, None):
        core = store.as_of("users", at=at, sort=True)
        frame = read_koru(store, "users", at=at).sort("_key")
        assert frame["_key"].to_list() == core["_key"].to_pylist()
        assert frame["v"].to_list() == core["v"].to_pylist()


def _versions(rows: list[tuple[str, int, int]]) -> pa.Table:
    """(key, valid ns, commit) rows → the table policies see (sorted, with _valid_to)."""
    t = pa.table({
        "_key": [r[0] for r in rows],
        "_valid_from": pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
        "_system_from": pa.array([r[1] for r in rows], pa.timestamp("ns", tz="UTC")),
        "_commit": pa.array([r[2] for r in rows], pa.int64()),
    })
    return with_valid_to(t)


def test_keep_for_and_thinning_rules() -> None:
    now = now_ns()
    d = 86_400 * 10**9
    rows = [("a", now - 200 * d, 1), ("a", now - 200 * d + 3600 * 10**9, 2), ("a", now - 150 * d, 3),
            ("a", now - 30 * d, 4), ("a", now - 30 * d + 10, 5), ("a", now - 29 * d, 6),
            ("a", now - 2 * d, 7), ("a", now - 2 * d + 10, 8)]
    t = _versions(rows)
    ctx = PolicyContext(now=now, tags={})
    keep_for = koru.KeepFor(timedelta(days=29, hours=12)).keep(t, ctx)
    assert keep_for.tolist() == [False] * 4 + [True] * 4  # row 4 was valid until -29 d
    thin = koru.Thinning(every_for=timedelta(days=7), daily_for=timedelta(days=90)).keep(t, ctx)
    # months: row 1 is the last of its month (row 0 same month); row 2 alone in its month;
    # days: row 3 superseded the same day by row 4; rows 6, 7 recent
    assert thin.tolist() == [False, True, True, False, True, True, True, True]
    no_monthly = koru.Thinning(monthly_beyond=False).keep(t, ctx)
    assert no_monthly.tolist()[:3] == [False, False, False]
    assert koru.KeepLast(3).keep(t, ctx).tolist() == [False] * 5 + [True] * 3
    assert isinstance(koru.KeepAll().keep(t, ctx), np.ndarray)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: koru.KeepLast(0), "KeepLast"),
        (lambda: koru.KeepFor(5), "KeepFor"),
        (lambda: koru.Pin(), "Pin"),
        (lambda: koru.Pin(commit=1, tag="x"), "Pin"),
        (lambda: koru.Thinning(every_for=timedelta(days=9), daily_for=timedelta(days=1)), "daily_for"),
    ],
)
def test_bad_policies_are_refused(make: object, match: str) -> None:
    with pytest.raises(koru.InvalidInputError, match=match):
        make()  # type: ignore[operator]


def test_bad_distill_arguments(store: koru.Store) -> None:
    _fill(store, keys=10)
    with pytest.raises(koru.InvalidInputError, match="retention policy"):
        store.distill("keep everything")  # type: ignore[arg-type]
    with pytest.raises(koru.InvalidInputError, match="unknown namespaces"):
        store.distill({"nope": koru.KeepLast(1)})
    with pytest.raises(koru.InvalidInputError, match="no tag 'x'"):
        store.distill(koru.Pin(tag="x"))
    with pytest.raises(koru.InvalidInputError, match="commit number"):
        store.tag("t", commit=99)
