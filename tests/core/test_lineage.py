"""Provenance: ``_parents`` on versions and ``lineage`` across namespaces."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import koru_core as koru


def test_parents_across_namespaces(store: koru.Store) -> None:
    raw = store.put("raw", "r1", {"text": " Alice "}, actor="ingest", run_id="run-1")
    clean = store.put("clean", "alice", {"name": "Alice"}, parents=[raw.write_id], actor="cleaner")
    report = store.put("report", "daily", {"count": 1}, parents=[clean.write_id])
    assert report.parents == (clean.write_id,)
    lin = store.lineage("report", "daily")
    assert lin.root == report.write_id
    nodes = {r["_write_id"]: r for r in lin.nodes.to_pylist()}
    assert set(nodes) == {report.write_id, clean.write_id, raw.write_id}
    assert (nodes[raw.write_id]["namespace"], nodes[raw.write_id]["_key"], nodes[raw.write_id]["depth"]) == ("raw", "r1", 2)
    assert nodes[raw.write_id]["_actor"] == "ingest" and nodes[raw.write_id]["_run_id"] == "run-1"
    assert nodes[clean.write_id]["namespace"] == "clean" and nodes[clean.write_id]["depth"] == 1
    assert nodes[report.write_id]["depth"] == 0
    edges = sorted((e["child"], e["parent"], e["kind"]) for e in lin.edges.to_pylist())
    assert edges == sorted([(report.write_id, clean.write_id, "parent"), (clean.write_id, raw.write_id, "parent")])
    shallow = store.lineage("report", "daily", max_depth=1)
    assert set(shallow.nodes["_write_id"].to_pylist()) == {report.write_id, clean.write_id}


def test_write_id_column_in_upserted_data_becomes_a_parent(store: koru.Store) -> None:
    store.upsert("orders", [{"id": f"o{i}", "amount": i * 10} for i in range(3)], key="id")
    source = store.as_of("orders")
    assert "_write_id" in source.column_names
    derived = source.select(["id", "amount", "_write_id", "_valid_from"]).append_column(
        "tax", pc.multiply(source["amount"], 0.25)
    )
    result = store.upsert("taxed", derived, key="id", parents=["ffffffff00000000"])
    assert result.written == 3
    taxed = store.versions("taxed")
    assert "tax" in taxed.column_names
    by_key = {r["_key"]: r for r in taxed.to_pylist()}
    for src in source.to_pylist():
        parents = by_key[src["_key"]]["_parents"]
        assert src["_write_id"] in parents and "ffffffff00000000" in parents
        assert by_key[src["_key"]]["tax"] == src["amount"] * 0.25
    lin = store.lineage("taxed", "o1")
    nodes = {r["_write_id"]: r for r in lin.nodes.to_pylist()}
    o1 = next(r for r in source.to_pylist() if r["_key"] == "o1")
    assert nodes[o1["_write_id"]]["namespace"] == "orders"
    assert nodes[o1["_write_id"]]["_key"] == "o1"
    # a parent no stored version matches is kept, with no namespace
    assert nodes["ffffffff00000000"]["namespace"] is None


def test_parents_survive_flush_and_reopen(tmp_path) -> None:
    path = tmp_path / "s"
    with koru.open(path) as s:
        a = s.put("a", "k", {"v": 1})
        s.upsert("b", pa.table({"id": [f"x{i}" for i in range(1500)], "v": list(range(1500))}), key="id",
                 parents=[a.write_id])
        s.flush()
    with koru.open(path) as s:
        lin = s.lineage("b", "x7")
        assert set(lin.nodes["namespace"].to_pylist()) == {"a", "b"}


def test_lineage_of_unknown_key(store: koru.Store) -> None:
    store.put("a", "k", {"v": 1})
    with pytest.raises(koru.KeyNotFoundError, match=r"'a'.*'nope'"):
        store.lineage("a", "nope")
    with pytest.raises(koru.NamespaceNotFoundError):
        store.lineage("zz", "k")


def test_bad_parents_are_refused(store: koru.Store) -> None:
    with pytest.raises(koru.InvalidInputError, match="parents"):
        store.put("a", "k", {"v": 1}, parents=[""])
    with pytest.raises(koru.InvalidInputError, match="parents"):
        store.put("a", "k", {"v": 1}, parents=[7])  # type: ignore[list-item]
    assert store.commits() == []
