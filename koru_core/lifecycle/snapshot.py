"""Deep snapshots: a portable, self-verifying bundle of a store, and restoring one.

A bundle is a folder, taken in one catalog snapshot at the store's last commit::

    <bundle>/
      manifest.json                     format, source store id, head commit, content-id
                                        format, per namespace: schema (Arrow IPC, base64),
                                        key columns, created/schema commit; tags; and for
                                        every other file of the bundle: bytes and blake3
      manifest.blake3                   blake3 hex of manifest.json's bytes
      commits.parquet                   the commit log, hash chain included
      namespaces/<ns>/versions.parquet  every retained version, every system column
      namespaces/<ns>/pruned.parquet    the skeletons of pruned versions (if any)
      namespaces/<ns>/skips.parquet     the skip records (if any)

It holds the retained versions, not the raw files, so it is independent of how the
store happened to be tiered. Anyone can edit a bundle and recompute its manifest
hashes, so :func:`restore_bundle` trusts none of it: it accepts only the file names
above and namespace names koru accepts, recomputes every content id and the whole
commit hash chain from the versions, and writes nothing unless all of it holds. The
restored store answers ``as_of``, ``history`` and ``verify`` exactly as the source
did at its head.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from blake3 import blake3

from koru_core.catalog.entries import CommitRecord, FileEntry, NamespaceInfo
from koru_core.errors import CorruptionError, InvalidInputError, KoruError
from koru_core.input import check_namespace, check_new_namespaces
from koru_core.layout import COLD_SCHEMA, SKIP_SCHEMA
from koru_core.read import execute
from koru_core.read.plan import plan_versions

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["FORMAT", "read_manifest", "restore_bundle", "write_bundle"]

FORMAT = "koru-snapshot/2"
_KINDS = ("versions", "pruned", "skips")
_CHAINED = ["_key", "_valid_from", "_commit", "_write_id", "_prev_write_id", "_content_id", "_actor", "_run_id",
            "_parents"]
_CHAINED_SCHEMA = pa.schema([COLD_SCHEMA.field(c) for c in _CHAINED])
_COMMIT_SCHEMA = pa.schema([
    ("commit_number", pa.int64()), ("system_time", pa.int64()), ("actor", pa.string()), ("run_id", pa.string()),
    ("namespaces", pa.string()), ("written", pa.int64()), ("unchanged", pa.int64()), ("deleted", pa.int64()),
    ("first_write_id", pa.int64()), ("last_write_id", pa.int64()), ("hash", pa.string()),
    ("prev_hash", pa.string()), ("metadata", pa.string()),
])


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        msg = f"{what} {str(path)!r} exists and is not an empty folder"
        raise InvalidInputError(msg)


def _write(bundle: Path, rel: str, table: pa.Table, files: dict[str, Any]) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    data = sink.getvalue().to_pybytes()
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_bytes(data)
    files[rel] = {"bytes": len(data), "blake3": blake3(data).hexdigest(), "rows": table.num_rows}


def write_bundle(ctx: StoreContext, bundle: Path) -> Path:
    """Write a bundle of the store at its last commit into ``bundle`` (missing or empty).

    A bundle that cannot be written whole is removed (a folder that existed is emptied).

    Raises:
        InvalidInputError: ``bundle`` exists and is not an empty folder.
        StoreFullError: no space left for the bundle.
    """
    _empty_target(bundle, "snapshot path")
    existed = bundle.exists()
    bundle.mkdir(parents=True, exist_ok=True)
    try:
        return _write_bundle(ctx, bundle)
    except BaseException as e:
        if existed:
            for child in bundle.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(bundle, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            from koru_core.storage.local import full_disk

            raise full_disk(e, f"snapshot {str(bundle)!r}") from e
        raise


def _write_bundle(ctx: StoreContext, bundle: Path) -> Path:
    files: dict[str, Any] = {}
    with ctx.catalog.snapshot():
        head = ctx.catalog.head()[0]
        commits = ctx.catalog.commits()
        names = ctx.catalog.namespaces()
        infos = {n: ctx.catalog.namespace(n) for n in names}
        tags = ctx.catalog.tags()
    namespaces: dict[str, Any] = {}
    for name in names:
        info = infos[name]
        assert info is not None
        plan = plan_versions(ctx, name, version=head)
        versions = execute.versions(ctx, plan)
        _write(bundle, f"namespaces/{name}/versions.parquet", versions, files)
        deep = [e for e in ctx.catalog.files(name) if e.tier == "deep"]
        retention = "; ".join(dict.fromkeys(ctx.retention_of(e) for e in deep))
        if deep:
            skeleton = pa.concat_tables([ctx.files.read(e, COLD_SCHEMA.names) for e in deep])
            _write(bundle, f"namespaces/{name}/pruned.parquet", skeleton, files)
        skips = _skips(ctx, name, head)
        if skips.num_rows:
            _write(bundle, f"namespaces/{name}/skips.parquet", skips, files)
        namespaces[name] = {"schema": base64.b64encode(info.schema.serialize().to_pybytes()).decode(),
                            "key_columns": list(info.key_columns), "created_commit": info.created_commit,
                            "schema_commit": info.schema_commit, "retention": retention}
    rows = [{
        "commit_number": c.commit, "system_time": c.system_time, "actor": c.actor, "run_id": c.run_id,
        "namespaces": json.dumps(list(c.namespaces)), "written": c.written, "unchanged": c.unchanged,
        "deleted": c.deleted, "first_write_id": c.first_write_id, "last_write_id": c.last_write_id,
        "hash": c.hash.hex(), "prev_hash": c.prev_hash.hex() if c.prev_hash else None,
        "metadata": json.dumps(c.metadata, sort_keys=True) if c.metadata else None,
    } for c in commits]
    _write(bundle, "commits.parquet", pa.Table.from_pylist(rows, schema=_COMMIT_SCHEMA), files)
    manifest = {"format": FORMAT, "store_id": ctx.catalog.store_id, "head_commit": head,
                "content_format": ctx.content_format, "namespaces": namespaces, "tags": tags, "files": files}
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.blake3").write_text(blake3(data).hexdigest() + "\n")
    return bundle


def _skips(ctx: StoreContext, namespace: str, head: int) -> pa.Table:
    from koru_core.write.hotsync import commit_rows

    with ctx.catalog.snapshot():
        files = ctx.catalog.files(namespace)
        parts = [t for _, t in commit_rows(ctx, namespace, files, after=0, upto=head, kind="skips",
                                           columns=SKIP_SCHEMA.names)]
    parts += [ctx.files.read(e, SKIP_SCHEMA.names) for e in files if e.tier == "cold" and e.kind == "skips"]
    return pa.concat_tables([p.cast(SKIP_SCHEMA) for p in parts]) if parts else SKIP_SCHEMA.empty_table()


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Return the bundle's manifest after checking it, its names, and every file it lists.

    Raises:
        CorruptionError: a file is missing, unexpected, or its size or blake3 differs; names it.
        InvalidInputError: a namespace name koru would refuse.
    """
    try:
        data = (bundle / "manifest.json").read_bytes()
        recorded = (bundle / "manifest.blake3").read_text().strip()
    except FileNotFoundError as e:
        msg = f"{bundle}: not a koru snapshot bundle ({e.filename} is missing)"
        raise CorruptionError(msg) from e
    if blake3(data).hexdigest() != recorded:
        msg = f"{bundle / 'manifest.json'}: blake3 differs from manifest.blake3 (edited or corrupted)"
        raise CorruptionError(msg)
    try:
        manifest = json.loads(data)
    except ValueError as e:
        msg = f"{bundle / 'manifest.json'}: not JSON ({e})"
        raise CorruptionError(msg) from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else manifest
        msg = f"{bundle}: unknown snapshot format {got!r} (expected {FORMAT!r})"
        raise CorruptionError(msg)
    _check_shape(bundle, manifest)
    names = manifest["namespaces"]
    for name in names:
        check_namespace(name)
    check_new_namespaces(names, [])
    allowed = {"commits.parquet"} | {f"namespaces/{n}/{k}.parquet" for n in names for k in _KINDS}
    if "commits.parquet" not in manifest["files"]:
        msg = f"{bundle}: the manifest lists no commits.parquet"
        raise CorruptionError(msg)
    for rel, info in manifest["files"].items():
        if rel not in allowed:
            msg = f"{bundle}: the manifest lists {rel!r}, which is not a file a bundle holds"
            raise CorruptionError(msg)
        content = _read_bundle_file(bundle, rel)
        if not isinstance(info, dict) or len(content) != info.get("bytes") or blake3(content).hexdigest() != info.get("blake3"):
            msg = f"{bundle / rel}: size or blake3 differs from the manifest (edited or corrupted)"
            raise CorruptionError(msg)
    return manifest  # type: ignore[no-any-return]


def _read_bundle_file(bundle: Path, rel: str) -> bytes:
    """The bytes of a bundle file: a regular file, no symlink on its way inside the bundle."""
    path = bundle
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            msg = f"{path}: is a symlink; a bundle holds plain files only"
            raise CorruptionError(msg)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                msg = f"{path}: is not a regular file"
                raise CorruptionError(msg)
            return f.read()
    except FileNotFoundError as e:
        msg = f"{path}: listed in the manifest but missing"
        raise CorruptionError(msg) from e


def _check_shape(bundle: Path, m: dict[str, Any]) -> None:
    """Refuse a manifest whose fields are not of the types a bundle writes."""
    def bad(field: str) -> CorruptionError:
        return CorruptionError(f"{bundle / 'manifest.json'}: field {field!r} is malformed ({m.get(field)!r:.80})")

    if not isinstance(m.get("head_commit"), int) or isinstance(m.get("head_commit"), bool) or m["head_commit"] < 0:
        raise bad("head_commit")
    if m.get("content_format", 2) not in (1, 2):
        raise bad("content_format")
    if not isinstance(m.get("files"), dict):
        raise bad("files")
    if not isinstance(m.get("namespaces"), dict):
        raise bad("namespaces")
    for info in m["namespaces"].values():
        if not (isinstance(info, dict) and isinstance(info.get("schema"), str)
                and isinstance(info.get("key_columns", []), list)
                and all(isinstance(c, str) for c in info.get("key_columns", []))
                and all(isinstance(info.get(k), int) for k in ("created_commit", "schema_commit"))):
            raise bad("namespaces")
    tags = m.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(k, str) and k and isinstance(v, int) and not isinstance(v, bool)
                                             and 1 <= v <= m["head_commit"] for k, v in tags.items()):
        raise bad("tags")


def restore_bundle(bundle: Path, root: Path) -> None:
    """Build a new store in ``root`` (missing or empty) from ``bundle``.

    Raises:
        CorruptionError: the bundle fails its hashes, its content ids or its chain
            (nothing is written; names what failed).
        InvalidInputError: ``root`` exists and is not an empty folder, or a name is refused.
    """
    _empty_target(root, "store path")
    manifest = read_manifest(bundle)
    try:
        loaded = _load(bundle, manifest)
        _check(loaded, manifest)
    except (KeyError, TypeError, ValueError, pa.ArrowException) as e:  # columns or values of the wrong kind
        if isinstance(e, KoruError):
            raise
        msg = f"{bundle}: a bundle file does not hold what a snapshot writes ({type(e).__name__}: {e})"
        raise CorruptionError(msg) from e
    root.mkdir(parents=True, exist_ok=True)
    try:
        _restore(root, manifest, loaded)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _table(bundle: Path, manifest: dict[str, Any], rel: str) -> pa.Table:
    """A bundle file read once more (the bytes checked against the manifest again, so a file
    swapped after :func:`read_manifest` is not read)."""
    data = _read_bundle_file(bundle, rel)
    if blake3(data).hexdigest() != manifest["files"][rel]["blake3"]:
        msg = f"{bundle / rel}: changed while it was being restored"
        raise CorruptionError(msg)
    return pq.read_table(pa.BufferReader(data))


def _load(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"commits": _table(bundle, manifest, "commits.parquet").to_pylist(), "namespaces": {}}
    for name in manifest["namespaces"]:
        parts = {}
        for kind in _KINDS:
            rel = f"namespaces/{name}/{kind}.parquet"
            if rel in manifest["files"]:
                parts[kind] = _table(bundle, manifest, rel)
        out["namespaces"][name] = parts
    return out


def _check(loaded: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Recompute content ids and the chain; raise CorruptionError on the first mismatch."""
    from koru_core.chain import body_digest, chain_hash
    from koru_core.hashing import content_ids

    fmt = int(manifest.get("content_format", 2))
    by_commit: dict[int, list[tuple[str, pa.Table]]] = {}
    for name, parts in loaded["namespaces"].items():
        versions = parts.get("versions")
        if versions is not None and versions.num_rows:
            live = versions.filter(pc.invert(versions["_deleted"]))
            values = live.select([c for c in live.column_names if not c.startswith("_")])
            if not content_ids(values, format=fmt).equals(live["_content_id"].combine_chunks().cast(pa.binary(32))):
                msg = f"snapshot: namespace {name!r}: values do not match their content ids (edited)"
                raise CorruptionError(msg)
        for kind in ("versions", "pruned"):
            t = parts.get(kind)
            if t is None:
                continue
            t = t.select(_CHAINED).cast(_CHAINED_SCHEMA)
            for c in pc.unique(t["_commit"]).to_pylist():
                rows = t.filter(pc.equal(t["_commit"], c)).sort_by([("_write_id", "ascending")])
                by_commit.setdefault(c, []).append((name, rows))
    numbers = [row["commit_number"] for row in loaded["commits"]]
    head = int(manifest["head_commit"])
    if numbers != list(range(1, len(numbers) + 1)) or len(numbers) != head:
        msg = f"snapshot: the commit log holds commits {numbers[:3]}…, not 1..{head} (edited)"
        raise CorruptionError(msg)
    stray = sorted(c for c in by_commit if not 1 <= c <= head)
    for name, parts in loaded["namespaces"].items():
        skips = parts.get("skips")
        if skips is not None and skips.num_rows:
            commits = pc.unique(skips["_commit"]).to_pylist()
            stray += [c for c in commits if c is None or not 1 <= c <= head]
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(manifest["namespaces"][name]["schema"])))
        for t in parts.values():
            extra = [n for n in t.column_names if not n.startswith("_") and n not in schema.names]
            if extra:
                msg = f"snapshot: namespace {name!r}: columns {extra} are not in its schema (edited)"
                raise CorruptionError(msg)
    if stray:
        msg = f"snapshot: rows of commits {stray[:3]} that the commit log does not hold (edited)"
        raise CorruptionError(msg)
    prev = None
    for row in loaded["commits"]:
        c = row["commit_number"]
        parts = by_commit.get(c, [])
        merged: dict[str, list[pa.Table]] = {}
        for name, t in parts:
            merged.setdefault(name, []).append(t)
        body = body_digest([(n, pa.concat_tables(ts).sort_by([("_write_id", "ascending")])) for n, ts in merged.items()])
        stored_prev = bytes.fromhex(row["prev_hash"]) if row["prev_hash"] else None
        digest = chain_hash(stored_prev, commit=c, system_time=row["system_time"], body=body, actor=row["actor"],
                            run_id=row["run_id"], metadata=json.loads(row["metadata"]) if row["metadata"] else None)
        if stored_prev != prev or digest.hex() != row["hash"]:
            msg = f"snapshot: commit {c}: its hash does not match its versions or the commit before (edited)"
            raise CorruptionError(msg)
        prev = digest


def _restore(root: Path, manifest: dict[str, Any], loaded: dict[str, Any]) -> None:
    from koru_core.lifecycle.rebuild import NamespaceContent, build_store

    namespaces = []
    for name, info in manifest["namespaces"].items():
        parts = loaded["namespaces"][name]
        namespaces.append(NamespaceContent(
            name=name, schema=pa.ipc.read_schema(pa.py_buffer(base64.b64decode(info["schema"]))),
            key_columns=tuple(info.get("key_columns", ())), created_commit=info["created_commit"],
            schema_commit=info["schema_commit"], versions=parts.get("versions"), skips=parts.get("skips"),
            pruned=parts.get("pruned"), retention=str(info.get("retention", "")),
        ))
    commits = [CommitRecord(
        commit=r["commit_number"], system_time=r["system_time"], actor=r["actor"], run_id=r["run_id"],
        namespaces=tuple(json.loads(r["namespaces"])), written=r["written"], unchanged=r["unchanged"],
        deleted=r["deleted"], first_write_id=r["first_write_id"], last_write_id=r["last_write_id"],
        hash=bytes.fromhex(r["hash"]), prev_hash=bytes.fromhex(r["prev_hash"]) if r["prev_hash"] else None,
        metadata=json.loads(r["metadata"]) if r["metadata"] else {},
    ) for r in loaded["commits"]]
    build_store(root, content_format=int(manifest.get("content_format", 2)), namespaces=namespaces,
                commits=commits, tags=dict(manifest["tags"]))
