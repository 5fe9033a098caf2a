"""Verification and tamper evidence: recompute what the catalog and the files claim.

:func:`verify` checks, in one catalog snapshot:

1. every listed data file: present, not a symlink, size and blake3 of its bytes
   equal to the catalog's, readable (Parquet page checksums), row count as recorded;
2. every pending blob: blake3 equal to its recorded checksum, decodable;
3. every full version (files and pending): its content id recomputed in the store's
   content-id format (:mod:`koru_core.hashing`) over its value columns, and a null
   content id for a tombstone; write ids unique across the store;
4. the commit log: numbers 1..n without gaps, each ``prev_hash`` equal to the
   previous commit's ``hash``, each ``hash`` equal to
   :func:`koru_core.chain.chain_hash` over the digest of that commit's versions
   (pruned versions keep every chained column in the deep tier, so distillation does
   not break the chain), and the commit row's namespaces, actor, run id and counts
   equal to what its versions say. In a store upgraded from on-disk format 1, commits
   1..``format1_commits`` (catalog meta) keep their format-1 hashes: each is checked
   with :func:`koru_core.lifecycle.format1.chain_hash` (write ids, content ids, system
   time), and its versions' actor and run id against the commit row;
5. no data file on disk was written at a commit after the catalog's last one
   (consolidated and deep files carry the commit they were written at in their names):
   such a file means the catalog was replaced by an older copy;
6. every vector index (:func:`koru_core.vector.integrity.check_indexes`): its files'
   checksums and structure, and its vectors and write ids against the data;
7. with ``expected_head``: the log holds a commit with that hash (an anchor kept
   elsewhere, e.g. Dagster's event log), so a rewrite of files, checksums *and* the
   whole chain, or a catalog rolled back to an older copy, is caught too.

Each problem is one line naming the file, commit, namespace or write id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from blake3 import blake3

from koru_core._hex import to_hex
from koru_core.catalog.blobs import decode_blob
from koru_core.catalog.entries import FileEntry
from koru_core.chain import body_digest, chain_hash
from koru_core.errors import CorruptionError, KoruError
from koru_core.hashing import content_ids
from koru_core.model import TIMESTAMP, VerifyReport

if TYPE_CHECKING:
    from koru_core.catalog.entries import CommitRecord
    from koru_core.context import StoreContext

__all__ = ["verify"]

_CHAIN = ["_key", "_valid_from", "_commit", "_write_id", "_prev_write_id", "_content_id", "_deleted", "_actor", "_run_id",
          "_parents"]
_SHOW = 3  # write ids named per problem


def verify(ctx: StoreContext, *, expected_head: str | None = None) -> VerifyReport:
    """Verify the store (see module docstring); never raises for what it finds."""
    problems: list[str] = []
    with ctx.catalog.snapshot():
        files = ctx.catalog.files()
        commits = ctx.catalog.commits()
        blobs = [b for ns in ctx.catalog.namespaces() for b in ctx.catalog.pending(ns)]
    parts: list[pa.Table] = []
    for entry in files:
        table = _check_file(ctx, entry, problems)
        if table is None or entry.kind == "skips":
            continue
        if entry.commit is not None:
            table = table.append_column("_commit", pa.repeat(pa.scalar(entry.commit, pa.int64()), table.num_rows))
        if entry.tier != "deep":
            _check_content_ids(ctx, table, f"{entry.path} (namespace {entry.namespace!r})", problems)
        parts.append(_chained(table, entry.namespace))
    for blob in blobs:
        where = f"pending versions of namespace {blob.namespace!r}, commit {blob.commit}"
        try:
            table = decode_blob(blob, where=ctx.catalog.url)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        table = table.append_column("_commit", pa.repeat(pa.scalar(blob.commit, pa.int64()), table.num_rows))
        _check_content_ids(ctx, table, where, problems)
        parts.append(_chained(table, blob.namespace))
    versions = pa.concat_tables(parts) if parts else _chained(None, "")
    _check_chain(commits, versions, problems, format1_commits=ctx.catalog.format1_commits)
    _check_newer_files(ctx, commits[-1].commit if commits else 0, problems)
    from koru_core.vector.integrity import check_indexes

    problems += check_indexes(ctx)
    if expected_head is not None and expected_head not in {c.hash.hex() for c in commits}:
        problems.append(
            f"expected head {expected_head!r}: no commit has that hash (the store was rewritten, or the "
            "anchor belongs to another store)"
        )
    return VerifyReport(
        is_ok=not problems, problems=tuple(problems), commits_checked=len(commits),
        files_checked=len(files), versions_checked=versions.num_rows,
    )


_WRITTEN_AT = re.compile(r"^(?:cold|deep)/namespace=[^/]+/[a-z]+-(\d{9})-[0-9a-f]+\.parquet$")


def _check_newer_files(ctx: StoreContext, head: int, problems: list[str]) -> None:
    """Data files written at a commit after ``head``: the catalog is an older copy."""
    newer = []
    for folder in ("cold", "deep"):
        for rel, _, _ in ctx.storage.walk(folder):
            m = _WRITTEN_AT.match(rel)
            if m and int(m.group(1)) > head:
                newer.append((int(m.group(1)), rel))
    if newer:
        newer.sort()
        problems.append(
            f"{len(newer)} data file(s) on disk were written at commits up to {newer[-1][0]}, newer than the "
            f"catalog's last commit {head} (e.g. {newer[-1][1]}): the catalog was replaced by an older copy"
        )


def _check_file(ctx: StoreContext, entry: FileEntry, problems: list[str]) -> pa.Table | None:
    where = f"{entry.path} ({entry.tier} file of namespace {entry.namespace!r})"
    try:
        data = ctx.storage.read(entry.path)
    except (CorruptionError, OSError) as e:
        problems.append(f"{where}: missing or unreadable (removed?): {e}")
        return None
    if len(data) != entry.bytes:
        problems.append(f"{where}: {len(data)} bytes, the catalog recorded {entry.bytes} (edited or truncated)")
    elif blake3(data).digest() != entry.checksum:
        problems.append(f"{where}: blake3 checksum differs from the catalog's (edited or corrupted)")
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        problems.append(f"{where}: unreadable: {e}")
        return None
    if table.num_rows != entry.rows:
        problems.append(f"{where}: {table.num_rows} rows, the catalog recorded {entry.rows}")
    return table


def _ids(table: pa.Table, mask: pa.Array) -> str:
    ids = to_hex(table["_write_id"].filter(mask)).to_pylist()
    more = f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else ""
    return ", ".join(map(str, ids[:_SHOW])) + more


def _check_content_ids(ctx: StoreContext, table: pa.Table, where: str, problems: list[str]) -> None:
    deleted = table["_deleted"].combine_chunks()
    stored = table["_content_id"].combine_chunks()
    bad_tomb = pc.and_(deleted, pc.is_valid(stored))
    if pc.any(bad_tomb).as_py():
        problems.append(f"{where}: tombstones with a content id: write ids {_ids(table, bad_tomb)}")
    idx = pc.indices_nonzero(pc.invert(deleted))
    # take, then select: a table of no value columns (``put(ns, key, {})``) keeps its row count
    values = table.take(idx).select([n for n in table.column_names if not n.startswith("_")])
    try:
        recomputed = content_ids(values, format=ctx.content_format)
    except KoruError as e:
        problems.append(f"{where}: content ids cannot be computed: {e}")
        return
    differs = pc.fill_null(pc.not_equal(recomputed, stored.take(idx)), True)
    if pc.any(differs).as_py():
        problems.append(
            f"{where}: values do not match their content ids (edited): write ids {_ids(table.take(idx), differs)}"
        )


def _chained(table: pa.Table | None, namespace: str) -> pa.Table:
    schema = pa.schema([
        ("_key", pa.string()), ("_valid_from", TIMESTAMP), ("_commit", pa.int64()), ("_write_id", pa.binary(8)),
        ("_prev_write_id", pa.binary(8)), ("_content_id", pa.binary(32)), ("_deleted", pa.bool_()),
        ("_actor", pa.string()), ("_run_id", pa.string()), ("_parents", pa.list_(pa.string())),
        ("namespace", pa.string()),
    ])
    if table is None:
        return schema.empty_table()
    cols = [table[c].cast(schema.field(c).type) for c in _CHAIN]
    return pa.table([*cols, pa.repeat(pa.scalar(namespace), table.num_rows)], schema=schema)


def _check_chain(commits: list, versions: pa.Table, problems: list[str], *, format1_commits: int = 0) -> None:
    # value_counts, not group_by: Acero's hash aggregate on fixed_size_binary(8) keys that
    # differ in their last bytes (sequential write ids) takes minutes at 10^5 rows
    counts = pc.value_counts(versions["_write_id"].combine_chunks())
    dup = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        problems.append(f"write ids stored more than once: {', '.join(to_hex(dup).to_pylist()[:_SHOW])}")
    order = versions.sort_by([("_commit", "ascending"), ("_write_id", "ascending")])
    numbers = order["_commit"].to_numpy()
    by_commit: dict[int, tuple[int, int]] = {}
    if len(numbers):
        starts = np.flatnonzero(np.diff(numbers, prepend=numbers[0] - 1))
        ends = np.append(starts[1:], len(numbers))
        by_commit = {int(numbers[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    prev_hash, expected = None, 1
    for c in commits:
        where = f"commit {c.commit}"
        if c.commit != expected:
            problems.append(f"{where}: commits {expected}..{c.commit - 1} are missing from the commit log")
        expected = c.commit + 1
        if c.prev_hash != prev_hash:
            problems.append(f"{where}: prev_hash does not equal the previous commit's hash (commit log edited)")
        s, e = by_commit.pop(c.commit, (0, 0))
        rows = order.slice(s, e - s)
        if c.commit <= format1_commits:
            _check_format1_commit(where, c, rows, problems)
            prev_hash = c.hash
            continue
        parts = [(ns, rows.filter(pc.equal(rows["namespace"], ns))) for ns in sorted(set(rows["namespace"].to_pylist()))]
        body = body_digest(parts)
        if chain_hash(c.prev_hash, commit=c.commit, system_time=c.system_time, body=body, actor=c.actor,
                      run_id=c.run_id, metadata=c.metadata) != c.hash:
            problems.append(
                f"{where}: hash does not match its versions and its commit row (a version, or the commit's "
                "system time, actor, run id or metadata, was edited or removed)"
            )
        _check_commit_row(where, c, rows, problems)
        prev_hash = c.hash
    for number in sorted(by_commit):
        problems.append(f"commit {number}: versions of it are stored but the commit log has no such commit")


def _check_format1_commit(where: str, c: CommitRecord, rows: pa.Table, problems: list[str]) -> None:
    """A commit carried over from on-disk format 1: its format-1 hash, then what that hash does not cover."""
    from koru_core.lifecycle import format1

    digest = format1.chain_hash(c.prev_hash, commit=c.commit, system_time=c.system_time,
                                write_id=rows["_write_id"].combine_chunks(),
                                content_id=rows["_content_id"].combine_chunks())
    if digest != c.hash:
        problems.append(
            f"{where}: format-1 hash does not match its versions and its commit row (a write id, a content id "
            "or the commit's system time was edited, or a version removed)"
        )
    for name in ("actor", "run_id"):
        recorded, stored = getattr(c, name), set(rows[f"_{name}"].to_pylist())
        if rows.num_rows and stored != {recorded}:
            problems.append(f"{where}: {name} in the commit log is {recorded!r}, its versions say {sorted(stored, key=str)}")
    _check_commit_row(where, c, rows, problems)


def _check_commit_row(where: str, c: object, rows: pa.Table, problems: list[str]) -> None:
    n_deleted = pc.sum(rows["_deleted"].cast(pa.int64())).as_py() or 0
    facts = {
        "written/deleted": ({(c.written, c.deleted)}, {(rows.num_rows - n_deleted, n_deleted)}),  # type: ignore[attr-defined]
    }
    if rows.num_rows:
        facts["namespaces with versions"] = (
            {ns for ns in c.namespaces} & set(rows["namespace"].to_pylist()) or set(),  # type: ignore[attr-defined]
            set(rows["namespace"].to_pylist()),
        )
    for name, (recorded, actual) in facts.items():
        if recorded != actual:
            problems.append(f"{where}: {name} in the commit log is {sorted(recorded, key=str)}, its versions say {sorted(actual, key=str)}")
