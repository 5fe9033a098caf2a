"""The commit hash chain's body digest against bytes written out by hand from the spec in
``koru_core/chain.py``'s docstring, on a small part (fed from Python values) and on a part
above ``SMALL_ROWS`` (fed through Arrow compute): both must give the spec's bytes."""

from __future__ import annotations

import struct

import pyarrow as pa
import pytest
from blake3 import blake3

from koru_core import chain

VERSIONS = pa.schema([
    ("_key", pa.string()), ("_valid_from", pa.timestamp("ns", "UTC")), ("_write_id", pa.binary(8)),
    ("_prev_write_id", pa.binary(8)), ("_content_id", pa.binary(32)), ("_actor", pa.string()),
    ("_run_id", pa.string()), ("_parents", pa.list_(pa.string())),
])


def rows(n: int) -> list[dict]:
    """n versions with every nullable column null somewhere, non-ASCII keys and parents."""
    out = []
    for i in range(n):
        out.append({
            "_key": f"k{i}é" if i % 3 else "",
            "_valid_from": 1_700_000_000_000_000_000 + i * 1_000,
            "_write_id": (i + 1).to_bytes(8, "big"),
            "_prev_write_id": None if i % 2 else i.to_bytes(8, "big"),
            "_content_id": None if i % 5 == 4 else bytes([i % 256]) * 32,
            "_actor": None if i % 4 == 1 else "ana",
            "_run_id": "run-ß" if i % 2 else None,
            "_parents": None if i % 3 == 0 else (["p1", "pé2"] if i % 3 == 1 else []),
        })
    return out


def by_hand(namespace: str, rs: list[dict]) -> bytes:
    """The spec's body digest of one part, one field at a time with struct (no koru code)."""
    return blake3(_part_bytes(namespace, rs)).digest()


@pytest.mark.parametrize("n", [1, 2, 7, chain.SMALL_ROWS, chain.SMALL_ROWS + 1, 300])
def test_body_digest_is_the_spec(n: int) -> None:
    rs = rows(n)
    table = pa.Table.from_pylist(rs, schema=VERSIONS)
    assert chain.body_digest([("users", table)]) == by_hand("users", rs)


def test_parts_go_in_namespace_order_and_empty_ones_are_skipped() -> None:
    a, b = rows(3), rows(70)
    ta, tb = (pa.Table.from_pylist(r, schema=VERSIONS) for r in (a, b))
    empty = VERSIONS.empty_table()
    got = chain.body_digest([("zeta", tb), ("alpha", ta), ("mid", empty)])
    # the digest is one blake3 over the parts in a row: rebuild it from by_hand's bytes
    want = blake3(_part_bytes("alpha", a) + _part_bytes("zeta", b)).digest()
    assert got == want


def _part_bytes(namespace: str, rs: list[dict]) -> bytes:
    """One part's bytes as the spec lays them out."""
    def strings(values: list[str | None]) -> bytes:
        out = b"".join(struct.pack("<I", 0xFFFFFFFF if v is None else len(v.encode())) for v in values)
        return out + b"".join(v.encode() for v in values if v is not None)

    ns = namespace.encode()
    part = struct.pack("<I", len(ns)) + ns + struct.pack("<Q", len(rs))
    part += b"".join(r["_write_id"] for r in rs)
    part += b"".join(r["_prev_write_id"] or bytes(8) for r in rs)
    part += b"".join(r["_content_id"] or bytes(32) for r in rs)
    part += b"".join(struct.pack("<q", r["_valid_from"]) for r in rs)
    for c in ("_key", "_actor", "_run_id"):
        part += strings([r[c] for r in rs])
    part += b"".join(struct.pack("<I", len(r["_parents"] or [])) for r in rs)
    return part + strings([p for r in rs for p in (r["_parents"] or [])])
