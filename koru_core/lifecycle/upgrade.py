"""Upgrading a store of on-disk format 1 into a new store of format 2 (``koru upgrade OLD NEW``).

koru of format 2 refuses to open a format-1 store (:class:`~koru_core.errors.FormatError`
names this command). :func:`upgrade` reads the old store without writing into it
(:class:`koru_core.catalog.format1.Format1Catalog` reads a private copy of its catalog
under a shared lock), checks every data file against the blake3 and size its catalog
recorded and every Parquet page checksum, and every pending blob against its blake3,
then writes a new store at ``NEW`` with :func:`koru_core.lifecycle.rebuild.build_store`
(the same path :func:`koru_core.restore` takes) and runs :func:`verify` on it. On any
failure it removes what it wrote; the old store is never changed.

What the new store holds, for every namespace:

- every version, full or pruned, with its values, key, valid time, system time,
  commit, write id, previous write id, content id, tombstone flag, actor, run id and
  parents, in the cold layout at the last commit (state and history files); every
  version distillation dropped in format 1 as a deep-tier skeleton, whose retention
  reads "distilled in on-disk format 1" (format 1 did not record the policies). The
  pruned span then raises :class:`~koru_core.errors.PrunedError` on an as-of read
  inside it, where format 1 answered silently from what was left;
- the value schema and the commits that created and last widened it. Format 1 kept no
  key columns: they are empty, so a composite key is given as its ``_key`` string
  (``"4|F"``) until an upsert with ``key=[…]`` records them;
- the commit log whole: numbers, system times, actors, run ids, namespaces, counts,
  metadata and hashes; tags and cursors.

Ids and hashes carry over unchanged (:mod:`koru_core.lifecycle.format1`): write ids
as the 8 bytes their 16 hex characters spell, content ids as their 32 bytes with the
store's content-id format set to 1 (so a re-put of an old value is recognised as
unchanged), and the commit hashes as they were: the catalog records that commits
1..n carry format-1 hashes (``meta.format1_commits``), ``verify`` checks them as format
1 did, and new commits chain on from the last one in format 2. An anchor kept
elsewhere (``verify(expected_head=…)``) still matches. Files the old catalog had retired
(replaced, not yet vacuumed), reader leases and the old ``head`` file are not data and
are left behind.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from blake3 import blake3

from koru_core.catalog.base import FORMAT_VERSION
from koru_core.catalog.entries import CommitRecord
from koru_core.catalog.format1 import Format1Catalog, Format1Commit, Format1File, Format1Namespace, Format1Pending
from koru_core.errors import CorruptionError, InvalidInputError
from koru_core.layout import COLD_SCHEMA
from koru_core.lifecycle import format1
from koru_core.lifecycle.rebuild import NamespaceContent, build_store
from koru_core.lifecycle.snapshot import _empty_target
from koru_core.model import TIMESTAMP
from koru_core.schema import conform

__all__ = ["RETENTION", "UpgradeResult", "upgrade"]

RETENTION = "distilled in on-disk format 1 (its policies were not recorded)"
"""The retention text of skeletons carried over from format 1 (PrunedError shows it)."""

_ORDER = [("_key", "ascending"), ("_valid_from", "ascending"), ("_commit", "ascending")]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeResult:
    """What :func:`upgrade` wrote.

    Attributes:
        source: The old store's folder (unchanged).
        store: The new store's folder.
        from_format, to_format: On-disk formats (1 → 2).
        commits: Commits carried over (numbers 1..commits).
        namespaces: Namespace names, sorted.
        versions: Full versions carried over.
        pruned: Skeletons of pruned versions carried over.
        head_hash: The last commit's hash (64 hex characters, as format 1 showed it), or None.
    """

    source: Path
    store: Path
    from_format: int
    to_format: int
    commits: int
    namespaces: tuple[str, ...]
    versions: int
    pruned: int
    head_hash: str | None


def upgrade(old_path: str | os.PathLike[str], new_path: str | os.PathLike[str], *,
            lock_timeout: float = 10.0) -> UpgradeResult:
    """Write a format-2 copy of the format-1 store ``old_path`` at ``new_path``.

    Args:
        old_path: A store of on-disk format 1; it is only read.
        new_path: A missing or empty folder, outside ``old_path``.
        lock_timeout: Seconds to wait for a format-1 writer to release the old store.

    Returns:
        An :class:`UpgradeResult`; open the new store with :func:`koru_core.open`.

    Raises:
        InvalidInputError: ``new_path`` is not a missing or empty folder, or lies inside
            ``old_path``; ``old_path`` is no store, or already of format 2.
        CorruptionError: an old data file or pending blob fails its size, blake3 or page
            checksums, an old id is malformed, or the new store fails ``verify`` (names
            what failed; nothing is left at ``new_path``).
        FormatError: ``old_path`` is of a format other than 1 and 2.
        StoreLockedError: a format-1 writer held the old store for ``lock_timeout`` s.

    Example:
        >>> upgrade(store.path, store.path.parent / "copy")  # a store of format 2
        Traceback (most recent call last):
        koru_core.errors.InvalidInputError: '...' is already a store of on-disk format 2; there is nothing to upgrade
    """
    old, new = Path(old_path).absolute(), Path(new_path).absolute()
    if new == old or old in new.parents:
        msg = f"the new store {str(new)!r} must lie outside the old store {str(old)!r}"
        raise InvalidInputError(msg)
    with Format1Catalog(old, timeout=lock_timeout) as catalog:
        _empty_target(new, "new store path")
        commits = catalog.commits()
        files, pending = catalog.files(), catalog.pending()
        contents = [_namespace(old, ns, files, pending, commits) for ns in catalog.namespaces()]
        tags, cursors, store_id = catalog.tags(), catalog.cursors(), catalog.store_id
    _check_unique_write_ids(contents)
    existed = new.exists()
    new.mkdir(parents=True, exist_ok=True)
    try:
        meta = {format1.META_COMMITS: str(len(commits)), "upgraded_from": f"format 1, store {store_id}"}
        build_store(new, content_format=1, namespaces=contents, commits=_commit_records(commits, contents),
                    tags=tags, cursors=cursors, meta=meta)
        _verify(old, new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        if existed:
            new.mkdir(parents=True, exist_ok=True)
        raise
    return UpgradeResult(
        source=old, store=new, from_format=1, to_format=FORMAT_VERSION, commits=len(commits),
        namespaces=tuple(c.name for c in contents),
        versions=sum(c.versions.num_rows for c in contents if c.versions is not None),
        pruned=sum(c.pruned.num_rows for c in contents if c.pruned is not None),
        head_hash=commits[-1].hash if commits else None,
    )


def _namespace(root: Path, ns: Format1Namespace, files: list[Format1File], pending: list[Format1Pending],
               commits: list[Format1Commit]) -> NamespaceContent:
    """Read one namespace's versions and skeletons, checked, in format 2's columns."""
    system_times = {c.commit: c.system_time for c in commits}
    full: list[pa.Table] = []
    skeletons: list[pa.Table] = []
    for entry in files:
        if entry.namespace != ns.name:
            continue
        table = _read_file(root, entry)
        where = f"{root / entry.path} ({entry.tier} file of namespace {ns.name!r})"
        (skeletons if entry.tier == "deep" else full).append(_format2(table, ns.schema, system_times, where))
    for blob in pending:
        if blob.namespace != ns.name:
            continue
        where = f"{root / 'catalog.sqlite'} (pending versions of namespace {ns.name!r}, commit {blob.commit})"
        if blake3(blob.data).hexdigest() != blob.checksum:
            msg = f"{where}: blake3 checksum differs from the catalog's (corrupted)"
            raise CorruptionError(msg)
        try:
            table = pa.ipc.open_stream(blob.data).read_all()
        except pa.ArrowException as e:
            msg = f"{where}: unreadable Arrow IPC data"
            raise CorruptionError(msg) from e
        full.append(_format2(table, ns.schema, system_times, where))
    schema = pa.schema([*COLD_SCHEMA, *ns.schema])
    versions = pa.concat_tables(full) if full else schema.empty_table()
    pruned = None
    if skeletons:
        pruned = _pruned_intervals(versions, pa.concat_tables(skeletons))
    return NamespaceContent(name=ns.name, schema=ns.schema, created_commit=ns.created_commit,
                            schema_commit=ns.schema_commit, versions=versions, pruned=pruned, retention=RETENTION)


def _read_file(root: Path, entry: Format1File) -> pa.Table:
    """A format-1 data file, after its size, blake3 and page checksums (CorruptionError names it)."""
    path = root / entry.path
    where = f"{path} ({entry.tier} file of namespace {entry.namespace!r})"
    if root not in Path(os.path.normpath(path)).parents:
        msg = f"{where}: the catalog lists a path outside the store"
        raise CorruptionError(msg)
    try:
        data = path.read_bytes()
    except OSError as e:
        msg = f"{where}: missing or unreadable: {e}"
        raise CorruptionError(msg) from e
    if len(data) != entry.bytes:
        msg = f"{where}: {len(data)} bytes, the catalog recorded {entry.bytes} (edited or truncated)"
        raise CorruptionError(msg)
    if blake3(data).hexdigest() != entry.checksum:
        msg = f"{where}: blake3 checksum differs from the catalog's (edited or corrupted)"
        raise CorruptionError(msg)
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        msg = f"{where}: unreadable: {e}"
        raise CorruptionError(msg) from e
    if table.num_rows != entry.rows:
        msg = f"{where}: {table.num_rows} rows, the catalog recorded {entry.rows}"
        raise CorruptionError(msg)
    return table


def _format2(table: pa.Table, values: pa.Schema, system_times: dict[int, int], where: str) -> pa.Table:
    """Format-1 stored columns (hex ids) → :data:`COLD_SCHEMA` (binary ids, intervals null) + values."""
    n = table.num_rows
    missing = [c for c in COLD_SCHEMA.names if c not in table.column_names and not c.startswith("_valid_to")]
    if missing:
        msg = f"{where}: system columns {missing} are missing"
        raise CorruptionError(msg)
    try:
        ids = {
            "_write_id": format1.write_ids(table["_write_id"]),
            "_prev_write_id": format1.write_ids(table["_prev_write_id"]),
            "_content_id": format1.content_ids(table["_content_id"]),
        }
    except ValueError as e:
        msg = f"{where}: a write id or content id is malformed: {e}"
        raise CorruptionError(msg) from e
    columns = []
    for field in COLD_SCHEMA:
        if field.name in ids:
            columns.append(ids[field.name])
        elif field.name in ("_valid_to", "_valid_to_commit"):
            columns.append(pa.nulls(n, field.type))
        else:
            columns.append(table[field.name].cast(field.type))
    system = pa.table(columns, schema=pa.schema([f.with_nullable(True) for f in COLD_SCHEMA]))
    expected = pc.index_in(system["_commit"], value_set=pa.array(list(system_times), pa.int64()))
    times = pa.array(list(system_times.values()), pa.int64()).take(expected).cast(TIMESTAMP)
    if pc.any(pc.is_null(expected)).as_py() or not pc.all(pc.equal(times, system["_system_from"])).as_py():
        msg = f"{where}: versions whose commit is not in the commit log, or whose system time is not their commit's"
        raise CorruptionError(msg)
    value_names = [f.name for f in values]
    present = table.select([c for c in value_names if c in table.column_names])
    out = conform(present, values)
    for i, field in enumerate(COLD_SCHEMA):
        out = out.add_column(i, field, system.column(i))
    return out


def _pruned_intervals(versions: pa.Table, skeletons: pa.Table) -> pa.Table:
    """Skeletons with ``_valid_to``/``_valid_to_commit`` computed over every version of their keys."""
    from koru_core.lifecycle.consolidate import _intervals

    names = COLD_SCHEMA.names
    both = pa.concat_tables([
        versions.select(names).append_column("__pruned", pa.repeat(pa.scalar(False), versions.num_rows)),
        skeletons.select(names).append_column("__pruned", pa.repeat(pa.scalar(True), skeletons.num_rows)),
    ]).sort_by(_ORDER)
    both = _intervals(both)
    return both.filter(both["__pruned"]).select(names)


def _write_id_ints(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.frombuffer(arr.buffers()[1], dtype=">i8", count=len(arr), offset=arr.offset * 8).astype(np.int64)


def _check_unique_write_ids(contents: list[NamespaceContent]) -> None:
    ids = np.concatenate([_write_id_ints(t["_write_id"]) for c in contents for t in (c.versions, c.pruned)
                          if t is not None] or [np.empty(0, np.int64)])
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = [f"{int(v):016x}" for v in values[counts > 1][:3]]
        msg = f"the old store holds versions with the same write id more than once: {', '.join(dup)}"
        raise CorruptionError(msg)


def _commit_records(commits: list[Format1Commit], contents: list[NamespaceContent]) -> list[CommitRecord]:
    """The format-1 commit log as :class:`CommitRecord` rows, with each commit's write-id range."""
    ranges: dict[int, tuple[int, int]] = {}
    for c in contents:
        for t in (c.versions, c.pruned):
            if t is None or not t.num_rows:
                continue
            ids = pa.table({"c": t["_commit"], "w": pa.array(_write_id_ints(t["_write_id"]))})
            agg = ids.group_by("c").aggregate([("w", "min"), ("w", "max")])
            for number, lo, hi in zip(agg["c"].to_pylist(), agg["w_min"].to_pylist(), agg["w_max"].to_pylist(),
                                      strict=True):
                old = ranges.get(number, (lo, hi))
                ranges[number] = (min(old[0], lo), max(old[1], hi))
    return [
        CommitRecord(
            commit=c.commit, system_time=c.system_time, actor=c.actor, run_id=c.run_id, namespaces=c.namespaces,
            written=c.written, unchanged=c.unchanged, deleted=c.deleted,
            first_write_id=ranges[c.commit][0] if c.commit in ranges else None,
            last_write_id=ranges[c.commit][1] if c.commit in ranges else None,
            hash=bytes.fromhex(c.hash), prev_hash=bytes.fromhex(c.prev_hash) if c.prev_hash else None,
            metadata=c.metadata,
        )
        for c in commits
    ]


def _verify(old: Path, new: Path) -> None:
    from koru_core.store import open as open_store

    with open_store(new, create=False, auto_consolidate=False) as store:
        report = store.verify()
    if not report.is_ok:
        more = len(report.problems) - 5
        shown = "; ".join(report.problems[:5]) + (f"; and {more} more" if more > 0 else "")
        msg = f"{old}: the upgraded copy fails verification, so nothing was kept: {shown}"
        raise CorruptionError(msg)
