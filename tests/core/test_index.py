"""Model-based test of the hot tier's current-state index (koru_core/hot/index.py).

The index is what every write consults to skip unchanged rows and chain write
ids, so a wrong head loses or duplicates versions. Random batches (in any row
order) and single updates are folded in, and after every step each key's head, the
aligned lookup, the live keys and the count are compared with a dict that applies
the rule directly: the head is the version with the largest (valid time, commit), and
the last write id is the key's latest write, and the last valid time is the
largest valid time of any version or skip record of the key.
"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from koru_core.hot.index import HEAD_SCHEMA, Head, HeadIndex

KEYS = [*(f"k{i}" for i in range(11)), "k1é"]
CONTENT = [bytes([i]) * 32 for i in range(4)]  # 32-byte content ids

version = st.tuples(st.sampled_from(KEYS), st.integers(0, 5), st.sampled_from([*CONTENT, None]))
step = st.one_of(
    st.tuples(st.just("batch"), st.lists(version, min_size=1, max_size=15)),
    st.tuples(st.just("one"), version),
    st.tuples(st.just("skip"), st.tuples(st.sampled_from(KEYS), st.integers(0, 8))),
)


def write_id(commit: int, ordinal: int) -> bytes:
    return ((commit << 16) + ordinal).to_bytes(8, "big")


def _model_apply(model: dict[str, Head], key: str, valid: int, cid: bytes | None, wid: bytes, commit: int) -> None:
    head = model.get(key)
    if head is None or (valid, commit) >= (head.valid_from, head.commit):
        last = valid if head is None else max(valid, head.last_valid)
        model[key] = Head(valid, commit, cid, wid, last)
    else:
        model[key] = head._replace(last_write_id=wid)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_index_matches_model(steps: list) -> None:
    index, model = HeadIndex(), {}
    for commit, (kind, payload) in enumerate(steps, start=1):
        if kind == "one":
            key, valid, cid = payload
            wid = write_id(commit, 0)
            index.apply_one(key, valid, cid, wid, commit=commit)
            _model_apply(model, key, valid, cid, wid, commit)
        elif kind == "skip":  # a skip record only raises the key's last valid time (keys with versions)
            key, valid = payload
            if key in model:
                index.apply(pa.table({"_key": pa.array([], pa.string()), "_valid_from": pa.array([], pa.int64()),
                                      "_commit": pa.array([], pa.int64()), "_write_id": pa.array([], pa.binary(8)),
                                      "_content_id": pa.array([], pa.binary(32)), "_deleted": pa.array([], pa.bool_())}),
                            commit=commit, skips=pa.table({"_key": [key], "_valid_from": pa.array([valid], pa.int64())}))
                model[key] = model[key]._replace(last_valid=max(valid, model[key].last_valid))
        else:
            rows = {(k, v): c for k, v, c in payload}  # a commit holds one version per (key, valid time)
            wids = [write_id(commit, i) for i in range(len(rows))]
            for ((k, v), c), wid in zip(rows.items(), wids, strict=True):
                _model_apply(model, k, v, c, wid, commit)
            index.apply(
                pa.table(
                    {
                        "_key": [k for k, _ in rows],
                        "_valid_from": pa.array([v for _, v in rows], pa.int64()),
                        "_commit": pa.array([commit] * len(rows), pa.int64()),
                        "_write_id": pa.array(wids, pa.binary(8)),
                        "_content_id": pa.array([c or bytes(32) for c in rows.values()], pa.binary(32)),
                        "_deleted": [c is None for c in rows.values()],
                    }
                ),
                commit=commit,
            )
        for key in KEYS:
            assert index.get(key) == model.get(key), (key, commit)
        # more than 64 keys: found by binary search in the index's key order (kept across commits)
        probe = [*KEYS, "unknown", KEYS[0], "", "k", "k99", "é", *reversed(KEYS)] * 3
        got = index.lookup(pa.array(probe))
        assert got.schema == HEAD_SCHEMA
        for key, row in zip(probe, got.to_pylist(), strict=True):
            want = model.get(key)
            assert row["key"] == key
            if want is None:
                assert row["valid_from"] is None and row["last_write_id"] is None
            else:
                assert Head(row["valid_from"], row["commit"], row["content_id"], row["last_write_id"],
                            row["last_valid"]) == want
        assert sorted(index.live_keys().to_pylist()) == sorted(k for k, h in model.items() if h.content_id)
        assert len(index) == len(model)
        assert index.nbytes() > 0 or not model
