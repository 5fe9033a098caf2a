"""Multi-key atomic commits: ``with store.transaction() as tx: ...``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from koru_core._writer import Operation
from koru_core.errors import InvalidInputError
from koru_core.input import batch_from_table, batch_from_value
from koru_core.model import CommitResult

if TYPE_CHECKING:
    from koru_core._writer import Writer

__all__ = ["Transaction"]


class Transaction:
    """Buffers puts, deletes and upserts and commits them as one commit on exit.

    The store's write lock is taken on entry and held until exit, so the commit
    sees no interleaved writer. On a clean exit everything commits atomically
    (``result`` then holds the :class:`CommitResult`); if the block raises,
    nothing is written. Within a transaction, a later write of the same key
    and valid time replaces an earlier one.

    Example:
        >>> with store.transaction(actor="etl") as tx:
        ...     tx.put("users", "alice", {"age": 31})
        ...     tx.put("users", "bob", {"age": 40})
        >>> tx.result.written
        2
    """

    def __init__(
        self, writer: Writer, *, actor: str | None, run_id: str | None, metadata: dict[str, str] | None = None,
    ) -> None:
        self._writer = writer
        self._actor = actor
        self._run_id = run_id
        self._metadata = metadata
        self._ops: list[Operation] = []
        self._open = False
        self.result: CommitResult | None = None

    def __enter__(self) -> Transaction:
        self._writer.lock.acquire()
        self._open = True
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None and self._ops:
                self.result, _ = self._writer.commit(
                    self._ops, actor=self._actor, run_id=self._run_id, metadata=self._metadata
                )
            elif exc_type is None:
                self.result = CommitResult(commit=None)
        finally:
            self._open = False
            self._writer.lock.release()

    def _add(self, op: Operation) -> None:
        if not self._open:
            msg = "the transaction is not open: use it inside `with store.transaction() as tx:`"
            raise InvalidInputError(msg)
        self._ops.append(op)

    def put(
        self, namespace: str, key: str, value: Any, *, valid_from: datetime | None = None,
        parents: Iterable[str] = (),
    ) -> None:
        """Buffer a put (see :meth:`Store.put`)."""
        self._add(Operation(batch_from_value(namespace, key, value, valid_from=valid_from, parents=parents)))

    def delete(
        self, namespace: str, key: str, *, valid_from: datetime | None = None, parents: Iterable[str] = ()
    ) -> None:
        """Buffer a tombstone (see :meth:`Store.delete`)."""
        batch = batch_from_value(namespace, key, None, valid_from=valid_from, parents=parents, is_deleted=True)
        self._add(Operation(batch))

    def upsert(
        self, namespace: str, data: Any, *, key: str | Sequence[str], valid_from: datetime | str | None = None,
        delete_missing: bool = False, parents: Iterable[str] = (),
    ) -> None:
        """Buffer an upsert (see :meth:`Store.upsert`)."""
        batch = batch_from_table(namespace, data, key=key, valid_from=valid_from, parents=parents)
        self._add(Operation(batch, delete_missing=delete_missing))
