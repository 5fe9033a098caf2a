"""Deep snapshots: a portable, self-verifying bundle of a store, and restoring one.

A bundle is a folder, taken in one catalog snapshot at the store's last commit::

    <bundle>/
      manifest.json                     format, source store id, head commit, time,
                                        per namespace: schema (Arrow IPC, base64),
                                        created/schema commit; tags; and for every
                                        other file of the bundle: bytes and blake3
      manifest.blake3                   blake3 hex of manifest.json's bytes
      commits.parquet                   the commit log, hash chain included
      namespaces/<ns>/versions.parquet  every stored (retained) full version, sorted
                                        by (_key, _valid_from, _commit), _valid_to filled
      namespaces/<ns>/pruned.parquet    the skeletons of pruned versions (if any)

It holds the retained versions (the distilled state), not the raw files, so it
is as small as the store's history after distillation and independent of how
the store happened to be tiered. :func:`restore` checks every hash before it
writes anything, then builds a new store whose versions, tiers (all cold, plus
deep skeletons), commit log and tags answer ``as_of``, ``history`` and
``verify`` exactly as the source did at its head.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import blake3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from koru_core._parquet import read_files, write_file
from koru_core._time import now_ns
from koru_core.catalog import Catalog, insert_file
from koru_core.errors import CorruptionError, InvalidInputError
from koru_core.lifecycle._swap import month_labels, part_name, write_part
from koru_core.lifecycle.consolidate import COLD_ROW_GROUP_ROWS
from koru_core.model import SYSTEM_SCHEMA
from koru_core.read import with_valid_to
from koru_core.scan import plan_scan, read_versions

__all__ = ["FORMAT", "read_manifest", "restore_bundle", "write_bundle"]

FORMAT = "koru-snapshot/1"
_COMMIT_COLUMNS = ("commit_number", "system_time", "actor", "run_id", "namespaces", "written", "unchanged",
                   "deleted", "hash", "prev_hash", "metadata")


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        msg = f"{what} {str(path)!r} exists and is not an empty folder"
        raise InvalidInputError(msg)


def write_bundle(root: Path, catalog: Catalog, bundle: Path) -> Path:
    """Write the snapshot bundle of the store in ``root`` to the new folder ``bundle``.

    Call with a reader lease held (the files read must not be vacuumed meanwhile).
    """
    _empty_target(bundle, "snapshot path")
    bundle.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, object]] = {}

    def put(rel: str, table: pa.Table) -> None:
        size, digest = write_file(table, bundle / rel, row_group_size=COLD_ROW_GROUP_ROWS)
        files[rel] = {"bytes": size, "blake3": digest, "rows": table.num_rows}

    with catalog.read() as con:
        head = catalog.head()[0]
        commits = con.execute(f"SELECT {', '.join(_COMMIT_COLUMNS)} FROM commits ORDER BY commit_number").fetchall()
        spaces = con.execute("SELECT name, schema, created_commit, schema_commit FROM namespaces ORDER BY name").fetchall()
        tags = dict(con.execute("SELECT name, commit_number FROM tags").fetchall())
        namespaces = {}
        for name, schema, created, schema_commit in spaces:
            plan = plan_scan(root, catalog, name)
            put(f"namespaces/{name}/versions.parquet", with_valid_to(read_versions(root, plan)))
            deep = [e for e in catalog.files(name) if e.tier == "deep"]
            if deep:
                skeleton = read_files(root, deep, schema=SYSTEM_SCHEMA)
                put(f"namespaces/{name}/pruned.parquet", skeleton.sort_by([("_key", "ascending"), ("_valid_from", "ascending")]))
            namespaces[name] = {"schema": base64.b64encode(schema).decode(), "created_commit": created,
                                "schema_commit": schema_commit}
    rows = [dict(zip(_COMMIT_COLUMNS, c)) for c in commits]
    put("commits.parquet", pa.Table.from_pylist(rows, schema=_commit_schema()))
    manifest = {"format": FORMAT, "store_id": catalog.store_id, "head_commit": head, "created": now_ns(),
                "namespaces": namespaces, "tags": tags, "files": files}
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.blake3").write_text(blake3.blake3(data).hexdigest() + "\n")
    return bundle


def _commit_schema() -> pa.Schema:
    return pa.schema([("commit_number", pa.int64()), ("system_time", pa.int64()), ("actor", pa.string()),
                      ("run_id", pa.string()), ("namespaces", pa.string()), ("written", pa.int64()),
                      ("unchanged", pa.int64()), ("deleted", pa.int64()), ("hash", pa.string()),
                      ("prev_hash", pa.string()), ("metadata", pa.string())])


def read_manifest(bundle: Path) -> dict:
    """Return the bundle's manifest after checking it and every file it lists.

    Raises:
        CorruptionError: a file is missing, or its size or blake3 differs; names it.
    """
    try:
        data = (bundle / "manifest.json").read_bytes()
        recorded = (bundle / "manifest.blake3").read_text().strip()
    except FileNotFoundError as e:
        msg = f"{bundle}: not a koru snapshot bundle ({e.filename} is missing)"
        raise CorruptionError(msg) from e
    if blake3.blake3(data).hexdigest() != recorded:
        msg = f"{bundle / 'manifest.json'}: blake3 differs from manifest.blake3 (edited or corrupted)"
        raise CorruptionError(msg)
    manifest = json.loads(data)
    if manifest.get("format") != FORMAT:
        msg = f"{bundle}: unknown snapshot format {manifest.get('format')!r} (expected {FORMAT!r})"
        raise CorruptionError(msg)
    for rel, info in manifest["files"].items():
        try:
            content = (bundle / rel).read_bytes()
        except FileNotFoundError as e:
            msg = f"{bundle / rel}: listed in the manifest but missing"
            raise CorruptionError(msg) from e
        if len(content) != info["bytes"] or blake3.blake3(content).hexdigest() != info["blake3"]:
            msg = f"{bundle / rel}: size or blake3 differs from the manifest (edited or corrupted)"
            raise CorruptionError(msg)
    return manifest


def restore_bundle(bundle: Path, root: Path) -> None:
    """Build a new store in ``root`` (missing or empty) from ``bundle``.

    Raises:
        CorruptionError: the bundle fails its hashes (nothing is written).
        InvalidInputError: ``root`` exists and is not an empty folder.
    """
    _empty_target(root, "store path")
    manifest = read_manifest(bundle)
    root.mkdir(parents=True, exist_ok=True)
    try:
        _restore(bundle, root, manifest)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _restore(bundle: Path, root: Path, manifest: dict) -> None:
    head = int(manifest["head_commit"])
    entries = []
    for name in manifest["namespaces"]:
        versions = pq.read_table(bundle / f"namespaces/{name}/versions.parquet")
        months = month_labels(versions["_valid_from"])
        for epoch in pc.unique(months).to_pylist():
            rel = f"cold/namespace={name}/epoch={epoch}/{part_name(head)}"
            part = versions.filter(pc.equal(months, epoch))
            entries.append(write_part(root, part, namespace=name, tier="cold", rel=rel, row_group_size=COLD_ROW_GROUP_ROWS))
        pruned = bundle / f"namespaces/{name}/pruned.parquet"
        if pruned.exists():
            rel = f"deep/namespace={name}/snapshot-{part_name(head).removeprefix('part-')}"
            entries.append(write_part(root, pq.read_table(pruned), namespace=name, tier="deep", rel=rel,
                                      row_group_size=COLD_ROW_GROUP_ROWS))
    commits = pq.read_table(bundle / "commits.parquet").to_pylist()
    catalog = Catalog(root / "catalog.sqlite")
    try:
        with catalog.write() as con:
            con.executemany(
                f"INSERT INTO commits ({', '.join(_COMMIT_COLUMNS)}) VALUES ({', '.join('?' * len(_COMMIT_COLUMNS))})",
                [tuple(c[k] for k in _COMMIT_COLUMNS) for c in commits],
            )
            for name, info in manifest["namespaces"].items():
                con.execute("INSERT INTO namespaces VALUES (?, ?, ?, ?)",
                            (name, base64.b64decode(info["schema"]), info["created_commit"], info["schema_commit"]))
            for entry in entries:
                insert_file(con, entry)
            con.executemany("INSERT INTO tags VALUES (?, ?)", list(manifest["tags"].items()))
    finally:
        catalog.close()
