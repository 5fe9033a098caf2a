"""``PostgresCatalog.record_commit``: the one transaction that publishes a commit.

Sent in pipeline mode, in two round trips::

    BEGIN ISOLATION LEVEL READ COMMITTED
    SET LOCAL idle_in_transaction_session_timeout = …   a hung writer cannot hold the head forever
    SELECT last_commit, last_system_time, last_hash FROM head WHERE id = 1 FOR UPDATE
    -- sync: the head row is locked; READ COMMITTED returns the winner's row after a wait
    -- client: head != draft.base -> ROLLBACK, HeadMovedError(base, head)
    --         else commit = head + 1, system_time = max(draft's, head's + 1 µs), chain hash
    INSERT INTO commits …; INSERT INTO namespaces … ON CONFLICT …; INSERT INTO files …;
    INSERT INTO pending …; UPDATE head SET last_commit = commit, … ; COMMIT
    -- sync

The head row lock is the one serialisation point of committers, held for one round trip.
If the connection breaks once COMMIT may have been sent, :func:`recover` tells whether it
landed (see :mod:`koru_core.catalog.postgres`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg.pq import TransactionStatus

from koru_core.catalog.entries import CommitDraft, CommitRecord
from koru_core.catalog.postgres import _INSERT_COMMIT, _INSERT_FILE, _UPSERT_SCHEMA, _commit_row, _file_row
from koru_core.chain import chain_hash
from koru_core.errors import HeadMovedError, InvalidInputError

if TYPE_CHECKING:
    from koru_core.catalog.postgres import PostgresCatalog

__all__ = ["record", "recover"]

_HEAD = "SELECT last_commit, last_system_time, last_hash FROM head WHERE id = 1 FOR UPDATE"


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
    con = cat._con
    if con.info.transaction_status != TransactionStatus.IDLE:
        msg = f"{cat.url}: record_commit cannot run inside catalog.snapshot()"
        raise InvalidInputError(msg)
    done: CommitRecord | None = None
    try:
        with con.pipeline() as pipe:
            con.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            con.execute(f"SET LOCAL idle_in_transaction_session_timeout = {int(cat._timeout * 1000)}")  # type: ignore[arg-type]  # an int
            cur = con.execute(_HEAD)
            pipe.sync()
            row = cur.fetchone()
            assert row is not None
            head, head_time, prev = int(row[0]), int(row[1]), None if row[2] is None else bytes(row[2])
            if head != draft.base:
                con.execute("ROLLBACK")
                msg = f"{cat.url}: commit {draft.base + 1} was taken by another writer (the last is {head})"
                raise HeadMovedError(msg, base=draft.base, head=head)
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
            con.execute(_INSERT_COMMIT, _commit_row(rec))
            for name, (schema, keys) in draft.schemas.items():
                con.execute(_UPSERT_SCHEMA, (name, schema.serialize().to_pybytes(), list(keys), commit, commit))
            many = con.cursor()
            if draft.files:
                many.executemany(_INSERT_FILE, [_file_row(e, commit=commit, system_time=system_time) for e in draft.files])
            if draft.blobs:
                many.executemany("INSERT INTO pending VALUES (%s, %s, %s, %s, %s, %s, %s)", [
                    (b.namespace, b.kind, commit, system_time, b.rows, b.data, b.checksum) for b in draft.blobs])
            con.execute("UPDATE head SET last_commit = %s, last_system_time = %s, last_hash = %s WHERE id = 1",
                        (commit, system_time, digest))
            done = rec  # from here on, COMMIT may reach the server
            con.execute("COMMIT")
            pipe.sync()
    except HeadMovedError:
        raise
    except psycopg.OperationalError as e:
        if done is not None and con.broken:
            return recover(cat, done, cause=e)
        _rollback(con)
        raise cat._wrap(e) from e
    except psycopg.Error as e:
        _rollback(con)
        raise cat._wrap(e) from e
    assert done is not None
    return done


def _rollback(con: psycopg.Connection) -> None:
    if not con.broken and con.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            con.execute("ROLLBACK")
        except psycopg.Error:
            pass


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
            con.execute(f"SET LOCAL lock_timeout = {int(cat._timeout * 2000)}")  # type: ignore[arg-type]  # an int
            con.execute(_HEAD).fetchone()
            row = con.execute("SELECT hash FROM commits WHERE commit_number = %s", (rec.commit,)).fetchone()
    except (psycopg.Error, ConnectionError) as e:
        msg = (f"{cat.url}: lost the connection while recording commit {rec.commit}, and could not check whether "
               f"it was recorded: {e}")
        raise ConnectionError(msg) from cause
    if row is not None and bytes(row[0]) == rec.hash:
        return rec
    msg = f"{cat.url}: lost the connection before commit {rec.commit} was recorded; nothing was written"
    raise ConnectionError(msg) from cause
