"""A store shared by many machines: files on S3 (SeaweedFS), catalog in PostgreSQL (issue 15).

Through the public API: ``koru.open(url, catalog=, storage_options=)``, its errors,
compare-and-set puts, a transaction's read set, reader leases across "machines" (store
objects that share nothing but the URLs), and the CLI with ``--catalog``/``KORU_CATALOG``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from servers import SharedStore

import koru_core as koru

pytest.importorskip("psycopg")
ROOT = Path(__file__).parents[2]


# --- opening ----------------------------------------------------------------------


def test_an_object_store_without_a_catalog_is_refused_and_nothing_is_written(s3_bucket) -> None:  # noqa: ANN001
    with pytest.raises(koru.InvalidInputError, match=r"catalog='postgresql://"):
        koru.open(f"{s3_bucket.url}/lake", storage_options=s3_bucket.storage_options)
    import s3fs

    fs = s3fs.S3FileSystem(key=s3_bucket.storage_options["aws_access_key_id"],
                           secret=s3_bucket.storage_options["aws_secret_access_key"],
                           endpoint_url=s3_bucket.storage_options["aws_endpoint_url"], skip_instance_cache=True)
    assert fs.ls(s3_bucket.name) == []


@pytest.mark.parametrize(("options", "catalog", "match"), [
    ({"aws_endpoint": "x", "colour": "red"}, "PG", r"unknown key 'colour'"),
    ({"aws_region": 3}, "PG", r"must be a str"),
    (None, "sqlite:///tmp/x", r"postgresql:// URL"),
])
def test_bad_options_and_catalogs_are_typed_errors(shared_store: SharedStore, options: object, catalog: str,
                                                   match: str) -> None:
    with pytest.raises(koru.InvalidInputError, match=match):
        koru.open(shared_store.location, catalog=shared_store.catalog if catalog == "PG" else catalog,
                  storage_options=options)  # type: ignore[arg-type]


def test_a_missing_bucket_is_named(shared_store: SharedStore) -> None:
    with pytest.raises(koru.InvalidInputError, match=r"no bucket 'no-such-bucket-koru'"):
        koru.open("s3://no-such-bucket-koru/lake", catalog=shared_store.catalog,
                  storage_options=shared_store.storage_options)


def test_storage_options_are_refused_for_a_local_folder(tmp_path: Path) -> None:
    with pytest.raises(koru.InvalidInputError, match="storage_options are for an object-store"):
        koru.open(tmp_path / "s", storage_options={"aws_region": "x"})


def test_a_shared_store_answers_the_same_from_a_second_machine(shared_store: SharedStore) -> None:
    a = shared_store.open()
    try:
        assert a.path == shared_store.location
        assert a.storage_options is not None and a.storage_options["aws_endpoint_url"].startswith("http://127.0.0.1")
        v1 = a.put("users", "alice", {"age": 31})
        a.upsert("users", [{"id": f"u{i}", "age": i} for i in range(50)], key="id")
        a.consolidate()  # cold files on S3
        a.put("users", "alice", {"age": 32})
        b = shared_store.open(read_only=True)  # "another machine": only the URLs
        try:
            assert b.get("users", "alice")["age"] == 32
            assert b.get("users", "alice", version=v1.commit)["age"] == 31
            assert b.as_of("users").num_rows == 51
            assert [r["age"] for r in b.history("users", "alice").to_pylist()] == [31, 32]
            assert b.verify().is_ok
            with pytest.raises(koru.ReadOnlyError):
                b.put("users", "bob", {"age": 1})
        finally:
            b.close()
    finally:
        a.close()


def test_a_second_writer_object_commits_beside_the_first(shared_store: SharedStore) -> None:
    with shared_store.open() as a, shared_store.open() as b:
        for i in range(10):
            (a if i % 2 else b).put("t", f"k{i}", i)
        a.put("t", "k0", 100)  # a's hot tier must see b's commits
        assert a.get("t", "k0") == 100 and b.get("t", "k0") == 100
        assert sorted(a.keys("t")) == sorted(b.keys("t")) == [f"k{i}" for i in range(10)]
        assert [c.commit for c in a.commits()] == list(range(1, 12))


# --- compare-and-set and read sets ------------------------------------------------


def test_put_with_expected_version_is_a_compare_and_set(shared_store: SharedStore) -> None:
    with shared_store.open() as a, shared_store.open() as b:
        first = a.put("acct", "x", {"balance": 10}, expected_version=0)
        with pytest.raises(koru.ConflictError) as caught:
            b.put("acct", "x", {"balance": 99}, expected_version=0)
        assert (caught.value.key, caught.value.expected, caught.value.actual) == ("x", 0, first.commit)
        assert f"commit {first.commit}" in str(caught.value)
        second = b.put("acct", "x", {"balance": 20}, expected_version=first.commit)
        refused = rf"commit {second.commit}.*not its version of commit {first.commit}"
        with pytest.raises(koru.ConflictError, match=refused):
            a.put("acct", "x", {"balance": 30}, expected_version=first.commit)
        assert a.version() == second.commit  # the refused puts wrote nothing
        assert a.get("acct", "x") == {"balance": 20}
        with pytest.raises(koru.InvalidInputError, match="expected_version"):
            a.put("acct", "x", {"balance": 1}, expected_version=-1)


def test_expected_version_works_on_an_embedded_store_too(store: koru.Store) -> None:
    v = store.put("t", "k", 1)
    with pytest.raises(koru.ConflictError):
        store.put("t", "k", 2, expected_version=v.commit + 5)
    assert store.put("t", "k", 2, expected_version=v.commit).commit == v.commit + 1


def test_a_transaction_whose_read_key_changed_raises_and_writes_nothing(shared_store: SharedStore) -> None:
    with shared_store.open() as a, shared_store.open() as b:
        a.put("acct", "x", {"balance": 10})
        a.put("acct", "y", {"balance": 0})
        head = a.version()
        with pytest.raises(koru.ConflictError) as caught, a.transaction() as tx:
            x = tx.get("acct", "x")
            b.put("acct", "x", {"balance": 11})  # another writer, between the read and the commit
            tx.put("acct", "x", {"balance": x["balance"] - 5})
            tx.put("acct", "y", {"balance": 5})
        assert caught.value.key == "x" and caught.value.actual == head + 1
        assert a.version() == head + 1  # only b's put
        assert a.get("acct", "y") == {"balance": 0}
        with a.transaction() as tx:  # nobody interferes: it commits
            x = tx.get("acct", "x")
            tx.put("acct", "x", {"balance": x["balance"] - 5})
            tx.put("acct", "y", {"balance": 5})
        assert (a.get("acct", "x"), a.get("acct", "y")) == ({"balance": 6}, {"balance": 5})


def test_a_transaction_read_of_a_missing_key_conflicts_with_its_first_write(shared_store: SharedStore) -> None:
    with shared_store.open() as a, shared_store.open() as b:
        a.put("t", "other", 1)
        with pytest.raises(koru.ConflictError), a.transaction() as tx:
            with pytest.raises(koru.KeyNotFoundError):
                tx.get("t", "new")
            b.put("t", "new", 2)
            tx.put("t", "new", 3)
        assert a.get("t", "new") == 2


# --- leases across machines --------------------------------------------------------


def test_vacuum_on_one_machine_spares_files_a_reader_on_another_still_reads(shared_store: SharedStore) -> None:
    import koru_polars

    with shared_store.open(auto_consolidate=False) as writer:
        writer.upsert("t", [{"id": f"k{i}", "v": i} for i in range(100)], key="id")
        writer.consolidate()
        reader = shared_store.open(read_only=True)
        try:
            frame = koru_polars.scan_koru(reader, "t")  # plans now: lists the cold files and holds a lease
            writer.upsert("t", [{"id": f"k{i}", "v": -i} for i in range(100)], key="id")
            writer.consolidate()  # retires the files the frame lists
            kept = writer.vacuum(retain=timedelta(0))
            assert kept.files_after == kept.files_before  # the lease keeps the retired files
            assert sorted(frame.collect()["v"].to_list()) == list(range(100))
            del frame
            gc.collect()
            time.sleep(2.5)  # the reader's idle lease is released within about a second
            gone = writer.vacuum(retain=timedelta(0))
            assert gone.files_after < gone.files_before
        finally:
            reader.close()
        assert writer.verify().is_ok


# --- the CLI -----------------------------------------------------------------------


def _koru(shared: SharedStore, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **shared.env(), "PYTHONPATH": str(ROOT)}
    env.pop("KORU_STORE")
    env.pop("KORU_CATALOG")
    return subprocess.run([sys.executable, "-m", "koru_core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_cli_takes_the_url_and_catalog_from_options_or_environment(shared_store: SharedStore) -> None:
    put = _koru(shared_store, "--store", shared_store.location, "--catalog", shared_store.catalog,
                "put", "users", "alice", '{"age": 31}')
    assert put.returncode == 0, put.stderr
    env = {**os.environ, **shared_store.env(), "PYTHONPATH": str(ROOT)}
    got = subprocess.run([sys.executable, "-m", "koru_core.cli", "--json", "get", "users", "alice"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["age"] == 31
    no_catalog = _koru(shared_store, "--store", shared_store.location, "get", "users", "alice")
    assert no_catalog.returncode == 1
    assert "catalog='postgresql://" in no_catalog.stderr and "KORU_CATALOG" in no_catalog.stderr
