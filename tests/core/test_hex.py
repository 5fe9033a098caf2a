"""Ids shown as hex: koru_core._hex against Python's own ``bytes.hex`` / ``bytes.fromhex``."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from koru_core._hex import from_hex, to_hex


@given(st.sampled_from([8, 32]).flatmap(
    lambda w: st.tuples(st.just(w), st.lists(st.one_of(st.none(), st.binary(min_size=w, max_size=w)), max_size=40),
                        st.integers(0, 5))))
def test_to_hex_is_bytes_hex_for_every_value_slice_and_chunking(case: tuple[int, list[bytes | None], int]) -> None:
    width, values, cut = case
    arr = pa.array(values, pa.binary(width))
    want = [None if v is None else v.hex() for v in values]
    assert to_hex(arr).to_pylist() == want
    assert to_hex(arr.slice(min(cut, len(values)))).to_pylist() == want[min(cut, len(values)):]
    assert to_hex(pa.chunked_array([arr, arr], pa.binary(width))).to_pylist() == want + want
    back = from_hex(pa.array(want, pa.string()), width)
    assert back.to_pylist() == values
