"""``PostgresCatalog.record_commit``: the one statement that publishes a commit.

Two round trips, and the head row locked only while the server runs one statement:

1. ``SELECT last_commit, last_system_time, last_hash FROM head`` (no lock). If the head
   is not the draft's base, :class:`~koru_core.errors.HeadMovedError` at once. Otherwise
   the client fixes the commit number ``base + 1``, the system time (the draft's, raised
   past the head's by 1 µs) and the chain hash.
2. One autocommit statement of data-modifying CTEs, its own READ COMMITTED transaction::

       WITH h AS (SELECT id FROM head WHERE id = 1 AND last_commit = $base
                  AND last_hash IS NOT DISTINCT FROM $prev FOR UPDATE),
            c AS (INSERT INTO commits SELECT … FROM h),
            n AS (INSERT INTO namespaces SELECT … FROM h, unnest(…) ON CONFLICT (name) DO UPDATE …),
            f AS (INSERT INTO files SELECT … FROM h, unnest(…)),
            p AS (INSERT INTO pending SELECT … FROM h, unnest(…)),
            u AS (UPDATE head SET last_commit = $base + 1, … FROM h WHERE head.id = h.id RETURNING 1)
       SELECT count(*) FROM u

   ``h`` locks the head row. If another committer holds it, ``h`` waits; READ COMMITTED
   then re-checks the row it waited for (``EvalPlanQual``) against the new head, ``h`` is
   empty, every insert joins an empty ``h`` and writes nothing, and the count is 0:
   ``HeadMovedError``. Nothing of the client runs while the lock is held, so a writer
   descheduled or slow never holds up the others (measured: ``benchmarks/catalog_commits.py``).

If the connection breaks while the statement may have committed, :func:`recover` tells
whether it landed (see :mod:`koru_core.catalog.postgres`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import TransactionStatus

from koru_core.catalog.entries import FILE_COLUMNS, CommitDraft, CommitRecord
from koru_core.catalog.postgres_rows import file_row
from koru_core.chain import chain_hash
from koru_core.errors import HeadMovedError, InvalidInputError

if TYPE_CHECKING:
    from koru_core.catalog.postgres import PostgresCatalog

__all__ = ["record", "recover"]

_HEAD = "SELECT last_commit, last_system_time, last_hash FROM head WHERE id = 1"
_FILE_TYPES = (
    "text", "text", "text", "text", "bigint", "bigint", "bytea", "bigint", "bigint", "bigint", "bigint", "bigint",
    "bigint", "bigint", "bigint", "bytea", "bytea",
)
_FILES = ", ".join(f"%(f_{c})s::{t}[]" for c, t in zip(FILE_COLUMNS, _FILE_TYPES))
_PUBLISH = f"""
WITH h AS (
    SELECT id FROM head WHERE id = 1 AND last_commit = %(base)s AND last_hash IS NOT DISTINCT FROM %(prev)s::bytea
    FOR UPDATE
), c AS (
    INSERT INTO commits SELECT %(commit)s, %(system_time)s, %(actor)s, %(run_id)s, %(namespaces)s::text[],
        %(written)s, %(unchanged)s, %(deleted)s, %(first_write_id)s::bigint, %(last_write_id)s::bigint, %(hash)s,
        %(prev)s::bytea, %(metadata)s::text FROM h
), n AS (
    INSERT INTO namespaces (name, schema, key_columns, created_commit, schema_commit, cold_commit)
    SELECT s.name, s.schema, ARRAY(SELECT json_array_elements_text(s.keys::json)), %(commit)s, %(commit)s, 0
    FROM h, unnest(%(s_name)s::text[], %(s_schema)s::bytea[], %(s_keys)s::text[]) AS s(name, schema, keys)
    ON CONFLICT (name) DO UPDATE SET schema = excluded.schema, key_columns = excluded.key_columns,
        schema_commit = excluded.schema_commit
), f AS (
    INSERT INTO files ({", ".join(FILE_COLUMNS)})
    SELECT x.* FROM h, unnest({_FILES}) AS x
), p AS (
    INSERT INTO pending SELECT b.namespace, b.kind, %(commit)s, %(system_time)s, b.rows, b.data, b.checksum
    FROM h, unnest(%(b_namespace)s::text[], %(b_kind)s::text[], %(b_rows)s::bigint[], %(b_data)s::bytea[],
                   %(b_checksum)s::bytea[]) AS b(namespace, kind, rows, data, checksum)
), u AS (
    UPDATE head SET last_commit = %(commit)s, last_system_time = %(system_time)s, last_hash = %(hash)s
    FROM h WHERE head.id = h.id RETURNING 1
)
SELECT count(*) FROM u
"""


def record(cat: PostgresCatalog, draft: CommitDraft) -> CommitRecord:
    """Publish ``draft`` (see :meth:`koru_core.catalog.base.Catalog.record_commit`).

    Raises:
        HeadMovedError: the head is past ``draft.base``; nothing was written.
        ConnectionError: the server was lost and the commit is not recorded.
        StoreLockedError: the head row stayed locked for longer than the timeout.
        PermissionError: the catalog was opened read-only.
    """
    if cat.read_only:
        msg = f"{cat.url}: the store was opened read-only"
        raise PermissionError(msg)
    if cat._con.info.transaction_status != TransactionStatus.IDLE:
        msg = f"{cat.url}: record_commit cannot run inside catalog.snapshot()"
        raise InvalidInputError(msg)
    if draft.swaps:
        msg = f"{cat.url}: record_commit takes no file swaps here (swaps_in_commit is False)"
        raise InvalidInputError(msg)
    head, head_time, prev = _head(cat)  # reconnects once if the server dropped the connection meanwhile
    if head != draft.base:
        raise _moved(cat, draft.base, head)
    commit = head + 1
    system_time = max(draft.system_time, head_time + 1000)
    digest = chain_hash(prev, commit=commit, system_time=system_time, body=draft.body, actor=draft.actor,
                        run_id=draft.run_id, metadata=draft.metadata)
    rec = CommitRecord(
        commit=commit, system_time=system_time, actor=draft.actor, run_id=draft.run_id,
        namespaces=draft.namespaces, written=draft.written, unchanged=draft.unchanged,
        deleted=draft.deleted, first_write_id=draft.first_write_id, last_write_id=draft.last_write_id,
        hash=digest, prev_hash=prev, metadata=dict(draft.metadata or {}),
    )
    params = _params(draft, rec)
    con = cat._con
    try:
        row = con.execute(_PUBLISH, params).fetchone()
    except psycopg.OperationalError as e:
        if con.broken:
            return recover(cat, rec, cause=e)
        raise cat._wrap(e) from e
    except psycopg.Error as e:
        raise cat._wrap(e) from e
    if not row or row[0] != 1:
        raise _moved(cat, draft.base, max(_head(cat)[0], commit))
    return rec


def _head(cat: PostgresCatalog) -> tuple[int, int, bytes | None]:
    n, t, h = cat._query(_HEAD)[0]
    return int(n), int(t), None if h is None else bytes(h)


def _moved(cat: PostgresCatalog, base: int, head: int) -> HeadMovedError:
    msg = f"{cat.url}: commit {base + 1} was taken by another writer (the last is {head})"
    return HeadMovedError(msg, base=base, head=head)


def _params(draft: CommitDraft, rec: CommitRecord) -> dict[str, Any]:
    files = [file_row(e, commit=rec.commit, system_time=rec.system_time) for e in draft.files]
    params: dict[str, Any] = {
        "base": draft.base, "prev": rec.prev_hash, "commit": rec.commit, "system_time": rec.system_time,
        "actor": rec.actor, "run_id": rec.run_id, "namespaces": list(rec.namespaces), "written": rec.written,
        "unchanged": rec.unchanged, "deleted": rec.deleted, "first_write_id": rec.first_write_id,
        "last_write_id": rec.last_write_id, "hash": rec.hash,
        "metadata": json.dumps(rec.metadata, sort_keys=True) if rec.metadata else None,
        "s_name": list(draft.schemas),
        "s_schema": [schema.serialize().to_pybytes() for schema, _ in draft.schemas.values()],
        "s_keys": [json.dumps(list(keys)) for _, keys in draft.schemas.values()],
        "b_namespace": [b.namespace for b in draft.blobs], "b_kind": [b.kind for b in draft.blobs],
        "b_rows": [b.rows for b in draft.blobs], "b_data": [b.data for b in draft.blobs],
        "b_checksum": [b.checksum for b in draft.blobs],
    }
    for i, column in enumerate(FILE_COLUMNS):
        params[f"f_{column}"] = [row[i] for row in files]
    return params


def recover(cat: PostgresCatalog, rec: CommitRecord, *, cause: BaseException | None = None) -> CommitRecord:
    """Tell whether commit ``rec`` landed after the connection broke during its COMMIT.

    Reconnects, waits for the head row lock (so the old transaction has committed or
    rolled back), and compares commit ``rec.commit``'s hash with ``rec.hash``.

    Returns:
        ``rec``, if it was recorded.

    Raises:
        ConnectionError: it was not recorded (nothing was written), or the check itself failed.
    """
    cat._drop()
    try:
        con = cat._con
        with con.transaction():
            con.execute(f"SET LOCAL lock_timeout = {int(cat._timeout * 2000)}")
            con.execute(_HEAD + " FOR UPDATE").fetchone()  # waits for the old transaction to end
            row = con.execute("SELECT hash FROM commits WHERE commit_number = %s", (rec.commit,)).fetchone()
    except (psycopg.Error, ConnectionError) as e:
        msg = (f"{cat.url}: lost the connection while recording commit {rec.commit}, and could not check whether "
               f"it was recorded: {e}")
        raise ConnectionError(msg) from cause
    if row is not None and bytes(row[0]) == rec.hash:
        return rec
    msg = f"{cat.url}: lost the connection before commit {rec.commit} was recorded; nothing was written"
    raise ConnectionError(msg) from cause
