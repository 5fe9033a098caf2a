"""Verification and tamper evidence: recompute what the catalog and the files claim.

:func:`verify` checks, in one catalog snapshot:

1. every listed data file: present, size and blake3 of its bytes equal to the
   catalog's, readable (Parquet page checksums), row count as recorded;
2. every pending blob: blake3 equal to its recorded checksum, decodable;
3. every full version (files and pending): its content id recomputed with
   :func:`koru_core.hashing.content_ids` over its value columns (null columns
   and widened types do not change ids), and a null content id for a tombstone;
   write ids unique across the store;
4. the commit log: numbers 1..n without gaps, each ``prev_hash`` equal to the
   previous commit's ``hash``, each ``hash`` equal to
   :func:`koru_core.write.commit_hash` recomputed from the versions of that
   commit (pruned versions keep their write and content ids in the deep tier,
   so distillation does not break the chain), and the commit row's system time,
   actor, run id, namespaces and counts equal to what its versions say.

Each problem is one line naming the file, commit, namespace or write id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from koru_core.catalog import Catalog, FileEntry, decode_table
from koru_core.errors import CorruptionError, KoruError
from koru_core.hashing import content_ids
from koru_core.model import SYSTEM_SCHEMA, VerifyReport
from koru_core.write import commit_hash

__all__ = ["verify"]

_CHAIN_COLUMNS = ("_commit", "_write_id", "_content_id", "_deleted", "_system_from", "_actor", "_run_id")
_SHOW = 3  # write ids named per problem


def verify(root: Path, catalog: Catalog) -> VerifyReport:
    """Verify the store in ``root`` (see module docstring); never raises for what it finds."""
    problems: list[str] = []
    with catalog.read() as con:
        files = catalog.all_files()
        commits = con.execute(
            "SELECT commit_number, system_time, actor, run_id, namespaces, written, deleted, hash, prev_hash "
            "FROM commits ORDER BY commit_number"
        ).fetchall()
        pending = con.execute("SELECT namespace, commit_number, data, checksum FROM pending").fetchall()
    parts: list[pa.Table] = []
    for entry in files:
        table = _check_file(root, entry, problems)
        if table is not None:
            if entry.tier != "deep":
                _check_content_ids(table, f"{entry.path} (namespace {entry.namespace!r})", problems)
            parts.append(_chain_columns(table, entry.namespace))
    for namespace, commit, data, checksum in pending:
        where = f"pending versions of namespace {namespace!r}, commit {commit}"
        try:
            table = decode_table(data, checksum=checksum, where=where)
        except CorruptionError as e:
            problems.append(str(e))
            continue
        _check_content_ids(table, where, problems)
        parts.append(_chain_columns(table, namespace))
    versions = pa.concat_tables(parts) if parts else _chain_columns(None, "")
    _check_chain(commits, versions, problems)
    return VerifyReport(
        is_ok=not problems, problems=tuple(problems), commits_checked=len(commits),
        files_checked=len(files), versions_checked=versions.num_rows,
    )


def _check_file(root: Path, entry: FileEntry, problems: list[str]) -> pa.Table | None:
    where = f"{entry.path} ({entry.tier} file of namespace {entry.namespace!r})"
    try:
        data = (root / entry.path).read_bytes()
    except FileNotFoundError:
        problems.append(f"{where}: missing (removed?)")
        return None
    if len(data) != entry.bytes:
        problems.append(f"{where}: {len(data)} bytes, the catalog recorded {entry.bytes} (edited or truncated)")
    elif blake3.blake3(data).hexdigest() != entry.checksum:
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
    ids = table["_write_id"].filter(mask).to_pylist()
    more = f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else ""
    return ", ".join(map(str, ids[:_SHOW])) + more


def _check_content_ids(table: pa.Table, where: str, problems: list[str]) -> None:
    deleted = table["_deleted"].combine_chunks()
    stored = table["_content_id"].combine_chunks()
    bad_tomb = pc.and_(deleted, pc.is_valid(stored))
    if pc.any(bad_tomb).as_py():
        problems.append(f"{where}: tombstones with a content id: write ids {_ids(table, bad_tomb)}")
    values = table.select([n for n in table.column_names if not n.startswith("_")])
    live = pc.invert(deleted)
    idx = pc.indices_nonzero(live)
    try:
        recomputed = content_ids(values.take(idx))
    except KoruError as e:
        problems.append(f"{where}: content ids cannot be computed: {e}")
        return
    differs = pc.fill_null(pc.not_equal(recomputed, stored.take(idx)), True)
    if pc.any(differs).as_py():
        problems.append(
            f"{where}: values do not match their content ids (edited): write ids {_ids(table.take(idx), differs)}"
        )


def _chain_columns(table: pa.Table | None, namespace: str) -> pa.Table:
    schema = pa.schema([SYSTEM_SCHEMA.field(c).with_nullable(True) for c in _CHAIN_COLUMNS] + [("namespace", pa.string())])
    if table is None:
        return schema.empty_table()
    cols = [table[c].cast(schema.field(c).type) for c in _CHAIN_COLUMNS]
    return pa.table([*cols, pa.repeat(pa.scalar(namespace), table.num_rows)], schema=schema)


def _check_chain(commits: Iterable[tuple], versions: pa.Table, problems: list[str]) -> None:
    dup = versions.group_by("_write_id").aggregate([("_write_id", "count")])
    dup = dup.filter(pc.greater(dup["_write_id_count"], 1))
    if dup.num_rows:
        problems.append(f"write ids stored more than once: {', '.join(dup['_write_id'].to_pylist()[:_SHOW])}")
    order = versions.sort_by([("_write_id", "ascending")])
    numbers = order["_commit"].to_numpy()
    by_commit: dict[int, tuple[int, int]] = {}
    if len(numbers):
        starts = np.flatnonzero(np.diff(numbers, prepend=numbers[0] - 1))
        ends = np.append(starts[1:], len(numbers))
        by_commit = {int(numbers[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    prev_hash, expected = None, 1
    for number, system_time, actor, run_id, namespaces, written, deleted, digest, stored_prev in commits:
        where = f"commit {number}"
        if number != expected:
            problems.append(f"{where}: commits {expected}..{number - 1} are missing from the commit log")
        expected = number + 1
        if stored_prev != prev_hash:
            problems.append(f"{where}: prev_hash does not equal the previous commit's hash (commit log edited)")
        s, e = by_commit.pop(number, (0, 0))
        rows = order.slice(s, e - s)
        if commit_hash(stored_prev, commit=number, system_time=system_time, versions=[rows]) != digest:
            problems.append(f"{where}: hash does not match its versions (versions or commit row edited or removed)")
        _check_commit_row(where, rows, system_time, actor, run_id, namespaces, written, deleted, problems)
        prev_hash = digest
    for number in sorted(by_commit):
        problems.append(f"commit {number}: versions of it are stored but the commit log has no such commit")


def _check_commit_row(
    where: str, rows: pa.Table, system_time: int, actor: str | None, run_id: str | None,
    namespaces: str, written: int, deleted: int, problems: list[str],
) -> None:
    if not rows.num_rows:
        problems.append(f"{where}: no stored versions (removed?)")
        return
    n_deleted = pc.sum(rows["_deleted"].cast(pa.int64())).as_py() or 0
    facts = {
        "system_time": ({system_time}, set(rows["_system_from"].cast(pa.int64()).to_pylist())),
        "actor": ({actor}, set(rows["_actor"].to_pylist())),
        "run_id": ({run_id}, set(rows["_run_id"].to_pylist())),
        "namespaces": (set(json.loads(namespaces)), set(rows["namespace"].to_pylist())),
        "written/deleted": ({(written, deleted)}, {(rows.num_rows - n_deleted, n_deleted)}),
    }
    for name, (recorded, actual) in facts.items():
        if recorded != actual:
            problems.append(f"{where}: {name} in the commit log is {sorted(recorded, key=str)}, its versions say {sorted(actual, key=str)}")

