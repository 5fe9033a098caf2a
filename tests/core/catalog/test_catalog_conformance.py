"""The catalog verbs behave alike on SQLite and PostgreSQL (issue 15: one interface, two backends).

Each test runs once per backend (``conftest.py``). Concurrency is in
``test_catalog_concurrency.py``, leases in ``test_catalog_leases.py``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import psycopg
import pyarrow as pa
import pytest
from _backends import Backend
from _drafts import SCHEMA, blob, cold, draft, warm

from koru_core.catalog import Catalog, CommitRecord, FileSwap, NamespaceInfo, open_catalog
from koru_core.chain import chain_hash
from koru_core.errors import ConflictError, CorruptionError, FormatError, HeadMovedError, InvalidInputError


def commit_n(catalog: Catalog, n: int, **kw: object) -> list[CommitRecord]:
    out = []
    for _ in range(n):
        head = catalog.head()[0]
        out.append(catalog.record_commit(draft(head, tag=f"c{head + 1}", **kw)))  # type: ignore[arg-type]
    return out


def test_an_empty_catalog_has_no_head_and_a_store_id(catalog: Catalog) -> None:
    assert catalog.head() == (0, 0, None)
    assert catalog.commits() == [] and catalog.namespaces() == [] and catalog.files() == []
    assert len(catalog.store_id) == 32 and catalog.format_version == 2
    assert catalog.tags() == {} and catalog.retired() == {} and catalog.cursor("x") is None


def test_commits_are_numbered_from_one_without_gaps(catalog: Catalog) -> None:
    records = commit_n(catalog, 5)
    assert [r.commit for r in records] == [1, 2, 3, 4, 5]
    assert [c.commit for c in catalog.commits()] == [1, 2, 3, 4, 5]
    assert [c.commit for c in catalog.commits(since=1, until=3)] == [2, 3]
    head = catalog.head()
    assert head == (5, records[-1].system_time, records[-1].hash)
    assert catalog.commit_at(records[2].system_time) == 3
    assert catalog.commit_at(records[2].system_time - 1) == 2
    assert catalog.commit_at(0) == 0


def test_chain_fields_round_trip_and_the_hash_chains(catalog: Catalog) -> None:
    meta = {"dagster_run": "r-1", "zeta": "ü"}
    first = catalog.record_commit(draft(0, tag="one", actor="etl", run_id="run-1", metadata=meta, write_ids=(1, 4),
                                        namespaces=("orders", "users")))
    second = catalog.record_commit(draft(1, tag="two", actor=None, run_id=None, system_time=first.system_time - 10**9))
    listed = catalog.commits()
    assert listed == [first, second]
    assert first.actor == "etl" and first.run_id == "run-1" and first.metadata == meta
    assert first.namespaces == ("orders", "users") and (first.first_write_id, first.last_write_id) == (1, 4)
    assert (first.written, first.unchanged, first.deleted) == (4, 1, 0)
    assert first.prev_hash is None and second.prev_hash == first.hash
    assert second.system_time == first.system_time + 1000  # raised past the head: never decreasing
    for prev, rec, tag in ((None, first, "one"), (first.hash, second, "two")):
        body = draft(0, tag=tag).body
        assert rec.hash == chain_hash(prev, commit=rec.commit, system_time=rec.system_time, body=body,
                                      actor=rec.actor, run_id=rec.run_id, metadata=rec.metadata or None)


def test_a_draft_on_a_moved_head_is_refused_and_writes_nothing(catalog: Catalog) -> None:
    catalog.record_commit(draft(0, tag="winner"))
    late = draft(0, tag="loser", files=(warm("warm/loser.parquet"),), blobs=(blob(b"loser"),),
                 schemas={"late": (SCHEMA, ())}, namespaces=("late",))
    with pytest.raises(HeadMovedError, match="taken by another writer") as caught:
        catalog.record_commit(late)
    assert isinstance(caught.value, ConflictError)
    assert (caught.value.base, caught.value.head) == (0, 1)
    assert catalog.head()[0] == 1 and len(catalog.commits()) == 1
    assert catalog.files() == [] and catalog.pending("late") == [] and catalog.namespace("late") is None
    assert catalog.record_commit(draft(caught.value.head, tag="rebased")).commit == 2


def test_schemas_and_key_columns_are_recorded_per_commit(catalog: Catalog) -> None:
    catalog.record_commit(draft(0, schemas={"users": (SCHEMA, ("id",))}))
    wider = SCHEMA.append(pa.field("tags", pa.list_(pa.string())))
    catalog.record_commit(draft(1, tag="b"))
    catalog.record_commit(draft(2, tag="c", schemas={"users": (wider, ("id",)), "orders": (SCHEMA, ())},
                                namespaces=("orders", "users")))
    assert catalog.namespaces() == ["orders", "users"]
    info = catalog.namespace("users")
    assert info == NamespaceInfo(name="users", schema=wider, key_columns=("id",), created_commit=1, schema_commit=3,
                                 cold_commit=0)
    catalog.set_key_columns("orders", ["loc", "sex"])
    assert catalog.namespace("orders").key_columns == ("loc", "sex")  # type: ignore[union-attr]
    assert catalog.namespace("nope") is None


def test_files_and_pending_blobs_round_trip(catalog: Catalog) -> None:
    catalog.record_commit(draft(0, files=(warm("warm/1.parquet", key="k\x00ey"),), blobs=(blob(b"\x00\x01" * 500),)))
    second = catalog.record_commit(draft(1, tag="2", blobs=(blob(b"v2"), blob(b"s2", kind="skips", rows=1))))
    catalog.record_commit(draft(2, tag="3", blobs=(blob(b"v3"), blob(b"o3", namespace="orders"))))
    (entry,) = catalog.files("users")
    assert entry.path == "warm/1.parquet" and entry.commit == 1 and (entry.min_commit, entry.max_commit) == (1, 1)
    assert entry.min_key == "k\x00ey" and entry.checksum == warm("warm/1.parquet").checksum
    assert entry.system_time == catalog.commits()[0].system_time
    assert catalog.files("orders") == [] and catalog.files() == [entry]
    assert [b.commit for b in catalog.pending("users")] == [1, 2, 3]
    assert [b.commit for b in catalog.pending("users", after=1, upto=2)] == [2]
    got = catalog.pending("users", upto=1)[0]
    assert got.data == b"\x00\x01" * 500 and got.checksum == blob(b"\x00\x01" * 500).checksum and got.rows == 2
    (skip,) = catalog.pending("users", kind="skips")
    assert (skip.commit, skip.data, skip.system_time) == (2, b"s2", second.system_time)
    assert catalog.pending_commits("users") == [(1, 2), (2, 2), (3, 2)]
    assert catalog.pending_commits("users", kind="skips") == [(2, 1)]
    assert catalog.pending_commits("orders") == [(3, 2)]


def test_swap_files_replaces_absorbs_and_retires_in_one_step(catalog: Catalog) -> None:
    for n in (1, 2, 3):
        catalog.record_commit(draft(n - 1, tag=str(n), files=(warm(f"warm/{n}.parquet"),), blobs=(blob(b"p%d" % n),)))
    warm_files = catalog.files("users")
    out = cold("cold/state-1.parquet", upto=2)
    assert catalog.swap_files("users", remove=warm_files[:2], add=[out], absorb_pending_upto=2, cold_commit=2,
                              retired_at=123)
    assert [f.path for f in catalog.files("users")] == ["cold/state-1.parquet", "warm/3.parquet"]
    assert [b.commit for b in catalog.pending("users")] == [3]
    assert catalog.retired() == {path: ("users", "warm", 103, 123) for path in ("warm/1.parquet", "warm/2.parquet")}
    # cold_commit only rises
    catalog.record_commit(draft(3, tag="schema", schemas={"users": (SCHEMA, ())}))
    assert catalog.swap_files("users", remove=[], add=[], cold_commit=3, retired_at=1)
    assert catalog.swap_files("users", remove=[], add=[], cold_commit=1, retired_at=1)
    assert catalog.namespace("users").cold_commit == 3  # type: ignore[union-attr]


def test_swap_files_refuses_a_removed_file_and_changes_nothing(catalog: Catalog) -> None:
    catalog.record_commit(draft(0, files=(warm("warm/1.parquet"), warm("warm/2.parquet", key="m")),
                                blobs=(blob(b"x"),), schemas={"users": (SCHEMA, ())}))
    one, two = catalog.files("users")
    assert catalog.swap_files("users", remove=[one], add=[cold("cold/a.parquet")], retired_at=1)
    before = (catalog.files(), catalog.pending("users"), catalog.retired(), catalog.namespace("users"))
    ok = catalog.swap_files("users", remove=[one, two], add=[cold("cold/b.parquet")], absorb_pending_upto=1,
                            cold_commit=1, retired_at=2)
    assert ok is False
    assert (catalog.files(), catalog.pending("users"), catalog.retired(), catalog.namespace("users")) == before


def test_a_swap_built_from_an_older_cold_commit_is_refused(catalog: Catalog) -> None:
    """Two consolidations that read the same pending versions: the second swap would hold
    them twice, so it is refused (issue 15: found by four writers consolidating at once)."""
    for n in (1, 2, 3):
        catalog.record_commit(draft(n - 1, tag=str(n), blobs=(blob(b"p%d" % n),), schemas={"users": (SCHEMA, ())}))
    assert catalog.swap_files("users", remove=[], add=[cold("cold/a.parquet", upto=2)], absorb_pending_upto=2,
                              cold_commit=2, retired_at=1, base_cold_commit=0)
    before = (catalog.files(), catalog.pending("users"), catalog.namespace("users"))
    assert catalog.swap_files("users", remove=[], add=[cold("cold/b.parquet", upto=3)], absorb_pending_upto=3,
                              cold_commit=3, retired_at=1, base_cold_commit=0) is False
    assert (catalog.files(), catalog.pending("users"), catalog.namespace("users")) == before
    assert catalog.swap_files("users", remove=[], add=[cold("cold/c.parquet", upto=3)], absorb_pending_upto=3,
                              cold_commit=3, retired_at=1, base_cold_commit=2)
    assert catalog.namespace("users").cold_commit == 3  # type: ignore[union-attr]


def test_a_commit_can_swap_in_its_own_cold_files(catalog: Catalog) -> None:
    """A large commit that goes straight to the cold layout records its cold files, retires
    the state they replace and raises ``cold_commit`` in its own transaction; a swap built
    from an older ``cold_commit`` refuses the whole commit. A catalog without the ability
    refuses such a draft outright."""
    catalog.record_commit(draft(0, tag="1", blobs=(blob(b"p1"),), schemas={"users": (SCHEMA, ())}))
    old = cold("cold/state-1.parquet", upto=1)
    assert catalog.swap_files("users", remove=[], add=[old], absorb_pending_upto=1, cold_commit=1, retired_at=1)
    new = cold("cold/state-2.parquet", upto=2)
    swap = FileSwap("users", remove=(old,), add=(new,), base_cold_commit=1)
    if not catalog.swaps_in_commit:
        with pytest.raises(InvalidInputError, match="swaps"):
            catalog.record_commit(dataclasses.replace(draft(1, tag="2"), swaps=(swap,)))
        assert catalog.head()[0] == 1 and [f.path for f in catalog.files("users")] == [old.path]
        return
    before = (catalog.head(), catalog.files(), catalog.retired(), catalog.namespace("users"))
    stale = FileSwap("users", remove=(old,), add=(new,), base_cold_commit=0)
    with pytest.raises(HeadMovedError, match="consolidated"):
        catalog.record_commit(dataclasses.replace(draft(1, tag="2"), swaps=(stale,)))
    assert (catalog.head(), catalog.files(), catalog.retired(), catalog.namespace("users")) == before
    t0 = time.time_ns()
    rec = catalog.record_commit(dataclasses.replace(draft(1, tag="2"), swaps=(swap,)))
    assert rec.commit == 2 and catalog.head()[0] == 2
    assert [f.path for f in catalog.files("users")] == [new.path]
    assert catalog.namespace("users").cold_commit == 2  # type: ignore[union-attr]
    (path, (namespace, tier, size, retired_at)), = catalog.retired().items()
    assert (path, namespace, tier, size) == (old.path, "users", "cold", old.bytes)
    assert t0 <= retired_at <= time.time_ns()  # stamped once the commit is visible


def test_bootstrap_fills_an_empty_catalog(backend: Backend) -> None:
    source = backend.open()
    records = commit_n(source, 3)
    target_backend = Backend(backend.name, backend.target.replace(backend.schema, backend.schema + "_copy")
                             if backend.name == "postgres" else backend.target.replace("catalog.sqlite", "copy.sqlite"),
                             schema=backend.schema + "_copy" if backend.schema else "")
    try:
        target = target_backend.open()
        info = NamespaceInfo(name="users", schema=SCHEMA, key_columns=("id",), created_commit=1, schema_commit=2,
                             cold_commit=3)
        files = [cold("cold/state.parquet", upto=3)]
        target.bootstrap(commits=records, namespaces=[info], files=files, tags={"v1": 2}, next_write_id=500)
        assert target.commits() == records and target.head() == source.head()
        assert target.namespace("users") == info and target.files() == files and target.tags() == {"v1": 2}
        assert target.allocate_write_ids(10) == 500
        with pytest.raises(ConflictError, match="empty catalog"):
            target.bootstrap(commits=[], namespaces=[], files=[], tags={}, next_write_id=1)
        with pytest.raises(ConflictError, match="empty catalog"):
            source.bootstrap(commits=[], namespaces=[info], files=[], tags={"x": 1}, next_write_id=1)
        assert source.namespaces() == [] and source.tags() == {}
    finally:
        target_backend.close()
        if target_backend.schema:
            with psycopg.connect(backend.target.split("?")[0], autocommit=True) as con:
                con.execute(f"DROP SCHEMA {target_backend.schema} CASCADE")  # type: ignore[arg-type]


def test_tags_cursors_and_retired_entries(catalog: Catalog) -> None:
    commit_n(catalog, 3)
    catalog.set_tag("release", 1)
    catalog.set_tag("nightly", 2)
    catalog.set_tag("release", 3)
    assert catalog.tags() == {"release": 3, "nightly": 2}
    assert catalog.cursor("feed") is None
    catalog.set_cursor("feed", 2)
    catalog.set_cursor("feed", 3)
    assert catalog.cursor("feed") == 3
    catalog.record_commit(draft(3, tag="f", files=(warm("warm/a.parquet"), warm("warm/b.parquet"))))
    catalog.swap_files("users", remove=catalog.files(), add=[], retired_at=7)
    assert set(catalog.retired()) == {"warm/a.parquet", "warm/b.parquet"}
    catalog.forget_retired(["warm/a.parquet", "warm/never.parquet"])
    assert catalog.retired() == {"warm/b.parquet": ("users", "warm", 103, 7)}


def test_write_ids_of_a_recorded_commit_are_never_handed_out_again(catalog: Catalog) -> None:
    first = catalog.allocate_write_ids(10)
    catalog.record_commit(draft(0, write_ids=(first, first + 9)))
    second = catalog.allocate_write_ids(5)
    assert second > first + 9
    catalog.record_commit(draft(1, tag="2", write_ids=(second, second + 4)))
    assert catalog.commit_of_write_id(first) == 1 and catalog.commit_of_write_id(first + 9) == 1
    assert catalog.commit_of_write_id(second + 2) == 2
    assert catalog.commit_of_write_id(second + 5) is None and catalog.commit_of_write_id(0) is None


def test_a_snapshot_sees_one_commit_while_another_handle_commits(backend: Backend) -> None:
    reader, writer = backend.open(), backend.open()
    writer.record_commit(draft(0, tag="1"))
    with reader.snapshot():
        assert reader.head()[0] == 1
        writer.record_commit(draft(1, tag="2", blobs=(blob(b"two"),)))
        with reader.snapshot():  # nested: the same snapshot
            assert reader.head()[0] == 1
        assert [c.commit for c in reader.commits()] == [1] and reader.pending("users") == []
    assert reader.head()[0] == 2 and len(reader.pending("users")) == 1


def test_a_read_only_handle_reads_and_refuses_writes(backend: Backend) -> None:
    backend.open().record_commit(draft(0))
    reader = backend.open(read_only=True)
    assert reader.head()[0] == 1 and reader.read_only
    for write in (lambda: reader.record_commit(draft(1, tag="x")), lambda: reader.set_tag("t", 1),
                  lambda: reader.swap_files("users", remove=[], add=[], retired_at=0)):
        with pytest.raises(PermissionError, match="read-only"):
            write()
    assert reader.head()[0] == 1


def _set_meta(backend: Backend, name: str, value: str | None) -> None:
    if backend.name == "sqlite":
        with sqlite3.connect(backend.target) as con:
            if value is None:
                con.execute("DELETE FROM meta WHERE name = ?", (name,))
            else:
                con.execute("UPDATE meta SET value = ? WHERE name = ?", (value, name))
        con.close()
    else:
        with psycopg.connect(backend.target.split("?")[0], autocommit=True) as con:
            table = f"{backend.schema}.meta"
            if value is None:
                con.execute(f"DELETE FROM {table} WHERE name = %s", (name,))  # type: ignore[arg-type]
            else:
                con.execute(f"UPDATE {table} SET value = %s WHERE name = %s", (value, name))  # type: ignore[arg-type]


def test_a_catalog_of_another_format_is_refused_naming_the_upgrade(backend: Backend) -> None:
    backend.open().close()
    _set_meta(backend, "format_version", "1")
    with pytest.raises(FormatError, match=r"on-disk format 1.*koru upgrade"):
        open_catalog(backend.target)
    _set_meta(backend, "format_version", "3")
    with pytest.raises(FormatError, match="on-disk format 3"):
        open_catalog(backend.target, read_only=True)


def test_a_catalog_without_a_store_id_is_not_a_koru_catalog(backend: Backend) -> None:
    backend.open().close()
    _set_meta(backend, "store_id", None)
    with pytest.raises(CorruptionError, match="not a koru catalog"):
        open_catalog(backend.target)


def test_system_time_follows_the_draft_when_it_is_ahead(catalog: Catalog) -> None:
    ahead = time.time_ns() + 10**9
    assert catalog.record_commit(draft(0, system_time=ahead)).system_time == ahead
