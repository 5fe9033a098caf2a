"""Hostile bundles, planted symlinks and colliding names (issue 12 items 12, 13 and 14).

Before: ``restore`` wrote outside its target (a bundle's namespace names were not
validated: ``b/escaped/...``), and an edited bundle with recomputed manifest hashes
restored silently; a symlink named ``head`` made ``open()`` overwrite 8 bytes of
another file, a symlinked ``readers/`` let vacuum delete files elsewhere, a dangling
``write.lock`` created its target; ``__koru_versions_users`` returned the rows of
``users`` in DuckDB and ``__koru_pending_users`` broke ``connect()``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from blake3 import blake3

import koru_core as koru
from koru_core.hashing import content_ids


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    with koru.open(tmp_path / "src") as s:
        s.put("a", "k1", {"v": 1})
        s.put("a", "k2", {"v": 2})
        s.put("b", "x", {"name": "x"})
        return s.snapshot(tmp_path / "bundle")


def rewrite_manifest(bundle: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit the manifest and recompute every hash a forger can recompute."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    edit(manifest)
    for rel in list(manifest["files"]) if isinstance(manifest.get("files"), dict) else []:
        try:
            data = (bundle / rel).read_bytes()
        except OSError:  # missing, or a name too long for the file system
            continue
        manifest["files"][rel].update(bytes=len(data), blake3=blake3(data).hexdigest())
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.blake3").write_text(blake3(data).hexdigest() + "\n")


def nothing_written(tmp_path: Path, target: Path) -> None:
    assert not target.exists() or not any(target.iterdir()), "restore wrote into its target"
    outside = [p for p in tmp_path.rglob("*escaped*") if tmp_path / "bundle" not in p.parents]
    assert not outside, outside


# -- item 12: restore -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["b/escaped", "../escaped", "..", "a b", "__koru_x", "n" * 300, "Ab"])
def test_restore_refuses_a_bundle_with_a_bad_namespace_name(bundle: Path, tmp_path: Path, name: str) -> None:
    """Issue 12 item 12: every namespace name of the manifest is validated (and the files
    it names must be the ones a bundle holds), so nothing is written outside the target."""
    def edit(m: dict) -> None:  # type: ignore[type-arg]
        if name == "Ab":  # two names SQL cannot tell apart: "B" next to "b"
            m["namespaces"]["B"] = m["namespaces"]["b"]
            return
        m["namespaces"][name] = m["namespaces"].pop("b")
        m["files"][f"namespaces/{name}/versions.parquet"] = m["files"].pop("namespaces/b/versions.parquet")

    rewrite_manifest(bundle, edit)
    target = tmp_path / "restored"
    with pytest.raises((koru.InvalidInputError, koru.CorruptionError)):
        koru.restore(bundle, target)
    nothing_written(tmp_path, target)


@pytest.mark.parametrize("rel", ["../outside.parquet", "namespaces/a/../../outside.parquet", "/etc/passwd",
                                 "namespaces/a/extra.parquet"])
def test_restore_refuses_files_a_bundle_does_not_hold(bundle: Path, tmp_path: Path, rel: str) -> None:
    """Issue 12 item 12: only the file names a bundle writes are accepted."""
    rewrite_manifest(bundle, lambda m: m["files"].__setitem__(rel, {"bytes": 1, "blake3": "0" * 64, "rows": 0}))
    with pytest.raises(koru.CorruptionError, match="not a file a bundle holds"):
        koru.restore(bundle, tmp_path / "restored")
    nothing_written(tmp_path, tmp_path / "restored")


def _edit_versions(bundle: Path, namespace: str, edit) -> None:  # type: ignore[no-untyped-def]
    path = bundle / f"namespaces/{namespace}/versions.parquet"
    pq.write_table(edit(pq.read_table(path)), path)


def test_restore_recomputes_content_ids_of_an_edited_bundle(bundle: Path, tmp_path: Path) -> None:
    """Issue 12 item 12: a value edited, the manifest's hashes recomputed: the content id
    no longer matches, and restore refuses (anyone can recompute the manifest)."""
    _edit_versions(bundle, "a", lambda t: t.set_column(t.column_names.index("v"), "v", pa.array([1, 99], pa.int64())))
    rewrite_manifest(bundle, lambda m: None)
    with pytest.raises(koru.CorruptionError, match="content ids"):
        koru.restore(bundle, tmp_path / "restored")
    nothing_written(tmp_path, tmp_path / "restored")


def test_restore_recomputes_the_chain_of_an_edited_bundle(bundle: Path, tmp_path: Path) -> None:
    """Issue 12 item 12: a value *and* its content id edited consistently: the commit hash
    chain no longer holds, and restore refuses; so it does for an edited commit row."""
    def edit(t: pa.Table) -> pa.Table:
        t = t.set_column(t.column_names.index("v"), "v", pa.array([1, 99], pa.int64()))
        ids = content_ids(t.select(["v"]))
        return t.set_column(t.column_names.index("_content_id"), "_content_id", ids.cast(t.schema.field("_content_id").type))

    _edit_versions(bundle, "a", edit)
    rewrite_manifest(bundle, lambda m: None)
    with pytest.raises(koru.CorruptionError, match="hash"):
        koru.restore(bundle, tmp_path / "restored")
    nothing_written(tmp_path, tmp_path / "restored")


@pytest.mark.parametrize("edit", [
    {"head_commit": "3; drop"}, {"head_commit": 2}, {"files": None}, {"namespaces": []},
    {"tags": {"t": 99}}, {"tags": {"t": "x"}},
])
def test_restore_refuses_a_malformed_manifest(bundle: Path, tmp_path: Path, edit: dict) -> None:  # type: ignore[type-arg]
    """Issue 12 item 12: fields of the wrong type or out of range are CorruptionError, never a crash."""
    rewrite_manifest(bundle, lambda m: m.update(edit))
    with pytest.raises(koru.CorruptionError):
        koru.restore(bundle, tmp_path / "restored")
    nothing_written(tmp_path, tmp_path / "restored")


def test_restore_refuses_a_symlink_in_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """Issue 12 item 12: a bundle file that is a symlink is refused, never followed."""
    target = bundle / "namespaces/a/versions.parquet"
    elsewhere = tmp_path / "elsewhere.parquet"
    shutil.move(target, elsewhere)
    target.symlink_to(elsewhere)
    with pytest.raises(koru.CorruptionError, match="symlink"):
        koru.restore(bundle, tmp_path / "restored")


def test_an_untouched_bundle_restores(bundle: Path, tmp_path: Path) -> None:
    rewrite_manifest(bundle, lambda m: None)  # recomputing unchanged hashes changes nothing
    with koru.restore(bundle, tmp_path / "restored") as s:
        assert s.get("a", "k2") == {"v": 2} and s.verify().is_ok


# -- item 13: symlinks inside the store ----------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"precious" * 100)
    (folder / "old.lease").write_bytes(b"\x00" * 8)
    return folder


def unchanged(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["old.lease", "precious.txt"]
    assert (victim / "precious.txt").read_bytes() == b"precious" * 100


def test_a_symlink_named_head_is_never_written(tmp_path: Path, victim: Path) -> None:
    """Issue 12 item 13: format 2 keeps no ``head`` file (the catalog is the truth); a
    symlink planted under that name is never followed, read or written."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("t", "k", {"v": 1})
    (path / "head").symlink_to(victim / "precious.txt")
    with koru.open(path) as s:
        s.put("t", "k", {"v": 2})
        s.consolidate()
        assert s.get("t", "k") == {"v": 2}
    unchanged(victim)


@pytest.mark.parametrize("planted", ["garbage", "folder"])
def test_a_damaged_head_file_does_not_make_a_healthy_store_unopenable(tmp_path: Path, planted: str) -> None:
    """Issue 12 item 11: a damaged ``head`` file made a healthy store unopenable (blaming the
    catalog) and the fix was deleting it by hand. Format 2 keeps no ``head`` file: whatever
    lies under that name is ignored and left as it is."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("t", "k", {"v": 1})
    if planted == "garbage":
        (path / "head").write_bytes(b"\xff" * 8)
    else:
        (path / "head").mkdir()
    with koru.open(path) as s:
        assert s.get("t", "k") == {"v": 1}
        s.put("t", "k", {"v": 2})
        assert s.verify().is_ok
    assert (path / "head").is_dir() if planted == "folder" else (path / "head").read_bytes() == b"\xff" * 8


def test_a_symlinked_readers_folder_is_never_followed(tmp_path: Path, victim: Path) -> None:
    """Issue 12 item 13: vacuum deleted "dead" lease files in the folder a planted
    ``readers`` symlink pointed at. Now reads go on without a lease file, vacuum refuses
    (it cannot see the leases), and nothing elsewhere is touched."""
    path = tmp_path / "s"
    with koru.open(path, auto_consolidate=False) as s:
        s.put("t", "k", {"v": 1})
    shutil.rmtree(path / "readers", ignore_errors=True)
    (path / "readers").symlink_to(victim)
    with koru.open(path, auto_consolidate=False) as s:
        assert s.get("t", "k") == {"v": 1} and s.as_of("t").num_rows == 1
        with pytest.raises(koru.CorruptionError, match="readers"):
            s.vacuum(retain=timedelta(0))
    unchanged(victim)


def test_a_dangling_write_lock_symlink_does_not_create_its_target(tmp_path: Path) -> None:
    """Issue 12 item 13: a dangling ``write.lock`` symlink created its target; now the
    write is refused with a typed error and nothing is created."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("t", "k", {"v": 1})
    (path / "write.lock").unlink()
    target = tmp_path / "created-by-koru"
    (path / "write.lock").symlink_to(target)
    with koru.open(path) as s:
        with pytest.raises(koru.CorruptionError, match="write.lock"):
            s.put("t", "k", {"v": 2})
        assert s.get("t", "k") == {"v": 1}
    assert not target.exists()


@pytest.mark.parametrize("planted", ["write.lock-dir", "readers-file"])
def test_files_of_the_wrong_kind_give_typed_errors(tmp_path: Path, planted: str) -> None:
    """Issue 12 small ones: ``write.lock`` replaced by a folder gave IsADirectoryError,
    ``readers`` replaced by a file FileExistsError on every read."""
    path = tmp_path / "s"
    with koru.open(path) as s:
        s.put("t", "k", {"v": 1})
    if planted == "write.lock-dir":
        (path / "write.lock").unlink()
        (path / "write.lock").mkdir()
        with koru.open(path) as s:
            assert s.get("t", "k") == {"v": 1}
            with pytest.raises(koru.CorruptionError, match="write.lock"):
                s.put("t", "k", {"v": 2})
    else:
        shutil.rmtree(path / "readers", ignore_errors=True)
        (path / "readers").write_text("x")
        with koru.open(path) as s:
            assert s.get("t", "k") == {"v": 1} and s.as_of("t").num_rows == 1
            assert s.put("t", "k", {"v": 2}).commit == 2
            with pytest.raises(koru.CorruptionError, match="readers"):
                s.vacuum()


@pytest.mark.parametrize("link", ["cold", "cold/namespace=t"])
def test_a_symlinked_data_folder_is_refused_and_nothing_elsewhere_is_deleted(tmp_path: Path, victim: Path,
                                                                             link: str) -> None:
    """Issue 12 item 13: a data folder replaced by a symlink: reads refuse it (naming it)
    and vacuum deletes nothing through it."""
    path = tmp_path / "s"
    with koru.open(path, auto_consolidate=False) as s:
        s.upsert("t", pa.table({"id": [f"k{i}" for i in range(2000)], "v": list(range(2000))}), key="id")
        s.consolidate()
    real = path / link
    shutil.copytree(real, victim / "copy")
    shutil.rmtree(real)
    real.symlink_to(victim / "copy")
    before = sorted(p.name for p in (victim / "copy").rglob("*"))
    with koru.open(path, auto_consolidate=False) as s:
        with pytest.raises(koru.CorruptionError, match="symlink"):
            s.as_of("t")
        try:
            s.vacuum(retain=timedelta(0))
        except koru.CorruptionError:
            pass
    assert sorted(p.name for p in (victim / "copy").rglob("*")) == before


def test_a_symlinked_vector_folder_is_never_written(tmp_path: Path, victim: Path) -> None:
    """Issue 12 item 13: the vector index is never written, read or deleted through a symlink."""
    pytest.importorskip("hnswlib")
    path = tmp_path / "s"
    s = koru.open(path)
    vectors = pa.array([[1.0, 0.0], [0.0, 1.0]], pa.list_(pa.float32(), 2))
    s.upsert("docs", pa.table({"id": ["a", "b"], "e": vectors}), key="id")
    (path / "vector").symlink_to(victim)
    from koru_core.vector import nearest

    saved = nearest.EXACT_BELOW
    nearest.EXACT_BELOW = 1
    try:
        with pytest.raises(koru.CorruptionError, match="symlink"):
            s.search("docs", [1.0, 0.0], k=1)
    finally:
        nearest.EXACT_BELOW = saved
    s.close()
    unchanged(victim)


# -- item 14: names that collide with koru_duckdb's ----------------------------------------------


@pytest.mark.parametrize("name", ["__koru_versions_users", "__koru_pending_users", "__KORU_at_sql_1", "__koru"])
def test_the_koru_prefix_is_reserved(store: koru.Store, name: str) -> None:
    """Issue 12 item 14: namespaces named like koru_duckdb's internals are refused."""
    with pytest.raises(koru.InvalidInputError, match="reserved"):
        store.put(name, "k", {"v": 1})
    with pytest.raises(koru.InvalidInputError, match="reserved"):
        store.upsert(name, [{"id": "k", "v": 1}], key="id")
    assert store.namespaces() == []


def test_namespaces_that_differ_only_in_case_are_refused(store: koru.Store) -> None:
    """Issue 12 item 14: ``Users`` next to ``users`` read as one table in DuckDB (which
    resolves names without case): the second is refused, before anything is written."""
    store.put("users", "a", {"v": 1})
    for name in ("Users", "USERS"):
        with pytest.raises(koru.InvalidInputError, match="only in case"):
            store.put(name, "b", {"v": 2})
    with pytest.raises(koru.InvalidInputError, match="only in case"):
        with store.transaction() as tx:
            tx.put("other", "k", {"v": 1})
            tx.put("Other", "k", {"v": 1})
    assert store.namespaces() == ["users"] and store.version() == 1


def test_duckdb_names_of_koru_and_of_namespaces_do_not_collide(store: koru.Store) -> None:
    """Issue 12 item 14: namespaces named like koru's macros or DuckDB's functions read as
    their own views, and the macros still work."""
    pytest.importorskip("duckdb")
    import koru_duckdb

    for ns in ("koru_at", "koru_commits", "query", "read_parquet", "users"):
        store.put(ns, "k", {"name": ns})
    con = koru_duckdb.connect(store)
    for ns in ("koru_at", "koru_commits", "query", "read_parquet", "users"):
        assert con.sql(f'SELECT name FROM "{ns}"').fetchall() == [(ns,)]
        assert con.sql(f"SELECT name FROM koru_at('{ns}')").fetchall() == [(ns,)]
    assert con.sql("SELECT count(*) FROM koru_commits()").fetchall() == [(5,)]
    con.close()


def test_remaining_names_still_work(tmp_path: Path) -> None:
    """The checks refuse only what they must: a long name up to the limit, names with
    underscores and digits, and a namespace re-written under its own name."""
    with koru.open(tmp_path / "s") as s:
        for name in ("_koru", "koru__x", "a1_b2", "_" * 3):
            s.put(name, "k", {"v": 1})
            s.put(name, "k", {"v": 2})
        assert s.namespaces() == sorted(["_koru", "koru__x", "a1_b2", "___"])
        assert os.path.isdir(tmp_path / "s")
        assert pc.sum(s.as_of("a1_b2")["v"]).as_py() == 2
        assert base64 and json  # (imports used above)
