"""Multi-key atomic commits: ``with store.transaction() as tx: ...``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from koru_core.errors import InvalidInputError
from koru_core.input import batch_from_table, batch_from_value
from koru_core.keys import encode_key, key_fields, value_with_key_fields
from koru_core.model import CommitResult
from koru_core.write.batches import Operation

if TYPE_CHECKING:
    from koru_core.write.writer import Writer

__all__ = ["Transaction"]

_OPEN = threading.local()  # the open transaction of each thread, per writer: {id(writer): Transaction}


class Transaction:
    """Buffers puts, deletes and upserts and commits them as one commit on exit.

    The store's write lock is taken on entry and held until exit, so the commit
    sees no interleaved writer. On a clean exit everything commits atomically
    (``result`` then holds the :class:`CommitResult`); if the block raises,
    nothing is written. Within a transaction, a later write of the same key
    and valid time replaces an earlier one. A ``store.transaction()`` opened inside
    another one in the same thread joins it: its writes commit with the outer
    transaction's, and its ``result`` is the outer one's once that commits.

    Example:
        >>> with store.transaction(actor="etl") as tx:
        ...     tx.put("users", "alice", {"age": 31})
        ...     tx.put("users", "bob", {"age": 40})
        >>> tx.result.written
        2
    """

    def __init__(
        self, writer: Writer, *, actor: str | None, run_id: str | None, metadata: dict[str, str] | None = None,
        key_of: Any = None,
    ) -> None:
        self._writer = writer
        self._actor = actor
        self._run_id = run_id
        self._metadata = metadata
        self._key_of = key_of
        self._ops: list[Operation] = []
        self._key_columns: dict[str, tuple[str, ...]] = {}  # of namespaces upserted in this transaction
        self._open = False
        self._outer: Transaction | None = None
        self._joined: list[Transaction] = []
        self._reads: dict[tuple[str, str], int] = {}  # (namespace, _key) -> commit of the version read
        self.result: CommitResult | None = None

    def __enter__(self) -> Transaction:
        open_ = getattr(_OPEN, "by_writer", None)
        if open_ is None:
            open_ = _OPEN.by_writer = {}
        outer = open_.get(id(self._writer))
        if outer is not None:
            self._outer = outer
            self._open = True
            return self
        self._writer.ctx.lock.acquire()
        self._open = True
        open_[id(self._writer)] = self
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._outer is not None:
            self._open = False
            if exc_type is None:
                self._outer._ops.extend(self._ops)
                self._outer._joined.append(self)
            return
        try:
            if exc_type is None and self._ops:
                self.result, _, _ = self._writer.commit(
                    self._ops, actor=self._actor, run_id=self._run_id, metadata=self._metadata,
                    expected=self._reads,
                )
            elif exc_type is None:
                self.result = CommitResult(commit=None)
            for inner in self._joined:
                inner.result = self.result
        finally:
            self._open = False
            _OPEN.by_writer.pop(id(self._writer), None)
            self._writer.ctx.lock.release()

    def _add(self, op: Operation) -> None:
        if not self._open:
            msg = "the transaction is not open: use it inside `with store.transaction() as tx:`"
            raise InvalidInputError(msg)
        self._ops.append(op)

    def _key(self, namespace: str, key: Any) -> tuple[str, dict[str, Any]]:
        """The ``_key`` and the key columns' values of a key as written."""
        outer = self._outer or self
        columns = outer._key_columns.get(namespace)
        if columns is not None and not isinstance(key, str):  # key columns this transaction declared
            return encode_key(namespace, key, columns), key_fields(key, columns)
        if self._key_of is None:
            return encode_key(namespace, key), {}
        return self._key_of(namespace, key)  # type: ignore[no-any-return]

    def get(self, namespace: str, key: str | int | Sequence[Any] | Mapping[str, Any]) -> Any:
        """Read ``key``'s current value (see :meth:`Store.get`) and add it to the transaction's read set.

        The read sees what is committed (not this transaction's own buffered writes). On
        exit, if another writer has changed the current version of a key read here, the
        transaction commits nothing and raises :class:`ConflictError` naming the key and
        both commits (on an embedded store the write lock makes that impossible; on a
        shared store it is how a read-modify-write stays correct).

        Raises:
            KeyNotFoundError: no live version (the key is still in the read set: a
                concurrent first write of it is a conflict).
            NamespaceNotFoundError: the namespace was never written.
        """
        from koru_core.read import reads
        from koru_core.write import hotsync

        if not self._open:
            msg = "the transaction is not open: use it inside `with store.transaction() as tx:`"
            raise InvalidInputError(msg)
        ctx = self._writer.ctx
        text = self._key(namespace, key)[0]
        head = ctx.catalog.head()[0]
        seen = hotsync.current_commit(ctx, namespace, text, head) if ctx.catalog.namespace(namespace) else 0
        (self._outer or self)._reads.setdefault((namespace, text), seen)
        return reads.get(ctx, namespace, text, at=None, version=head or None)

    def put(
        self, namespace: str, key: str | int | Sequence[Any] | Mapping[str, Any], value: Any, *,
        valid_from: datetime | None = None, parents: Iterable[str] = (),
    ) -> None:
        """Buffer a put (see :meth:`Store.put`)."""
        text, fields = self._key(namespace, key)
        batch = batch_from_value(namespace, text, value_with_key_fields(namespace, value, fields),
                                 valid_from=valid_from, parents=parents)
        self._add(Operation(batch))

    def delete(
        self, namespace: str, key: str | int | Sequence[Any] | Mapping[str, Any], *,
        valid_from: datetime | None = None, parents: Iterable[str] = (),
    ) -> None:
        """Buffer a tombstone (see :meth:`Store.delete`)."""
        batch = batch_from_value(namespace, self._key(namespace, key)[0], None, valid_from=valid_from,
                                 parents=parents, is_deleted=True)
        self._add(Operation(batch))

    def upsert(
        self, namespace: str, data: Any, *, key: str | Sequence[str], valid_from: datetime | str | None = None,
        delete_missing: bool = False, parents: Iterable[str] = (),
    ) -> None:
        """Buffer an upsert (see :meth:`Store.upsert`)."""
        batch = batch_from_table(namespace, data, key=key, valid_from=valid_from, parents=parents)
        self._add(Operation(batch, delete_missing=delete_missing))
        (self._outer or self)._key_columns.setdefault(namespace, tuple(batch.key_columns))
