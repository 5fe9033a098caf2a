"""Issue 17: the on-disk format version, and ``koru upgrade`` from format 1.

The fixture ``tests/data/format1-store`` is a real format-1 store, written by the code
of commit 5bfbcff (``tests/data/make_format1_store.py``). Expected values are read from
it here with plain sqlite3 and pyarrow (``_Old`` below), never through the upgrade
code, and the as-of rule is restated from DESIGN.md over those rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _cli_run import koru_cli, ok, one_line_error
from blake3 import blake3

import koru_core as koru
from koru_core.lifecycle.upgrade import RETENTION, upgrade

FIXTURE = Path(__file__).parents[1] / "data" / "format1-store"
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
DAY = 86_400 * 10**9
T0_NS = int(T0.timestamp()) * 10**9
SYSTEM = ["_key", "_valid_from", "_system_from", "_commit", "_write_id", "_prev_write_id", "_content_id", "_deleted",
          "_actor", "_run_id", "_parents"]


class _Old:
    """What the format-1 store holds, read with sqlite3 (immutable: nothing written) and pyarrow."""

    def __init__(self, root: Path) -> None:
        con = sqlite3.connect(f"file:{root / 'catalog.sqlite'}?mode=ro&immutable=1", uri=True)
        try:
            assert dict(con.execute("SELECT name, value FROM meta"))["format_version"] == "1"
            self.commits = con.execute(
                "SELECT commit_number, system_time, actor, run_id, namespaces, written, unchanged, deleted, hash, "
                "prev_hash, metadata FROM commits ORDER BY commit_number").fetchall()
            files = con.execute("SELECT namespace, tier, path FROM files").fetchall()
            pending = con.execute("SELECT namespace, data FROM pending").fetchall()
            self.tags = dict(con.execute("SELECT name, commit_number FROM tags").fetchall())
            self.cursors = dict(con.execute("SELECT name, commit_number FROM cursors").fetchall())
        finally:
            con.close()
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.pruned: dict[str, list[dict[str, Any]]] = {}
        for ns, tier, path in files:
            rows = _rows(pq.read_table(root / path))
            (self.pruned if tier == "deep" else self.versions).setdefault(ns, []).extend(rows)
        for ns, data in pending:
            self.versions.setdefault(ns, []).extend(_rows(pa.ipc.open_stream(data).read_all()))

    def as_of(self, ns: str, t: int, c: int) -> dict[str, dict[str, Any]]:
        """DESIGN.md's rule: per key the version with the largest (valid, commit) among valid <= t,
        commit <= c; tombstones dropped. Pruned versions count (the caller checks PrunedError)."""
        best: dict[str, dict[str, Any]] = {}
        for r in [*self.versions.get(ns, []), *self.pruned.get(ns, [])]:
            if r["_valid_from"] <= t and r["_commit"] <= c:
                k = r["_key"]
                if k not in best or (r["_valid_from"], r["_commit"]) > (best[k]["_valid_from"], best[k]["_commit"]):
                    best[k] = r
        return best


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with times as int ns, value columns apart (``value``: None fields dropped)."""
    for name in ("_valid_from", "_system_from"):
        table = table.set_column(table.column_names.index(name), name, table[name].cast(pa.int64()))
    out = []
    for row in table.to_pylist():
        value = {k: v for k, v in row.items() if not k.startswith("_") and v is not None}
        out.append({**{k: row[k] for k in SYSTEM}, "value": None if row["_deleted"] else value})
    return out


def _folder_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A private copy of the format-1 fixture (the tests never open the committed one)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "old.koru"))


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Old, koru.Store]]:
    """The fixture upgraded once, opened read-only, with what the old store held."""
    root = tmp_path_factory.mktemp("upgrade")
    source = Path(shutil.copytree(FIXTURE, root / "old.koru"))
    upgrade(source, root / "new.koru")
    store = koru.open(root / "new.koru", read_only=True)
    try:
        yield _Old(source), store
    finally:
        store.close()


def test_the_fixture_is_a_real_format1_store_of_every_kind_of_data() -> None:
    """The fixture holds what the upgrade must carry: cold, warm and deep files, pending versions,
    retired files, tags, cursors, metadata (else the tests below would prove little)."""
    con = sqlite3.connect(f"file:{FIXTURE / 'catalog.sqlite'}?mode=ro&immutable=1", uri=True)
    try:
        tiers = {t for (t,) in con.execute("SELECT DISTINCT tier FROM files")}
        assert tiers == {"warm", "cold", "deep"}
        assert con.execute("SELECT count(*) FROM pending").fetchone()[0] >= 3
        assert con.execute("SELECT count(*) FROM retired").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM commits WHERE metadata IS NOT NULL").fetchone()[0] >= 2
    finally:
        con.close()
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 300_000


def test_opening_a_format1_store_names_the_upgrade(old: Path) -> None:
    """koru.open (read-write or read-only) refuses a format-1 store with FormatError naming `koru upgrade`."""
    before = sorted(p.name for p in old.iterdir())
    for read_only in (False, True):
        with pytest.raises(koru.FormatError, match=r"on-disk format 1") as info:
            koru.open(old, read_only=read_only)
        assert f"`koru upgrade {old} {old.with_name(old.name + '-v2')}`" in str(info.value)
    assert sorted(p.name for p in old.iterdir()) == before, "a refused open left files in the old store"


@pytest.mark.parametrize("meta", ["format 3", "no meta"])
def test_other_format_versions_are_refused(store: koru.Store, meta: str) -> None:
    """The format version is checked on open: a newer format, or a catalog with none, is FormatError."""
    path = store.path
    store.close()
    con = sqlite3.connect(path / "catalog.sqlite")
    with con:
        if meta == "format 3":
            con.execute("UPDATE meta SET value = '3' WHERE name = 'format_version'")
        else:
            con.execute("DROP TABLE meta")
    con.close()
    with pytest.raises(koru.FormatError, match="koru upgrade" if meta == "no meta" else "on-disk format 3"):
        koru.open(path)


def test_a_new_store_records_format_2(store: koru.Store) -> None:
    store.put("users", "a", {"x": 1})
    catalog = store._ctx.catalog
    assert (catalog.format_version, catalog.content_format, catalog.format1_commits) == (2, 2, 0)


def test_the_upgraded_store_records_its_formats(upgraded: tuple[_Old, koru.Store]) -> None:
    old, store = upgraded
    catalog = store._ctx.catalog
    assert (catalog.format_version, catalog.content_format, catalog.format1_commits) == (2, 1, len(old.commits))


VALID_DAYS = [-31, -30, -1, 0, 1, 2, 3, 4, 5, 6, 9, 10, 12, 15, 16, 25, 30, 41, 45, 50, 1000]


@pytest.mark.parametrize("ns", ["users", "people", "events", "notes", "readings"])
def test_every_as_of_answer_equals_the_old_store(upgraded: tuple[_Old, koru.Store], ns: str) -> None:
    """At many valid times and every commit, the as-of state (values, valid time, commit, write id)
    equals the rule applied to the format-1 store's rows; where the rule's choice is a version
    format 1 distilled, the new store refuses with PrunedError naming the retention."""
    old, store = upgraded
    wrote = [c[0] for c in old.commits if ns in json.loads(c[4])]  # the commits that wrote ns, and each one before
    heads = sorted({n for c in wrote for n in (c - 1, c) if n} | {len(old.commits)})
    pruned = {p["_write_id"] for p in old.pruned.get(ns, [])}
    checked = refused = 0
    for c in heads:
        for d in VALID_DAYS:
            t = T0_NS + d * DAY
            expected = old.as_of(ns, t, c)
            if any(r["_write_id"] in pruned for r in expected.values()):
                with pytest.raises(koru.PrunedError, match=re.escape(RETENTION)):
                    store.as_of(ns, at=T0 + dt.timedelta(days=d), version=c)
                refused += 1
                continue
            got = store.as_of(ns, at=T0 + dt.timedelta(days=d), version=c, sort=True)
            want = {k: r for k, r in expected.items() if not r["_deleted"]}
            assert got["_key"].to_pylist() == sorted(want), (c, d)
            for row in _rows_of_answer(got):
                r = want[row["_key"]]
                assert (row["value"], row["_valid_from"], row["_commit"], row["_write_id"]) == (
                    r["value"], r["_valid_from"], r["_commit"], r["_write_id"]), (c, d, row["_key"])
            checked += 1
    assert checked > 40
    assert (refused > 0) == (ns == "events")


def _rows_of_answer(table: pa.Table) -> list[dict[str, Any]]:
    table = table.set_column(table.column_names.index("_valid_from"), "_valid_from",
                             table["_valid_from"].cast(pa.int64()))
    return [{**{k: v for k, v in r.items() if k.startswith("_")},
             "value": {k: v for k, v in r.items() if not k.startswith("_") and v is not None}}
            for r in table.to_pylist()]


def test_the_current_state_equals_the_old_store(upgraded: tuple[_Old, koru.Store]) -> None:
    old, store = upgraded
    for ns in old.versions:
        want = {k: r["value"] for k, r in old.as_of(ns, 2**62, 10**9).items() if not r["_deleted"]}
        got = {r["_key"]: r["value"] for r in _rows_of_answer(store.as_of(ns))}
        assert got == want, ns


def test_history_keeps_every_system_column(upgraded: tuple[_Old, koru.Store]) -> None:
    """Every version of every key, pruned ones included: valid and system time, commit, write id,
    previous write id, content id, tombstone, actor, run id, parents and value, as format 1 held them."""
    old, store = upgraded
    for ns in old.versions:
        rows = [*old.versions[ns], *old.pruned.get(ns, [])]
        for key in sorted({r["_key"] for r in rows})[::40 if ns == "readings" else 1]:
            want = sorted((r for r in rows if r["_key"] == key), key=lambda r: (r["_valid_from"], r["_commit"]))
            got = _rows(store.history(ns, key))
            assert [{k: r[k] for k in SYSTEM} for r in got] == [{k: r[k] for k in SYSTEM} for r in want], (ns, key)
            pruned = {r["_write_id"] for r in old.pruned.get(ns, [])}
            assert [r["value"] for r in got if r["_write_id"] not in pruned] == [
                r["value"] for r in want if r["_write_id"] not in pruned], (ns, key)
    history = store.history("events", "e1")
    assert history["_pruned"].to_pylist() == [True, True, True, False, False]


def test_the_commit_log_equals_the_old_one(upgraded: tuple[_Old, koru.Store]) -> None:
    """Numbers, system times, actors, run ids, namespaces, counts, metadata and hashes, unchanged."""
    old, store = upgraded
    got = store.commits()
    assert len(got) == len(old.commits)
    for c, (number, t, actor, run_id, names, written, unchanged, deleted, digest, _prev, meta) in zip(
            got, old.commits, strict=True):
        assert (c.commit, c.actor, c.run_id, c.namespaces, c.written, c.unchanged, c.deleted, c.metadata, c.hash) == (
            number, actor, run_id, tuple(json.loads(names)), written, unchanged, deleted,
            json.loads(meta) if meta else {}, digest)
        assert c.system_time == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=t // 1000)
    assert got[8].metadata == {"source": "crm", "batch": "7"}
    assert store.commit_at(got[8].system_time) == 9


def test_tags_cursors_and_schemas_carry_over(old: Path, tmp_path: Path) -> None:
    upgrade(old, tmp_path / "new.koru")
    reference = _Old(old)
    with koru.open(tmp_path / "new.koru") as store:
        assert store._ctx.catalog.tags() == reference.tags == {"release-1": 9}
        events = list(store.watch(name="dashboard", timeout=0))  # resumes after the cursor, commit 6
        assert [e.commit for e in events][:1] == [reference.cursors["dashboard"] + 1]
        assert store.schema("users").names == ["name", "age", "nick", "email"]
        assert store.key_columns("people") == ()  # format 1 recorded none
        assert store.get("people", "4|F") == {"loc": 4, "sex": "F", "n": 11}


def test_verify_passes_and_checks_the_format1_hashes(old: Path, tmp_path: Path) -> None:
    """verify() passes on the upgraded store, and still matches an anchor of the old head hash;
    an edit of a carried-over commit (system time: in its format-1 hash; actor: not in it, checked
    against the versions) is reported."""
    result = upgrade(old, tmp_path / "new.koru")
    assert result.head_hash == _Old(old).commits[-1][8]
    with koru.open(tmp_path / "new.koru") as store:
        report = store.verify(expected_head=result.head_hash)
        assert report.is_ok, report.problems
        assert report.commits_checked == 24 and report.versions_checked == 1129
    con = sqlite3.connect(tmp_path / "new.koru" / "catalog.sqlite")
    with con:
        con.execute("UPDATE commits SET system_time = system_time + 1 WHERE commit_number = 3")
        con.execute("UPDATE commits SET actor = 'mallory' WHERE commit_number = 7")
    con.close()
    with koru.open(tmp_path / "new.koru") as store:
        problems = store.verify().problems
    assert any(p.startswith("commit 3: format-1 hash does not match") for p in problems), problems
    assert any(p.startswith("commit 7: actor in the commit log is 'mallory'") for p in problems), problems


def test_new_writes_chain_on_and_compare_with_format1_content_ids(old: Path, tmp_path: Path) -> None:
    """New commits work on an upgraded store: a re-put of an old value is unchanged (the store
    hashes with content-id format 1), a new value gets the old value's content id, the chain goes on
    from the last format-1 hash, and verify still passes."""
    reference = _Old(old)
    upgrade(old, tmp_path / "new.koru")
    dave = next(r for r in reference.versions["users"] if r["_key"] == "dave")
    alice = max((r for r in reference.versions["users"] if r["_key"] == "alice"), key=lambda r: r["_valid_from"])
    with koru.open(tmp_path / "new.koru") as store:
        assert store.put("users", "alice", alice["value"]).is_unchanged
        assert store.put("users", "dave", dave["value"], valid_from=T0 + dt.timedelta(days=12)).is_unchanged
        result = store.upsert("people", [{"loc": 4, "sex": "M", "n": 13}, {"loc": 5, "sex": "M", "n": 1}],
                              key=["loc", "sex"])
        assert (result.written, result.unchanged) == (1, 1)
        v = store.put("users", "zed", dave["value"], actor="after")
        assert v.content_id == dave["_content_id"] and v.commit == 26
        w = store.put("users", "alice", {"name": "Alice", "age": 34})
        assert w.prev_write_id == alice["_write_id"]
        old_ids = {r["_write_id"] for rows in reference.versions.values() for r in rows}
        assert len({v.write_id, w.write_id} | old_ids) == len(old_ids) + 2 == 1128
        store.consolidate()
        commits = store.commits()
        assert commits[24].commit == 25 and commits[23].hash == reference.commits[-1][8]
        report = store.verify()
        assert report.is_ok, report.problems
        assert {k: v for k, v in store.get("users", "zed").items() if v is not None} == dave["value"]


def test_the_old_store_is_never_written(old: Path, tmp_path: Path) -> None:
    """Not a byte of the old store changes, and no file (e.g. SQLite's -shm) appears in it."""
    before = _folder_digest(old)
    upgrade(old, tmp_path / "new.koru")
    assert _folder_digest(old) == before


def test_commits_still_in_the_old_catalogs_wal_are_carried(old: Path, tmp_path: Path) -> None:
    """The old catalog is read with its write-ahead log: a change not yet checkpointed into
    catalog.sqlite (a format-1 process still has it open) is in the new store."""
    con = sqlite3.connect(old / "catalog.sqlite", isolation_level=None)
    try:
        con.execute("PRAGMA wal_autocheckpoint = 0")
        con.execute("INSERT INTO tags VALUES ('late', 3)")
        assert "late" not in _Old(old).tags  # not in catalog.sqlite itself: only in its -wal
        upgrade(old, tmp_path / "new.koru")
    finally:
        con.close()
    with koru.open(tmp_path / "new.koru", read_only=True) as store:
        assert store._ctx.catalog.tags() == {"release-1": 9, "late": 3}


def test_a_format1_writer_holding_the_old_store_is_waited_for(old: Path, tmp_path: Path) -> None:
    """While a format-1 writer holds write.lock, the upgrade waits, then gives StoreLockedError."""
    import fcntl

    with open(old / "write.lock", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(koru.StoreLockedError, match="write lock"):
            upgrade(old, tmp_path / "new.koru", lock_timeout=0.2)
    assert not (tmp_path / "new.koru").exists()
    assert upgrade(old, tmp_path / "new.koru").commits == 24


def test_a_non_empty_target_is_refused(old: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(koru.InvalidInputError, match="not an empty folder"):
        upgrade(old, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    with pytest.raises(koru.InvalidInputError, match="outside the old store"):
        upgrade(old, old / "inside")
    assert not (old / "inside").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert upgrade(old, empty).commits == 24  # a missing or empty folder is fine


def test_a_format2_store_is_not_upgraded(store: koru.Store, tmp_path: Path) -> None:
    store.put("users", "a", {"x": 1})
    with pytest.raises(koru.InvalidInputError, match="already a store of on-disk format 2"):
        upgrade(store.path, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage(old: Path, how: str) -> str:
    """Damage the old store; returns what the error must name."""
    cold = next((old / "cold" / "namespace=users").rglob("*.parquet"))
    warm = next((old / "warm").rglob("*.parquet"))
    if how == "cold file byte":
        _flip_byte(cold)
        return cold.name
    if how == "warm file truncated":
        warm.write_bytes(warm.read_bytes()[:-100])
        return warm.name
    if how == "file removed":
        cold.unlink()
        return cold.name
    con = sqlite3.connect(old / "catalog.sqlite")
    with con:
        if how == "pending blob":
            (data,) = con.execute("SELECT data FROM pending WHERE commit_number = 17").fetchone()
            bad = bytearray(data)
            bad[-20] ^= 0xFF
            con.execute("UPDATE pending SET data = ? WHERE commit_number = 17", (bytes(bad),))
            what = "commit 17"
        else:  # a value edited and its file's checksum recomputed: only the content ids can tell
            table = pq.read_table(cold)
            ages = [a + 1 if a is not None else None for a in table["age"].to_pylist()]
            table = table.set_column(table.column_names.index("age"), "age", pa.array(ages, table["age"].type))
            pq.write_table(table, cold, compression="zstd", write_page_checksum=True)
            data = cold.read_bytes()
            con.execute("UPDATE files SET bytes = ?, checksum = ? WHERE path LIKE ?",
                        (len(data), blake3(data).hexdigest(), f"%{cold.name}"))
            what = "do not match their content ids"
    con.close()
    return what


@pytest.mark.parametrize("how", ["cold file byte", "warm file truncated", "file removed", "pending blob",
                                 "value and checksum edited"])
def test_a_damaged_old_store_fails_and_leaves_nothing(old: Path, tmp_path: Path, how: str) -> None:
    """A file or blob that fails its checksum, a missing file, or a value edited behind its
    checksum: CorruptionError naming it, and no new store left behind (a given empty folder stays empty)."""
    needle = _damage(old, how)
    for target in (tmp_path / "new.koru", tmp_path / "given"):
        if target.name == "given":
            target.mkdir()
        with pytest.raises(koru.CorruptionError, match=needle.replace(".", r"\.")):
            upgrade(old, target)
        assert not target.exists() if target.name == "new.koru" else not any(target.iterdir())


def test_koru_upgrade_on_the_command_line(old: Path, tmp_path: Path) -> None:
    """`koru upgrade OLD NEW` through a real subprocess; OLD then still names the command, NEW works."""
    err = one_line_error(koru_cli("log", store=old), "koru upgrade")
    assert "format 1" in err
    out = ok(koru_cli("upgrade", str(old), str(tmp_path / "new.koru")))
    assert "24 commits, 5 namespaces, 1,126 versions, 3 pruned; verified" in out
    one_line_error(koru_cli("upgrade", str(old), str(tmp_path / "new.koru")), "not an empty folder")
    listing = json.loads(ok(koru_cli("--json", "upgrade", str(old), str(tmp_path / "second"))))
    assert listing["commits"] == 24 and listing["from_format"] == 1 and listing["to_format"] == 2
